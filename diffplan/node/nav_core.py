"""The navigation node core (wheeled robots and quadrupeds): depth + odometry + goal -> plan, candidates, cmd_vel.

Observation (plan_tick, as eval pointnav's `observe`): the latest depth image in metres (16UC1 mm or 32FC1 m),
centre-cropped to `camera_hfov_deg` when CameraInfo says the camera is wider than 90 deg, resized (nearest
neighbour at pixel centres) to `camera_width` x the height that keeps its aspect, with NavDP's valid range
[0.1, 5] m (0 elsewhere); the goal in the robot frame at the latest odometry pose (x, y, yaw 0); the velocity
(v, omega) of that odometry; time_s = now. The plan (24 robot-frame waypoints) goes to the odom frame at that
pose (REP-105); control_tick tracks it from the latest odometry pose with eval pointnav's tracker.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from diffplan.node import messages
from diffplan.node.interface import InputRole, InputSpec, Output, OutputRole, OutputSpec, Qos
from diffplan.node.messages import NodeInputError
from diffplan.node.params import NodeParams
from diffplan.node.safety import ERROR, OK, WARN, SafetyState
from planners.base import Planner
from planners.control import clip_control, make_tracker, plan_to_world
from scenes.geometry import points_to_local, poses_to_global
from scenes.nav import DEPTH_MAX, DEPTH_MIN, ROBOTS, CameraSpec, NavObservation


def resize_nearest(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """`image` (H, W) resized to (height, width), nearest neighbour at pixel centres."""
    rows = np.minimum(((np.arange(height) + 0.5) * image.shape[0] / height).astype(int), image.shape[0] - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * image.shape[1] / width).astype(int), image.shape[1] - 1)
    return image[rows[:, None], cols[None, :]]


def depth_for_camera(depth_m: np.ndarray, hfov_deg: float, params: NodeParams) -> tuple[np.ndarray, CameraSpec]:
    """(depth (H, W) float32 [m] for the planner, its CameraSpec) from a camera of `hfov_deg`; NodeInputError
    when the camera is narrower than 68 deg."""
    if hfov_deg < 68.0:
        raise NodeInputError(f"depth camera: horizontal field of view {hfov_deg:.1f} deg is below 68 deg")
    if hfov_deg > 90.0:  # keep the centre columns that span camera_hfov_deg
        keep = math.tan(math.radians(params.camera_hfov_deg) / 2) / math.tan(math.radians(hfov_deg) / 2)
        width = depth_m.shape[1]
        cut = round(width * (1 - keep) / 2)
        depth_m, hfov_deg = depth_m[:, cut:width - cut], params.camera_hfov_deg
    height = int(np.clip(round(params.camera_width * depth_m.shape[0] / depth_m.shape[1]), 64, 640))
    camera = CameraSpec(params.camera_width, height, float(hfov_deg), params.camera_mount_height)
    depth = resize_nearest(depth_m, camera.height, camera.width).astype(np.float32)
    depth[(depth < DEPTH_MIN) | (depth > DEPTH_MAX)] = 0.0
    return depth, camera


class NavNodeCore:
    """`diffplan node --robot wheeled|quadruped`: a navigation planner behind ROS 2 topics (NodeCore).

    Args:
        planner: a navigation planner (NavObservation in, 24 robot-frame waypoints out).
        robot: "wheeled" or "quadruped" (scenes.nav ROBOTS): tracker limits.
        params: rates, limits, frames, remaps.
        log: one line per event (default: SafetyState.lines).
        timer: wall clock [s] that times plans (default time.perf_counter).
    """

    def __init__(self, planner: Planner, robot: str = "wheeled", params: NodeParams | None = None,
                 log: Callable[[str], None] | None = None, timer: Callable[[], float] = time.perf_counter):
        self.params = (params or NodeParams()).validate()
        if robot not in ROBOTS:
            raise ValueError(f"unknown robot {robot!r}; expected one of {', '.join(ROBOTS)}")
        self.planner, self.robot, self.timer = planner, ROBOTS[robot], timer
        self.planner.seed = self.params.seed
        self.tracker = make_tracker(self.params.tracker, self.robot)
        self.safety = SafetyState(self.params, log)
        p = self.params
        self.inputs = [
            InputSpec(InputRole.DEPTH, p.topic(InputRole.DEPTH, "/camera/depth/image_raw"),
                      "sensor_msgs/msg/Image", Qos.SENSOR_DATA),
            InputSpec(InputRole.CAMERA_INFO, p.topic(InputRole.CAMERA_INFO, "/camera/depth/camera_info"),
                      "sensor_msgs/msg/CameraInfo", Qos.SENSOR_DATA),
            InputSpec(InputRole.ODOMETRY, p.topic(InputRole.ODOMETRY, "/odom"), "nav_msgs/msg/Odometry",
                      Qos.SENSOR_DATA),
            InputSpec(InputRole.GOAL, p.topic(InputRole.GOAL, "/goal_pose"), "geometry_msgs/msg/PoseStamped",
                      Qos.STANDARD)]
        cmd_type = "geometry_msgs/msg/TwistStamped" if p.stamped_cmd_vel else "geometry_msgs/msg/Twist"
        self.outputs = [
            OutputSpec(OutputRole.PLAN, p.topic(OutputRole.PLAN, "/diffplan/plan"), "nav_msgs/msg/Path"),
            OutputSpec(OutputRole.CANDIDATES, p.topic(OutputRole.CANDIDATES, "/diffplan/candidates"),
                       "visualization_msgs/msg/MarkerArray"),
            OutputSpec(OutputRole.CMD_VEL, p.topic(OutputRole.CMD_VEL, "/cmd_vel"), cmd_type),
            OutputSpec(OutputRole.DIAGNOSTICS, p.topic(OutputRole.DIAGNOSTICS, "/diffplan/diagnostics"),
                       "diagnostic_msgs/msg/DiagnosticArray")]
        self.plan_rate_hz, self.control_rate_hz = p.plan_rate_hz, p.control_rate_hz
        self.hfov_deg = p.camera_hfov_deg
        self.reset()

    def reset(self) -> None:
        """Drop the plan and every buffered input (a time jump)."""
        self.depth: np.ndarray | None = None
        self.camera: CameraSpec | None = None
        self.odometry: tuple[float, float, float, float, float] | None = None
        self.goal: np.ndarray | None = None
        self.path: np.ndarray | None = None  # (P + 1, 2) odom-frame path the tracker follows
        self.last_observation: NavObservation | None = None
        self.last_plan: Any = None
        self.tracker.reset()

    def warm_up(self) -> None:
        """Plan once on an empty scene (first calls of learned planners are slow), then reset the planner."""
        camera = CameraSpec(self.params.camera_width, self.params.camera_height, self.params.camera_hfov_deg,
                            self.params.camera_mount_height)
        blank = NavObservation(np.zeros((camera.height, camera.width), np.float32),
                               np.array([2.0, 0.0, 0.0], np.float32), np.zeros(2, np.float32), camera)
        self.planner.plan(blank)
        self.planner.reset()

    # --- NodeCore ---

    def on_message(self, role: InputRole, message: Any, now: float) -> None:
        """Take one message; a bad one is counted, logged and stops the robot (never raises)."""
        try:
            if self.safety.clock(now):
                self.reset()
            stamp = messages.header_stamp(message)
            if role is InputRole.DEPTH:
                depth_m = messages.depth_image_to_metres(message, self.params.max_image_side)
                depth, camera = depth_for_camera(depth_m, self.hfov_deg, self.params)
                if self.safety.accept(role, stamp, now):
                    self.depth, self.camera = depth, camera
            elif role is InputRole.CAMERA_INFO:
                hfov = messages.camera_hfov_deg(message)
                if self.safety.accept(role, stamp, now):
                    self.hfov_deg = hfov
            elif role is InputRole.ODOMETRY:
                odometry = messages.odometry_pose(message)
                if self.safety.accept(role, stamp, now):
                    self.odometry = odometry
            elif role is InputRole.GOAL:
                x, y, yaw = messages.pose_stamped_xy_yaw(message)
                messages.check_frame("goal", message.header.frame_id, self.params.odom_frame)
                if self.safety.accept(role, stamp, now):
                    self.goal = np.array([x, y, yaw])
                    self.safety.set_state("goal received", OK)
            else:
                raise NodeInputError(f"this node does not subscribe to {role.value}")
        except Exception as error:  # noqa: BLE001 - bad input must never take the node down
            self._bad(role, error)

    def plan_tick(self, now: float) -> list[Output]:
        """Plan from the latest inputs: PLAN and CANDIDATES when a plan was made, always DIAGNOSTICS."""
        outputs: list[Output] = []
        try:
            if self.safety.clock(now):
                self.reset()
            outputs = self._plan(now)
        except Exception as error:  # noqa: BLE001 - never raise into the transport
            self.path = None
            self.safety.planner_error("plan_tick", error, "planner error")
        return outputs + [self.safety.diagnostics(now, "diffplan_node", self._ages(now))]

    def control_tick(self, now: float) -> list[Output]:
        """The velocity command: the tracker's on the current plan, zero when anything is stale or wrong."""
        command = np.zeros(2)
        try:
            if self.safety.clock(now):
                self.reset()
            reason = self._stop_reason(now)
            if reason is None and self.path is not None and self.odometry is not None:
                pose = np.array(self.odometry[:3])
                command = clip_control(self.tracker.control(pose, self.path), self.robot)
                if not np.isfinite(command).all():
                    command = np.zeros(2)
                    raise ValueError("the tracker gave a non-finite command")
            elif reason is not None and reason != "goal reached":
                self.safety.counters["stops"] += 1
        except Exception as error:  # noqa: BLE001 - a tracker failure stops the robot
            command = np.zeros(2)
            self.safety.counters["stops"] += 1
            self.safety.log(f"control_tick: {type(error).__name__}: {error}".splitlines()[0])
        return [Output(OutputRole.CMD_VEL, self._twist(now, command))]

    # --- internals ---

    def _bad(self, role: InputRole, error: Exception) -> None:
        self.safety.bad_input(role, error)
        self.path = None  # safe stop until the next good plan
        if role is InputRole.DEPTH:
            self.depth = None
        elif role is InputRole.ODOMETRY:
            self.odometry = None

    def _ages(self, now: float) -> dict[InputRole, float]:
        return {role: self.safety.age(role, now) for role in (InputRole.DEPTH, InputRole.ODOMETRY, InputRole.GOAL)}

    def _goal_distance(self) -> float:
        if self.goal is None or self.odometry is None:
            return float("inf")
        return float(math.hypot(self.goal[0] - self.odometry[0], self.goal[1] - self.odometry[1]))

    def _stop_reason(self, now: float) -> str | None:
        """Why the robot must stand still now, or None."""
        if self.odometry is None or self.safety.age(InputRole.ODOMETRY, now) > self.params.max_input_age_s:
            return "stale odometry"
        if self.depth is None or self.safety.age(InputRole.DEPTH, now) > self.params.max_input_age_s:
            return "stale depth"
        if self.goal is None:
            return "no goal"
        if self._goal_distance() <= self.params.goal_tolerance_m:
            self.path = None
            self.safety.set_state("goal reached", OK)
            return "goal reached"
        if self.path is None:
            return "no plan"
        return None

    def _plan(self, now: float) -> list[Output]:
        reason = self._stop_reason(now)
        if reason is not None and reason != "no plan":
            self.path = None
            if reason != "goal reached":
                self.safety.set_state(f"stopped: {reason}", WARN)
            return []
        assert self.odometry is not None and self.depth is not None and self.camera is not None
        assert self.goal is not None
        pose = np.array(self.odometry[:3])
        local = points_to_local(self.goal[:2], pose)
        observation = NavObservation(depth=self.depth, goal=np.array([local[0], local[1], 0.0], np.float32),
                                     velocity=np.array(self.odometry[3:], np.float32), camera=self.camera,
                                     time_s=float(now))
        self.last_observation = observation
        started = self.timer()
        try:
            plan = self.planner.plan(observation)
            plan.validate(self.planner.plan_spec)
            if not np.isfinite(plan.trajectory.poses).all():
                raise ValueError("the plan has non-finite poses")
        except Exception as error:  # noqa: BLE001 - a planner failure is a stop, counted
            self.path = None
            self.safety.planner_error("planner", error, "stopped: planner error")
            return []
        elapsed = self.timer() - started
        self.safety.latencies_ms.append(1e3 * elapsed)
        if elapsed > self.params.plan_timeout_s:
            self.path = None
            self.safety.counters["timeouts"] += 1
            self.safety.log(f"planner: {elapsed:.3f} s exceeds plan_timeout_s {self.params.plan_timeout_s} s")
            self.safety.set_state("stopped: planner timeout", ERROR)
            return []
        self.safety.counters["plans"] += 1
        self.last_plan = plan
        self.path = plan_to_world(plan.trajectory.poses, pose)
        self.safety.set_state("planning", OK)
        frame = self.params.odom_frame
        poses = poses_to_global(np.asarray(plan.trajectory.poses, np.float64), pose)
        candidates = [poses] if plan.candidates is None else \
            [poses_to_global(np.asarray(c, np.float64), pose) for c in plan.candidates]
        scores = None if plan.candidates is None or plan.scores is None else np.asarray(plan.scores)
        return [Output(OutputRole.PLAN, messages.path(now, frame, poses)),
                Output(OutputRole.CANDIDATES, messages.marker_array(now, frame, candidates, scores))]

    def _twist(self, now: float, command: np.ndarray) -> Any:
        v, omega = float(command[0]), float(command[1])
        if self.params.stamped_cmd_vel:
            return messages.twist_stamped(now, self.params.base_frame, v, omega)
        return messages.twist(v, omega)
