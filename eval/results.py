"""Per-scene results and their aggregation into a benchmark summary."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np

from planners.pdm.scoring import MetricVersion, ProposalScores

SUB_METRICS = ("nc", "dac", "ddc", "tlc", "ttc", "ep", "comfort", "lk", "hc", "ec")


@dataclass(frozen=True, eq=False)
class SceneResult:
    """One scene's closed-loop outcome. A failed planner call scores 0 everywhere and keeps its error.

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
    nc: float = 0.0
    dac: float = 0.0
    ddc: float = 0.0
    tlc: float = 0.0
    ttc: float = 0.0
    ep: float = 0.0
    comfort: float = 0.0
    lk: float = 0.0
    hc: float = 0.0
    ec: float = 0.0
    score: float = 0.0
    raw_progress: float = 0.0
    reference_progress: float = 0.0
    latency_ms: float = math.nan
    plan: np.ndarray = field(default_factory=lambda: np.full((8, 3), np.nan))
    simulated_xy: np.ndarray = field(default_factory=lambda: np.full((41, 2), np.nan))

    @property
    def failed(self) -> bool:
        return bool(self.error)

    @classmethod
    def from_scores(cls, index: int, scene_id: str, scenario_type: str, scores: ProposalScores, row: int,
                    **extra) -> SceneResult:
        values = {key: float(getattr(scores, key)[row]) for key in (*SUB_METRICS, "score", "raw_progress",
                                                                       "reference_progress")}
        return cls(index=index, scene_id=scene_id, scenario_type=scenario_type, **values, **extra)

    def csv_row(self) -> dict[str, object]:
        """Flat values for the per-scene CSV (arrays left out)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("plan", "simulated_xy")}


@dataclass(frozen=True)
class Summary:
    """Mean sub-metrics over scenes, as NAVSIM's run_pdm_score aggregates them (values in [0, 1])."""

    metric: str
    n_scenes: int
    n_failed: int
    dropped_failed: bool
    nc: float
    dac: float
    ddc: float
    tlc: float
    ttc: float
    comfort: float
    ep: float
    lk: float
    hc: float
    ec: float
    score: float

    @classmethod
    def from_json(cls, body: dict) -> Summary:
        """The summary a run's summary.json (`as_json` and more) holds; KeyError when a field is missing."""
        fields = {name: body[name] for name in ("metric", "n_scenes", "n_failed", "nc", "dac", "ddc", "ttc", "ep")}
        return cls(**fields, dropped_failed=False, tlc=body.get("tlc", 1.0), comfort=body["c"],
                   lk=body.get("lk", 1.0), hc=body.get("hc", 1.0), ec=body.get("ec", 1.0),
                   score=body.get("pdms", body.get("epdms")))

    def as_json(self) -> dict[str, object]:
        """The `--json` line: metric, counts, sub-metric means, and the score under its metric's name."""
        out: dict[str, object] = {"metric": self.metric, "n_scenes": self.n_scenes, "n_failed": self.n_failed,
                                  "nc": self.nc, "dac": self.dac, "ddc": self.ddc, "ttc": self.ttc,
                                  "c": self.comfort, "ep": self.ep}
        if self.metric == MetricVersion.EPDMS_V2.value:
            out |= {"tlc": self.tlc, "lk": self.lk, "hc": self.hc, "ec": self.ec, "epdms": self.score}
        else:
            out["pdms"] = self.score
        return {k: round(v, 6) if isinstance(v, float) else v for k, v in out.items()}


def summarize(results: list[SceneResult], version: MetricVersion, drop_failed: bool = False) -> Summary:
    """Mean over scenes. Failed scenes count as 0 unless `drop_failed` (NAVSIM's silent drop)."""
    kept = [r for r in results if not (drop_failed and r.failed)]
    failed = sum(r.failed for r in results)

    def mean(key: str) -> float:
        return float(np.mean([getattr(r, key) for r in kept])) if kept else math.nan

    return Summary(metric=version.value, n_scenes=len(kept), n_failed=failed, dropped_failed=drop_failed,
                   nc=mean("nc"), dac=mean("dac"), ddc=mean("ddc"), tlc=mean("tlc"), ttc=mean("ttc"),
                   comfort=mean("comfort"), ep=mean("ep"), lk=mean("lk"), hc=mean("hc"), ec=mean("ec"),
                   score=mean("score"))
