"""Hand-built scenes with known geometry (waymax `test_utils` style) and a full-batch fit, for tests."""

from __future__ import annotations

import dataclasses

import numpy as np
import shapely

from scenes import (
    CURRENT_INDEX,
    NUM_STEPS,
    SIM_DT,
    AgentCategory,
    AgentTracks,
    DrivableKind,
    DriveLog,
    DriveScene,
    DrivingCommand,
    EgoState,
    MapLayers,
    Route,
    ScenarioType,
    SceneMetadata,
    TrafficLights,
)
from scenes.maps import boundary_polygons

LANE_WIDTH = 3.5  # [m]


def straight_two_lane_map(length: float = 200.0) -> MapLayers:
    """Two eastbound lanes from x=-50 to x=length-50: lane 1 at y=0, lane 2 at y=3.5 [m]."""
    x0, x1 = -50.0, length - 50.0
    centers, lefts, rights = [], [], []
    for k in range(2):
        y = k * LANE_WIDTH
        centers.append(shapely.LineString([(x0, y), (x1, y)]))
        lefts.append(shapely.LineString([(x0, y + LANE_WIDTH / 2), (x1, y + LANE_WIDTH / 2)]))
        rights.append(shapely.LineString([(x0, y - LANE_WIDTH / 2), (x1, y - LANE_WIDTH / 2)]))
    road = shapely.box(x0, -LANE_WIDTH / 2, x1, 1.5 * LANE_WIDTH)
    return MapLayers(
        lane_ids=np.array([1, 2], np.int64),
        lane_centerlines=np.array(centers, dtype=object),
        lane_left_boundaries=np.array(lefts, dtype=object),
        lane_right_boundaries=np.array(rights, dtype=object),
        lane_polygons=boundary_polygons(np.array(lefts, dtype=object), np.array(rights, dtype=object)),
        lane_successors=((), ()),
        lane_speed_limits=np.array([15.0, 15.0]),
        lane_roadblock_ids=np.array([10, 10], np.int64),
        lane_is_connector=np.array([False, False]),
        drivable_polygons=np.array([road], dtype=object),
        drivable_kinds=np.array([DrivableKind.ROADBLOCK], np.int8),
        drivable_ids=np.array([10], np.int64),
        stop_lines=np.array([shapely.LineString([(100.0, -1.75), (100.0, 1.75)])], dtype=object),
        stop_line_lane_ids=np.array([1], np.int64),
        crosswalks=np.array([shapely.box(102.0, -1.75, 106.0, 5.25)], dtype=object),
    )


def constant_speed_ego(speed: float = 10.0, y: float = 0.0) -> EgoState:
    """Ego driving east at `speed` [m/s], at x = 0 at CURRENT_INDEX."""
    t = (np.arange(NUM_STEPS) - CURRENT_INDEX) * SIM_DT
    pose = np.stack([speed * t, np.full_like(t, y), np.zeros_like(t)], axis=-1)
    return EgoState(
        pose=pose,
        velocity=np.stack([np.full_like(t, speed), np.zeros_like(t)], axis=-1),
        acceleration=np.zeros((NUM_STEPS, 2)),
        yaw_rate=np.zeros(NUM_STEPS),
        steering=np.zeros(NUM_STEPS),
    )


def lead_and_oncoming_agents() -> AgentTracks:
    """Agent 7: a car 30 m ahead at 5 m/s in lane 1. Agent 8: a parked car in lane 2, 20 m ahead,
    appearing only from CURRENT_INDEX on. Agent 9: a pedestrian 300 m away (outside any radius)."""
    t = (np.arange(NUM_STEPS) - CURRENT_INDEX) * SIM_DT
    xy = np.zeros((3, NUM_STEPS, 2))
    xy[0, :, 0] = 30.0 + 5.0 * t
    xy[1, :, :] = (20.0, LANE_WIDTH)
    xy[2, :, :] = (300.0, 0.0)
    velocity = np.zeros((3, NUM_STEPS, 2))
    velocity[0, :, 0] = 5.0
    valid = np.ones((3, NUM_STEPS), bool)
    valid[1, :CURRENT_INDEX] = False
    xy[1, :CURRENT_INDEX] = 0.0
    return AgentTracks(
        track_ids=np.array([7, 8, 9], np.int64),
        category=np.array([AgentCategory.VEHICLE, AgentCategory.VEHICLE, AgentCategory.PEDESTRIAN], np.int8),
        size=np.array([[4.5, 1.9], [4.8, 2.0], [0.6, 0.6]]),
        xy=xy,
        heading=np.zeros((3, NUM_STEPS)),
        velocity=velocity,
        valid=valid,
    )


