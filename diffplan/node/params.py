"""The node's parameters, read from a ROS 2 params YAML (`diffplan_node: ros__parameters: {...}`)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diffplan.node.interface import InputRole, OutputRole
from scenes.errors import DiffplanError

NODE_NAME = "diffplan_node"


class NodeParamsError(DiffplanError, ValueError):
    """A bad node parameter (one line naming the key)."""


@dataclass(frozen=True)
class NodeParams:
    """Rates, limits, frames and topic remaps of `diffplan node`.

    Attributes:
        plan_rate_hz: planning rate, 3..5 Hz. control_rate_hz: cmd_vel rate, 10..20 Hz.
        max_input_age_s: odometry or depth older than this [s] stops the robot.
        time_jump_s: the clock moving forward by more than this [s] (or backwards) resets the node.
        goal_tolerance_m: within this distance [m] of the goal the robot stops ("goal reached").
        plan_timeout_s: a plan slower than this [s] is dropped and the robot stops.
        max_image_side: larger depth images [px] are refused.
        latency_window: plans over which latency percentiles are reported.
        odom_frame, base_frame: REP-105 frame names of plans and commands.
        stamped_cmd_vel: publish TwistStamped instead of Twist (Nav2 Kilted's default).
        tracker: "mpc" or "pure-pursuit" (planners.control, as eval pointnav).
        camera_width, camera_height, camera_hfov_deg, camera_mount_height: the planner's depth camera
            (scenes.nav CameraSpec; hfov is taken from CameraInfo when one arrived).
        command: the driving command for vehicle planners ("unknown", "left", "straight", "right").
        seed: the planner's seed.
        remap: topic per role name, e.g. {"depth": "/camera/camera/aligned_depth_to_color/image_raw"}.
    """

    plan_rate_hz: float = 4.0
    control_rate_hz: float = 10.0
    max_input_age_s: float = 0.5
    time_jump_s: float = 2.0
    goal_tolerance_m: float = 0.5
    plan_timeout_s: float = 1.0
    max_image_side: int = 4096
    latency_window: int = 100
    odom_frame: str = "odom"
    base_frame: str = "base_link"
    stamped_cmd_vel: bool = False
    tracker: str = "mpc"
    camera_width: int = 160
    camera_height: int = 120
    camera_hfov_deg: float = 79.0
    camera_mount_height: float = 0.4
    command: str = "unknown"
    seed: int = 0
    remap: dict[str, str] = field(default_factory=dict)

    def validate(self) -> NodeParams:
        """The parameters themselves; NodeParamsError naming the key when one is out of range."""
        ranges = {"plan_rate_hz": (3.0, 5.0), "control_rate_hz": (10.0, 20.0), "max_input_age_s": (1e-3, 60.0),
                  "time_jump_s": (1e-3, 3600.0), "goal_tolerance_m": (0.0, 100.0), "plan_timeout_s": (1e-3, 60.0),
                  "max_image_side": (1, 65535), "latency_window": (1, 100000), "camera_width": (64, 640),
                  "camera_height": (64, 640), "camera_hfov_deg": (68.0, 90.0), "camera_mount_height": (1e-3, 10.0)}
        for key, (low, high) in ranges.items():
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
                    or not low <= value <= high:
                raise NodeParamsError(f"{NODE_NAME}.{key}: {value!r} is outside [{low}, {high}]")
        if self.tracker not in ("mpc", "pure-pursuit"):
            raise NodeParamsError(f"{NODE_NAME}.tracker: {self.tracker!r} is not 'mpc' or 'pure-pursuit'")
        if self.command not in ("unknown", "left", "straight", "right"):
            raise NodeParamsError(f"{NODE_NAME}.command: {self.command!r} is not unknown/left/straight/right")
        for key in ("odom_frame", "base_frame"):
            if not getattr(self, key):
                raise NodeParamsError(f"{NODE_NAME}.{key}: must not be empty")
        roles = {role.value for role in InputRole} | {role.value for role in OutputRole}
        for role, topic in self.remap.items():
            if role not in roles:
                raise NodeParamsError(f"{NODE_NAME}.remap.{role}: unknown role; expected one of "
                                      f"{', '.join(sorted(roles))}")
            if not isinstance(topic, str) or not topic or " " in topic:
                raise NodeParamsError(f"{NODE_NAME}.remap.{role}: {topic!r} is not a topic name")
        return self

    def topic(self, role: InputRole | OutputRole, default: str) -> str:
        """The topic of `role`: its remap, else `default`."""
        return self.remap.get(role.value, default)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> NodeParams:
        """Parameters from a ros__parameters mapping; NodeParamsError naming an unknown or mistyped key."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            if key not in fields:
                raise NodeParamsError(f"{NODE_NAME}.{key}: unknown parameter; expected one of "
                                      f"{', '.join(sorted(fields))}")
            default = getattr(cls(), key)
            if isinstance(default, dict):
                if not isinstance(value, dict):
                    raise NodeParamsError(f"{NODE_NAME}.{key}: expected a mapping, got {value!r}")
                value = {str(k): v for k, v in value.items()}
            elif isinstance(default, bool):
                if not isinstance(value, bool):
                    raise NodeParamsError(f"{NODE_NAME}.{key}: expected true or false, got {value!r}")
            elif isinstance(default, int):
                if isinstance(value, bool) or not isinstance(value, int):
                    raise NodeParamsError(f"{NODE_NAME}.{key}: expected an integer, got {value!r}")
            elif isinstance(default, float):
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise NodeParamsError(f"{NODE_NAME}.{key}: expected a number, got {value!r}")
                value = float(value)
            elif not isinstance(value, str):
                raise NodeParamsError(f"{NODE_NAME}.{key}: expected a string, got {value!r}")
            kwargs[key] = value
        return cls(**kwargs).validate()

    @classmethod
    def from_yaml(cls, path: str | Path) -> NodeParams:
        """Parameters from a ROS 2 params file; NodeParamsError (one line) on a bad file or key."""
        import yaml

        try:
            document = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as error:
            raise NodeParamsError(f"{path}: {str(error).splitlines()[0]}") from None
        node = (document or {}).get(NODE_NAME) if isinstance(document, dict) else None
        if node is None:
            node = (document or {}).get("/" + NODE_NAME) if isinstance(document, dict) else None
        if not isinstance(node, dict) or not isinstance(node.get("ros__parameters"), dict):
            raise NodeParamsError(f"{path}: expected '{NODE_NAME}: ros__parameters: {{...}}'")
        return cls.from_dict(node["ros__parameters"])
