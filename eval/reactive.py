"""Reactive IDM agents for closed-loop evaluation (NAVSIM v2 style); off by default.

Vehicles (and bicycles) present now are snapped to their lane and re-simulated with the Intelligent Driver
Model along the lane and its successors, reacting to other agents, the ego and red lights. Everything is
in the map frame at SIM_DT.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from planners.pdm.idm import IDMParameters, idm_step
from planners.pdm.states import StateIndex
from scenes.agents import AgentCategory, AgentTracks
from scenes.drive import CURRENT_INDEX, SIM_DT, DriveLog
from scenes.ego import PACIFICA
from scenes.geometry import wrap_angle

_AXIS = np.array([-1.0, 0.0, 1.0])  # obstacle points along its axis, in half lengths: rear, centre, front


@dataclass(frozen=True)
class ReactiveIDMConfig:
    """IDM agent settings; the IDM values are NAVSIM's `navsim_IDM_traffic_agents.yaml`."""

    target_velocity: float = 10.0  # [m/s] desired speed where no lane speed limit applies
    speed_limit_policy: str = "replace"  # "replace" (NAVSIM: the lane limit is the target), "cap", "ignore"
    min_gap: float = 1.0  # [m]
    headway_time: float = 1.5  # [s]
    accel_max: float = 1.0  # [m/s^2]
    decel_max: float = 2.0  # [m/s^2], positive
    exponent: int = 4  # nuPlan's IDM acceleration exponent
    radius: float = 100.0  # [m] agents farther than this from the ego now keep their log
    snap_threshold: float = 3.0  # [m] agents farther than this from every lane centreline keep their log
    max_heading_error: float = np.pi / 3  # [rad] between an agent and the lane it is snapped to
    categories: tuple[int, ...] = (AgentCategory.VEHICLE, AgentCategory.BICYCLE)
    bicycle_max_velocity: float = 6.0  # [m/s] cap on a bicycle's target speed
    keep_unspawned: bool = True  # vehicles that are not IDM agents keep their log (NAVSIM); nuPlan drops them
    lookahead: float = 60.0  # [m] along the path, ahead of the agent centre, searched for leaders
    path_length: float = 250.0  # [m] of path built ahead of each agent (straight beyond the last lane)
    path_step: float = 0.5  # [m] path sampling
    window_step: float = 2.0  # [m] coarse sampling used to project obstacles onto the path


def reactive_agent_tracks(scene: DriveLog, ego_states: np.ndarray,
                          config: ReactiveIDMConfig = ReactiveIDMConfig()) -> AgentTracks:
    """A copy of `scene.agents` (N, T) whose future steps of reactive agents are re-simulated with IDM.

    `ego_states` (E, 11) are the ego's simulated `StateIndex` states from now at SIM_DT, map frame; the ego
    is extrapolated at constant velocity beyond them. History steps and other agents are unchanged.
    """
    ego_xy, ego_heading, ego_velocity = _ego_boxes(ego_states, scene.agents.num_steps)
    agents = ReactiveAgents(scene, ego_xy[CURRENT_INDEX], ego_heading[CURRENT_INDEX], config)
    for t in range(CURRENT_INDEX, scene.agents.num_steps - 1):
        agents.advance(t, ego_xy[t], ego_heading[t], ego_velocity[t])
    return agents.tracks()


