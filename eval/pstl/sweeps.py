"""pSTL's controllability over many windows: v_max and d_safe sweeps on windows' lane-keeping cases, the
fraction of windows whose sweeps move in the expected direction, the case study and the pictures.

v_max is swept on the first N lane-keeping windows. d_safe is swept on the first N whose gap a plan can
change (`stl.signals.controllable_gap`: the logged ego closes in on an agent): elsewhere the nearest agent is
beside the ego or far, no plan inside the lane band moves its least gap, and a flat series would count as
monotone without showing anything."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from eval.pstl.controllability import (
    ConditionedPlanner,
    MonotoneExpectation,
    Sweep,
    expectation_for,
    run_case_study,
    sweep,
)
from eval.pstl.figures import case_study, sweep_plot
from eval.pstl.open_loop import PstlCase
from eval.pstl.scoring import PLAN_DT, PLAN_POSES
from planners.pstl.condition import DrivingMode, STLCondition
from scenes.store import DriveDataset
from stl.signals import controllable_gap

SWEEP_VALUES = {"v_max": (-2.0, 0.0, 2.0, 4.0), "d_safe": (0.25, 1.0, 2.0, 4.0)}  # [m/s], [m]
RELATIVE = {"v_max": True, "d_safe": False}  # v_max: offsets from the window's own (the data's is tight)
DSAFE_V_MIN = 0.0  # [m/s] the d_safe sweep's v_min
TOLERANCE = {"v_max": 0.1, "d_safe": 0.05}  # [m/s], [m] a step may go this far the wrong way


@dataclass(frozen=True)
class WindowSweeps:
    """The sweeps of one window's KEEP case, one per SWEEP_VALUES field, in that order; None for a field that
    this window is not swept on."""

    case: PstlCase
    sweeps: tuple[Sweep | None, ...]


@dataclass(frozen=True)
class ControllabilitySummary:
    """Per swept field: the number of windows swept, the fraction whose sweep is monotone in the expected
    direction (within TOLERANCE), and the mean metric at each swept value (NaN without windows)."""

    fields: tuple[str, ...]
    monotone_fraction: tuple[float, ...]
    mean_series: tuple[tuple[float, ...], ...]
    windows: tuple[int, ...]

    @property
    def n_windows(self) -> int:
        """Windows swept on any field."""
        return max(self.windows, default=0)

    def as_json(self) -> dict[str, object]:
        """Flat: sweep_windows(_<field>), monotone_<field>, rise_<metric>_by_<field>,
        mean_<metric>_by_<field>."""
        out: dict[str, object] = {"sweep_windows": self.n_windows}
        rows = zip(self.fields, self.monotone_fraction, self.mean_series, self.windows, strict=True)
        for field, fraction, series, windows in rows:
            metric = swept(field).metric.name.lower()
            out[f"sweep_windows_{field}"] = windows
            out[f"monotone_{field}"] = fraction
            out[f"rise_{metric}_by_{field}"] = series[-1] - series[0]  # a flat series is monotone too
            label = "{:+g}" if RELATIVE[field] else "{:g}"
            out[f"mean_{metric}_by_{field}"] = {label.format(v): s
                                                for v, s in zip(SWEEP_VALUES[field], series, strict=True)}
        return out


def swept(field: str) -> MonotoneExpectation:
    """The expectation of a SWEEP_VALUES field (every swept field has one)."""
    rule = expectation_for(field)
    assert rule is not None, field
    return rule


def sweep_windows(planner: ConditionedPlanner, data: DriveDataset, cases: Sequence[PstlCase], windows: int,
                  samples: int, seed: int = 0) -> list[WindowSweeps]:
    """Sweeps on KEEP cases (module docstring): v_max on the first `windows`, d_safe on the first `windows`
    with a controllable gap; one WindowSweeps per window swept on either, in case order."""
    out = []
    taken = dict.fromkeys(SWEEP_VALUES, 0)
    for case in (case for case in cases if case.condition.mode is DrivingMode.KEEP):
        if min(taken.values()) >= windows:
            break
        scene = data[case.index]
        chosen = [taken[field] < windows and (field != "d_safe" or
                                              controllable_gap(scene, PLAN_POSES * PLAN_DT) is not None)
                  for field in SWEEP_VALUES]
        if not any(chosen):
            continue
        for field, take in zip(SWEEP_VALUES, chosen, strict=True):
            taken[field] += take
        out.append(WindowSweeps(case, tuple(
            sweep(planner, scene, *sweep_base(case.condition, field), samples, seed) if take else None
            for field, take in zip(SWEEP_VALUES, chosen, strict=True))))
    return out


def sweep_base(condition: STLCondition, field: str) -> tuple[STLCondition, str, list[float]]:
    """(base condition, field, values) of a window's sweep. v_max: at its own v_max + SWEEP_VALUES offsets
    (at least 1 m/s), v_min lowered to 1 m/s below the lowest. d_safe: at SWEEP_VALUES, v_min lowered to
    DSAFE_V_MIN: a larger gap to a leader means slowing down, which the window's own v_min (its plan's least
    speed - 1 m/s) forbids."""
    theta = condition.theta.copy()
    if not RELATIVE[field]:
        theta[0] = min(theta[0], DSAFE_V_MIN)
        return STLCondition(condition.mode, theta).validate(), field, list(SWEEP_VALUES[field])
    values = [max(condition.v_max + offset, 1.0 + k) for k, offset in enumerate(SWEEP_VALUES[field])]
    theta[0] = min(theta[0], values[0] - 1.0)
    return STLCondition(condition.mode, theta).validate(), field, values


def summarize_sweeps(results: Sequence[WindowSweeps]) -> ControllabilitySummary:
    """The fraction of monotone windows and the mean series, per field."""
    fields = tuple(SWEEP_VALUES)
    fractions, series, counts = [], [], []
    for k, field in enumerate(fields):
        rule = swept(field)
        sweeps = [s for s in (r.sweeps[k] for r in results) if s is not None]
        fractions.append(sum(rule.holds(s, TOLERANCE[field]) for s in sweeps) / len(sweeps) if sweeps
                         else math.nan)
        values = [s.series(rule.metric) for s in sweeps]
        series.append(tuple(float(sum(v[i] for v in values) / len(values)) if values else math.nan
                            for i in range(len(SWEEP_VALUES[field]))))
        counts.append(len(sweeps))
    return ControllabilitySummary(fields, tuple(fractions), tuple(series), tuple(counts))


def write_pictures(out: Path, planner: ConditionedPlanner, data: DriveDataset,
                   results: Sequence[WindowSweeps], samples: int, seed: int = 0) -> list[Path]:
    """`out`/sweeps_<window>.png for each window and case_study.png on the first: the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for r in results:
        path = out / f"sweeps_{r.case.window}.png"
        sweep_plot([s for s in r.sweeps if s is not None], path, title=f"{r.case.window}: controllability")
        paths.append(path)
    if results:
        scene = data[results[0].case.index]
        path = out / "case_study.png"
        case_study(scene, run_case_study(planner, scene, samples=samples, seed=seed), path)
        paths.append(path)
    return paths
