"""Replay a rosbag2 recording through a node core, in log time, and record what it publishes.

`replay_bag` reads a rosbag2 folder (sqlite3 or mcap) or a bare .mcap with rosbags, feeds the messages of the
core's input topics to `core.on_message(role, message, now)` in log-time order with `now` = the log time [s],
calls `plan_tick` / `control_tick` at their rates in log time, and writes every known-type input message and
every output to a new rosbag2 bag (version 9, the chosen storage). Messages of a type the typestore does not
know are skipped and counted; a bag that cannot be read raises a one-line `BagError`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diffplan.node.dds import default_typestore, resolve_topic
from diffplan.node.interface import InputRole, NodeCore, Output, OutputRole
from scenes.errors import DiffplanError

STORAGES = ("mcap", "sqlite3")


class BagError(DiffplanError):
    """A bag cannot be read or written (one line naming the file)."""


@dataclass
class ReplayCounts:
    """What a replay read, fed, skipped and wrote."""

    messages: int = 0  # messages read from the bag
    fed: dict[str, int] = field(default_factory=dict)  # per input role
    skipped_unknown_type: int = 0  # messages of a type the typestore does not know
    skipped_wrong_type: int = 0  # messages on an input topic with another type than the input's
    outputs: dict[str, int] = field(default_factory=dict)  # per output role
    written: int = 0  # messages written to the output bag (inputs and outputs)
    plan_ticks: int = 0
    control_ticks: int = 0


def _storage_plugin(storage: str) -> Any:
    from rosbags.rosbag2 import StoragePlugin

    if storage not in STORAGES:
        raise BagError(f"storage must be one of {', '.join(STORAGES)}, got {storage!r}")
    return StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3


def _open(path: Path, typestore: Any) -> Any:
    """An open AnyReader of `path`; errors become one-line BagErrors."""
    from rosbags.highlevel import AnyReader

    if not path.exists():
        raise BagError(f"bag {path} does not exist")
    try:
        reader = AnyReader([path], default_typestore=typestore)
        reader.open()
    except Exception as error:  # noqa: BLE001 - rosbags raises ReaderError, sqlite3, mcap, yaml errors
        raise BagError(f"cannot read bag {path}: {type(error).__name__}: {error}") from None
    return reader


def _read(reader: Any, path: Path) -> Iterator[tuple[str, str, int, bytes]]:
    """(topic, msgtype, log time [ns], raw CDR) in log-time order; reading errors become one-line BagErrors."""
    messages = reader.messages()
    while True:
        try:
            connection, timestamp, rawdata = next(messages)
        except StopIteration:
            return
        except Exception as error:  # noqa: BLE001 - as in _open
            raise BagError(f"cannot read bag {path}: {type(error).__name__}: {error}") from None
        yield connection.topic, connection.msgtype, timestamp, rawdata


class _Ticks:
    def __init__(self, rate_hz: float):
        self.period_ns = round(1e9 / rate_hz) if rate_hz > 0 else None
        self.next_ns: int | None = None

    def due_before(self, t_ns: int, inclusive: bool) -> list[int]:
        if self.period_ns is None or self.next_ns is None:
            return []
        due = []
        while self.next_ns < t_ns or (inclusive and self.next_ns == t_ns):
            due.append(self.next_ns)
            self.next_ns += self.period_ns
        return due


def replay_bag(bag_path: str | Path, core: NodeCore, out_path: str | Path, storage: str = "mcap",
               remap: Mapping[str, str] | None = None, typestore: Any = None) -> ReplayCounts:
    """Replay `bag_path` through `core` in log time and write its inputs and outputs to `out_path`.

    Args:
        bag_path: a rosbag2 folder (metadata.yaml + .db3 or .mcap) or a bare .mcap file.
        core: the node core.
        out_path: the new bag folder (must not exist).
        storage: "mcap" or "sqlite3" for the output bag.
        remap: topic remapping by role value or by default topic name (as the transports take it).
        typestore: rosbags typestore (default: `diffplan.node.messages.TYPESTORE`).

    Returns:
        The counts of messages read, fed, skipped and written, per role where it applies.

    Raises:
        BagError: the input bag cannot be read, or the output bag cannot be written (one line).
    """
    from rosbags.rosbag2 import Writer

    typestore = typestore if typestore is not None else default_typestore()
    plugin = _storage_plugin(storage)
    bag_path, out_path = Path(bag_path), Path(out_path)
    inputs = {resolve_topic(s.role, s.topic, remap): s for s in core.inputs}
    outputs: dict[OutputRole, list[tuple[str, str]]] = {}
    for out in core.outputs:
        outputs.setdefault(out.role, []).append((resolve_topic(out.role, out.topic, remap), out.msgtype))
    counts = ReplayCounts()
    plan, control = _Ticks(core.plan_rate_hz), _Ticks(core.control_rate_hz)
    reader = _open(bag_path, typestore)
    try:
        writer = Writer(out_path, version=9, storage_plugin=plugin)
        writer.open()
    except Exception as error:  # noqa: BLE001 - OSError, WriterError (exists)
        reader.close()
        raise BagError(f"cannot write bag {out_path}: {type(error).__name__}: {error}") from None
    connections: dict[tuple[str, str], Any] = {}

    def write(topic: str, msgtype: str, t_ns: int, rawdata: bytes | memoryview) -> None:
        key = (topic, msgtype)
        if key not in connections:
            connections[key] = writer.add_connection(topic, msgtype, typestore=typestore)
        writer.write(connections[key], t_ns, rawdata)
        counts.written += 1

    def publish(result: list[Output], t_ns: int) -> None:
        for output in result:
            for topic, msgtype in outputs.get(output.role, []):
                if getattr(output.message, "__msgtype__", msgtype) != msgtype:
                    continue
                write(topic, msgtype, t_ns, typestore.serialize_cdr(output.message, msgtype))
                counts.outputs[output.role.value] = counts.outputs.get(output.role.value, 0) + 1

    def run_ticks(t_ns: int, inclusive: bool) -> None:
        due = [(t, 0) for t in plan.due_before(t_ns, inclusive)] + \
              [(t, 1) for t in control.due_before(t_ns, inclusive)]
        for tick_ns, which in sorted(due):
            if which == 0:
                counts.plan_ticks += 1
                publish(core.plan_tick(tick_ns * 1e-9), tick_ns)
            else:
                counts.control_ticks += 1
                publish(core.control_tick(tick_ns * 1e-9), tick_ns)

    last_ns: int | None = None
    try:
        for topic, msgtype, t_ns, rawdata in _read(reader, bag_path):
            counts.messages += 1
            if plan.next_ns is None:
                plan.next_ns = control.next_ns = t_ns
            run_ticks(t_ns, inclusive=False)
            last_ns = t_ns
            if msgtype not in typestore.types:
                counts.skipped_unknown_type += 1
                continue
            write(topic, msgtype, t_ns, rawdata)
            spec = inputs.get(topic)
            if spec is None:
                continue
            if spec.msgtype != msgtype:
                counts.skipped_wrong_type += 1
                continue
            role: InputRole = spec.role
            try:
                message = typestore.deserialize_cdr(rawdata, msgtype)
            except Exception as error:  # noqa: BLE001 - truncated or garbled CDR
                raise BagError(
                    f"cannot decode a {msgtype} message on {topic} in bag {bag_path}: {error}") from None
            core.on_message(role, message, t_ns * 1e-9)
            counts.fed[role.value] = counts.fed.get(role.value, 0) + 1
        if last_ns is not None:
            run_ticks(last_ns, inclusive=True)
    finally:
        writer.close()
        reader.close()
    return counts
