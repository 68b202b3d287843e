"""Rule-based navigation planners: the privileged `expert`, reactive `go-to-goal`, and a depth-based `dwa`.

All return NAV_PLAN_POSES robot-frame waypoints NAV_PLAN_DT apart. A plan whose waypoints all sit at the robot
means "stop here" (trackers then command rest, which closed-loop evaluation takes as STOP). To turn in place a
planner puts its waypoints beside the robot (NavDP's convention), and the trackers rotate before driving.
"""

from __future__ import annotations

import math

import numpy as np

from planners.control import point_at, project_onto_path, unicycle_step
from planners.nav_base import NAV_PLAN, NavPlanner, NavPrivileged
from planners.plan import Plan
from planners.registry import register_planner
from scenes import Trajectory
from scenes.geometry import points_to_global, points_to_local
from scenes.nav import (
    NAV_PLAN_DT,
    NAV_PLAN_POSES,
    WHEELED,
    CameraSpec,
    NavObservation,
    RobotProfile,
)

FLOOR_MARGIN = 0.05  # [m] depth points lower than this are floor


def waypoints_plan(xy: np.ndarray) -> Plan:
    """A Plan from robot-frame waypoints (NAV_PLAN_POSES, 2); yaw follows the direction of travel."""
    xy = np.asarray(xy, dtype=np.float64)
    steps = np.diff(np.vstack([np.zeros(2), xy]), axis=0)
    yaw = np.zeros(len(xy))
    heading = 0.0
    for i, (dx, dy) in enumerate(steps):
        if math.hypot(dx, dy) > 1e-6:
            heading = math.atan2(dy, dx)
        yaw[i] = heading
    return Plan(Trajectory(np.column_stack([xy, yaw]), NAV_PLAN_DT), spec=NAV_PLAN)


def turn_in_place_plan(direction: float) -> Plan:
    """Waypoints 0.5 m to the left (direction > 0) or right: trackers turn on the spot towards them."""
    side = 0.5 if direction >= 0 else -0.5
    return waypoints_plan(np.tile([0.0, side], (NAV_PLAN_POSES, 1)))


def straight_plan(goal_xy: np.ndarray, speed: float) -> Plan:
    """Waypoints towards the robot-frame goal (2,) at `speed` [m/s], ending at the goal."""
    distance = float(np.hypot(*goal_xy))
    stations = np.minimum(speed * NAV_PLAN_DT * np.arange(1, NAV_PLAN_POSES + 1), distance)
    direction = np.asarray(goal_xy, dtype=np.float64) / max(distance, 1e-9)
    return waypoints_plan(stations[:, None] * direction)


def depth_points(depth: np.ndarray, camera: CameraSpec, stride: int = 2) -> np.ndarray:
    """Robot-frame points (N, 3) x forward, y left, z up [m] of the valid pixels (depth > 0) of a z-depth image."""
    k = camera.intrinsics()
    rows, cols = np.mgrid[0:depth.shape[0]:stride, 0:depth.shape[1]:stride]
    d = depth[rows, cols]
    valid = d > 0
    d, rows, cols = d[valid], rows[valid], cols[valid]
    lateral = (cols + 0.5 - k[0, 2]) / k[0, 0] * d
    vertical = (rows + 0.5 - k[1, 2]) / k[1, 1] * d
    return np.column_stack([d, -lateral, camera.mount_height - vertical])


def obstacle_points(observation: NavObservation, robot: RobotProfile) -> np.ndarray:
    """Robot-frame obstacle points (N, 2) [m]: depth points between the floor and the robot's height."""
    points = depth_points(observation.depth, observation.camera)
    keep = (points[:, 2] > FLOOR_MARGIN) & (points[:, 2] < robot.height)
    return points[keep, :2]


