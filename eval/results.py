"""Per-scene results and their aggregation into a benchmark summary."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from planners.pdm.scoring import MetricVersion, ProposalScores, SubMetrics


@dataclass(frozen=True, eq=False)
class SceneResult(SubMetrics[float]):
    """One scene's closed-loop outcome: its sub-metrics (SubMetrics) and more. A failed planner call scores 0
    everywhere and keeps its error.

    Attributes:
        index: episode index in the dataset.
        error: empty when the planner answered; otherwise why the scene failed.
        score: PDMS or EPDMS in [0, 1]; sub-metrics likewise.
        raw_progress, reference_progress: [m] along the route centreline.
        latency_ms: planner wall time [ms].
        plan: (8, 3) the plan, ego frame (NaN when failed).
        simulated_xy: (41, 2) simulated rear-axle positions [m], map frame (NaN when failed).
    """

    index: int
    scene_id: str
    scenario_type: str
    error: str = ""
    score: float = 0.0
    raw_progress: float = 0.0
    reference_progress: float = 0.0
    latency_ms: float = math.nan
    plan: np.ndarray = field(default_factory=lambda: np.full((8, 3), np.nan))
    simulated_xy: np.ndarray = field(default_factory=lambda: np.full((41, 2), np.nan))

    CSV_COLUMNS: ClassVar[tuple[str, ...]] = ("index", "scene_id", "scenario_type", "error", *SubMetrics.NAMES,
                                              "score", "raw_progress", "reference_progress", "latency_ms")

    @property
    def failed(self) -> bool:
        """Whether the scene failed (it has an error message)."""
        return bool(self.error)

    @classmethod
    def from_scores(cls, index: int, scene_id: str, scenario_type: str, scores: ProposalScores, row: int,
                    **extra) -> SceneResult:
        """The result of proposal `row` of `scores`; `extra`: more fields (error, latency_ms, plan, ...)."""
        values = {key: float(getattr(scores, key)[row]) for key in (*SubMetrics.NAMES, "score", "raw_progress",
                                                                       "reference_progress")}
        return cls(index=index, scene_id=scene_id, scenario_type=scenario_type,
                   **values, **extra)  # type: ignore[arg-type]  # (values: the float fields, by name)

    def csv_row(self) -> dict[str, object]:
        """Flat values for the per-scene CSV, in CSV_COLUMNS order (arrays left out)."""
        return {name: getattr(self, name) for name in self.CSV_COLUMNS}


@dataclass(frozen=True)
class Summary(SubMetrics[float]):
    """Mean sub-metrics (SubMetrics) over scenes, as NAVSIM's run_pdm_score aggregates them (values in [0, 1])."""

    metric: str
    n_scenes: int
    n_failed: int
    dropped_failed: bool
    score: float

    @property
    def is_v2(self) -> bool:
        """Whether the metric is EPDMS (NAVSIM v2)."""
        return self.metric == MetricVersion.EPDMS_V2.value

    @classmethod
    def from_json(cls, body: dict) -> Summary:
        """The summary a run's summary.json (`as_json` and more) holds; KeyError when a field is missing (a
        v2-only sub-metric missing is 1, as under PDMS v1)."""
        counts = {name: body[name] for name in ("metric", "n_scenes", "n_failed")}
        keys = cls.JSON_KEYS
        values = {name: body.get(keys[name], 1.0) if name in cls.V2_ONLY else body[keys[name]]
                  for name in cls.SUMMARY_ORDER}
        return cls(**counts, dropped_failed=False,  # (a summary.json has pdms or epdms)
                   score=body.get("pdms", body.get("epdms")), **values)  # type: ignore[arg-type]

    def as_json(self) -> dict[str, object]:
        """The `--json` line: metric, counts, sub-metric means (SubMetrics.summary_names, under their JSON keys)
        and the score under its metric's name."""
        out: dict[str, object] = {"metric": self.metric, "n_scenes": self.n_scenes, "n_failed": self.n_failed}
        out |= {self.JSON_KEYS[name]: value for name, value in self.sub_metrics(self.summary_names(self.is_v2))}
        out["epdms" if self.is_v2 else "pdms"] = self.score
        return {k: round(v, 6) if isinstance(v, float) else v for k, v in out.items()}


def summarize(results: list[SceneResult], version: MetricVersion, drop_failed: bool = False) -> Summary:
    """Mean over scenes. Failed scenes count as 0 unless `drop_failed` (NAVSIM's silent drop)."""
    kept = [r for r in results if not (drop_failed and r.failed)]
    failed = sum(r.failed for r in results)

    def mean(key: str) -> float:
        return float(np.mean([getattr(r, key) for r in kept])) if kept else math.nan

    return Summary(metric=version.value, n_scenes=len(kept), n_failed=failed, dropped_failed=drop_failed,
                   score=mean("score"), **{name: mean(name) for name in SubMetrics.NAMES})