class ReactiveAgents:
    """IDM agents advanced one SIM_DT at a time, reacting to an ego given step by step (closed loop), or to a
    whole simulated ego trajectory (`reactive_agent_tracks`).

    From CURRENT_INDEX, the agents snapped to a lane follow it with IDM; the others keep their log, except
    that `config.keep_unspawned` False (nuPlan's CLS-R) removes the vehicles that are not IDM agents.
    """

    def __init__(self, log: DriveLog, ego_center: np.ndarray, ego_heading: float,
                 config: ReactiveIDMConfig = ReactiveIDMConfig()):
        agents = log.agents
        self._log, self._config = log, config
        self.xy, self.heading, self.velocity, self.valid = (
            a.copy() for a in (agents.xy, agents.heading, agents.velocity, agents.valid))
        num_steps = agents.num_steps
        rows, paths = _build_paths(log, ego_center, ego_heading, config)
        self.rows = rows
        if not config.keep_unspawned:
            dropped = np.isin(agents.category, (AgentCategory.VEHICLE,))
            dropped[rows] = False
            self.valid[dropped, CURRENT_INDEX + 1:] = False
        if rows.size == 0:
            return
        path_xy, path_heading, path_limit, self.stop_s, self.stop_light = paths
        self.path_xy, self.path_heading = path_xy, path_heading
        self.length, self.width = agents.size[rows, 0], agents.size[rows, 1]
        target = np.full_like(path_limit, config.target_velocity)
        if config.speed_limit_policy == "replace":
            target = np.where(np.isfinite(path_limit) & (path_limit > 0), path_limit, target)
        elif config.speed_limit_policy == "cap":
            target = np.minimum(target, np.where(np.isfinite(path_limit) & (path_limit > 0), path_limit,
                                                 np.inf))
        bike = agents.category[rows] == AgentCategory.BICYCLE
        target[bike] = np.minimum(target[bike], config.bicycle_max_velocity)
        self.target = target
        self.params = IDMParameters(min_gap_to_lead_agent=config.min_gap, headway_time=config.headway_time,
                                    accel_max=config.accel_max, decel_max=config.decel_max,
                                    acceleration_exponent=config.exponent)
        # Obstacles: every agent (logged, overwritten for reactive ones) and the ego as the last row.
        self.obs_xy = np.concatenate([self.xy, np.zeros((1, num_steps, 2))])
        self.obs_heading = np.concatenate([self.heading, np.zeros((1, num_steps))])
        self.obs_velocity = np.concatenate([self.velocity, np.zeros((1, num_steps, 2))])
        self.obs_valid = np.concatenate([self.valid, np.ones((1, num_steps), bool)])
        self.obs_size = np.concatenate([agents.size, [[PACIFICA.length, PACIFICA.width]]])
        stride = max(round(config.window_step / config.path_step), 1)
        self.window = stride * np.arange(int(np.ceil(config.lookahead / (stride * config.path_step))) + 2)
        self.progress = np.zeros(rows.size)
        self.speed = np.linalg.norm(agents.velocity[rows, CURRENT_INDEX], axis=-1)
        self._place(CURRENT_INDEX)

    def _place(self, t: int) -> None:
        """Put the IDM agents at their progress, at step t (the log's step CURRENT_INDEX stays as logged)."""
        rows, path_xy, path_heading = self.rows, self.path_xy, self.path_heading
        arange = np.arange(rows.size)
        index = np.clip(self.progress / self._config.path_step, 0.0, path_xy.shape[1] - 1.001)
        i0 = index.astype(int)
        frac = (index - i0)[:, None]
        pos = path_xy[arange, i0] * (1 - frac) + path_xy[arange, i0 + 1] * frac
        yaw = path_heading[arange, i0] * (1 - frac[:, 0]) + path_heading[arange, i0 + 1] * frac[:, 0]
        direction = np.stack([np.cos(yaw), np.sin(yaw)], axis=-1)
        speed = self.speed
        if t > CURRENT_INDEX:
            self.xy[rows, t], self.heading[rows, t] = pos, wrap_angle(yaw)
            self.velocity[rows, t] = speed[:, None] * direction
            self.valid[rows, t] = True
        self.obs_xy[rows, t], self.obs_heading[rows, t], self.obs_velocity[rows, t] = (
            pos, yaw, speed[:, None] * direction)
        self.obs_valid[rows, t] = True
        self._now = (i0, pos, direction)

    def advance(self, t: int, ego_center: np.ndarray, ego_heading: float, ego_velocity: np.ndarray) -> None:
        """Step the IDM agents from step t to t + 1, reacting to everything at step t: the ego box centre (2,)
        [m], heading [rad] and map-frame velocity (2,) [m/s], the other agents and the lights."""
        if self.rows.size == 0:
            return
        rows, config, ds = self.rows, self._config, self._config.path_step
        self.obs_xy[-1, t], self.obs_heading[-1, t], self.obs_velocity[-1, t] = (
            ego_center, ego_heading, ego_velocity)
        i0, pos, direction = self._now
        gap, lead_v = _leaders(rows, self.progress, pos, direction, self.length, self.width, i0, self.window,
                               self.path_xy, self.path_heading, self.obs_xy[:, t], self.obs_heading[:, t],
                               self.obs_velocity[:, t], self.obs_valid[:, t], self.obs_size, config.lookahead,
                               ds)
        red = self._log.traffic_lights.is_red
        light_red = (self.stop_light >= 0) & (red[np.maximum(self.stop_light, 0), t] if red.size else False)
        stop_gap = np.where(light_red & (self.stop_s > self.progress[:, None]),
                            self.stop_s - self.progress[:, None], np.inf)
        stop_gap = stop_gap.min(axis=1, initial=np.inf) - self.length / 2
        lead_v = np.where(stop_gap < gap, 0.0, lead_v)
        gap = np.minimum(np.minimum(gap, stop_gap), 1e6)
        _, new_speed = idm_step(np.zeros_like(gap), self.speed, gap, lead_v, np.zeros_like(gap),
                                self.target[np.arange(rows.size), i0], self.params, SIM_DT)
        self.progress = self.progress + SIM_DT * self.speed
        self.speed = np.maximum(new_speed, 0.0)
        self._place(t + 1)

    def tracks(self, steps: slice = slice(None)) -> AgentTracks:
        """The agents (N, steps) as simulated so far (steps not yet simulated hold the log)."""
        agents = self._log.agents
        return AgentTracks(agents.track_ids.copy(), agents.category.copy(), agents.size.copy(),
                           self.xy[:, steps], self.heading[:, steps], self.velocity[:, steps],
                           self.valid[:, steps])


