"""NavDP's critic targets: the value of a trajectory from its clearance to obstacle points, and the
contrastive negative (the expert's future rotated about the robot).

Restated from NavDP's training data code (InternNav `navdp_dataset.py`):
    d_i = min over obstacle points of the L1 xy distance from world waypoint i, i = 0..24 (start + 24);
    V   = -5 * mean(d_i < 0.1 m for i < 24) + 0.5 * sum_i (d_{i+1} - d_i);  V = 2.0 without obstacle points.
Obstacle points are cropped to the expert path's bounding box +- 2 m. The negative rotates the future's
robot-frame xy (start included) about the start by a yaw drawn from U[-60, 60] deg and refits a cubic
spline over the same number of points (at the same parameters, so the refit reproduces the rotated points).

Two labels (CRITIC_LABELS), the same formula on different distances d:
- "points" (default): the released code's, d = L1 distance of the robot's centre to obstacle SURFACE points. It cannot
  see the robot's body or an obstacle's inside: a path straight through a 10 cm wall loses only the few
  waypoints near its faces (about -1), so NavDP's rotate rule (best value < -3) never fires at a wall.
- "esdf": the paper's "critic learned from the ESDF map" on the robot's configuration space,
  d = clearance of the robot's footprint disc = ESDF(centre) - robot radius (negative when overlapping),
  capped at OBSTACLE_CROP (beyond it an obstacle is out of the crop). Driving into a wall scores -3 to -5.
  Measured (pointnav-synth, 200 episodes, same 5k trajectories and recipe): SR 54.0 / SPL 46.9 against 61.5 /
  53.8 with "points", so "points" stays the default.
"""

from __future__ import annotations

import math
from typing import cast

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.spatial.distance import cdist

from scenes.geometry import points_to_global, wrap_angle

AUGMENT_MAX_YAW = math.radians(60.0)  # [rad] NavDP rotates negatives by U[-pi/3, pi/3]
COLLISION_DISTANCE = 0.1  # [m] a waypoint this close (L1) to an obstacle point counts as a collision
CLEARANCE_GAIN = 0.5  # weight of the net clearance change
COLLISION_PENALTY = 5.0  # weight of the collision fraction
NO_OBSTACLE_VALUE = 2.0  # value when no obstacle point is near the path
OBSTACLE_CROP = 2.0  # [m] obstacle points are kept within the path's bounding box +- this
CRITIC_LABELS = ("points", "esdf")  # see the module docstring; "points" is the default


def critic_from_distances(distances: np.ndarray) -> float | np.ndarray:
    """NavDP's value from the clearances d (..., T + 1) [m] of the start and T waypoints (T = 24):
    -5 * mean(d[:-1] < 0.1) + 0.5 * sum(d[i + 1] - d[i]). A float for one trajectory, else (...,)."""
    d = np.asarray(distances, dtype=np.float64)
    value = (-COLLISION_PENALTY * (d[..., :-1] < COLLISION_DISTANCE).mean(axis=-1)
             + CLEARANCE_GAIN * np.diff(d, axis=-1).sum(axis=-1))
    return float(value) if d.ndim == 1 else value


def critic_from_clearance(clearance: np.ndarray, radius: float) -> float | np.ndarray:
    """The "esdf" label from ESDF values (..., T + 1) [m] (distance of the robot's centre to the nearest
    obstacle footprint, 0 inside) of the start and T waypoints, for a robot disc of `radius` [m]:
    `critic_from_distances` of min(clearance - radius, OBSTACLE_CROP)."""
    margin = np.minimum(np.asarray(clearance, dtype=np.float64) - radius, OBSTACLE_CROP)
    return critic_from_distances(margin)


def critic_value(waypoints: np.ndarray, obstacle_points: np.ndarray) -> float:
    """NavDP's value of a trajectory.

    Args:
        waypoints: (T + 1, 2) world xy [m]: the start, then T future waypoints (T = 24 in NavDP).
        obstacle_points: (K, 2) world xy [m] of obstacle surface points (cropped to the path).
    Returns:
        `critic_from_distances` of the min L1 distances from each waypoint to the points; 2.0 when K = 0.
    """
    if len(obstacle_points) == 0:
        return NO_OBSTACLE_VALUE
    d = cdist(np.asarray(waypoints, dtype=np.float64), np.asarray(obstacle_points, dtype=np.float64),
              "cityblock").min(axis=1)
    return cast(float, critic_from_distances(d))  # d is 1-D: a float


def crop_obstacles(obstacle_points: np.ndarray, path_xy: np.ndarray, margin: float = OBSTACLE_CROP) -> np.ndarray:
    """(K', 2) the obstacle points inside the bounding box of `path_xy` (P, 2) grown by `margin` [m]."""
    lo, hi = path_xy.min(axis=0) - margin, path_xy.max(axis=0) + margin
    keep = ((obstacle_points >= lo) & (obstacle_points <= hi)).all(axis=1)
    return obstacle_points[keep]


def rotate_future(future: np.ndarray, yaw: np.ndarray | float) -> np.ndarray:
    """The contrastive negatives of robot-frame futures (..., T, 3): rotated about the robot by `yaw` (...)
    [rad].

    xy of [start, future] is rotated, a cubic spline is fitted over T + 1 uniform parameters and evaluated
    at the same T + 1 parameters (NavDP's refit); headings turn by `yaw` too. Returns (..., T, 3).
    """
    future = np.asarray(future, dtype=np.float64)
    yaw = np.asarray(yaw, dtype=np.float64)[..., None]
    xy = np.concatenate([np.zeros((*future.shape[:-2], 1, 2)), future[..., :2]], axis=-2)
    c, s = np.cos(yaw), np.sin(yaw)
    rotated = np.stack([c * xy[..., 0] - s * xy[..., 1], s * xy[..., 0] + c * xy[..., 1]], axis=-1)
    t = np.linspace(0.0, 1.0, rotated.shape[-2])
    refit = CubicSpline(t, rotated, axis=-2)(t)
    return np.concatenate([refit[..., 1:, :], wrap_angle(future[..., 2:] + yaw[..., None])], axis=-1)


def critic_targets(pose: np.ndarray, future: np.ndarray, augmented: np.ndarray,
                   obstacle_points: np.ndarray) -> tuple[float, float]:
    """(V(future), V(augmented)) for robot-frame futures (T, 3) of a robot at world `pose` (3,)."""
    values = []
    for local in (future, augmented):
        world = points_to_global(np.vstack([np.zeros((1, 2)), local[:, :2]]), pose)
        values.append(critic_value(world, obstacle_points))
    return values[0], values[1]
