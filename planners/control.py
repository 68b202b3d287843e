"""Unicycle (differential-drive) model and path trackers: pure pursuit and NavDP's MPC.

State is a world-frame pose (x [m], y [m], yaw [rad]); a control is (v [m/s], omega [rad/s]), held for `dt`.
Trackers follow a world-frame path (P, 2) [m]; `plan_to_world` turns a robot-frame plan into one.

Stable API (used by the expert roll-outs and closed-loop evaluation):
    unicycle_step(pose, control, dt) -> pose            exact arc integration, broadcasts over (..., 3)
    clip_control(control, robot) -> control             v in [0, v_max], |omega| <= omega_max
    plan_to_world(plan_xy, pose) -> (P, 2)             robot-frame waypoints to the world frame
    PurePursuit(robot).control(pose, path) -> (2,)      geometric tracker, no state
    MPCTracker(robot).control(pose, path) -> (2,)       CasADi/IPOPT, built once, warm-started
    rollout(pose, path, tracker, steps, dt) -> Rollout  track a fixed path without collisions
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from scenes.geometry import points_to_global, points_to_local, wrap_angle
from scenes.nav.types import NAV_CONTROL_DT, RobotProfile

# NavDP's MPC (utils_tasks/tracking_utils.py): horizon, step, weights, one reference every 3 steps.
MPC_HORIZON = 15
MPC_DT = 0.1  # [s]
MPC_STATE_WEIGHTS = (10.0, 10.0, 0.0)  # Q = diag over (x, y, yaw)
MPC_CONTROL_WEIGHTS = (0.02, 0.15)  # R = diag over (v, omega)
MPC_REFERENCE_EVERY = 3  # steps between tracked reference points
ARRIVED_DISTANCE = 0.05  # [m] trackers stop when the path end is this close


def unicycle_step(pose: np.ndarray, control: np.ndarray, dt: float) -> np.ndarray:
    """Pose (..., 3) after driving `control` (..., 2) = (v, omega) for `dt` [s] along the exact arc.

    The chord of an arc of length d = v dt turning by a = omega dt has length d sinc(a/2) and points at
    yaw + a/2, which is exact for any omega including 0. The returned yaw is wrapped to [-pi, pi).
    """
    pose = np.asarray(pose, dtype=np.float64)
    control = np.asarray(control, dtype=np.float64)
    v, omega = control[..., 0], control[..., 1]
    turn = omega * dt
    chord = v * dt * np.sinc(turn / (2.0 * np.pi))  # np.sinc(x) = sin(pi x) / (pi x)
    heading = pose[..., 2] + 0.5 * turn
    return np.stack([pose[..., 0] + chord * np.cos(heading), pose[..., 1] + chord * np.sin(heading),
                     wrap_angle(pose[..., 2] + turn)], axis=-1)


def clip_control(control: np.ndarray, robot: RobotProfile) -> np.ndarray:
    """Control (..., 2) clipped to the robot's limits: v in [0, v_max] (no reverse), |omega| <= omega_max."""
    control = np.asarray(control, dtype=np.float64)
    return np.stack([np.clip(control[..., 0], 0.0, robot.v_max),
                     np.clip(control[..., 1], -robot.omega_max, robot.omega_max)], axis=-1)


def plan_to_world(plan_xy: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """World-frame path (P + 1, 2) [m]: the robot's position followed by robot-frame waypoints (P, 2)."""
    waypoints = points_to_global(np.asarray(plan_xy, dtype=np.float64)[:, :2], np.asarray(pose, np.float64))
    return np.vstack([np.asarray(pose, np.float64)[None, :2], waypoints])


def path_length(path: np.ndarray) -> float:
    """Polyline length [m] of a path (P, 2)."""
    return float(np.linalg.norm(np.diff(np.asarray(path)[:, :2], axis=0), axis=1).sum())


def resample_path(path: np.ndarray, spacing: float) -> np.ndarray:
    """Points (M, 2) every `spacing` [m] of arc length along `path` (P, 2), first and last point kept."""
    path = np.asarray(path, dtype=np.float64)[:, :2]
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))])
    if s[-1] <= 1e-12:
        return path[:1].copy()
    stations = np.append(np.arange(0.0, s[-1], spacing), s[-1])
    return np.stack([np.interp(stations, s, path[:, 0]), np.interp(stations, s, path[:, 1])], axis=-1)


