"""The privileged expert: ESDF-penalised grid search, string pulling, spline smoothing with a clearance
re-check, then a pure-pursuit roll-out on a unicycle recorded at the camera rate with depth and NavDP's
critic targets (NavDP's obstacle-point label by default, or the robot's ESDF; datagen.critic).

    path = expert_path(world, start_xy, goal_xy, robot)           # (P, 2) or None
    demo = record_demo(world, episode, robot, camera, rng)        # NavDemo, or a failure reason (str)
"""

from __future__ import annotations

import math

import numpy as np
from scipy.interpolate import make_smoothing_spline
from scipy.spatial import cKDTree

from datagen.critic import (
    AUGMENT_MAX_YAW,
    CRITIC_LABELS,
    NO_OBSTACLE_VALUE,
    critic_from_clearance,
    critic_from_distances,
    crop_obstacles,
    rotate_future,
)
from planners import control
from scenes.geometry import wrap_angle
from scenes.nav.grid import path_length
from scenes.nav.mujoco_world import MujocoNavWorld
from scenes.nav.types import (
    DEPTH_SCALE,
    NAV_CAMERA_DT,
    NAV_PLAN_POSES,
    CameraSpec,
    NavDemo,
    NavEpisode,
    RobotProfile,
)
from scenes.portable import PortableRandom

EXPERT_DT = 0.125  # [s] roll-out step of the tracker; divides NAV_CAMERA_DT
COMFORT = 0.3  # [m] string pulling keeps this much ESDF beyond the traversable minimum where the path had it
SMOOTH_MARGIN = 0.05  # [m] the smoothed path keeps clearance >= robot radius + this
SMOOTHING = (0.02, 0.004, 0.0008)  # smoothing-spline lambdas tried in turn [m^3]
LOOKAHEADS = (0.5, 0.3)  # [m] pure-pursuit look-ahead distances tried in turn
GOAL_TOLERANCE = 0.2  # [m] a roll-out that ends farther from the goal failed (Habitat's success radius)


def smooth_path(path: np.ndarray, world: MujocoNavWorld, robot: RobotProfile, spacing: float = 0.1) -> np.ndarray:
    """Cubic smoothing spline through `path` (P, 2) resampled every `spacing` [m], ends pinned.

    The smoothed path must keep clearance >= robot.radius + SMOOTH_MARGIN wherever the input did; each
    lambda in SMOOTHING is tried from the smoothest down, and the input (resampled) is the fallback.
    """
    dense = control.resample_path(path, spacing)
    if len(dense) < 5:
        return dense
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(dense, axis=0), axis=1))])
    weight = np.ones(len(dense))
    weight[[0, -1]] = 1e4
    need = np.minimum(world.clearance(dense, robot), robot.radius + SMOOTH_MARGIN)
    for lam in SMOOTHING:
        smooth = make_smoothing_spline(s, dense, w=weight, lam=lam, axis=0)(s)
        smooth[[0, -1]] = dense[[0, -1]]
        if (world.clearance(smooth, robot) >= need - 1e-6).all():
            return smooth
    return dense


def expert_path(world: MujocoNavWorld, start: np.ndarray, goal: np.ndarray, robot: RobotProfile) -> np.ndarray | None:
    """(P, 2) the expert's smooth path [m] from start (2,) to goal (2,), or None when unreachable.

    Grid search with cost = length x (1 + clearance penalty) on the ESDF, string pulling that never gets
    closer to obstacles than min(need + COMFORT, the grid path's clearance), then `smooth_path`.
    """
    rmap = world.robot_map(robot)
    cells = rmap.cell_path(start, goal, penalized=True)
    if cells is None:
        return None
    return smooth_path(rmap.taut(cells, rmap.need + COMFORT), world, robot)


def _to_local(points: np.ndarray, origins: np.ndarray) -> np.ndarray:
    """Points (T, K, 2) in the frames of poses (T, 3)."""
    delta = points - origins[:, None, :2]
    c, s = np.cos(origins[:, 2])[:, None], np.sin(origins[:, 2])[:, None]
    return np.stack([c * delta[..., 0] + s * delta[..., 1], -s * delta[..., 0] + c * delta[..., 1]], axis=-1)


def _to_world(points: np.ndarray, origins: np.ndarray) -> np.ndarray:
    """Points (T, K, 2) given in the frames of poses (T, 3), in the world frame."""
    c, s = np.cos(origins[:, 2])[:, None], np.sin(origins[:, 2])[:, None]
    x, y = points[..., 0], points[..., 1]
    return np.stack([c * x - s * y, s * x + c * y], axis=-1) + origins[:, None, :2]


