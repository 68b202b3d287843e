"""The rclpy transport of `diffplan node`, used when a ROS 2 Python (rclpy) is importable.

`RclpyTransport` makes an rclpy `Node` with one subscription per core input and one publisher per output (QoS
from Nav2's profiles), converts rclpy message objects to the core's rosbags dataclasses and back by field name,
and calls `plan_tick` / `control_tick` from two timers. `available_transport` picks rclpy when it is importable
and the cyclonedds transport (`diffplan.node.dds`) otherwise.
"""

from __future__ import annotations

import array
import importlib
import importlib.util
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from rosbags.interfaces import Nodetype

from diffplan.node.dds import (
    ROS_NUMPY_DTYPES,
    TransportError,
    default_typestore,
    message_fields,
    require_cyclonedds,
    resolve_topic,
    scalar_value,
)
from diffplan.node.interface import (
    InputRole,
    NodeCore,
    Output,
    OutputRole,
    Qos,
    TransportCounts,
    route_outputs,
)

_TYPECODES = {"byte": "B", "char": "B", "uint8": "B", "int8": "b", "int16": "h", "uint16": "H", "int32": "i",
              "uint32": "I", "int64": "q", "uint64": "Q", "float32": "f", "float64": "d"}
TRANSPORTS = ("auto", "rclpy", "dds")


def rclpy_available() -> bool:
    """Whether rclpy can be imported in this interpreter."""
    return importlib.util.find_spec("rclpy") is not None


def available_transport(choice: str = "auto") -> str:
    """The transport to use: "rclpy" or "dds"; "auto" picks rclpy when importable, else dds.

    Raises:
        TransportError: the chosen transport's library is missing, or `choice` is unknown (one line).
    """
    if choice not in TRANSPORTS:
        raise TransportError(f"transport must be one of {', '.join(TRANSPORTS)}, got {choice!r}")
    if choice == "rclpy" or (choice == "auto" and rclpy_available()):
        if not rclpy_available():
            raise TransportError("the rclpy transport needs a ROS 2 Python (source /opt/ros/<distro>/setup.bash)")
        return "rclpy"
    require_cyclonedds()
    return "dds"


def ros_message_class(msgtype: str) -> Any:
    """The rclpy message class of a type name ("nav_msgs/msg/Odometry"), from `<pkg>.msg`."""
    package, _, name = msgtype.split("/")
    try:
        return getattr(importlib.import_module(f"{package}.msg"), name)
    except (ImportError, AttributeError):
        raise TransportError(f"no ROS 2 Python message {msgtype!r} (install the {package} package)") from None


def _value_to_ros(typestore: Any, node: tuple[Any, Any], value: Any) -> Any:
    kind, desc = node
    if kind == Nodetype.BASE:
        if desc[0] == "byte":
            return bytes([int(value) & 0xFF])
        return scalar_value(desc[0], value)
    if kind == Nodetype.NAME:
        return to_ros(value, desc, typestore)
    element, _ = desc
    base = element[1][0] if element[0] == Nodetype.BASE else None
    if base == "byte":
        return [bytes([int(v) & 0xFF]) for v in value]
    if base in _TYPECODES:
        values = np.asarray(value, dtype=ROS_NUMPY_DTYPES[base])
        return values if kind == Nodetype.ARRAY else array.array(_TYPECODES[base], values.tobytes())
    if base is not None:
        return [_value_to_ros(typestore, element, v) for v in value]
    return [to_ros(v, element[1], typestore) for v in value]


def to_ros(message: Any, msgtype: str | None = None, typestore: Any = None) -> Any:
    """The rclpy message object of a rosbags message."""
    typestore = typestore if typestore is not None else default_typestore()
    msgtype = msgtype or message.__msgtype__
    result = ros_message_class(msgtype)()
    for name, node in message_fields(typestore, msgtype):
        setattr(result, name, _value_to_ros(typestore, node, getattr(message, name)))
    return result


def _value_from_ros(typestore: Any, node: tuple[Any, Any], value: Any) -> Any:
    kind, desc = node
    if kind == Nodetype.BASE:
        if desc[0] == "byte" and isinstance(value, bytes | bytearray):
            return int(value[0])
        return value
    if kind == Nodetype.NAME:
        return from_ros(value, desc, typestore)
    element, _ = desc
    base = element[1][0] if element[0] == Nodetype.BASE else None
    if base in ROS_NUMPY_DTYPES:
        if base == "byte" and len(value) and isinstance(value[0], bytes | bytearray):
            return np.frombuffer(b"".join(value), dtype=np.uint8).copy()
        return np.array(value, dtype=ROS_NUMPY_DTYPES[base])
    if base is not None:
        return list(value)
    return [from_ros(v, element[1], typestore) for v in value]


