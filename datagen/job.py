"""The `datagen drive` job: scenes -> expert solves -> demonstration shards, resumable, local or on Ray.

Work unit = shard s: source scenes i in [s * shard_size, ...), scene i has seed scene_seed(split, seed, i),
targets are drawn from one rng per shard seeded by SeedSequence([seed, s]), and solves run sequentially
(warm-started only within a scene, towards the same lane). So the bytes depend only on the
config: 1 worker, W workers or Ray write identical datasets. Failed solves are counted by status and
never written. Per shard, meta/datagen/unit-NNNNN.json (written after the store shard) holds its counts and
marks it done; a killed worker loses at most the shard it was writing. Solve times are not stored (they
differ between runs); the job's summary (`DriveDatagenJob.finish`) has them. `diffplan.jobs.run_job` runs it.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from datagen.demos import build_demo
from datagen.expert import EXPERTS, HORIZON_STEP, SOLVERS, load_expert
from scenes.drive import SPLITS
from scenes.errors import ConfigError
from scenes.store import DatasetInfo, committed_unit_records, finalize_dataset, write_shard
from scenes.store.units import Shards, write_unit_record
from scenes.synthetic import GENERATOR_VERSION, generate_scene, scene_seed
from stl.rules import DEFAULT_PARAMS, RuleParams
from stl.signals import controllable_gap
from trajopt.expert import Expert, ExpertStatus, WarmStart

UNIT_DIR = "meta/datagen"


@dataclass(frozen=True)
class DriveDatagenConfig:
    """What to generate. `params`: the rules' parameters targets start from (a calibrated params file's rules,
    or DEFAULT_PARAMS); the job file and info.json hold them as `RuleParams.to_json()` (`as_json`)."""

    n: int
    demos_per_scene: int = 1
    stop_fraction: float = 0.0  # targets after a scene's first that stop in the lane (pSTL's mode 3)
    gap_fraction: float = 0.0  # of the others: lane keeps behind the nearest agent at a drawn d_safe
    gap_scenes_only: bool = False  # skip source scenes without a controllable gap (no gap target there)
    seed: int = 0
    split: str = "train"
    shard_size: int = 50
    params: RuleParams = DEFAULT_PARAMS
    horizon: int = 50  # solver steps of HORIZON_STEP
    expert: str = "trajopt"
    compiled: bool = False  # trajopt's NLP functions as compiled C (trajopt.compiled); iterates unchanged
    solver: str = "ipopt"  # trajopt's NLP solver: ipopt (MUMPS) or fatrop
    generator_version: str = GENERATOR_VERSION

    def validate(self) -> DriveDatagenConfig:
        """The config itself; ConfigError naming the field when a value is out of range or unknown."""
        if self.n < 1:
            raise ConfigError("n", f"{{field}} must be a positive number of scenes, got {self.n}")
        if self.demos_per_scene < 1:
            raise ConfigError("demos_per_scene", f"{{field}} must be positive, got {self.demos_per_scene}")
        if not 0.0 <= self.stop_fraction <= 1.0:
            raise ConfigError("stop_fraction", f"{{field}} must be in [0, 1], got {self.stop_fraction}")
        if not 0.0 <= self.gap_fraction <= 1.0:
            raise ConfigError("gap_fraction", f"{{field}} must be in [0, 1], got {self.gap_fraction}")
        if self.gap_scenes_only and not self.gap_fraction:
            raise ConfigError("gap_scenes_only", "{field} needs gap targets: set --gap-fraction above 0")
        if self.gap_fraction and self.expert == "follow":
            raise ConfigError("gap_fraction", "{field} needs the trajopt expert: the follow expert drives "
                                              "the logged path and keeps no chosen gap")
        if self.shard_size < 1:
            raise ConfigError("shard_size", f"{{field}} must be positive, got {self.shard_size}")
        if self.horizon < 2:
            raise ConfigError("horizon", f"{{field}} must be at least 2 steps, got {self.horizon}")
        if self.compiled and self.expert == "trajopt":
            from trajopt import compiled

            if shutil.which(compiled.COMPILER) is None:
                raise ConfigError("compiled", f"{{field}} needs a C compiler: {compiled.COMPILER} is not on PATH")
        if self.split not in SPLITS:
            raise ConfigError("split", f"unknown split {self.split!r}; expected one of {', '.join(SPLITS)}")
        if self.solver not in SOLVERS:
            raise ConfigError("solver", f"unknown {{field}} {self.solver!r}; expected one of {', '.join(SOLVERS)}")
        if self.expert not in EXPERTS:
            raise ConfigError("expert", f"unknown expert {self.expert!r}; expected one of {', '.join(EXPERTS)}")
        try:
            scene_seed(self.split, self.seed, self.n - 1)
        except ValueError as error:
            raise ConfigError("seed", f"{{field}} {self.seed} with n {self.n}: {error}") from None
        return self

    def as_json(self) -> dict:
        """The config as the job file and info.json's generator_config hold it."""
        return {**asdict(self), "params": self.params.to_json()}

    @property
    def shards(self) -> Shards:
        """Source scenes in shards of `shard_size`; shard s draws its targets from SeedSequence([seed, s])."""
        return Shards(self.n, self.seed, self.shard_size)


