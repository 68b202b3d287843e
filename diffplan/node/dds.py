"""The cyclonedds transport of `diffplan node`: ROS 2 wire-compatible topics without a ROS install.

A `DdsTransport` opens one DDS participant, one reader per core input on `rt/<topic>` and one writer per output,
all with the ROS 2 type names of `dds_types` (`nav_msgs::msg::dds_::Odometry_`) and XCDR1, so real ROS 2 nodes
(rmw_fastrtps, rmw_cyclonedds) talk to it. Its loop polls the readers, hands each sample (converted to the
rosbags dataclass) to `core.on_message(role, message, now)`, and calls `plan_tick` and `control_tick` at their
rates on the monotonic clock, publishing every `Output` they return.

`to_idl` / `from_idl` convert rosbags dataclasses to IDL struct instances and back by field name, recursively,
guided by the typestore's field definitions; the bytes cyclonedds writes equal `typestore.serialize_cdr`.
cyclonedds (the `ros2` extra) is imported lazily; without it, a `TransportError` says so in one line.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from rosbags.interfaces import Nodetype

from diffplan.node.interface import (
    InputRole,
    NodeCore,
    Output,
    OutputRole,
    Qos,
    TransportCounts,
    route_outputs,
)
from scenes.errors import DiffplanError

POLL_S = 0.002  # [s] longest sleep between two polls of the readers
MAX_TAKE = 64  # samples taken from one reader per poll

ROS_NUMPY_DTYPES = {  # ROS 2 base types held as numpy arrays in rosbags' messages
    "bool": np.bool_, "byte": np.uint8, "char": np.uint8, "int8": np.int8, "uint8": np.uint8,
    "int16": np.int16, "uint16": np.uint16, "int32": np.int32, "uint32": np.uint32, "int64": np.int64,
    "uint64": np.uint64, "float32": np.float32, "float64": np.float64,
}
_OCTETS = {"byte", "char", "uint8"}


class TransportError(DiffplanError):
    """A transport cannot start (its library is missing, a type has no wire definition); one line."""


def require_cyclonedds() -> None:
    """Import cyclonedds, or raise a one-line `TransportError` naming the `ros2` extra."""
    try:
        import cyclonedds.domain  # noqa: F401
    except ImportError as error:
        raise TransportError(f"the dds transport needs cyclonedds>=11 (pip install 'diffplan[ros2]'): {error}") \
            from None


def default_typestore() -> Any:
    """The node's typestore: rosbags' ROS 2 Jazzy types with vision_msgs (`diffplan.node.messages`)."""
    from diffplan.node.messages import TYPESTORE

    return TYPESTORE


def dds_topic(topic: str) -> str:
    """The DDS topic of a ROS 2 topic in the root namespace: "/odom" or "odom" -> "rt/odom"."""
    return "rt/" + topic.lstrip("/")


def idl_type(msgtype: str) -> type:
    """The IDL struct of a ROS message type name ("nav_msgs/msg/Path" -> `Path_`)."""
    require_cyclonedds()
    from diffplan.node.dds_types import IDL_TYPES

    try:
        return IDL_TYPES[msgtype]
    except KeyError:
        raise TransportError(f"no DDS wire definition for message type {msgtype!r}") from None


def message_fields(typestore: Any, msgtype: str) -> list[tuple[str, tuple[Any, Any]]]:
    """(field name, rosbags field node) of message type `msgtype`; TransportError when the typestore lacks it."""
    try:
        return typestore.fielddefs[msgtype][1]
    except KeyError:
        raise TransportError(f"message type {msgtype!r} is not in the typestore") from None


def scalar_value(type_name: str, value: Any) -> Any:
    """A ROS 2 base-type field's value as a plain Python str, bool, float or int."""
    if type_name in ("string", "wstring"):
        return str(value)
    if type_name == "bool":
        return bool(value)
    return float(value) if type_name.startswith("float") else int(value)


