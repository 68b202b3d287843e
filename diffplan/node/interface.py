"""What a transport needs to know about a node core: its topics, their message types and QoS, and two timers.

A transport subscribes to every `InputSpec` (its topic after remapping, its QoS), hands each received message to
`NodeCore.on_message(role, message, now)`, calls `plan_tick(now)` and `control_tick(now)` at their rates, and
publishes every `Output` they return on the topic of its `OutputSpec`. `now` is the node's clock [s]. Messages
are rosbags' ROS 2 Jazzy dataclasses (`diffplan.node.messages`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class Qos(enum.Enum):
    """Nav2's QoS profiles (nav2_ros_common/qos_profiles.hpp)."""

    STANDARD = "standard"  # reliable, volatile, KeepLast(10): outputs, goals, routes
    SENSOR_DATA = "sensor_data"  # best effort, volatile, KeepLast(10): images, odometry (matches both kinds)
    LATCHED = "latched"  # reliable, transient local, depth 1: static data


class InputRole(enum.Enum):
    """What a subscribed topic carries."""

    DEPTH = "depth"  # sensor_msgs/msg/Image, 16UC1 [mm] or 32FC1 [m]
    CAMERA_INFO = "camera_info"  # sensor_msgs/msg/CameraInfo
    ODOMETRY = "odometry"  # nav_msgs/msg/Odometry
    GOAL = "goal"  # geometry_msgs/msg/PoseStamped
    DETECTIONS = "detections"  # vision_msgs/msg/Detection3DArray
    ROUTE = "route"  # nav_msgs/msg/Path


class OutputRole(enum.Enum):
    """What a published topic carries."""

    PLAN = "plan"  # nav_msgs/msg/Path
    CANDIDATES = "candidates"  # visualization_msgs/msg/MarkerArray
    CMD_VEL = "cmd_vel"  # geometry_msgs/msg/Twist or TwistStamped
    DIAGNOSTICS = "diagnostics"  # diagnostic_msgs/msg/DiagnosticArray


@dataclass(frozen=True)
class InputSpec:
    """A subscription: role, default topic name, ROS message type name (e.g. "nav_msgs/msg/Odometry"), QoS."""

    role: InputRole
    topic: str
    msgtype: str
    qos: Qos


@dataclass(frozen=True)
class OutputSpec:
    """A publication: role, default topic name, ROS message type name, QoS."""

    role: OutputRole
    topic: str
    msgtype: str
    qos: Qos = Qos.STANDARD


@dataclass(frozen=True)
class Output:
    """A message to publish on the topic of `role`."""

    role: OutputRole
    message: Any


class NodeCore(Protocol):
    """The transport-free node: what it subscribes to and publishes, and its callbacks."""

    inputs: Sequence[InputSpec]
    outputs: Sequence[OutputSpec]
    plan_rate_hz: float
    control_rate_hz: float

    def on_message(self, role: InputRole, message: Any, now: float) -> None:
        """Take one received message; never raises (bad input is counted and leads to a safe stop)."""
        ...

    def plan_tick(self, now: float) -> list[Output]:
        """Plan if the inputs allow it; the plan, candidates and diagnostics to publish."""
        ...

    def control_tick(self, now: float) -> list[Output]:
        """The velocity command to publish now (a zero command when anything is stale or wrong)."""
        ...


class TransportCounts:
    """What a transport did, per role: messages received and published, and conversion or routing errors."""

    def __init__(self) -> None:
        self.received: dict[str, int] = {}
        self.published: dict[str, int] = {}
        self.errors: dict[str, int] = {}

    @staticmethod
    def add(table: dict[str, int], role: InputRole | OutputRole) -> None:
        """One more message of `role` in `table`."""
        table[role.value] = table.get(role.value, 0) + 1

    def as_dict(self) -> dict[str, dict[str, int]]:
        """{"received": {role: n}, "published": {...}, "errors": {...}}."""
        return {"received": dict(self.received), "published": dict(self.published), "errors": dict(self.errors)}


def route_outputs(outputs: Sequence[Output], targets: dict[OutputRole, list[tuple[str, Any]]],
                  send: Callable[[Any, Any, str], None], counts: TransportCounts) -> None:
    """Send each output to the (message type, target) pairs of its role whose type is the message's (a Twist
    goes to a Twist publisher, not a TwistStamped one); an output of a role without a target is an error."""
    for output in outputs:
        pairs = targets.get(output.role, [])
        if not pairs:
            counts.add(counts.errors, output.role)
        for msgtype, target in pairs:
            if getattr(output.message, "__msgtype__", msgtype) != msgtype:
                continue
            send(target, output.message, msgtype)
            counts.add(counts.published, output.role)
