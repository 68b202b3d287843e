"""PDM-Closed (Dauner et al., 2023) as NAVSIM's metric cache runs it: 15 IDM proposals, simulated and scored.

Proposals: 3 paths (the route centreline and its -1 m / +1 m parallels) x 5 IDM target speeds (0.2..1.0 of
the starting lane's speed limit). Each is unrolled for 4 s at 0.1 s, tracked by the LQR + bicycle
simulator, scored by the PDM scorer on a constant-velocity forecast, and the best is unrolled to 5 s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import shapely

from planners.drive_base import DRIVE_PLAN, DrivePlanner
from planners.pdm.centerline import lane_polygons, route_centerline
from planners.pdm.forecast import forecast_scene
from planners.pdm.idm import IDMParameters, idm_step
from planners.pdm.path import DiscretePath
from planners.pdm.scoring import ScorerConfig, score_proposal_set
from planners.pdm.scoring.areas import route_lane_mask
from planners.pdm.simulation import ego_state_vector, simulate
from planners.pdm.states import NUM_STATE_FIELDS, SIM_INTERVAL
from planners.plan import Plan
from planners.registry import register_planner
from scenes import NUM_PLAN_POSES, PACIFICA, PLAN_DT, AgentCategory, DriveObservation, Frame, Trajectory
from scenes.geometry import box_corners, wrap_angle


@dataclass(frozen=True)
class PDMClosedConfig:
    """NAVSIM metric-cache settings."""

    idm: IDMParameters = field(default_factory=IDMParameters)
    lateral_offsets: tuple[float, ...] = (-1.0, 1.0)  # [m], after the centreline itself
    proposal_steps: int = 40  # 4 s at 0.1 s
    trajectory_steps: int = 50  # 5 s at 0.1 s
    leading_agent_update_rate: int = 2  # steps
    map_radius: float = 100.0  # [m]


@dataclass(frozen=True)
class _Objects:
    """Forecast obstacles: polygons (S, M) at each of S steps, plus per-object data (M,)."""

    polygons: np.ndarray
    speed: np.ndarray  # (M,) [m/s], projected on the ego heading for the lead velocity
    heading: np.ndarray  # (M,) [rad]
    kind: np.ndarray  # (M,) AGENT, STATIC or RED_LIGHT


AGENT, STATIC, RED_LIGHT = 0, 1, 2


class PDMClosed:
    """The PDM-Closed algorithm on one observation (ego frame)."""

    def __init__(self, config: PDMClosedConfig = PDMClosedConfig()):
        self.config = config

    def trajectory(self, observation: DriveObservation) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The best proposal unrolled to `trajectory_steps`.

        Returns:
            poses (trajectory_steps + 1, 3) at 0.1 s from now, ego frame; all proposals
            (15, proposal_steps + 1, 3); their scores (15,).
        """
        cfg = self.config
        centerline, start_row = route_centerline(observation.map, observation.route, np.zeros(3))
        paths = [centerline, *(centerline.offset(o) for o in cfg.lateral_offsets)]
        limit = float(observation.map.lane_speed_limits[start_row])
        if not math.isfinite(limit):  # the map gives none
            limit = cfg.idm.fallback_target_velocity
        targets = np.asarray(cfg.idm.speed_limit_fractions) * limit
        objects = self._objects(observation)
        ego_speed = float(observation.ego.velocity[0])
        proposals = np.concatenate([self._unroll(path, objects, targets, ego_speed, cfg.proposal_steps)
                                    for path in paths])
        states = np.zeros((*proposals.shape[:2], NUM_STATE_FIELDS))
        states[..., :3] = proposals
        simulated = simulate(states, ego_state_vector(observation.ego))
        scene = forecast_scene(observation, cfg.map_radius)
        scores = score_proposal_set(scene, simulated, ScorerConfig()).score
        best = int(np.argmax(scores))
        lateral, longitudinal = divmod(best, len(targets))
        full = self._unroll(paths[lateral], objects, targets, ego_speed, cfg.trajectory_steps)[longitudinal]
        return full, proposals, scores

    def _objects(self, observation: DriveObservation) -> _Objects:
        """Obstacles near the ego, moved at constant velocity over the trajectory horizon."""
        cfg = self.config
        agents = observation.agents
        near = agents.valid[:, -1] & (np.linalg.norm(agents.xy[:, -1], axis=-1) <= cfg.map_radius)
        steps = np.arange(cfg.trajectory_steps + 1) * SIM_INTERVAL
        xy = agents.xy[near, -1][None] + steps[:, None, None] * agents.velocity[near, -1][None]
        heading = agents.heading[near, -1]
        corners = box_corners(xy, np.broadcast_to(heading, xy.shape[:2]), agents.size[near, 0],
                              agents.size[near, 1])
        polygons = shapely.polygons(corners)
        ego_box = shapely.Polygon(box_corners(np.array([PACIFICA.rear_axle_to_center, 0.0]), np.asarray(0.0),
                                              np.asarray(PACIFICA.length), np.asarray(PACIFICA.width)))
        collided = shapely.intersects(polygons[0], ego_box)  # ignored, as NAVSIM's collided tracks
        kind = np.where(agents.category[near] == AgentCategory.STATIC_OBJECT, STATIC, AGENT)
        speed = np.linalg.norm(agents.velocity[near, -1], axis=-1)
        keep = ~collided
        polygons, speed, heading, kind = polygons[:, keep], speed[keep], heading[keep], kind[keep]
        # Red lights on route lanes block like static objects, unless the ego is already inside one.
        road = observation.map
        red = lane_polygons(road)[np.isin(road.lane_ids, observation.red_lane_ids)
                                  & route_lane_mask(road, observation.route)]
        red = red[~shapely.within(ego_box, red)] if red.size else red
        polygons = np.concatenate([polygons, np.broadcast_to(red, (len(steps), len(red)))], axis=1)
        return _Objects(polygons, np.concatenate([speed, np.zeros(len(red))]),
                        np.concatenate([heading, np.zeros(len(red))]),
                        np.concatenate([kind, np.full(len(red), RED_LIGHT)]))

    def _unroll(self, path: DiscretePath, objects: _Objects, targets: np.ndarray, ego_speed: float,
                num_steps: int) -> np.ndarray:
        """IDM along `path` for each target speed: poses (P, num_steps + 1, 3), ego frame."""
        cfg = self.config
        num = len(targets)
        progress = np.full(num, float(path.project(np.zeros(2))))
        velocity = np.full(num, ego_speed)
        out = np.zeros((num, num_steps + 1, 3))
        out[:, 0] = path.interpolate(progress)
        corridor = shapely.buffer(
            path.substring(progress[0], progress[0] + targets.max() * cfg.trajectory_steps * SIM_INTERVAL),
            PACIFICA.width / 2, cap_style="square")
        # NAVSIM refreshes the leading agents every other step; before the first refresh (step 1) they stay
        # all zero, which makes every proposal brake for one step. Reproduced on purpose.
        leads = np.zeros((num, 3))
        for step in range(1, num_steps + 1):
            if step % cfg.leading_agent_update_rate == 0:
                leads = self._leading_agents(path, objects, step, corridor, progress, out[:, step - 1])
            progress, velocity = idm_step(progress, velocity, leads[:, 0], leads[:, 1], leads[:, 2], targets,
                                          cfg.idm, SIM_INTERVAL)
            out[:, step] = path.interpolate(progress)
        return out

    @staticmethod
    def _leading_agents(path: DiscretePath, objects: _Objects, step: int, corridor: shapely.Geometry,
                        progress: np.ndarray, poses: np.ndarray) -> np.ndarray:
        """(P, 3) leading agent (progress [m], velocity [m/s], rear length [m]) per row.

        As NAVSIM, one scratch row is shared by the rows of a refresh, so a field a row does not set (the
        velocity behind a red light, the rear length behind an object) keeps the previous row's value.
        """
        polygons = objects.polygons[step]
        hits = np.flatnonzero(shapely.intersects(polygons, corridor)) if polygons.size else np.zeros(0, int)
        along = path.project(shapely.get_coordinates(shapely.centroid(polygons[hits]))) if hits.size else hits
        rows = np.zeros((len(progress), 3))
        scratch = np.zeros(3)
        for i, (ego_progress, pose) in enumerate(zip(progress, poses)):
            ahead = hits[along > ego_progress]
            if ahead.size:
                center = pose[:2] + PACIFICA.rear_axle_to_center * np.array([np.cos(pose[2]), np.sin(pose[2])])
                ego = shapely.Polygon(box_corners(center, np.asarray(pose[2]), np.asarray(PACIFICA.length),
                                                  np.asarray(PACIFICA.width)))
                gaps = shapely.distance(polygons[ahead], ego)
                nearest = ahead[int(np.argmin(gaps))]
                scratch[0] = ego_progress + gaps.min()
                if objects.kind[nearest] == AGENT:
                    scratch[1] = objects.speed[nearest] * np.cos(wrap_angle(objects.heading[nearest] - pose[2]))
                elif objects.kind[nearest] == STATIC:
                    scratch[1] = 0.0
            else:
                scratch[0] = path.length
                scratch[2] = PACIFICA.length / 2
            rows[i] = scratch
        return rows


@register_planner("pdm-closed")
class PDMClosedPlanner(DrivePlanner):
    """PDM-Closed as a driving planner: 8 poses at 0.5 s from its best proposal."""

    def __init__(self, config: PDMClosedConfig = PDMClosedConfig()):
        self.algorithm = PDMClosed(config)

    def plan(self, observation: DriveObservation) -> Plan:
        """The best proposal at PLAN_DT, with every proposal (at PLAN_DT) and its score."""
        dense, proposals, scores = self.algorithm.trajectory(observation)
        stride = round(PLAN_DT / SIM_INTERVAL)
        pick = stride * np.arange(1, NUM_PLAN_POSES + 1)
        candidates = proposals[:, pick[pick < proposals.shape[1]]]
        return Plan(Trajectory(dense[pick], PLAN_DT, Frame.EGO), candidates=candidates, scores=scores,
                    spec=DRIVE_PLAN)
