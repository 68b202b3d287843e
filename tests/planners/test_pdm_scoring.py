"""NAVSIM PDM scorer re-implementation: hand-built scenes with known sub-metrics and scores."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from planners.pdm.scoring import (
    MetricVersion,
    SceneGeometry,
    ScorerConfig,
    apply_human_filter,
    score_proposals,
)
from planners.pdm.states import NUM_SIM_STATES, NUM_STATE_FIELDS, StateIndex
from scenes import (
    CURRENT_INDEX,
    NUM_STEPS,
    SIM_DT,
    AgentCategory,
    AgentTracks,
    DriveScene,
    DrivingCommand,
    Route,
    ScenarioType,
    SceneMetadata,
    TrafficLights,
)
from tests.factories import constant_speed_ego, straight_two_lane_map

V2 = ScorerConfig(version=MetricVersion.EPDMS_V2)
T_SCENE = (np.arange(NUM_STEPS) - CURRENT_INDEX) * SIM_DT  # [s], 0 at now


def agent(x, y=0.0, vx=0.0, size=(4.5, 1.9), category=AgentCategory.VEHICLE, xy=None, velocity=None):
    """One track dict: constant velocity (vx, 0) from (x, y) at now, unless xy/velocity (NUM_STEPS, 2) given."""
    if xy is None:
        xy = np.stack([x + vx * T_SCENE, np.full(NUM_STEPS, y)], axis=-1)
        velocity = np.tile([vx, 0.0], (NUM_STEPS, 1))
    return {"xy": xy, "velocity": velocity, "size": size, "category": category}


def make_scene(tracks=(), red_lane: int | None = None, lane2_roadblock: int = 10) -> DriveScene:
    """Straight two-lane road (lane 1 at y=0 on route, lane 2 at y=3.5, road y in [-1.75, 5.25]).

    Lane 2 shares lane 1's roadblock (so it is on route, as in NAVSIM) unless `lane2_roadblock` differs.
    """
    road = straight_two_lane_map()
    road = dataclasses.replace(road, lane_roadblock_ids=np.array([10, lane2_roadblock], np.int64))
    n = len(tracks)
    agents = AgentTracks(
        track_ids=np.arange(100, 100 + n, dtype=np.int64),
        category=np.array([a["category"] for a in tracks], np.int8),
        size=np.array([a["size"] for a in tracks], np.float64).reshape(n, 2),
        xy=np.array([a["xy"] for a in tracks], np.float64).reshape(n, NUM_STEPS, 2),
        heading=np.zeros((n, NUM_STEPS)),
        velocity=np.array([a["velocity"] for a in tracks], np.float64).reshape(n, NUM_STEPS, 2),
        valid=np.ones((n, NUM_STEPS), bool),
    )
    is_red = np.zeros((1, NUM_STEPS), bool)
    if red_lane is not None:
        is_red[0, CURRENT_INDEX:] = True
    scene = DriveScene(
        metadata=SceneMetadata("pdm-test", 0, "test", ScenarioType.STRAIGHT_ROAD, "hand/1"),
        ego=constant_speed_ego(),
        agents=agents,
        map=road,
        route=Route((1,), road.lane_centerlines[0]),
        command=DrivingCommand.STRAIGHT,
        traffic_lights=TrafficLights(np.array([red_lane or 1], np.int64), is_red),
    )
    return scene.validate()


def ego_states(speed=10.0, y=0.0, accel=0.0, stop_steps=0, x0=0.0) -> np.ndarray:
    """(41, 11) straight eastbound rear-axle states: at rest for `stop_steps`, then `speed` + `accel` t."""
    t = np.clip(np.arange(NUM_SIM_STATES) - stop_steps, 0, None) * SIM_DT
    v = speed + accel * t
    s = np.zeros((NUM_SIM_STATES, NUM_STATE_FIELDS))
    s[:, StateIndex.X] = x0 + speed * t + 0.5 * accel * t**2
    s[:, StateIndex.Y] = y
    s[:, StateIndex.VELOCITY_X] = v
    s[:, StateIndex.ACCELERATION_X] = np.where(np.arange(NUM_SIM_STATES) >= stop_steps, accel, 0.0)
    if stop_steps:
        s[:stop_steps, StateIndex.VELOCITY_X] = 0.0
    return s


def score(scene, states, reference, config=None, **kwargs):
    result = score_proposals(scene, np.asarray(states)[None], reference, config or ScorerConfig(), **kwargs)
    return {key: float(value[0]) for key, value in result.as_dict().items()}


def pdms(nc, dac, ep, ttc, c):
    return nc * dac * (5 * ep + 5 * ttc + 2 * c) / 12


def test_free_road_scores_one_and_ep_is_relative():
    scene = make_scene()
    m = score(scene, ego_states(8.0), ego_states(10.0))
    assert (m["nc"], m["dac"], m["ttc"], m["comfort"], m["ddc"]) == (1, 1, 1, 1, 1)
    assert m["raw_progress"] == pytest.approx(32.0) and m["reference_progress"] == pytest.approx(40.0)
    assert m["ep"] == pytest.approx(0.8)
    assert m["score"] == pytest.approx(pdms(1, 1, 0.8, 1, 1))


def test_rear_ended_while_stopped_is_not_at_fault():
    scene = make_scene([agent(-8.0, vx=10.0)])  # hits the ego's rear at about 0.46 s
    m = score(scene, ego_states(0.0), ego_states(0.0))
    assert m["nc"] == 1.0 and m["ttc"] == 1.0 and m["ep"] == 1.0 and m["score"] == 1.0


def test_hitting_a_stopped_car_ahead():
    scene = make_scene([agent(20.0)])
    m = score(scene, ego_states(10.0), ego_states(10.0))
    assert m["nc"] == 0.0 and m["ttc"] == 0.0 and m["score"] == 0.0


def test_hitting_a_static_object_scores_half():
    scene = make_scene([agent(20.0, size=(1.0, 1.0), category=AgentCategory.STATIC_OBJECT)])
    m = score(scene, ego_states(10.0), ego_states(10.0))
    assert (m["nc"], m["dac"], m["ttc"], m["comfort"]) == (0.5, 1.0, 0.0, 1.0)
    assert m["ep"] == 1.0  # both progress 40 m * 0.5
    assert m["score"] == pytest.approx(pdms(0.5, 1, 1, 0, 1))


def test_track_stopped_in_its_first_frame_is_the_egos_fault():
    # A car at rest now, then accelerating into the (moving) ego from behind: STOPPED_TRACK, at fault.
    xy = np.zeros((NUM_STEPS, 2))
    tt = np.clip(T_SCENE, 0, None)
    xy[:, 0] = -9.0 + 0.5 * 8.0 * tt**2
    velocity = np.stack([8.0 * tt, np.zeros(NUM_STEPS)], axis=-1)
    m = score(make_scene([agent(0, xy=xy, velocity=velocity)]), ego_states(2.0), ego_states(2.0))
    assert m["nc"] == 0.0
    moving = agent(-9.0, vx=12.0)  # the same contact with a car already moving: rear collision, not at fault
    assert score(make_scene([moving]), ego_states(2.0), ego_states(2.0))["nc"] == 1.0


def test_corner_off_the_drivable_area():
    m = score(make_scene(), ego_states(10.0, y=4.5), ego_states(10.0))  # left corners at y = 5.65 > 5.25
    assert m["dac"] == 0.0 and m["nc"] == 1.0 and m["ep"] == 0.0 and m["score"] == 0.0
    parallel = score(make_scene(), ego_states(10.0, y=3.5), ego_states(10.0))
    assert parallel["dac"] == 1.0 and parallel["ddc"] == 1.0  # lane 2 is in the route roadblock
    oncoming = score(make_scene(lane2_roadblock=11), ego_states(10.0, y=3.5), ego_states(10.0))
    assert oncoming["dac"] == 1.0 and oncoming["ddc"] == 0.0  # 40 m with the centre off every route lane


def test_harsh_brake_fails_comfort():
    scene = make_scene()
    harsh = ego_states(20.0, accel=-4.5)
    smooth = harsh.copy()
    smooth[:, StateIndex.ACCELERATION_X] = 0.0  # same path, comfortable signals
    m = score(scene, harsh, smooth)
    assert m["comfort"] == 0.0 and (m["nc"], m["dac"], m["ttc"], m["ep"]) == (1, 1, 1, 1)
    assert m["score"] == pytest.approx(10 / 12)
    assert score(scene, smooth, smooth)["score"] == 1.0
    # the bound is strict and on the smoothed value: -4.0 passes
    assert score(scene, ego_states(20.0, accel=-4.0), smooth)["comfort"] == 1.0


def test_ttc_triggered_by_slow_car_ahead():
    scene = make_scene([agent(30.0, vx=5.0)])  # collision would be at 4.74 s, after the horizon
    m = score(scene, ego_states(10.0), ego_states(10.0))
    assert m["nc"] == 1.0 and m["ttc"] == 0.0 and m["ep"] == 1.0
    assert m["score"] == pytest.approx(pdms(1, 1, 1, 0, 1))
    v2 = score(scene, ego_states(10.0), ego_states(10.0), V2)  # v2 stops TTC at step 31 (3.1 s)
    assert v2["ttc"] == 1.0


def test_progress_under_five_metres():
    scene = make_scene()
    m = score(scene, ego_states(0.5), ego_states(1.0))  # 2 m and 4 m
    assert m["ep"] == 1.0 and m["score"] == 1.0
    cone = make_scene([agent(6.0, size=(1.0, 1.0), category=AgentCategory.STATIC_OBJECT)])
    m = score(cone, ego_states(1.0), ego_states(1.0))
    assert m["nc"] == 0.5 and m["ep"] == 1.0 and m["ttc"] == 0.0
    assert m["score"] == pytest.approx(pdms(0.5, 1, 1, 0, 1))
    off = score(scene, ego_states(1.0, y=4.5), ego_states(1.0))
    assert off["dac"] == 0.0 and off["ep"] == 0.0


def test_ep_reference_scaled_by_its_own_nc_dac():
    scene = make_scene([agent(41.0, y=0.0)])  # a parked car only the faster reference reaches
    m = score(scene, ego_states(8.0), ego_states(10.0))
    assert m["nc"] == 1.0 and m["ep"] == 1.0  # the reference's NC = 0 zeroes its progress


def test_ignore_list_after_non_at_fault_collision():
    track = agent(6.0, vx=1.0)  # overlaps the ego's front at t = 0
    scene = make_scene([track])
    waiting = ego_states(3.0, stop_steps=5)  # stopped at first: STOPPED_EGO, track ignored afterwards
    m = score(scene, waiting, waiting)
    assert m["nc"] == 1.0
    assert m["ttc"] == 0.0  # TTC keeps its own list, and stopped steps do not feed it
    assert m["score"] == pytest.approx(pdms(1, 1, 1, 0, 1))
    assert score(scene, ego_states(3.0), ego_states(3.0))["nc"] == 0.0  # moving from the start: front hit


def _random_proposals(rng, k):
    rows = []
    for _ in range(k):
        s = ego_states(rng.uniform(0, 14), y=rng.uniform(-1.0, 4.5), accel=rng.uniform(-3, 1))
        s[:, StateIndex.HEADING] = rng.normal(0, 0.03)
        s[:, StateIndex.ANGULAR_VELOCITY] = rng.normal(0, 0.1)
        rows.append(s)
    return np.stack(rows)


@pytest.mark.parametrize("config", [ScorerConfig(), V2], ids=["v1", "v2"])
def test_vectorised_equals_one_by_one(config):
    rng = np.random.default_rng(0)
    scene = make_scene(
        [
            agent(30.0, vx=5.0),
            agent(20.0, y=3.5),
            agent(-8.0, vx=12.0),
            agent(12.0, y=1.5, size=(1.0, 1.0), category=AgentCategory.STATIC_OBJECT),
            agent(25.0, y=3.5, vx=-8.0, size=(0.8, 0.8), category=AgentCategory.PEDESTRIAN),
        ]
    )
    geometry = SceneGeometry.from_scene(scene)
    states = _random_proposals(rng, 24)
    reference = ego_states(9.0)
    previous = _random_proposals(rng, 24)
    batch = score_proposals(geometry, states, reference, config, previous_states=previous).as_dict()
    for k in range(len(states)):
        one = score_proposals(geometry, states[k : k + 1], reference, config, previous[k : k + 1]).as_dict()
        for key, value in one.items():
            assert value[0] == pytest.approx(batch[key][k]), (k, key)
    assert len(set(np.round(batch["score"], 6))) > 3  # the batch is not degenerate


def test_v2_traffic_light_lane_keeping_and_human_filter():
    red = make_scene(red_lane=1)
    m = score(red, ego_states(10.0), ego_states(10.0), V2)
    assert m["tlc"] == 0.0 and m["score"] == 0.0
    assert score(red, ego_states(10.0), ego_states(10.0))["score"] == 1.0  # v1 ignores red lights
    scene = make_scene()
    drift = score(scene, ego_states(10.0, y=0.6), ego_states(10.0), V2)
    assert drift["lk"] == 0.0 and drift["score"] == pytest.approx(14 / 16)
    # the human drives the same offset: LK is waived
    agent_scores = score_proposals(scene, ego_states(10.0, y=0.6)[None], ego_states(10.0), V2)
    filtered = apply_human_filter(agent_scores, agent_scores)
    assert filtered.lk[0] == 1.0 and filtered.score[0] == 1.0


def test_v2_extended_comfort_compares_consecutive_plans():
    scene = make_scene()
    plan = ego_states(10.0)
    assert score(scene, plan, plan, V2, previous_states=plan)["ec"] == 1.0
    jumpy = ego_states(10.0, accel=-3.0)
    m = score(scene, plan, plan, V2, previous_states=jumpy)
    assert m["ec"] == 0.0 and m["score"] == pytest.approx(14 / 16)
    assert score(scene, plan, plan, V2)["ec"] == 1.0  # no previous plan: EC = 1
