"""pSTL's controllability over many windows: v_max and d_safe sweeps on each window's lane-keeping case, the
fraction of windows whose sweeps move in the expected direction, the case study and the pictures."""

from __future__ import annotations

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
from planners.pstl.condition import DrivingMode, STLCondition
from scenes.store import DriveDataset

SWEEP_VALUES = {"v_max": (-2.0, 0.0, 2.0, 4.0), "d_safe": (0.25, 1.0, 2.0, 4.0)}  # [m/s], [m]
RELATIVE = {"v_max": True, "d_safe": False}  # v_max: offsets from the window's own (the data's is tight)
DSAFE_V_MIN = 0.0  # [m/s] the d_safe sweep's v_min
TOLERANCE = {"v_max": 0.1, "d_safe": 0.05}  # [m/s], [m] a step may go this far the wrong way


@dataclass(frozen=True)
class WindowSweeps:
    """The sweeps of one window's KEEP case, one per SWEEP_VALUES field, in that order."""

    case: PstlCase
    sweeps: tuple[Sweep, ...]


@dataclass(frozen=True)
class ControllabilitySummary:
    """Per swept field: the fraction of windows whose sweep is monotone in the expected direction (within
    TOLERANCE), and the mean metric at each swept value."""

    fields: tuple[str, ...]
    monotone_fraction: tuple[float, ...]
    mean_series: tuple[tuple[float, ...], ...]
    n_windows: int

    def as_json(self) -> dict[str, object]:
        """Flat: monotone_<field>, mean_<metric>_by_<field>, sweep_windows."""
        out: dict[str, object] = {"sweep_windows": self.n_windows}
        rows = zip(self.fields, self.monotone_fraction, self.mean_series, strict=True)
        for field, fraction, series in rows:
            metric = swept(field).metric.name.lower()
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
    """Sweeps on the KEEP cases of the first `windows` windows that have one."""
    keep = [case for case in cases if case.condition.mode is DrivingMode.KEEP][:windows]
    return [WindowSweeps(case, tuple(sweep(planner, data[case.index], *sweep_base(case.condition, field),
                                           samples, seed) for field in SWEEP_VALUES))
            for case in keep]


def sweep_base(condition: STLCondition, field: str) -> tuple[STLCondition, str, list[float]]:
    """(base condition, field, values) of a window's sweep: v_max at its own v_max + SWEEP_VALUES offsets
    (at least 1 m/s), v_min lowered to 1 m/s below the lowest; d_safe at SWEEP_VALUES with v_min lowered to
    DSAFE_V_MIN: a larger gap to a leader means slowing down, which the window's own v_min (its plan's least
    speed - 1 m/s) forbids."""
    if not RELATIVE[field]:
        theta = condition.theta.copy()
        theta[0] = min(theta[0], DSAFE_V_MIN)
        return STLCondition(condition.mode, theta).validate(), field, list(SWEEP_VALUES[field])
    values = [max(condition.v_max + offset, 1.0 + k) for k, offset in enumerate(SWEEP_VALUES[field])]
    theta = condition.theta.copy()
    theta[0] = min(theta[0], values[0] - 1.0)
    return STLCondition(condition.mode, theta).validate(), field, values


def summarize_sweeps(results: Sequence[WindowSweeps]) -> ControllabilitySummary:
    """The fraction of monotone windows and the mean series, per field."""
    fields = tuple(SWEEP_VALUES)
    fractions, series = [], []
    for k, field in enumerate(fields):
        rule = swept(field)
        sweeps = [r.sweeps[k] for r in results]
        fractions.append(sum(rule.holds(s, TOLERANCE[field]) for s in sweeps) / max(len(sweeps), 1))
        values = [s.series(rule.metric) for s in sweeps]
        series.append(tuple(float(sum(v[i] for v in values) / max(len(values), 1))
                            for i in range(len(SWEEP_VALUES[field]))))
    return ControllabilitySummary(fields, tuple(fractions), tuple(series), len(results))


def write_pictures(out: Path, planner: ConditionedPlanner, data: DriveDataset,
                   results: Sequence[WindowSweeps], samples: int, seed: int = 0) -> list[Path]:
    """`out`/sweeps_<window>.png for each window and case_study.png on the first: the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for r in results:
        path = out / f"sweeps_{r.case.window}.png"
        sweep_plot(r.sweeps, path, title=f"{r.case.window}: controllability")
        paths.append(path)
    if results:
        scene = data[results[0].case.index]
        path = out / "case_study.png"
        case_study(scene, run_case_study(planner, scene, samples=samples, seed=seed), path)
        paths.append(path)
    return paths