@dataclass
class UnitReport:
    """What one shard did: attempts, demos written, failures by status, summed solve ms and iterations."""

    shard: int
    attempts: int = 0
    demos: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    solve_ms: float = 0.0  # this run only; 0 for shards done by an earlier run
    iterations: int = 0  # of the written demos
    solves: int = 0  # solves timed in solve_ms
    resumed: bool = False
    skipped: int = 0  # source scenes left out (`gap_scenes_only`: no controllable gap)

    def stored(self) -> dict:
        """The fields the unit record keeps (not the timing of this run)."""
        return {"shard": self.shard, "attempts": self.attempts, "demos": self.demos,
                "failures": dict(sorted(self.failures.items())), "iterations": self.iterations,
                **({"skipped": self.skipped} if self.skipped else {})}  # records without it stay as they were


def solve_scene(config: DriveDatagenConfig, index: int, expert: Expert, rng: np.random.Generator,
                report: UnitReport) -> tuple[list, list]:
    """Demos and extras of source scene `index` (none for a scene `gap_scenes_only` leaves out, counted in
    `report.skipped`); failed solves are counted in `report.failures` by their
    ExpertStatus value, or "error:<exception type>" for a solve that raised.

    A solve is warm-started only from an earlier solve of the same scene towards the same lane: another
    scene lives in another map frame, and another lane is another homotopy class, so either start misleads.
    """
    scene = generate_scene(scene_seed(config.split, config.seed, index), config.split)
    if config.gap_scenes_only and controllable_gap(scene, HORIZON_STEP * config.horizon) is None:
        report.skipped += 1
        return [], []
    demos, extras = [], []
    warm_by_lane: dict[int, WarmStart] = {}
    for k, target in enumerate(expert.sample_targets(scene, config.params, rng, config.demos_per_scene,
                                                              config.stop_fraction, config.gap_fraction)):
        report.attempts += 1
        start = time.perf_counter()
        try:
            result = expert.solve(scene, target, warm_start=warm_by_lane.get(target.target_lane))
            status = result.status
            if status.ok and min(result.robustness.values(), default=0.0) < 0:
                status = ExpertStatus.STL_VIOLATED  # the solver's own check let a violation through
            failure = None if status.ok else status.value
        except Exception as error:  # noqa: BLE001 - a crashing solve is a counted failure, not a dead job
            failure = f"error:{type(error).__name__}"
        report.solve_ms += 1e3 * (time.perf_counter() - start)
        report.solves += 1
        if failure is not None:
            report.failures[failure] = report.failures.get(failure, 0) + 1
            continue
        demo, record = build_demo(scene, result, target, k)
        demos.append(demo)
        extras.append(record)
        report.iterations += int(result.iterations)
        warm_by_lane[target.target_lane] = result.warm_start
    return demos, extras