def _leaders(rows, progress, pos, direction, length, width, i0, window, path_xy, path_heading, obs_xy,
             obs_heading, obs_velocity, obs_valid, obs_size, lookahead, ds):
    """Gap [m] from each agent's front to its nearest obstacle point in its path corridor, and that obstacle's
    velocity along the path [m/s]; both (A,), gap inf where the road is free."""
    cos, sin, half = np.cos(obs_heading), np.sin(obs_heading), obs_size[:, 0] / 2
    px = (obs_xy[:, 0, None] + _AXIS * (half * cos)[:, None]).ravel()  # (3O,) rear, centre, front points
    py = (obs_xy[:, 1, None] + _AXIS * (half * sin)[:, None]).ravel()
    owner = np.repeat(np.arange(obs_xy.shape[0]), _AXIS.size)
    rx, ry = px[None] - pos[:, 0, None], py[None] - pos[:, 1, None]  # (A, 3O)
    near = (rx * rx + ry * ry < (lookahead + length[:, None]) ** 2) & (rx * direction[:, 0, None]
                                                                       + ry * direction[:, 1, None] > 0)
    near &= obs_valid[owner][None] & (owner[None] != rows[:, None])
    pa, pq = np.nonzero(near)
    gap, lead_v = np.full(rows.size, np.inf), np.zeros(rows.size)
    if pa.size == 0:
        return gap, lead_v
    samples = np.minimum(i0[:, None] + window[None], path_xy.shape[1] - 1)  # (A, K)
    window_xy = path_xy[np.arange(rows.size)[:, None], samples]
    wx, wy = window_xy[..., 0], window_xy[..., 1]
    dx, dy = wx[pa] - px[pq, None], wy[pa] - py[pq, None]
    sample = samples[pa, np.argmin(dx * dx + dy * dy, axis=1)]
    tx, ty = np.cos(path_heading[pa, sample]), np.sin(path_heading[pa, sample])
    r_x, r_y = px[pq] - path_xy[pa, sample, 0], py[pq] - path_xy[pa, sample, 1]
    along = sample * ds + r_x * tx + r_y * ty
    lateral = np.abs(tx * r_y - ty * r_x)
    ok = (along > progress[pa]) & (lateral < (width[pa] + obs_size[owner[pq], 1]) / 2)
    pa, pair_gap = pa[ok], along[ok] - progress[pa[ok]] - length[pa[ok]] / 2
    lead = obs_velocity[owner[pq[ok]]]
    pair_v = lead[:, 0] * tx[ok] + lead[:, 1] * ty[ok]
    order = np.lexsort((pair_gap, pa))
    first = np.unique(pa[order], return_index=True)[1]
    gap[pa[order][first]] = pair_gap[order][first]
    lead_v[pa[order][first]] = pair_v[order][first]
    return gap, lead_v


