"""No at-fault collision (NC) and time-to-collision (TTC), vectorised over proposals, steps and agents.

Oriented-box overlap is a separating-axis test in numpy on the candidate (proposal, step, agent) triples that
pass a bounding-circle test. NAVSIM's sequential ignore lists are reproduced exactly without a time loop: a
track stops counting for a proposal after its first non-at-fault contact, so a contact counts only if it
comes strictly before that track's first non-at-fault contact (NC: ordered by step; TTC: by step, then
projection).
"""

from __future__ import annotations

import numpy as np

from planners.pdm.scoring.areas import (
    CENTER,
    EGO_HALF_LENGTH,
    EGO_HALF_WIDTH,
    FRONT_LEFT,
    FRONT_RIGHT,
    EgoAreas,
    SceneGeometry,
)
from planners.pdm.scoring.config import ScorerConfig
from planners.pdm.states import StateIndex

EGO_RADIUS = float(np.hypot(EGO_HALF_LENGTH, EGO_HALF_WIDTH))
_SIGNS = np.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])  # FL, RL, RR, FR


def agent_corners(xy: np.ndarray, heading: np.ndarray, half: np.ndarray) -> np.ndarray:
    """(C, 4, 2) [m] corners of boxes with centres xy (C, 2), heading (C,) and half sizes (C, 2)."""
    local = _SIGNS * half[:, None, :]
    cos, sin = np.cos(heading)[:, None], np.sin(heading)[:, None]
    x = xy[:, None, 0] + local[..., 0] * cos - local[..., 1] * sin
    y = xy[:, None, 1] + local[..., 0] * sin + local[..., 1] * cos
    return np.stack([x, y], axis=-1)