def _future(frames: np.ndarray) -> np.ndarray:
    """(T, NAV_PLAN_POSES, 3): frames k+1..k+24 in frame k's robot frame, padded with the last frame."""
    t = len(frames)
    index = np.minimum(np.arange(t)[:, None] + np.arange(1, NAV_PLAN_POSES + 1)[None], t - 1)
    ahead = frames[index]
    return np.concatenate([_to_local(ahead[..., :2], frames), wrap_angle(ahead[..., 2:] - frames[:, None, 2:])],
                          axis=-1)


def critic_labels(world: MujocoNavWorld, robot: RobotProfile, frames: np.ndarray, futures: np.ndarray,
                  label: str = "points") -> np.ndarray:
    """(..., T) NavDP values (datagen.critic, `label` "points" or "esdf") of robot-frame futures
    (..., T, P, 3) driven from world poses `frames` (T, 3); the obstacle query is built once for all."""
    if label not in CRITIC_LABELS:
        raise ValueError(f"unknown critic label {label!r}; expected one of {', '.join(CRITIC_LABELS)}")
    lead, (count, poses) = futures.shape[:-3], futures.shape[-3:-1]
    local = np.concatenate([np.zeros((*futures.shape[:-2], 1, 2)), futures[..., :2]], axis=-2)
    local = np.moveaxis(local.reshape(-1, count, poses + 1, 2), 0, 1).reshape(count, -1, 2)  # (T, K*(P+1), 2)
    xy = _to_world(local, frames).reshape(-1, 2)
    if label == "esdf":
        distances = world.clearance(xy, robot)
    else:
        obstacles = crop_obstacles(world.obstacle_points(robot), frames[:, :2])
        if not len(obstacles):
            return np.full((*lead, count), NO_OBSTACLE_VALUE)
        distances, _ = cKDTree(obstacles).query(xy, p=1)
    distances = np.moveaxis(distances.reshape(count, -1, poses + 1), 1, 0)  # (K, T, P+1)
    values = critic_from_clearance(distances, robot.radius) if label == "esdf" else critic_from_distances(distances)
    return np.asarray(values, dtype=np.float64).reshape(*lead, count)


def record_demo(world: MujocoNavWorld, episode: NavEpisode, robot: RobotProfile, camera: CameraSpec,
                rng: PortableRandom, critic_label: str = "points") -> NavDemo | str:
    """Plan, roll out and record `episode` with `critic_label` targets (datagen.critic); a failure reason
    ("no_path", "collision", "not_arrived")."""
    start, goal = episode.start, episode.goal
    path = expert_path(world, start[:2], goal, robot)
    if path is None:
        return "no_path"
    steps = math.ceil((3.0 * path_length(path) / robot.v_max + 30.0) / EXPERT_DT)
    for lookahead in LOOKAHEADS:  # a shorter look-ahead cuts corners less
        run = control.rollout(start, path, control.PurePursuit(robot, lookahead=lookahead), steps, dt=EXPERT_DT)
        if not world.collides(run.poses[:, :2], robot).any():
            break
    else:
        return "collision"
    if np.linalg.norm(run.poses[-1, :2] - goal) > GOAL_TOLERANCE:
        return "not_arrived"
    stride = round(NAV_CAMERA_DT / EXPERT_DT)
    count = -(-(len(run.poses) - 1) // stride) + 1
    steps_at = np.minimum(np.arange(count) * stride, len(run.poses) - 1)
    frames = run.poses[steps_at]
    applied = np.arange(count) * stride - 1  # the control applied just before each frame
    velocity = np.zeros((count, 2))
    ok = (applied >= 0) & (applied < len(run.controls))
    velocity[ok] = run.controls[applied[ok]]

    future = _future(frames)
    yaw = rng.uniform(-AUGMENT_MAX_YAW, AUGMENT_MAX_YAW, count)
    augmented = rotate_future(future, yaw)
    critic, augmented_critic = critic_labels(world, robot, frames, np.stack([future, augmented]), critic_label)

    depth = np.rint(world.render_depth_batch(frames, camera) * DEPTH_SCALE).astype(np.uint16)
    goal_local = np.column_stack([_to_local(np.broadcast_to(goal, (count, 1, 2)), frames)[:, 0], np.zeros(count)])
    return NavDemo(episode, path, frames, velocity, depth, goal_local, future, augmented, yaw, critic,
                   augmented_critic).validate()