def project_onto_path(point: np.ndarray, path: np.ndarray) -> tuple[float, float]:
    """(arc length [m] of the closest point of `path` (P, 2) to `point` (2,), total length [m])."""
    path = np.asarray(path, dtype=np.float64)[:, :2]
    if len(path) == 1:
        return 0.0, 0.0
    a, b = path[:-1], path[1:]
    seg = b - a
    seg_len = np.linalg.norm(seg, axis=1)
    t = np.clip(np.einsum("ij,ij->i", point - a, seg) / np.maximum(seg_len**2, 1e-18), 0.0, 1.0)
    closest = a + t[:, None] * seg
    k = int(np.argmin(np.linalg.norm(closest - point, axis=1)))
    starts = np.concatenate([[0.0], np.cumsum(seg_len)])
    return float(starts[k] + t[k] * seg_len[k]), float(starts[-1])


def point_at(path: np.ndarray, stations: np.ndarray) -> np.ndarray:
    """Points (K, 2) at arc lengths `stations` (K,) [m] along `path` (P, 2), clamped to its ends."""
    path = np.asarray(path, dtype=np.float64)[:, :2]
    if len(path) == 1:
        return np.repeat(path, len(np.atleast_1d(stations)), axis=0)
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))])
    stations = np.clip(np.atleast_1d(stations), 0.0, s[-1])
    return np.stack([np.interp(stations, s, path[:, 0]), np.interp(stations, s, path[:, 1])], axis=-1)


class Tracker(Protocol):
    """Maps the current pose (3,) and a world-frame path (P, 2) to a control (v, omega) within limits."""

    def reset(self) -> None:
        """Forget any state of the previous episode."""
        ...

    def control(self, pose: np.ndarray, path: np.ndarray) -> np.ndarray:
        """The control (v [m/s], omega [rad/s]) from `pose` (3,) along `path` (P, 2)."""
        ...


@dataclass
class PurePursuit:
    """Pure pursuit: steer on the arc through a look-ahead point on the path; turn in place when it is behind.

    Attributes:
        robot: limits. speed: cruise speed [m/s] (default v_max). lookahead: distance [m] along the path.
        slow_down: [1/s] gain of v <= slow_down * distance left, so the robot stops at the path's end.
    """

    robot: RobotProfile
    speed: float | None = None
    lookahead: float = 0.5
    slow_down: float = 1.0

    def reset(self) -> None:
        """Pure pursuit keeps no state."""

    def control(self, pose: np.ndarray, path: np.ndarray) -> np.ndarray:
        """The control (v [m/s], omega [rad/s]) pursuing the look-ahead point on `path`; zeros at its end."""
        pose = np.asarray(pose, dtype=np.float64)
        station, total = project_onto_path(pose[:2], path)
        remaining = total - station
        end_distance = float(np.linalg.norm(np.asarray(path)[-1, :2] - pose[:2]))
        if end_distance < ARRIVED_DISTANCE or (remaining < ARRIVED_DISTANCE and end_distance < self.lookahead):
            return np.zeros(2)
        target = point_at(path, np.array([station + self.lookahead]))[0]
        local = points_to_local(target, pose)
        distance = float(np.hypot(*local))
        bearing = math.atan2(local[1], local[0])
        omega_max = self.robot.omega_max
        if abs(bearing) > math.pi / 3:  # target behind or far to the side: rotate in place first
            return np.array([0.0, math.copysign(omega_max, bearing)])
        curvature = 2.0 * local[1] / max(distance**2, 1e-9)
        speed = min(self.speed or self.robot.v_max, self.robot.v_max, self.slow_down * end_distance)
        if abs(curvature) * speed > omega_max:
            speed = omega_max / abs(curvature)
        return clip_control(np.array([speed, curvature * speed]), self.robot)