def _ego_boxes(ego_states: np.ndarray, num_steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ego box centre (T, 2) [m], heading (T,) [rad], velocity (T, 2) [m/s] over the scene steps; only
    steps from CURRENT_INDEX on mean anything (constant velocity after the last simulated state)."""
    states = np.asarray(ego_states, dtype=np.float64)
    steps = np.clip(np.arange(num_steps) - CURRENT_INDEX, 0, None)
    last = states.shape[0] - 1
    s = states[np.minimum(steps, last)]
    yaw = s[:, StateIndex.HEADING]
    c, n = np.cos(yaw), np.sin(yaw)
    vx, vy = s[:, StateIndex.VELOCITY_X], s[:, StateIndex.VELOCITY_Y]
    vel = np.stack([c * vx - n * vy, n * vx + c * vy], axis=-1)
    centre = s[:, [StateIndex.X, StateIndex.Y]] + PACIFICA.rear_axle_to_center * np.stack([c, n], axis=-1)
    centre = centre + np.maximum(steps - last, 0)[:, None] * SIM_DT * vel
    return centre, yaw, vel


def _box(xy: np.ndarray, yaw: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Polygons (n,) of boxes with centres (n, 2), headings (n,) and (length, width) (n, 2)."""
    signs = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]]) / 2.0
    local = signs[None] * size[:, None]  # (n, 4, 2)
    c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    corners = np.stack([c * local[..., 0] - s * local[..., 1], s * local[..., 0] + c * local[..., 1]],
                       axis=-1)
    return shapely.polygons(corners + xy[:, None])


