"""pSTL's open-loop test (Table I) on a `datagen drive` dataset: per window and mode, S samples, exact STL.

A window is a source scene of the dataset; its demonstrations (scene ids "<window>-demo<k>") are the trajopt
expert's solves under several (mode, θ). Each (window, mode) that has a demonstration is one case, conditioned
on the θ of the first such demonstration: a θ the expert met there, as pSTL conditions each mode on the
window's calibrated (label mode) or randomised (other modes) parameters. A scene without those extras (an
imported log) is its own window with one case: the heuristic label and calibrated θ of its logged future
(`labels.heuristic_condition`; pSTL's labels are manual annotations we do not have). `override` replaces every
case's θ with a fixed one instead.

Per case the planner draws S samples (`Plan.candidates`) and each is scored with the exact robustness of its
mode's spec against the scene's logged agents (`scoring.mode_robustness`). Metrics (`metrics`): compliance,
success, valid area (100 x 100 histogram) and two entropies (pSTL's `ent_s` of ρ and `ent_wa` of the
controls; the control entropy is the one called "entropy" in summaries). Controls are read off each plan:
speed from consecutive poses, then a = Δv / dt and ω = Δψ / dt, (7, 2) per plan.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from eval.pstl.labels import heuristic_condition
from eval.pstl.metrics import SampleSetMetrics, sample_set_metrics
from eval.pstl.scoring import PLAN_DT, mode_robustness
from planners.pstl.condition import DrivingMode, STLCondition
from planners.pstl.data import condition_of_extras
from planners.pstl.planner import PstlPlanner
from scenes.drive import DriveScene
from scenes.store import DriveDataset

MODES = tuple(DrivingMode)


@dataclass(frozen=True)
class PstlCase:
    """One (window, mode) of the test: `index` is the dataset episode whose scene and θ are used."""

    window: str
    index: int
    condition: STLCondition


@dataclass(frozen=True, eq=False)
class CaseResult:
    """A case's samples: `rho` (S,) exact robustness, `samples` (S, 8, 3) [m, m, rad] ego frame, `controls`
    (S, 7, 2) ω [rad/s], a [m/s^2], and `seconds` [s] of sampling wall time (all S samples, one call)."""

    case: PstlCase
    rho: np.ndarray
    samples: np.ndarray
    controls: np.ndarray
    seconds: float

    @property
    def xy(self) -> np.ndarray:
        """(S, 8, 2) [m] sample positions, ego frame (each sample starts at the origin)."""
        return self.samples[..., :2]


@dataclass(frozen=True)
class OpenLoopSummary:
    """Table I's figures: SampleSetMetrics over every (window, mode), the wall time per sample [s], and the
    numbers of windows and cases. `entropy` is pSTL's control entropy `ent_wa` [bit]."""

    metrics: SampleSetMetrics
    time_per_sample_s: float
    n_windows: int
    n_cases: int
    samples: int

    def as_json(self) -> dict[str, float | int | str]:
        """The `eval pstl --json` object: compliance, success, valid_area, entropy, time_per_sample_s,
        n_windows, and the rest."""
        m = self.metrics
        return {"compliance": m.compliance, "success": m.success, "valid_area": m.valid_area,
                "entropy": m.control_entropy, "entropy_variant": "ent_wa (controls, pSTL measure_extra_diversity)",
                "score_entropy": m.score_entropy, "time_per_sample_s": self.time_per_sample_s,
                "n_windows": self.n_windows, "n_cases": self.n_cases, "samples": self.samples}


def window_of(scene_id: str) -> str:
    """The source scene of a demonstration id ("abc-demo3" -> "abc"); other ids are their own window."""
    head, sep, tail = scene_id.rpartition("-demo")
    return head if sep and tail.isdigit() else scene_id