@dataclass(frozen=True)
class DriveDatagenJob:
    """`diffplan datagen drive` as a sharded job (`diffplan.jobs.run_job` runs it): unit s solves the scenes of
    shard s, writes the store shard, then its unit record (counts by status). `finish` writes the dataset's
    index. Reports are `UnitReport`s; a scene's partial report counts its attempts."""

    config: DriveDatagenConfig
    command: ClassVar[str] = "diffplan datagen drive"

    def __post_init__(self):
        self.config.validate()

    def job_record(self) -> dict[str, object]:
        """The config as JSON (`DriveDatagenConfig.as_json`)."""
        return self.config.as_json()

    def job_defaults(self) -> dict[str, object]:
        """Fields newer than some job files, at the value those jobs ran with (they resume unchanged)."""
        return {"gap_fraction": 0.0, "gap_scenes_only": False}

    @property
    def num_units(self) -> int:
        """Number of shards."""
        return self.config.shards.num_units

    def finished(self, root: Path) -> tuple[dict[int, UnitReport], dict[int, str]]:
        """Shards an earlier run committed (from their unit records), and those whose files are damaged."""
        records, damaged = committed_unit_records(root, UNIT_DIR, self.num_units)
        done = {shard: UnitReport(shard, data["attempts"], data["demos"], data["failures"], 0.0, data["iterations"],
                                  0, resumed=True, skipped=data.get("skipped", 0))
                for shard, data in records.items()}
        return done, damaged

    def run_unit(self, root: Path, unit: int, on_item: Callable[[UnitReport], None]) -> UnitReport:
        """Generate, solve and write shard `unit`, then its unit record. Safe to run in any process."""
        config = self.config
        expert = load_expert(config.expert, config.horizon, config.compiled, config.solver)
        expert.reset()  # a shard's solves must not depend on what this process solved before
        rng = config.shards.unit_rng(unit)
        report, demos, extras = UnitReport(unit), [], []
        for index in config.shards.indices(unit):
            before, skipped = report.attempts, report.skipped
            new, records = solve_scene(config, index, expert, rng, report)
            demos += new
            extras += records
            on_item(UnitReport(unit, report.attempts - before, len(new), skipped=report.skipped - skipped))
        report.demos = len(demos)
        write_shard(Path(root), unit, demos, extras=extras, allow_empty=True)
        write_unit_record(Path(root), UNIT_DIR, unit, report.stored())
        return report

    def amount(self, report: UnitReport) -> int:
        """Solve attempts, a skipped scene counting as the `demos_per_scene` it would have had (the bar's
        total is n x demos_per_scene)."""
        return report.attempts + report.skipped * self.config.demos_per_scene

    def finish(self, root: Path, run) -> JobSummary:
        """Write the dataset's index; `run` is the runner's JobRun (every unit's report)."""
        info = finalize_dataset(Path(root), self.config.as_json(), self.num_units)
        return JobSummary(info, list(run.reports.values()))


def total_failures(reports) -> dict[str, int]:
    """Failures by reason summed over unit reports (each with a `failures` dict), sorted by reason."""
    total: Counter[str] = Counter()
    for report in reports:
        total.update(report.failures)
    return dict(sorted(total.items()))


@dataclass
class JobSummary:
    """The dataset's info and every shard's report (what `DriveDatagenJob.finish` returns)."""

    info: DatasetInfo
    reports: list[UnitReport]

    @property
    def scenes(self) -> int:
        """Source scenes."""
        return self.info.generator_config["n"]

    @property
    def demos(self) -> int:
        """Demos written."""
        return sum(r.demos for r in self.reports)

    @property
    def attempts(self) -> int:
        """Solve attempts."""
        return sum(r.attempts for r in self.reports)

    @property
    def skipped(self) -> int:
        """Source scenes left out for want of a controllable gap (`gap_scenes_only`)."""
        return sum(r.skipped for r in self.reports)

    @property
    def failures(self) -> dict[str, int]:
        """Failures by status over every shard."""
        return total_failures(self.reports)

    @property
    def mean_solve_ms(self) -> float:
        """Mean solve time [ms] over the solves this run timed; NaN with none."""
        solves = sum(r.solves for r in self.reports)
        return sum(r.solve_ms for r in self.reports) / solves if solves else float("nan")

    @property
    def mean_iterations(self) -> float:
        """Mean solver iterations per written demo; NaN with none."""
        return sum(r.iterations for r in self.reports) / self.demos if self.demos else float("nan")