def _separated(a: np.ndarray, b: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """(C,) True where some axis (C, A, 2) strictly separates point sets a (C, Pa, 2) and b (C, Pb, 2)."""
    pa = np.einsum("cpx,cax->cap", a, axes)
    pb = np.einsum("cpx,cax->cap", b, axes)
    gap = (pa.max(-1) < pb.min(-1)) | (pb.max(-1) < pa.min(-1))
    return gap.any(-1)


def boxes_intersect(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(C,) bool: rectangles with corners a, b (C, 4, 2) in FL, RL, RR, FR order touch or overlap."""
    axes = np.stack([a[:, 0] - a[:, 1], a[:, 0] - a[:, 3], b[:, 0] - b[:, 1], b[:, 0] - b[:, 3]], axis=1)
    return ~_separated(a, b, axes)


def segment_intersects_box(p: np.ndarray, q: np.ndarray, box: np.ndarray) -> np.ndarray:
    """(C,) bool: segments p-q (C, 2) touch or cross rectangles box (C, 4, 2)."""
    d = q - p
    normal = np.stack([-d[:, 1], d[:, 0]], axis=-1)
    axes = np.stack([box[:, 0] - box[:, 1], box[:, 0] - box[:, 3], normal], axis=1)
    return ~_separated(np.stack([p, q], axis=1), box, axes)


def relative_angle(pose: np.ndarray, point: np.ndarray) -> np.ndarray:
    """(C,) [rad] angle between heading of pose (C, 3) and the direction to point (C, 2), as nuPlan computes
    it (arccos of a normalised dot product; NaN for a coincident point, which is neither ahead nor behind)."""
    vx, vy = point[:, 0] - pose[:, 0], point[:, 1] - pose[:, 1]
    norm = np.sqrt(vx * vx + vy * vy)
    with np.errstate(invalid="ignore", divide="ignore"):
        dot = np.cos(pose[:, 2]) * (vx / norm) + np.sin(pose[:, 2]) * (vy / norm)
        return np.arccos(dot)


def _overlaps(
    geometry: SceneGeometry, center: np.ndarray, heading: np.ndarray, frames: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices (k, t, n) where the ego box with centre (K, T, 2) and heading (K, T) touches agent n at
    frames[t] (T,): bounding circles first, then the separating-axis test on the four box axes."""
    num_agents = geometry.num_agents
    if num_agents == 0 or center.shape[1] == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    in_range = frames < geometry.num_frames
    safe = np.where(in_range, frames, 0)
    a_xy = geometry.agent_xy[:, safe].transpose(1, 0, 2)  # (T, N, 2)
    a_ok = (geometry.agent_valid[:, safe] & in_range).T  # (T, N)
    reach = EGO_RADIUS + np.hypot(geometry.agent_half[:, 0], geometry.agent_half[:, 1]) + 1e-6  # (N,)
    dx = center[:, :, None, 0] - a_xy[None, :, :, 0]
    dy = center[:, :, None, 1] - a_xy[None, :, :, 1]
    near = (dx * dx + dy * dy <= reach**2) & a_ok[None]
    k, t, n = np.nonzero(near)
    if k.size == 0:
        return k, t, n
    f = safe[t]
    dx, dy = geometry.agent_xy[n, f, 0] - center[k, t, 0], geometry.agent_xy[n, f, 1] - center[k, t, 1]
    ce, se = np.cos(heading[k, t]), np.sin(heading[k, t])
    agent_heading = geometry.agent_heading[n, f]
    ca, sa = np.cos(agent_heading), np.sin(agent_heading)
    c, s = np.abs(ce * ca + se * sa), np.abs(se * ca - ce * sa)  # |cos|, |sin| of the relative heading
    al, aw = geometry.agent_half[n, 0], geometry.agent_half[n, 1]
    hl, hw = EGO_HALF_LENGTH, EGO_HALF_WIDTH
    separated = np.abs(dx * ce + dy * se) > hl + al * c + aw * s  # ego length axis
    separated |= np.abs(dy * ce - dx * se) > hw + al * s + aw * c  # ego width axis
    separated |= np.abs(dx * ca + dy * sa) > al + hl * c + hw * s  # agent length axis
    separated |= np.abs(dy * ca - dx * sa) > aw + hl * s + hw * c  # agent width axis
    hit = ~separated
    return k[hit], t[hit], n[hit]


def _counted(keys: np.ndarray, k: np.ndarray, n: np.ndarray, ignoring: np.ndarray, shape) -> np.ndarray:
    """Which contacts count: those before the first `ignoring` contact of the same (proposal, track)."""
    first = np.full(shape, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, (k[ignoring], n[ignoring]), keys[ignoring])
    return ~ignoring & (keys < first[k, n])


def no_at_fault_collision(
    geometry: SceneGeometry, states: np.ndarray, coords: np.ndarray, areas: EgoAreas, config: ScorerConfig
) -> np.ndarray:
    """(K,) NC in {0, 0.5, 1} for states (K, T, 11) with `ego_coords` (K, T, 5, 2)."""
    num = states.shape[0]
    nc = np.ones(num)
    heading = states[..., StateIndex.HEADING]
    k, t, n = _overlaps(geometry, coords[:, :, CENTER], heading, np.arange(states.shape[1]))
    if k.size == 0:
        return nc
    state = states[k, t]
    ego_stopped = np.hypot(state[:, StateIndex.VELOCITY_X], state[:, StateIndex.VELOCITY_Y])
    ego_stopped = ego_stopped <= config.stopped_speed_threshold
    track_stopped = ~geometry.agent_is_agent[n] | (geometry.agent_first_speed[n] <= config.stopped_speed_threshold)
    agent_xy = geometry.agent_xy[n, t]
    behind = relative_angle(state[:, : StateIndex.HEADING + 1], agent_xy) > np.deg2rad(config.behind_angle_deg)
    boxes = agent_corners(agent_xy, geometry.agent_heading[n, t], geometry.agent_half[n])
    front = segment_intersects_box(coords[k, t, FRONT_LEFT], coords[k, t, FRONT_RIGHT], boxes)
    stopped_track = ~ego_stopped & track_stopped
    active = ~ego_stopped & ~track_stopped & ~behind
    active_front = active & front
    lateral = active & ~front
    risky = areas.multiple_lanes[k, t] | areas.non_drivable[k, t]
    at_fault = stopped_track | active_front | (lateral & risky)
    counted = _counted(t, k, n, ~at_fault, (num, geometry.num_agents))
    score = np.where(geometry.agent_is_agent[n], 0.0, config.static_collision_score)
    np.minimum.at(nc, k[counted], score[counted])
    return nc


def time_to_collision(
    geometry: SceneGeometry, states: np.ndarray, coords: np.ndarray, areas: EgoAreas, config: ScorerConfig
) -> np.ndarray:
    """(K,) TTC in {0, 1}: constant-velocity projections of the ego box hit a track ahead (or not behind while
    in multiple lanes, non-drivable area or with the rear axle in an intersection)."""
    num, steps = states.shape[:2]
    last = min(steps - 1, config.ttc_last_step_v2) if config.is_v2 else steps - 1
    sub = states[:, : last + 1]
    speed = np.hypot(sub[..., StateIndex.VELOCITY_X], sub[..., StateIndex.VELOCITY_Y])
    heading = sub[..., StateIndex.HEADING]
    dxy = np.stack([np.cos(heading) * speed, np.sin(heading) * speed], axis=-1)  # (K, T, 2)
    center = coords[:, : last + 1, CENTER]
    risky = areas.multiple_lanes | areas.non_drivable | areas.rear_axle_in_intersection
    ahead_limit, behind_limit = np.deg2rad(config.ahead_angle_deg), np.deg2rad(config.behind_angle_deg)
    n_proj, steps_eval = len(config.ttc_projection_steps), last + 1
    offsets = np.asarray(config.ttc_projection_steps, dtype=np.int64)
    # all projections at once, stacked along time: column j * steps_eval + t is step t projected by offsets[j]
    moved = np.concatenate([center + dxy * (float(o) * config.dt) for o in offsets], axis=1)
    frames = (np.arange(steps_eval)[None] + offsets[:, None]).reshape(-1)
    k, column, n = _overlaps(geometry, moved, np.tile(heading, (1, n_proj)), frames)
    j, t = np.divmod(column, steps_eval)
    keep = speed[k, t] >= config.ttc_stopped_speed_threshold
    k, t, n, j = k[keep], t[keep], n[keep], j[keep]
    angle = relative_angle(sub[k, t, : StateIndex.HEADING + 1], geometry.agent_xy[n, t + offsets[j]])
    violation = (angle < ahead_limit) | (risky[k, t] & ~(angle > behind_limit))
    key = t * n_proj + j
    counted = _counted(key, k, n, ~violation, (num, geometry.num_agents))
    ttc = np.ones(num)
    ttc[k[counted]] = 0.0
    return ttc