def _value_to_idl(typestore: Any, node: tuple[Any, Any], value: Any) -> Any:
    kind, desc = node
    if kind == Nodetype.BASE:
        return scalar_value(desc[0], value)
    if kind == Nodetype.NAME:
        return to_idl(value, desc, typestore)
    element, _ = desc
    if element[0] == Nodetype.BASE and element[1][0] in ROS_NUMPY_DTYPES:
        if kind == Nodetype.SEQUENCE and element[1][0] in _OCTETS:
            return np.asarray(value, dtype=np.uint8).tobytes()
        return np.asarray(value, dtype=ROS_NUMPY_DTYPES[element[1][0]]).tolist()
    return [_value_to_idl(typestore, element, item) for item in value]


def to_idl(message: Any, msgtype: str | None = None, typestore: Any = None) -> Any:
    """The IDL struct instance of a rosbags message (`msgtype` defaults to the message's `__msgtype__`)."""
    typestore = typestore if typestore is not None else default_typestore()
    msgtype = msgtype or message.__msgtype__
    cls = idl_type(msgtype)
    values = {name: _value_to_idl(typestore, node, getattr(message, name))
              for name, node in message_fields(typestore, msgtype)}
    return cls(**values)


def _value_from_idl(typestore: Any, node: tuple[Any, Any], value: Any) -> Any:
    kind, desc = node
    if kind == Nodetype.BASE:
        return value
    if kind == Nodetype.NAME:
        return from_idl(value, desc, typestore)
    element, _ = desc
    if element[0] == Nodetype.BASE and element[1][0] in ROS_NUMPY_DTYPES:
        dtype = ROS_NUMPY_DTYPES[element[1][0]]
        if isinstance(value, bytes | bytearray):
            return np.frombuffer(value, dtype=dtype).copy()
        return np.asarray(value, dtype=dtype)
    return [_value_from_idl(typestore, element, item) for item in value]


def from_idl(sample: Any, msgtype: str, typestore: Any = None) -> Any:
    """The rosbags dataclass of an IDL struct instance of type `msgtype`."""
    typestore = typestore if typestore is not None else default_typestore()
    values = {name: _value_from_idl(typestore, node, getattr(sample, name))
              for name, node in message_fields(typestore, msgtype)}
    return typestore.types[msgtype](**values)


def dds_qos(qos: Qos) -> Any:
    """The cyclonedds QoS of a Nav2 profile (reliable/best-effort, volatile/transient-local, KeepLast)."""
    require_cyclonedds()
    from cyclonedds.qos import Policy
    from cyclonedds.qos import Qos as CycloneQos
    from cyclonedds.util import duration

    reliable = Policy.Reliability.Reliable(max_blocking_time=duration(milliseconds=100))
    if qos is Qos.SENSOR_DATA:
        return CycloneQos(Policy.Reliability.BestEffort, Policy.Durability.Volatile, Policy.History.KeepLast(10))
    if qos is Qos.LATCHED:
        return CycloneQos(reliable, Policy.Durability.TransientLocal, Policy.History.KeepLast(1))
    return CycloneQos(reliable, Policy.Durability.Volatile, Policy.History.KeepLast(10))


def resolve_topic(role: InputRole | OutputRole, topic: str, remap: Mapping[str, str] | None) -> str:
    """The topic of a spec after remapping by role value ("odometry") or by default topic name ("/odom")."""
    if not remap:
        return topic
    return remap.get(role.value, remap.get(topic, topic))


class _Ticker:
    """Calls at `rate_hz` on the monotonic clock; never tries to catch up more than one period."""

    def __init__(self, rate_hz: float, start: float):
        self.period = 1.0 / rate_hz if rate_hz > 0 else None
        self.next = start

    def due(self, mono: float) -> bool:
        if self.period is None or mono < self.next:
            return False
        self.next += self.period
        if self.next <= mono:
            self.next = mono + self.period
        return True