@register_planner("expert")
class ExpertNavPlanner(NavPlanner):
    """Privileged upper bound: follows world.shortest_path at v_max; re-plans when >0.3 m off the path. An
    oracle: it plans only with the world (`plan_privileged`); `plan` raises OracleError."""

    privileged = True
    replan_distance = 0.3  # [m]

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget the followed path."""
        self._path: np.ndarray | None = None
        self._goal: np.ndarray | None = None

    def plan(self, observation: NavObservation) -> Plan:
        """Raises OracleError: the expert needs the privileged world."""
        raise self.oracle_error()

    def plan_privileged(self, observation: NavObservation, context: NavPrivileged) -> Plan:
        """Waypoints along the world's shortest path to the goal (re-planned when off it)."""
        world, robot = context.world, context.robot
        pose, goal = np.asarray(context.pose, np.float64), np.asarray(context.goal, np.float64)
        if self._path is None or self._goal is None or not np.allclose(goal, self._goal) or \
                _off_path(self._path, pose[:2]) > self.replan_distance:
            found = world.shortest_path(pose[:2], goal, robot)
            self._path = None if found is None else np.vstack([np.asarray(found, np.float64)[:, :2], goal])
            self._goal = goal.copy()
        if self._path is None:  # unreachable: stay
            return waypoints_plan(np.zeros((NAV_PLAN_POSES, 2)))
        path = self._path
        station, _ = project_onto_path(pose[:2], path)
        ahead = point_at(path, station + robot.v_max * NAV_PLAN_DT * np.arange(1, NAV_PLAN_POSES + 1))
        return waypoints_plan(points_to_local(ahead, pose))



def _off_path(path: np.ndarray, xy: np.ndarray) -> float:
    """Distance [m] from xy (2,) to its projection on the polyline path (N, 2)."""
    station, _ = project_onto_path(xy, path)
    return float(np.linalg.norm(point_at(path, np.array([station]))[0] - xy))


@register_planner("go-to-goal")
class GoToGoalPlanner(NavPlanner):
    """Straight at the goal at v_max; stops for good (STOP) when depth shows an obstacle in the corridor ahead
    closer than `stop_distance` [m]."""

    stop_distance = 0.6  # [m] from the robot's centre
    margin = 0.05  # [m] added to the half-width of the corridor
    robot = WHEELED

    def plan(self, observation: NavObservation) -> Plan:
        """Straight at the goal; STOP for good once depth shows an obstacle ahead."""
        goal = observation.goal[:2].astype(np.float64)
        distance = float(np.hypot(*goal))
        if distance < 1e-3:
            return waypoints_plan(np.zeros((NAV_PLAN_POSES, 2)))
        direction = goal / distance
        points = obstacle_points(observation, self.robot)
        along = points @ direction
        across = np.abs(points @ np.array([-direction[1], direction[0]]))
        half_width = 0.5 * self.robot.width + self.margin
        reach = min(self.stop_distance, distance) + 0.5 * self.robot.length
        blocked = np.count_nonzero((along > 0) & (along < reach) & (across < half_width)) >= 3
        if blocked:
            return waypoints_plan(np.zeros((NAV_PLAN_POSES, 2)))
        return straight_plan(goal, self.robot.v_max)


