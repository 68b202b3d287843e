"""What both node cores share: "learned models propose, simple rules dispose".

`SafetyState` keeps the counters, the latency window, per-topic stamps and the clock, and decides:
- a message older than the last one of its topic is dropped (counted as out of order);
- the clock going backwards, or forward by more than `time_jump_s`, resets the core (plan and buffers go);
- a bad message is counted and logged, and the robot stops until good inputs arrive again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from diffplan.node import messages
from diffplan.node.interface import InputRole, Output, OutputRole
from diffplan.node.params import NodeParams

OK, WARN, ERROR = 0, 1, 2
COUNTERS = ("plans", "planner_errors", "timeouts", "bad_inputs", "out_of_order", "stops", "resets")


class SafetyState:
    """Counters, latency window, last stamps and the node clock of one core.

    Args:
        params: the node's parameters.
        log: called with one line per event (default: appended to `self.lines`).
    """

    def __init__(self, params: NodeParams, log: Callable[[str], None] | None = None):
        self.params = params
        self.lines: list[str] = []
        self.log: Callable[[str], None] = log if log is not None else self.lines.append
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.latencies_ms: deque[float] = deque(maxlen=params.latency_window)
        self.last_stamp: dict[InputRole, float] = {}
        self.received_at: dict[InputRole, float] = {}
        self.last_now: float | None = None
        self.state, self.level = "waiting for inputs", WARN

    def clock(self, now: float) -> bool:
        """Advance the clock to `now` [s]; True when it jumped (the caller resets its plan and buffers)."""
        last, self.last_now = self.last_now, now
        if last is None or last <= now <= last + self.params.time_jump_s:
            return False
        self.counters["resets"] += 1
        self.last_stamp.clear()
        self.received_at.clear()
        self.log(f"time jump from {last:.3f} s to {now:.3f} s: node reset")
        self.set_state("reset after a time jump", WARN)
        return True

    def accept(self, role: InputRole, stamp_s: float, now: float) -> bool:
        """Whether a message of `role` stamped `stamp_s` is newer than the last one of its topic."""
        last = self.last_stamp.get(role)
        if last is not None and stamp_s < last:
            self.counters["out_of_order"] += 1
            self.log(f"{role.value}: stamp {stamp_s:.3f} s is older than the last one ({last:.3f} s): dropped")
            return False
        self.last_stamp[role] = stamp_s
        self.received_at[role] = now
        return True

    def bad_input(self, role: InputRole, error: Exception) -> None:
        """Count and log a malformed message of `role` (its NodeInputError's reason, or what else it raised)."""
        reason = str(error) if isinstance(error, messages.NodeInputError) \
            else f"malformed message ({type(error).__name__}: {error})"
        self.counters["bad_inputs"] += 1
        self.log(f"{role.value}: {reason}".splitlines()[0])
        self.set_state(f"bad {role.value} message", ERROR)

    def planner_error(self, where: str, error: Exception, state: str) -> None:
        """Count and log a planner (or plan_tick) failure, and report `state` as an error."""
        self.counters["planner_errors"] += 1
        self.log(f"{where}: {type(error).__name__}: {error}".splitlines()[0])
        self.set_state(state, ERROR)

    def age(self, role: InputRole, now: float) -> float:
        """Seconds since the last accepted message of `role` arrived (inf if none)."""
        received = self.received_at.get(role)
        return float("inf") if received is None else now - received

    def set_state(self, state: str, level: int) -> None:
        """The state line and diagnostic level reported."""
        self.state, self.level = state, level

    def latency_percentiles(self) -> dict[str, float]:
        """p50/p95/p99 [ms] over the latency window (NaN before the first plan)."""
        values = np.array(self.latencies_ms) if self.latencies_ms else np.array([np.nan])
        return {f"latency_ms_p{q}": float(np.percentile(values, q)) for q in (50, 95, 99)}

    def diagnostics(self, now: float, name: str, ages: dict[InputRole, float]) -> Output:
        """The DIAGNOSTICS output: state, latency percentiles, input ages [s] and counters."""
        values: dict[str, Any] = {key: f"{value:.3f}" for key, value in self.latency_percentiles().items()}
        values.update({f"age_s_{role.value}": f"{age:.3f}" for role, age in ages.items()})
        values.update({key: str(count) for key, count in self.counters.items()})
        message = messages.diagnostic_array(now, name, self.level, self.state, values, hardware_id=name)
        return Output(OutputRole.DIAGNOSTICS, message)