def straight_scene(seed: int = 0, split: str = "train") -> DriveScene:
    """A fully hand-built, valid DriveScene on `straight_two_lane_map`."""
    road_map = straight_two_lane_map()
    lights = TrafficLights(lane_ids=np.array([1], np.int64), is_red=np.zeros((1, NUM_STEPS), bool))
    lights.is_red[0, CURRENT_INDEX:] = True
    return DriveScene(
        metadata=SceneMetadata(f"hand-{split}-{seed}", seed, split, ScenarioType.SLOW_VEHICLE, "hand/1"),
        ego=constant_speed_ego(),
        agents=lead_and_oncoming_agents(),
        map=road_map,
        route=Route((1,), road_map.lane_centerlines[0]),
        command=DrivingCommand.STRAIGHT,
        traffic_lights=lights,
    )


def fit_full_batch(model, features, targets, optimiser, steps: int, scheduler=None) -> list[float]:
    """`steps` optimiser steps of `model.loss(features, targets)` on one fixed batch, in train mode (a
    `scheduler`, if given, steps after each); returns the loss of every step."""
    model.train()
    losses = []
    for _ in range(steps):
        loss, _ = model.loss(features, targets)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if scheduler is not None:
            scheduler.step()
        losses.append(float(loss.detach()))
    return losses


LOG_STEPS = CURRENT_INDEX + 1 + 120  # a hand-built closed-loop log: 12 s after the start
CAR_X = 60.0  # [m] box centre of `straight_log`'s stopped car in the ego's lane
CAR_SIZE = (4.5, 1.9)  # [m]


def stopped_car(num_steps: int = LOG_STEPS) -> AgentTracks:
    """One car (id 7) standing at x = CAR_X in lane 1 (y = 0) for `num_steps` steps."""
    xy = np.zeros((1, num_steps, 2))
    xy[0, :, 0] = CAR_X
    return AgentTracks(np.array([7], np.int64), np.array([AgentCategory.VEHICLE], np.int8), np.array([CAR_SIZE]),
                       xy, np.zeros((1, num_steps)), np.zeros((1, num_steps, 2)), np.ones((1, num_steps), bool))


def straight_log(speed: float = 10.0, agents: AgentTracks | None = None) -> DriveLog:
    """LOG_STEPS of the ego on lane 1 (y = 0) of a straight 400 m road without stop lines or crosswalks, logged
    at constant `speed` [m/s], x = 0 at the start; `agents` default: `stopped_car()`."""
    t = (np.arange(LOG_STEPS) - CURRENT_INDEX) * SIM_DT
    zeros = np.zeros_like(t)
    ego = EgoState(np.stack([speed * t, zeros, zeros], -1), np.stack([np.full_like(t, speed), zeros], -1),
                   np.zeros((LOG_STEPS, 2)), zeros, zeros)
    road = straight_two_lane_map(400.0)
    road = dataclasses.replace(road, stop_lines=road.stop_lines[:0],
                               stop_line_lane_ids=road.stop_line_lane_ids[:0], crosswalks=road.crosswalks[:0])
    meta = SceneMetadata("test-straight", 0, "test", ScenarioType.STRAIGHT_ROAD, "hand-built")
    lights = TrafficLights(np.zeros(0, np.int64), np.zeros((0, LOG_STEPS), bool))
    return DriveLog(meta, ego, stopped_car() if agents is None else agents, road,
                    Route((1,), road.lane_centerlines[0]), DrivingCommand.STRAIGHT, lights).validate()