@register_planner("dwa")
class DWAPlanner(NavPlanner):
    """Dynamic-window-style reactive planner on depth.

    Rolls out (v, omega) arcs (turning at most 90 deg, then straight) over the plan's 6 s, each cut where it
    comes closest to the goal; drops arcs that pass within the robot's radius + `safety` of an obstacle point
    in their first 1.5 s (when already that close: arcs that get closer); scores progress towards the goal,
    heading at the cut, the clearance of the whole arc and speed. It turns in place to face a goal more than
    100 deg off; when no arc is safe it turns in place, keeping the direction until an arc opens (no
    dithering), then avoids arcs that curve back for `detour_plans` planning steps. Its only map is the depth
    points of the last `memory_frames` frames, placed by dead reckoning on the observed velocities.
    """

    robot = WHEELED
    speeds = np.linspace(0.1, 0.5, 5)  # [m/s]
    yaw_rates = np.linspace(-0.5, 0.5, 11)  # [rad/s]
    max_turn = math.pi / 2  # [rad] arcs turn this much at most, then go straight
    weights = (1.0, 0.2, 0.5, 0.3)  # progress, heading, clearance, speed
    safety = 0.08  # [m] added to the robot's radius
    safe_poses = 6  # arcs must be collision-free over this many poses (1.5 s); later contact only scores lower
    clearance_cap = 0.6  # [m] more clearance than this scores no better
    arrive_distance = 0.1  # [m] stop when the goal is this close
    detour_plans = 8  # planning steps of going round after being blocked
    memory_frames = 10  # depth frames remembered (3 s at the evaluator's planning rate)

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget the turning side, detour and dead-reckoned pose."""
        self._turning = 0.0  # while blocked, keep turning the same way
        self._detour = 0  # planning steps left in which arcs curving back towards the obstacle are dropped
        self._odom = np.zeros(3)  # dead-reckoned pose from the observed velocities
        self._time = 0.0
        self._frames: list[np.ndarray] = []  # recent obstacle points in the odometry frame

    def _remember(self, observation: NavObservation) -> np.ndarray:
        """Robot-frame obstacle points (N, 2) from this frame and the last `memory_frames` (dead reckoning on
        the observed (v, omega) between planning steps), thinned to a 5 cm grid."""
        dt = max(0.0, observation.time_s - self._time)
        self._odom = unicycle_step(self._odom, observation.velocity.astype(np.float64), dt)
        self._time = observation.time_s
        seen = obstacle_points(observation, self.robot)
        self._frames = [*self._frames[-(self.memory_frames - 1):], points_to_global(seen, self._odom)]
        local = points_to_local(np.vstack(self._frames), self._odom)
        local = local[np.linalg.norm(local, axis=1) < 3.0]
        cells = np.round(local / 0.05).astype(np.int64)
        _, first = np.unique(cells[:, 0] * 1_000_003 + cells[:, 1], return_index=True)
        return cells[first] * 0.05

    def plan(self, observation: NavObservation) -> Plan:
        """The best-scored arc of the dynamic window, from depth and the goal."""
        goal = observation.goal[:2].astype(np.float64)
        distance = float(np.hypot(*goal))
        if distance < self.arrive_distance:
            return waypoints_plan(np.zeros((NAV_PLAN_POSES, 2)))
        controls = np.array([(v, w) for v in self.speeds for w in self.yaw_rates])  # (K, 2)
        poses = np.zeros((len(controls), NAV_PLAN_POSES + 1, 3))
        for t in range(NAV_PLAN_POSES):  # turn at most max_turn, then straight on: no loops to track
            turning = np.abs(controls[:, 1]) * (t + 1) * NAV_PLAN_DT <= self.max_turn + 1e-9
            step = np.column_stack([controls[:, 0], np.where(turning, controls[:, 1], 0.0)])
            poses[:, t + 1] = unicycle_step(poses[:, t], step, NAV_PLAN_DT)
        poses = poses[:, 1:]
        to_goal = np.linalg.norm(poses[:, :, :2] - goal, axis=-1)  # (K, T)
        cut = to_goal.argmin(axis=1)
        used = np.arange(NAV_PLAN_POSES)[None, :] <= cut[:, None]  # (K, T) poses up to the closest approach
        obstacles = self._remember(observation)
        if self._detour <= 0 and abs(math.atan2(goal[1], goal[0])) > math.radians(100):
            return turn_in_place_plan(goal[1])  # face the goal first
        if len(obstacles):
            gaps = np.linalg.norm(poses[:, :, None, :2] - obstacles[None, None], axis=-1).min(axis=2)
            clearance = np.where(used, gaps, np.inf).min(axis=1) - self.robot.radius
            near = np.where(used[:, :self.safe_poses], gaps[:, :self.safe_poses], np.inf).min(axis=1)
            current = float(np.linalg.norm(obstacles, axis=1).min()) - self.robot.radius
        else:
            clearance = near = np.full(len(controls), np.inf)
            current = np.inf
        safe = near - self.robot.radius > min(self.safety, current - 0.01)
        if self._detour > 0:
            self._detour -= 1
            safe &= np.sign(controls[:, 1]) != -self._turning
        if not safe.any():
            return self._turn(goal)
        self._turning = 0.0 if self._detour <= 0 else self._turning
        rows = np.arange(len(controls))
        end = poses[rows, cut]
        progress = (distance - to_goal[rows, cut]) / (self.speeds.max() * NAV_PLAN_POSES * NAV_PLAN_DT)
        bearing = np.arctan2(goal[1] - end[:, 1], goal[0] - end[:, 0]) - end[:, 2]
        facing = np.where(to_goal[rows, cut] < 0.3, 1.0, 1.0 - np.abs(np.angle(np.exp(1j * bearing))) / math.pi)
        score = (self.weights[0] * progress + self.weights[1] * facing
                 + self.weights[2] * np.clip(clearance, 0.0, self.clearance_cap)
                 + self.weights[3] * controls[:, 0] / self.speeds.max())
        score[~safe] = -np.inf
        best = int(np.argmax(score))
        path = poses[best, :, :2].copy()
        if to_goal[best, cut[best]] < 0.5:  # the arc passes the goal: end the plan on it
            path[cut[best]:] = goal
        return waypoints_plan(path)

    def _turn(self, goal: np.ndarray) -> Plan:
        if self._turning == 0.0:
            self._turning = 1.0 if goal[1] >= 0 else -1.0
        self._detour = self.detour_plans
        return turn_in_place_plan(self._turning)