def _build_paths(scene: DriveLog, ego_xy: np.ndarray, ego_yaw: float, config: ReactiveIDMConfig):
    """Rows (A,) of the agents made reactive and their paths from their snapped position now: poses
    (A, M, 2) [m] and (A, M) [rad, unwrapped], speed limit (A, M) [m/s], red-light stops (A, S) [m] of
    progress and their light rows (A, S) (-1: none)."""
    agents, lanes, now = scene.agents, scene.map, CURRENT_INDEX
    cand = agents.valid[:, now] & np.isin(agents.category, config.categories)
    cand &= np.linalg.norm(agents.xy[:, now] - ego_xy, axis=-1) <= config.radius
    cand_rows = np.flatnonzero(cand)
    empty = np.zeros(0, int)
    if cand_rows.size == 0 or lanes.num_lanes == 0:
        return empty, None
    points = shapely.points(agents.xy[cand_rows, now])
    lines = lanes.lane_centerlines
    dist = shapely.distance(points[:, None], lines[None])  # (C, L)
    along = np.full(dist.shape, np.nan)
    pc, pl = np.nonzero(dist <= config.snap_threshold)
    along[pc, pl] = shapely.line_locate_point(lines[pl], points[pc])
    tips = [shapely.get_coordinates(shapely.line_interpolate_point(lines[pl], along[pc, pl] + d))
            for d in (-0.5, 0.5)]
    lane_yaw = np.arctan2(tips[1][:, 1] - tips[0][:, 1], tips[1][:, 0] - tips[0][:, 0])
    dist[dist > config.snap_threshold] = np.inf
    dist[pc, pl] = np.where(
        np.abs(wrap_angle(lane_yaw - agents.heading[cand_rows[pc], now])) > config.max_heading_error,
        np.inf, dist[pc, pl])
    coords = [shapely.get_coordinates(line) for line in lines]
    lane_length = shapely.length(lines)
    row_of = {int(lane_id): k for k, lane_id in enumerate(lanes.lane_ids)}
    light_of = {int(lane_id): k for k, lane_id in enumerate(scene.traffic_lights.lane_ids)}
    num = round(config.path_length / config.path_step) + 1
    occupied = [_box(ego_xy[None], np.array([ego_yaw]), np.array([[PACIFICA.length, PACIFICA.width]]))[0]]
    rows, built = [], []
    for c, row in enumerate(cand_rows):
        if not np.isfinite(dist[c]).any() or dist[c].min() > config.snap_threshold:
            continue
        future = agents.xy[row, now + 5::5][agents.valid[row, now + 5::5]]
        near = np.flatnonzero(dist[c] <= dist[c].min() + 0.5)
        lane = near[np.argmin([_log_score(lines[k], future) for k in near])]
        chain, offset = [lane], float(along[c, lane])
        path = coords[lane]
        while lane_length[chain].sum() - offset < config.path_length and len(chain) < 12:
            nexts = [row_of[s] for s in lanes.lane_successors[chain[-1]]
                     if s in row_of and row_of[s] not in chain]
            if not nexts:
                break
            turn = [abs(wrap_angle(_yaw(coords[k][:2]) - _yaw(path[-2:]))) for k in nexts]
            chain.append(nexts[int(np.argmin([_log_score(lines[k], future) + 0.1 * a
                                              for k, a in zip(nexts, turn)]))])
            path = np.concatenate([path, coords[chain[-1]][1:]])
        cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=-1))])
        s = offset + config.path_step * np.arange(num)
        sample_xy = np.stack([np.interp(s, cum, path[:, 0]), np.interp(s, cum, path[:, 1])], axis=-1)
        sample_xy += np.maximum(s - cum[-1], 0)[:, None] * np.stack([np.cos(_yaw(path[-2:])),
                                                                     np.sin(_yaw(path[-2:]))])
        sample_yaw = np.arctan2(*np.diff(sample_xy, axis=0).T[::-1])
        sample_yaw = np.unwrap(np.append(sample_yaw, sample_yaw[-1]))
        box = _box(sample_xy[:1], sample_yaw[:1], agents.size[row][None])[0]
        if shapely.intersects(box, np.array(occupied)).any():
            continue  # as NAVSIM: a snapped box that overlaps the ego or another reactive agent keeps its log
        occupied.append(box)
        lane_start = np.concatenate([[0.0], np.cumsum(lane_length[chain])])
        which = np.clip(np.searchsorted(lane_start, s, side="right") - 1, 0, len(chain) - 1)
        stops = []
        for j, k in enumerate(chain):
            if int(lanes.lane_ids[k]) in light_of:
                s_stop = _stop_along(lanes, chain, j, path, lane_start[j], lane_start[j + 1])
                stops.append((s_stop - offset, light_of[int(lanes.lane_ids[k])]))
        rows.append(row)
        built.append((sample_xy, sample_yaw, lanes.lane_speed_limits[np.array(chain)][which], stops))
    if not rows:
        return empty, None
    width = max(1, max(len(b[3]) for b in built))
    stop_s, stop_light = np.full((len(rows), width), np.nan), np.full((len(rows), width), -1)
    for a, b in enumerate(built):
        for j, (s_stop, light) in enumerate(b[3]):
            stop_s[a, j], stop_light[a, j] = s_stop, light
    return np.array(rows), (np.stack([b[0] for b in built]), np.stack([b[1] for b in built]),
                            np.stack([b[2] for b in built]), stop_s, stop_light)


def _stop_along(lanes, chain: list[int], j: int, path: np.ndarray, start: float, end: float) -> float:
    """Arc length [m] along `path` of the stop line guarding chain lane j (its own, or its predecessor's
    within 15 m of its start), else of the lane's start [m]; the lane spans [start, end] on the path."""
    ids = {int(lanes.lane_ids[chain[j]])} | ({int(lanes.lane_ids[chain[j - 1]])} if j > 0 else set())
    lines = lanes.stop_lines[np.isin(lanes.stop_line_lane_ids, list(ids))]
    if lines.size == 0:
        return start
    s = shapely.line_locate_point(shapely.LineString(path), shapely.centroid(lines))
    best = s[np.argmin(np.abs(s - start))]
    return float(best) if start - 15.0 < best < end else start


def _log_score(line: shapely.LineString, future: np.ndarray) -> float:
    """Mean distance [m] of logged future centres (F, 2) to a lane centreline (0 without a log)."""
    return float(shapely.distance(line, shapely.points(future)).mean()) if len(future) else 0.0


def _yaw(segment: np.ndarray) -> float:
    return float(np.arctan2(segment[-1, 1] - segment[0, 1], segment[-1, 0] - segment[0, 0]))
