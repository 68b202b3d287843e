"""`diffplan eval closed-loop` as a resumable sharded job: closed-loop simulation of a planner over logs, per
scenario CLS metrics, temporal consistency and latency, and their summary.

Logs come from a named synthetic set (`navtest-synth`: the navtest-synth seeds and scenario mix, simulated
for the whole 15 s on roads LONG_ROAD_EXTENSION longer, so these are not navtest-synth's 7 s scenes) or from a
dataset of DriveScenes (imported OpenScene or nuScenes logs; their 5 s future bounds the simulated duration).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

import planners
from eval.closed_loop.cls import (
    CLS_METRIC_VERSION,
    ClsMetrics,
    aggregate,
    score_rollout,
    temporal_consistency,
)
from eval.closed_loop.simulation import (
    NUPLAN_DURATION,
    ClosedLoopResult,
    SimulationConfig,
    simulate_log,
)
from eval.records import from_json, to_json
from scenes.digest import combined_digest, content_digest
from scenes.drive import SIM_DT, DriveLog
from scenes.errors import ConfigError
from scenes.manifest import BenchmarkIdentity
from scenes.store.units import parsed_unit_records, write_unit_record

SYNTHETIC_SETS = {"navtest-synth": (500, "test", 0)}  # name -> (logs, split, dataset seed), balanced types
SYNTHETIC_SET_VERSION = "1"
TAIL_STEPS = 40  # [SIM_DT] logged after the simulated duration: the human planner's last 4 s plan
UNIT_DIR = "units"


@dataclass(frozen=True)
class LogSource:
    """Where the logs come from: a SYNTHETIC_SETS name or a dataset folder of DriveScenes."""

    spec: str
    duration: float = NUPLAN_DURATION

    @property
    def synthetic(self) -> bool:
        """True for a named synthetic set."""
        return self.spec in SYNTHETIC_SETS

    def __len__(self) -> int:
        if self.synthetic:
            return SYNTHETIC_SETS[self.spec][0]
        from scenes.store import DriveDataset

        return len(DriveDataset.open(self.spec))

    def validate(self) -> LogSource:
        """ConfigError naming `scenes` unless it is a set name or an existing folder."""
        if not self.synthetic and not Path(self.spec).is_dir():
            raise ConfigError("scenes", f"{{field}} {self.spec!r} is neither a synthetic set "
                                        f"({', '.join(SYNTHETIC_SETS)}) nor a dataset folder")
        return self

    def open(self) -> Callable[[int], DriveLog]:
        """A function: index -> the log (generated, or read from the dataset opened once)."""
        if self.synthetic:
            from scenes.synthetic import SYNTHETIC_SCENARIOS, generate_log, scene_seed

            _, split, seed = SYNTHETIC_SETS[self.spec]
            future = round(self.duration / SIM_DT) + TAIL_STEPS
            return lambda index: generate_log(scene_seed(split, seed, index), split,
                                              SYNTHETIC_SCENARIOS[index % len(SYNTHETIC_SCENARIOS)], future)
        from scenes.store import DriveDataset

        data = DriveDataset.open(self.spec)
        return lambda index: as_log(data[index])


def as_log(scene: DriveLog) -> DriveLog:
    """A DriveScene as a plain DriveLog (whose expert plan goes on past the log's end, for the human planner)."""
    return DriveLog(scene.metadata, scene.ego, scene.agents, scene.map, scene.route, scene.command,
                    scene.traffic_lights)


@dataclass(frozen=True)
class ClosedLoopConfig:
    """What to run: a planner (name or checkpoint) under a SimulationConfig; `warm_start` (start_t, steps)
    starts a diffusion planner's calls after the first from its previous plan (RTI-DP), None: cold."""

    planner: str
    simulation: SimulationConfig = field(default_factory=SimulationConfig)
    warm_start: tuple[int, int] | None = None

    def load_planner(self) -> planners.Planner:
        """The planner, warm-started as configured (ConfigError naming `warm_start` if it cannot be)."""
        planner = planners.load(self.planner)
        if self.warm_start is not None:
            if not hasattr(type(planner), "max_warm_start_t"):
                raise ConfigError("warm_start", f"{{field}}: planner {self.planner!r} has no warm start "
                                                "(diffusiondrive and diffusion-policy have)")
            from planners.learned.warm_start import WarmStart

            start_t, steps = self.warm_start
            interval = self.simulation.replan_every * SIM_DT
            limit = int(planner.max_warm_start_t)  # type: ignore[attr-defined]
            try:
                planner.warm_start = WarmStart(  # type: ignore[attr-defined]
                    start_t, steps, interval, limit).validate()
            except ValueError as error:
                raise ConfigError("warm_start", f"{{field}}: {error}") from None
        return planner


@dataclass(frozen=True, eq=False)
class ScenarioRecord:
    """One scenario's outcome, as written to the run's unit files and scenes.csv.

    Attributes:
        index, scene_id, scenario_type: which log.
        metrics: ClsMetrics (all 0 for a failed scenario).
        ec: temporal consistency (EPDMS EC of plans 0.5 s apart; 1 without pairs); plan_gap_m: mean L2 [m]
            between consecutive plans' overlap.
        latency_ms: (calls,) [ms] per planner call.
        network_steps: mean denoising steps per call (NaN: not reported).
        duration: [s] simulated.
        error: the planner's failure as one line ("" if none); failed_step: its step (-1 if none).
        log_digest: content digest of the simulated log (what runs are compared by).
    """

    index: int
    scene_id: str
    scenario_type: str
    metrics: ClsMetrics
    ec: float
    plan_gap_m: float
    latency_ms: np.ndarray
    network_steps: float
    duration: float
    error: str = ""
    failed_step: int = -1
    log_digest: str = ""

    @property
    def failed(self) -> bool:
        """True when the planner failed (the scenario scores 0)."""
        return bool(self.error)


def failed_metrics(reactive: bool) -> ClsMetrics:
    """The metrics of a scenario the planner failed on: everything 0."""
    return ClsMetrics(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, score=0.0, reactive=reactive)


def record_of(index: int, result: ClosedLoopResult, reactive: bool, log_digest: str = "") -> ScenarioRecord:
    """Score one simulated scenario (our failure rule: a failed planner scores 0)."""
    consistency = temporal_consistency(result.timed_plans)
    steps = [c.network_steps for c in result.calls if c.network_steps is not None]
    metrics = failed_metrics(reactive) if result.error else score_rollout(result.rollout, reactive)
    return ScenarioRecord(
        index=index, scene_id=result.scene_id, scenario_type=result.scenario_type, metrics=metrics,
        ec=consistency.ec, plan_gap_m=consistency.mean_l2,
        latency_ms=np.array([c.latency_ms for c in result.calls], dtype=np.float64),
        network_steps=float(np.mean(steps)) if steps else float("nan"),
        duration=(result.rollout.num_steps - 1) * SIM_DT, error=result.error or "",
        failed_step=-1 if result.failed_step is None else result.failed_step, log_digest=log_digest)


def evaluate_logs(source: LogSource, indices: Sequence[int], config: ClosedLoopConfig,
                  on_scene: Callable[[ScenarioRecord], None] = lambda record: None) -> list[ScenarioRecord]:
    """Simulate and score the logs `indices` of `source` with one loaded planner; `on_scene` after each."""
    planner = config.load_planner()
    log = source.open()
    records = []
    for index in indices:
        scenario = log(index)
        result = simulate_log(scenario, planner, config.simulation)
        records.append(record_of(index, result, config.simulation.agents.reactive, content_digest(scenario)))
        on_scene(records[-1])
    return records


@dataclass(frozen=True)
class ClosedLoopSummary:
    """A run's figures. cls is x 100 over every scenario, failed ones at 0 (`--json` prints `as_json`)."""

    metric: str
    cls: float
    n_scenes: int
    n_failed: int
    sub_metrics: dict[str, float]
    ec: float
    plan_gap_m: float
    latency_ms_p50: float
    latency_ms_p95: float
    network_steps: float
    duration_s: float
    version: str = CLS_METRIC_VERSION

    def as_json(self) -> dict[str, object]:
        """One flat object: metric, cls, n_scenes, n_failed, every sub-metric, ec, latency_ms_p95, ..."""
        body = dataclasses.asdict(self)
        body.update(body.pop("sub_metrics"))
        return {k: None if isinstance(v, float) and np.isnan(v) else v for k, v in body.items()}  # NaN: null

    @classmethod
    def from_json(cls, body: dict) -> ClosedLoopSummary:
        """The summary `as_json` wrote (KeyError naming a missing field)."""
        names = ClsMetrics.MULTIPLIERS + ClsMetrics.WEIGHTED
        fields = {f.name for f in dataclasses.fields(cls)} - {"sub_metrics"}
        values: dict[str, Any] = {name: float("nan") if body[name] is None else body[name] for name in fields}
        return cls(**values, sub_metrics={name: float(body[name]) for name in names})


def run_identity(source: LogSource, records: Sequence[ScenarioRecord]) -> BenchmarkIdentity:
    """What a run simulated: the set's name (a dataset: none), and the combined digest of its logs."""
    name = f"{source.spec}-{source.duration:g}s" if source.synthetic else None
    return BenchmarkIdentity(name, SYNTHETIC_SET_VERSION if source.synthetic else "", "",
                             combined_digest([r.log_digest for r in records]), len(records), len(source))


def summarize(records: Sequence[ScenarioRecord]) -> ClosedLoopSummary:
    """CLS (nuPlan's plain mean) and the other figures over scenario records."""
    cls = aggregate([r.metrics for r in records])
    latency = np.concatenate([r.latency_ms for r in records]) if records else np.zeros(0)
    steps = np.array([r.network_steps for r in records])
    return ClosedLoopSummary(
        metric=cls.metric, cls=cls.cls, n_scenes=cls.n_scenes, n_failed=sum(r.failed for r in records),
        sub_metrics=cls.sub_metrics, ec=float(np.mean([r.ec for r in records])),
        plan_gap_m=float(np.mean([r.plan_gap_m for r in records])),
        latency_ms_p50=float(np.percentile(latency, 50)) if latency.size else float("nan"),
        latency_ms_p95=float(np.percentile(latency, 95)) if latency.size else float("nan"),
        network_steps=float(np.nanmean(steps)) if np.isfinite(steps).any() else float("nan"),
        duration_s=float(np.mean([r.duration for r in records])))


@dataclass(frozen=True)
class ClosedLoopEvaluation:
    """The job (`diffplan.jobs.run_job` runs it): unit u simulates logs indices[u * chunk_size, ...] and
    commits `units/unit-NNNNN.json`; a rerun resumes from the committed units. Results do not depend on the
    number of workers: each scenario restarts the planner from the same seed."""

    source: LogSource
    config: ClosedLoopConfig
    indices: tuple[int, ...]
    planner_fingerprint: str
    chunk_size: int = 4
    command: ClassVar[str] = "diffplan eval closed-loop"

    def job_record(self) -> dict[str, object]:
        """What a resumed run must match."""
        simulation = self.config.simulation
        return {"planner": self.config.planner, "planner_fingerprint": self.planner_fingerprint,
                "scenes": (self.source.spec if self.source.synthetic
                           else str(Path(self.source.spec).resolve())),
                "duration": simulation.duration, "replan_every": simulation.replan_every,
                "agents": simulation.agents.value, "seed": simulation.seed, "indices": list(self.indices),
                "chunk_size": self.chunk_size, "metric_version": CLS_METRIC_VERSION,
                "warm_start": None if self.config.warm_start is None else list(self.config.warm_start)}

    def job_defaults(self) -> dict[str, object]:
        """Empty: every field is in every job file."""
        return {}

    @property
    def num_units(self) -> int:
        """Number of chunks."""
        return -(-len(self.indices) // self.chunk_size)

    def chunk(self, unit: int) -> list[int]:
        """The log indices of unit `unit`."""
        return list(self.indices[unit * self.chunk_size:(unit + 1) * self.chunk_size])

    def finished(self, root: Path) -> tuple[dict[int, list[ScenarioRecord]], dict[int, str]]:
        """Chunks an earlier run committed, and those whose unit record is unreadable."""
        return parsed_unit_records(root, UNIT_DIR, self.num_units,
                                   lambda body: [from_json(ScenarioRecord, r) for r in body["records"]])

    def run_unit(self, root: Path, unit: int, on_item: Callable[[list[ScenarioRecord]], None]
                 ) -> list[ScenarioRecord]:
        """Simulate chunk `unit` and commit its records."""
        records = evaluate_logs(self.source, self.chunk(unit), self.config, lambda record: on_item([record]))
        write_unit_record(Path(root), UNIT_DIR, unit, {"records": [to_json(r) for r in records]})
        return records

    def amount(self, report: list[ScenarioRecord]) -> int:
        """Scenarios simulated."""
        return len(report)

    def finish(self, root: Path, run) -> list[ScenarioRecord]:
        """Every record, by index."""
        return sorted((r for records in run.reports.values() for r in records), key=lambda r: r.index)