class DdsTransport:
    """Runs a `NodeCore` on cyclonedds with ROS 2 topic and type names.

    Args:
        core: the node core (inputs, outputs, rates, callbacks).
        remap: topic remapping by role value ("odometry": "/robot/odom") or by default topic name.
        domain_id: the DDS domain (ROS_DOMAIN_ID).
        typestore: rosbags typestore of the messages (default: `diffplan.node.messages.TYPESTORE`).
        clock: the `now` [s] handed to the core (default: wall time, like a ROS node's clock).
    """

    def __init__(self, core: NodeCore, remap: Mapping[str, str] | None = None, domain_id: int = 0,
                 typestore: Any = None, clock: Callable[[], float] = time.time):
        require_cyclonedds()
        from cyclonedds.domain import DomainParticipant
        from cyclonedds.pub import DataWriter
        from cyclonedds.sub import DataReader
        from cyclonedds.topic import Topic

        self.core, self.clock = core, clock
        self.typestore = typestore if typestore is not None else default_typestore()
        self.participant: Any = DomainParticipant(domain_id)
        self.counts = TransportCounts()
        self._stop = False
        topics: dict[str, Any] = {}

        def topic_of(name: str, msgtype: str) -> Any:
            key = dds_topic(name)
            if key not in topics:
                topics[key] = Topic(self.participant, key, idl_type(msgtype))
            return topics[key]

        self.readers: list[tuple[InputRole, str, Any]] = []
        for spec in core.inputs:
            topic = topic_of(resolve_topic(spec.role, spec.topic, remap), spec.msgtype)
            reader = DataReader(self.participant, topic, qos=dds_qos(spec.qos))
            self.readers.append((spec.role, spec.msgtype, reader))
        self.writers: dict[OutputRole, list[tuple[str, Any]]] = {}
        for out in core.outputs:
            topic = topic_of(resolve_topic(out.role, out.topic, remap), out.msgtype)
            writer = DataWriter(self.participant, topic, qos=dds_qos(out.qos))
            self.writers.setdefault(out.role, []).append((out.msgtype, writer))

    def poll(self) -> int:
        """Take every waiting sample and hand it to the core; the number of samples taken."""
        taken = 0
        for role, msgtype, reader in self.readers:
            for sample in reader.take(N=MAX_TAKE):
                taken += 1
                try:
                    message = from_idl(sample, msgtype, self.typestore)
                except Exception:  # noqa: BLE001 - a sample that does not convert is counted, never fatal
                    self.counts.add(self.counts.errors, role)
                    continue
                self.counts.add(self.counts.received, role)
                self.core.on_message(role, message, self.clock())
        return taken

    def publish(self, outputs: list[Output]) -> None:
        """Write each output on the topic(s) of its role; outputs of a role without a writer are counted."""
        route_outputs(outputs, self.writers,
                      lambda writer, message, msgtype: writer.write(to_idl(message, msgtype, self.typestore)),
                      self.counts)

    def run(self, duration_s: float | None = None) -> dict[str, dict[str, int]]:
        """Poll and tick until `stop()`, Ctrl-C or `duration_s` [s]; the received/published/error counts."""
        self._stop = False
        start = time.monotonic()
        plan = _Ticker(self.core.plan_rate_hz, start)
        control = _Ticker(self.core.control_rate_hz, start)
        try:
            while not self._stop:
                mono = time.monotonic()
                if duration_s is not None and mono - start >= duration_s:
                    break
                self.poll()
                if plan.due(mono):
                    self.publish(self.core.plan_tick(self.clock()))
                if control.due(mono):
                    self.publish(self.core.control_tick(self.clock()))
                nexts = [t.next for t in (plan, control) if t.period is not None]
                wait = min([POLL_S] + [n - time.monotonic() for n in nexts])
                if wait > 0:
                    time.sleep(wait)
        except KeyboardInterrupt:
            pass
        return self.stats()

    def stop(self) -> None:
        """Make `run` return after its current iteration (callable from another thread or a signal handler)."""
        self._stop = True

    def stats(self) -> dict[str, dict[str, int]]:
        """Messages received and published per role, and per-role conversion or routing errors."""
        return self.counts.as_dict()

    def close(self) -> None:
        """Delete the readers, writers and participant (ROS peers see them leave)."""
        self.readers, self.writers = [], {}
        self.participant = None