def pstl_cases(data: DriveDataset, indices: Iterable[int], modes: Sequence[DrivingMode] = MODES,
               override: STLCondition | None = None) -> list[PstlCase]:
    """One case per (window, mode) among `indices` (dataset order), from each mode's first demonstration; see
    the module docstring for `override`."""
    ids = [str(v) for v in data.episodes.column("scene_id").to_pylist()]
    cases: dict[tuple[str, DrivingMode], PstlCase] = {}
    for index in indices:
        extras = data.extras(int(index))
        if "target.mode" in extras or "target.lane" in extras:
            condition = condition_of_extras(extras)
        else:
            condition = heuristic_condition(data[int(index)])
        if condition.mode not in modes:
            continue
        key = (window_of(ids[int(index)]), condition.mode)
        if key not in cases:
            if override is not None:
                condition = STLCondition(condition.mode, override.theta).validate()
            cases[key] = PstlCase(key[0], int(index), condition)
    return list(cases.values())


def plan_controls(plans: np.ndarray, dt: float = PLAN_DT) -> np.ndarray:
    """(S, 8, 3) ego-frame plans -> (S, 7, 2) ω [rad/s], a [m/s^2] between consecutive poses (the ego now at
    the origin, heading 0, is pose 0)."""
    start = np.zeros((plans.shape[0], 1, 3))
    states = np.concatenate([start, plans], axis=1)
    speed = np.linalg.norm(np.diff(states[..., :2], axis=1), axis=-1) / dt  # (S, 8)
    yaw = np.diff(np.unwrap(states[..., 2], axis=1), axis=1) / dt  # (S, 8)
    return np.stack([yaw[:, 1:], np.diff(speed, axis=1) / dt], axis=-1)


def evaluate_case(planner: PstlPlanner, scene: DriveScene, case: PstlCase, seed: int) -> CaseResult:
    """The planner's samples under the case's condition (noise restarted from `seed`), scored exactly."""
    planner.configure(case.condition)
    planner.seed = seed
    observation = scene.observation()
    start = time.perf_counter()
    plan = planner.plan(observation)
    seconds = time.perf_counter() - start
    assert plan.candidates is not None  # a PstlPlanner always returns its samples
    samples = np.asarray(plan.candidates, dtype=np.float64)
    rho = mode_robustness(scene, case.condition, samples).rho
    return CaseResult(case, rho, samples, plan_controls(samples), seconds)


def evaluate_cases(planner: PstlPlanner, data: DriveDataset, cases: Sequence[PstlCase], seed: int = 0,
                   on_case: Callable[[CaseResult], None] = lambda result: None) -> list[CaseResult]:
    """`evaluate_case` over `cases`, each seeded with `seed` + its position; `on_case` after each."""
    results = []
    for k, case in enumerate(cases):
        results.append(evaluate_case(planner, data[case.index], case, seed + k))
        on_case(results[-1])
    return results


def summarize(results: Sequence[CaseResult]) -> OpenLoopSummary:
    """Table I's metrics over the cases, laid out (window, mode) with absent pairs invalid."""
    if not results:
        raise ValueError("no cases to summarize")
    windows = sorted({r.case.window for r in results})
    row = {w: i for i, w in enumerate(windows)}
    s = results[0].rho.shape[0]
    shape = (len(windows), len(MODES), s)
    rho, valid = np.full(shape, -np.inf), np.zeros(shape[:2], dtype=bool)
    xy, controls = np.zeros((*shape, 8, 2)), np.zeros((*shape, 7, 2))
    for r in results:
        w, m = row[r.case.window], int(r.case.condition.mode)
        rho[w, m], valid[w, m], xy[w, m], controls[w, m] = r.rho, True, r.xy, r.controls
    metrics = sample_set_metrics(rho, valid, xy, controls)
    seconds = sum(r.seconds for r in results) / (len(results) * s)
    return OpenLoopSummary(metrics, seconds, len(windows), len(results), s)


def per_mode(results: Sequence[CaseResult]) -> list[tuple[DrivingMode, OpenLoopSummary]]:
    """The summary of each mode's cases (modes without cases left out)."""
    out = []
    for mode in MODES:
        chosen = [r for r in results if r.case.condition.mode == mode]
        if chosen:
            out.append((mode, summarize(chosen)))
    return out