def from_ros(message: Any, msgtype: str, typestore: Any = None) -> Any:
    """The rosbags dataclass of an rclpy message object of type `msgtype`."""
    typestore = typestore if typestore is not None else default_typestore()
    values = {name: _value_from_ros(typestore, node, getattr(message, name))
              for name, node in message_fields(typestore, msgtype)}
    return typestore.types[msgtype](**values)


def ros_qos(qos: Qos) -> Any:
    """The rclpy QoSProfile of a Nav2 profile."""
    rq = importlib.import_module("rclpy.qos")  # imported by name: rclpy is not installed where mypy runs
    reliability = rq.ReliabilityPolicy.BEST_EFFORT if qos is Qos.SENSOR_DATA else rq.ReliabilityPolicy.RELIABLE
    durability = rq.DurabilityPolicy.TRANSIENT_LOCAL if qos is Qos.LATCHED else rq.DurabilityPolicy.VOLATILE
    return rq.QoSProfile(history=rq.HistoryPolicy.KEEP_LAST, depth=1 if qos is Qos.LATCHED else 10,
                      reliability=reliability, durability=durability)


class RclpyTransport:
    """Runs a `NodeCore` as an rclpy node.

    Args:
        core: the node core.
        remap: topic remapping by role value or by default topic name (ROS remapping rules apply on top).
        node_name: the ROS node name.
        typestore: rosbags typestore of the messages (default: `diffplan.node.messages.TYPESTORE`).
        args: ROS command-line arguments for `rclpy.init` (e.g. ["--ros-args", "-r", "odom:=/robot/odom"]).
    """

    def __init__(self, core: NodeCore, remap: Mapping[str, str] | None = None, node_name: str = "diffplan",
                 typestore: Any = None, args: list[str] | None = None):
        if not rclpy_available():
            raise TransportError("the rclpy transport needs a ROS 2 Python (source /opt/ros/<distro>/setup.bash)")
        rclpy = importlib.import_module("rclpy")
        self.rclpy = rclpy
        if not rclpy.ok():
            rclpy.init(args=args)
        self.core = core
        self.typestore = typestore if typestore is not None else default_typestore()
        self.node = rclpy.create_node(node_name)
        self.counts = TransportCounts()
        self._stop = False
        self.subscriptions = [
            self.node.create_subscription(ros_message_class(spec.msgtype),
                                          resolve_topic(spec.role, spec.topic, remap),
                                          self._callback(spec.role, spec.msgtype), ros_qos(spec.qos))
            for spec in core.inputs]
        self.publishers: dict[OutputRole, list[tuple[str, Any]]] = {}
        for out in core.outputs:
            publisher = self.node.create_publisher(ros_message_class(out.msgtype),
                                                   resolve_topic(out.role, out.topic, remap), ros_qos(out.qos))
            self.publishers.setdefault(out.role, []).append((out.msgtype, publisher))
        ticks = ((core.plan_rate_hz, core.plan_tick), (core.control_rate_hz, core.control_tick))
        self.timers = [self.node.create_timer(1.0 / rate, self._ticker(tick)) for rate, tick in ticks if rate > 0]

    def now(self) -> float:
        """The node clock [s] (ROS time: wall time, or /clock with use_sim_time)."""
        return self.node.get_clock().now().nanoseconds * 1e-9

    def _callback(self, role: InputRole, msgtype: str) -> Any:
        def callback(ros_message: Any) -> None:
            try:
                message = from_ros(ros_message, msgtype, self.typestore)
            except Exception:  # noqa: BLE001 - a message that does not convert is counted, never fatal
                self.counts.add(self.counts.errors, role)
                return
            self.counts.add(self.counts.received, role)
            self.core.on_message(role, message, self.now())

        return callback

    def _ticker(self, tick: Any) -> Any:
        def callback() -> None:
            self.publish(tick(self.now()))

        return callback

    def publish(self, outputs: list[Output]) -> None:
        """Publish each output on the topic(s) of its role; outputs of a role without a publisher are counted."""
        route_outputs(outputs, self.publishers,
                      lambda publisher, message, msgtype: publisher.publish(to_ros(message, msgtype, self.typestore)),
                      self.counts)

    def run(self, duration_s: float | None = None) -> dict[str, dict[str, int]]:
        """Spin until `stop()`, Ctrl-C or `duration_s` [s]; the received/published/error counts."""
        self._stop = False
        start = time.monotonic()
        try:
            while not self._stop and self.rclpy.ok():
                if duration_s is not None and time.monotonic() - start >= duration_s:
                    break
                self.rclpy.spin_once(self.node, timeout_sec=0.05)
        except KeyboardInterrupt:
            pass
        return self.stats()

    def stop(self) -> None:
        """Make `run` return within 0.05 s."""
        self._stop = True

    def stats(self) -> dict[str, dict[str, int]]:
        """Messages received and published per role, and per-role conversion or routing errors."""
        return self.counts.as_dict()

    def close(self) -> None:
        """Destroy the node and shut rclpy down."""
        self.node.destroy_node()
        if self.rclpy.ok():
            self.rclpy.shutdown()
