"""Driving direction (DDC), lane keeping (LK, v2) and traffic light compliance (TLC, v2), vectorised over K."""

from __future__ import annotations

import numpy as np
import shapely

from planners.pdm.scoring.areas import CENTER, EgoAreas, SceneGeometry
from planners.pdm.scoring.config import ScorerConfig


def driving_direction(coords: np.ndarray, areas: EgoAreas, config: ScorerConfig) -> np.ndarray:
    """(K,) DDC in {0, 0.5, 1}: the largest box-centre displacement [m] summed over oncoming steps in any
    window of steps t-h..t (h = horizon / dt) is compared strictly with the two thresholds. v2 skips steps
    whose box centre is inside an intersection polygon."""
    center = coords[:, :, CENTER]
    step = np.zeros(center.shape[:2])
    step[:, 1:] = np.linalg.norm(center[:, 1:] - center[:, :-1], axis=-1)
    mask = areas.oncoming & ~areas.center_in_intersection if config.is_v2 else areas.oncoming
    step[~mask] = 0.0
    horizon = int(config.driving_direction_horizon / config.dt)
    padded = np.concatenate([np.zeros((step.shape[0], horizon)), step], axis=1)
    windows = np.lib.stride_tricks.sliding_window_view(padded, horizon + 1, axis=1).sum(axis=-1)
    worst = windows.max(axis=-1)
    return np.where(
        worst < config.driving_direction_compliance_threshold,
        1.0,
        np.where(worst < config.driving_direction_violation_threshold, 0.5, 0.0),
    )


def lane_keeping(geometry: SceneGeometry, coords: np.ndarray, areas: EgoAreas, config: ScorerConfig) -> np.ndarray:
    """(K,) LK in {0, 1}: 0 once the box centre is more than the limit [m] from the route centreline for
    ceil(window / dt) counted steps in a row; steps in an intersection are skipped (they neither count nor
    reset the run), as in NAVSIM."""
    num, steps = coords.shape[:2]
    points = shapely.points(coords[:, :, CENTER].reshape(-1, 2))
    far = (shapely.distance(geometry.centerline, points) > config.lane_keeping_deviation_limit).reshape(num, steps)
    need = int(np.ceil(config.lane_keeping_horizon_window / config.dt))
    run = np.zeros(num, dtype=np.int64)
    failed = np.zeros(num, dtype=bool)
    for t in range(steps):
        counted = ~areas.center_in_intersection[:, t]
        run = np.where(counted, np.where(far[:, t], run + 1, 0), run)
        failed |= counted & (run >= need)
    return np.where(failed, 0.0, 1.0)


def traffic_light(geometry: SceneGeometry, coords: np.ndarray) -> np.ndarray:
    """(K,) TLC in {0, 1}: 0 if the ego box ever touches a route lane whose light is red at that step."""
    num, steps = coords.shape[:2]
    tlc = np.ones(num)
    frames = min(steps, geometry.red_route_lanes.shape[0])
    red = geometry.red_route_lanes[:frames]
    if not red.any():
        return tlc
    corners = coords[:, :frames, :CENTER]
    low, high = corners.min(axis=2), corners.max(axis=2)  # (K, T, 2)
    for lane in np.flatnonzero(red.any(axis=0)):
        x0, y0, x1, y1 = geometry.lane_bounds[lane]
        near = red[:, lane][None] & (low[..., 0] <= x1) & (high[..., 0] >= x0)
        near &= (low[..., 1] <= y1) & (high[..., 1] >= y0)
        k, t = np.nonzero(near & (tlc[:, None] > 0))
        if k.size == 0:
            continue
        boxes = shapely.polygons(corners[k, t])
        touch = shapely.intersects(geometry.lane_polygons[lane], boxes)
        tlc[k[touch]] = 0.0
    return tlc