class MPCTracker:
    """NavDP's tracking MPC: unicycle (Euler) over N=15 steps of T=0.1 s, Q=diag(10,10,0), R=diag(0.02,0.15).

    The NLP is built once with the start pose and the references as parameters; every solve warm-starts from
    the previous solution shifted by one step. References are points on the path ahead of the robot, one
    every `MPC_REFERENCE_EVERY` steps (at steps 3, 6, ..., 15), spaced by the distance covered at `speed`
    [m/s] in those steps and clamped to the path's end (so the robot stops there). The robot turns in place
    while the last reference is behind it (where v = omega = 0 would be a stationary point of the NLP).
    """

    def __init__(self, robot: RobotProfile, speed: float | None = None, horizon: int = MPC_HORIZON,
                 dt: float = MPC_DT):
        import casadi

        self.robot, self.horizon, self.dt = robot, horizon, dt
        self.speed = min(speed or robot.v_max, robot.v_max)
        self.reference_steps = np.arange(MPC_REFERENCE_EVERY, horizon + 1, MPC_REFERENCE_EVERY)
        n_ref = len(self.reference_steps)
        controls = casadi.SX.sym("u", 2, horizon)
        params = casadi.SX.sym("p", 3 + 2 * n_ref)
        x, y, yaw = params[0], params[1], params[2]
        cost: casadi.SX | float = 0
        q = MPC_STATE_WEIGHTS
        r = MPC_CONTROL_WEIGHTS
        for k in range(horizon):
            v, omega = controls[0, k], controls[1, k]
            cost += r[0] * v**2 + r[1] * omega**2
            x, y, yaw = x + v * casadi.cos(yaw) * dt, y + v * casadi.sin(yaw) * dt, yaw + omega * dt
            if k + 1 in self.reference_steps:
                j = int(np.searchsorted(self.reference_steps, k + 1))
                cost += q[0] * (x - params[3 + 2 * j]) ** 2 + q[1] * (y - params[4 + 2 * j]) ** 2
        nlp = {"x": casadi.reshape(controls, -1, 1), "p": params, "f": cost}
        options: dict[str, Any] = {"print_time": False, "ipopt.print_level": 0, "ipopt.sb": "yes",
                                   "ipopt.max_iter": 100, "ipopt.tol": 1e-6,
                                   "ipopt.warm_start_init_point": "yes"}
        self._solver = casadi.nlpsol("navdp_mpc", "ipopt", nlp, options)
        self._lower = np.tile([0.0, -robot.omega_max], horizon)
        self._upper = np.tile([robot.v_max, robot.omega_max], horizon)
        self.reset()

    def reset(self) -> None:
        """Forget the warm start."""
        self._guess = np.zeros(2 * self.horizon)

    def references(self, pose: np.ndarray, path: np.ndarray) -> np.ndarray:
        """(N / 3, 2) world-frame points the MPC tracks, ahead of the robot's projection onto `path`."""
        station, _ = project_onto_path(np.asarray(pose, dtype=np.float64)[:2], path)
        return point_at(path, station + self.speed * self.dt * self.reference_steps)

    def control(self, pose: np.ndarray, path: np.ndarray) -> np.ndarray:
        """The first control (v [m/s], omega [rad/s]) of the MPC solution towards the references on `path`;
        zeros at its end."""
        pose = np.asarray(pose, dtype=np.float64)
        if float(np.linalg.norm(np.asarray(path)[-1, :2] - pose[:2])) < ARRIVED_DISTANCE:
            self._guess[:] = 0.0
            return np.zeros(2)
        references = self.references(pose, path)
        local = points_to_local(references[-1], pose)
        if local[0] <= 0.0:  # reference behind: v = omega = 0 is a KKT point of the v >= 0 NLP, so turn first
            self._guess[:] = 0.0
            return np.array([0.0, math.copysign(self.robot.omega_max, local[1] if local[1] else 1.0)])
        params = np.concatenate([pose, references.ravel()])
        solution = self._solver(x0=self._guess, p=params, lbx=self._lower, ubx=self._upper)
        controls = np.asarray(solution["x"]).ravel()
        if not np.isfinite(controls).all():  # IPOPT failed outright: stop rather than drive blind
            self.reset()
            return np.zeros(2)
        self._guess = np.concatenate([controls[2:], controls[-2:]])
        return clip_control(controls[:2], self.robot)


TRACKERS = ("mpc", "pure-pursuit")


def make_tracker(name: str, robot: RobotProfile) -> Tracker:
    """A tracker by CLI name: "mpc" (NavDP's) or "pure-pursuit"."""
    if name == "mpc":
        return MPCTracker(robot)
    if name == "pure-pursuit":
        return PurePursuit(robot)
    raise ValueError(f"unknown tracker {name!r}; expected one of {', '.join(TRACKERS)}")


@dataclass(frozen=True, eq=False)
class Rollout:
    """A tracked path without collision checks.

    Attributes:
        poses: (T + 1, 3) world-frame poses, the start first, NAV_CONTROL_DT apart by default.
        controls: (T, 2) the applied (v [m/s], omega [rad/s]).
    """

    poses: np.ndarray
    controls: np.ndarray


def rollout(pose: np.ndarray, path: np.ndarray, tracker: Tracker, steps: int, dt: float = NAV_CONTROL_DT,
            stop_distance: float = ARRIVED_DISTANCE) -> Rollout:
    """Track the world-frame `path` (P, 2) from `pose` (3,) for at most `steps` steps of `dt` [s]; ends early
    when the robot is within `stop_distance` [m] of the path's end and has stopped."""
    tracker.reset()
    poses = [np.asarray(pose, dtype=np.float64)]
    controls = []
    goal = np.asarray(path, dtype=np.float64)[-1, :2]
    for _ in range(steps):
        control = tracker.control(poses[-1], path)
        if np.linalg.norm(poses[-1][:2] - goal) < stop_distance and not control.any():
            break
        controls.append(control)
        poses.append(unicycle_step(poses[-1], control, dt))
    return Rollout(np.array(poses), np.array(controls).reshape(-1, 2))
