"""The `datagen drive` job: scenes -> expert solves -> demonstration shards, resumable, local or on Ray.

Work unit = shard s: source scenes i in [s * shard_size, ...), scene i has seed scene_seed(split, seed, i),
targets are drawn from one rng per shard seeded by SeedSequence([seed, s]), and solves run sequentially
(warm-started only within a scene, towards the same lane). So the bytes depend only on the
config: 1 worker, W workers or Ray write identical datasets. Failed solves are counted by status and
never written. Per shard, meta/datagen/unit-NNNNN.json (written after the store shard) holds its counts and
marks it done; a killed worker loses at most the shard it was writing. Solve times are not stored (they
differ between runs); `run_datagen` returns them for the summary.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from datagen.demos import build_demo
from datagen.expert import EXPERTS, SOLVERS, load_expert
from scenes.drive import SPLITS
from scenes.errors import ConfigError
from scenes.jobfile import open_job_dir
from scenes.store import DatasetInfo, completed_shards, finalize_dataset, write_shard
from scenes.store.layout import atomic_write_bytes
from scenes.synthetic import GENERATOR_VERSION, generate_scene, scene_seed
from stl.calibrate import DEFAULTS

JOB_FILE = "meta/job.json"
UNIT_DIR = "meta/datagen"


@dataclass(frozen=True)
class DriveDatagenConfig:
    """What to generate. `params`: rule -> param -> value (a calibrated params file's rules, or DEFAULTS)."""

    n: int
    demos_per_scene: int = 1
    seed: int = 0
    split: str = "train"
    shard_size: int = 50
    params: dict = field(default_factory=lambda: {k: dict(v) for k, v in DEFAULTS.items()})
    horizon: int = 50  # solver steps at 0.1 s
    expert: str = "trajopt"
    compiled: bool = False  # trajopt's NLP functions as compiled C (trajopt.compiled); iterates unchanged
    solver: str = "ipopt"  # trajopt's NLP solver: ipopt (MUMPS) or fatrop
    generator_version: str = GENERATOR_VERSION

    def validate(self) -> DriveDatagenConfig:
        if self.n < 1:
            raise ConfigError("n", f"{{field}} must be a positive number of scenes, got {self.n}")
        if self.demos_per_scene < 1:
            raise ConfigError("demos_per_scene", f"{{field}} must be positive, got {self.demos_per_scene}")
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

    @property
    def num_shards(self) -> int:
        return -(-self.n // self.shard_size)

    def shard_indices(self, shard: int) -> range:
        return range(shard * self.shard_size, min(self.n, (shard + 1) * self.shard_size))

    def shard_rng(self, shard: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([int(self.seed), int(shard)]))


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

    def stored(self) -> dict:
        return {"shard": self.shard, "attempts": self.attempts, "demos": self.demos,
                "failures": dict(sorted(self.failures.items())), "iterations": self.iterations}


def solve_scene(config: DriveDatagenConfig, index: int, expert, sample_targets, rng: np.random.Generator,
                report: UnitReport) -> tuple[list, list]:
    """Demos and extras of source scene `index`.

    A solve is warm-started only from an earlier solve of the same scene towards the same lane: another
    scene lives in another map frame, and another lane is another homotopy class, so either start misleads.
    """
    scene = generate_scene(scene_seed(config.split, config.seed, index), config.split)
    demos, extras, warm_by_lane = [], [], {}
    for k, target in enumerate(sample_targets(scene, config.params, rng, config.demos_per_scene)):
        report.attempts += 1
        start = time.perf_counter()
        lane = getattr(target, "target_lane", getattr(target, "lane", 0))
        try:
            result = expert.solve(scene, target, warm_start=warm_by_lane.get(lane))
            status = str(getattr(result.status, "value", result.status))
            if result.ok and min(result.robustness.values(), default=0.0) < 0:
                status = "stl_violated"  # the solver's own check let a violation through: never written
            ok = result.ok and status != "stl_violated"
        except Exception as error:  # noqa: BLE001 - a crashing solve is a counted failure, not a dead job
            ok, status = False, f"error:{type(error).__name__}"
        report.solve_ms += 1e3 * (time.perf_counter() - start)
        report.solves += 1
        if not ok:
            report.failures[status] = report.failures.get(status, 0) + 1
            continue
        demo, record = build_demo(scene, result, target, k)
        demos.append(demo)
        extras.append(record)
        report.iterations += int(result.iterations)
        warm_by_lane[lane] = result
    return demos, extras


def run_unit(root: str, config: DriveDatagenConfig, shard: int,
             on_scene: Callable[[UnitReport], None] | None = None) -> UnitReport:
    """Generate, solve and write shard `shard`, then its unit file. Safe to run in any process."""
    expert, sample_targets = load_expert(config.expert, config.horizon, config.compiled, config.solver)
    if hasattr(expert, "reset"):
        expert.reset()  # a shard's solves must not depend on what this process solved before
    rng = config.shard_rng(shard)
    report, demos, extras = UnitReport(shard), [], []
    for index in config.shard_indices(shard):
        before = report.attempts
        new, records = solve_scene(config, index, expert, sample_targets, rng, report)
        demos += new
        extras += records
        if on_scene is not None:
            on_scene(UnitReport(shard, report.attempts - before, len(new)))
    report.demos = len(demos)
    write_shard(Path(root), shard, demos, extras=extras, allow_empty=True)
    _write_json(Path(root) / UNIT_DIR / f"unit-{shard:05d}.json", report.stored())
    return report


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def _remove_leftovers(root: Path) -> None:
    """Temp files of writes a killed run left behind (never data; they would only pollute the folder)."""
    for folder in (root / "shards", root / "privileged", root / "meta", root / UNIT_DIR, root):
        if folder.is_dir():
            for name in os.listdir(folder):
                if ".tmp-" in name or name.endswith(".json.tmp"):
                    (folder / name).unlink(missing_ok=True)


def prepare(root: Path, config: DriveDatagenConfig, resume: bool) -> None:
    """Create `root` with its job file, or check that a resumed job asks for the same thing and clean up the
    temporary files a killed run left."""
    if open_job_dir(root, JOB_FILE, asdict(config), "diffplan datagen drive", resume):
        _remove_leftovers(root)


def done_units(root: Path, config: DriveDatagenConfig) -> dict[int, UnitReport]:
    """Shards finished by earlier runs (store shard complete and unit file present), with their counts."""
    out = {}
    for shard in completed_shards(root):
        path = root / UNIT_DIR / f"unit-{shard:05d}.json"
        if shard < config.num_shards and path.is_file():
            try:
                data = json.loads(path.read_text())
            except json.JSONDecodeError:
                continue  # redo it
            out[shard] = UnitReport(shard, data["attempts"], data["demos"], data["failures"], 0.0,
                                    data["iterations"], 0, resumed=True)
    return out


def total_failures(reports) -> dict[str, int]:
    """Failures by reason summed over unit reports (each with a `failures` dict), sorted by reason."""
    total: Counter[str] = Counter()
    for report in reports:
        total.update(report.failures)
    return dict(sorted(total.items()))


@dataclass
class JobSummary:
    info: DatasetInfo
    reports: list[UnitReport]

    @property
    def scenes(self) -> int:
        return self.info.generator_config["n"]

    @property
    def demos(self) -> int:
        return sum(r.demos for r in self.reports)

    @property
    def attempts(self) -> int:
        return sum(r.attempts for r in self.reports)

    @property
    def failures(self) -> dict[str, int]:
        return total_failures(self.reports)

    @property
    def mean_solve_ms(self) -> float:
        solves = sum(r.solves for r in self.reports)
        return sum(r.solve_ms for r in self.reports) / solves if solves else float("nan")

    @property
    def mean_iterations(self) -> float:
        return sum(r.iterations for r in self.reports) / self.demos if self.demos else float("nan")


def run_datagen(root: Path, config: DriveDatagenConfig, workers: int = 1, ray_address: str | None = None,
                resume: bool = False,
                on_progress: Callable[[UnitReport], None] = lambda r: None) -> JobSummary:
    """Run the job; `on_progress(report)` gets partial reports (attempts, demos, failures) as work
    finishes."""
    config.validate()
    if workers < 1:
        raise ConfigError("workers", f"{{field}} must be positive, got {workers}")
    root = Path(root)
    prepare(root, config, resume)
    reports = done_units(root, config)
    for report in reports.values():
        on_progress(report)
    todo = [s for s in range(config.num_shards) if s not in reports]
    if ray_address:
        from datagen.ray_backend import run_on_ray

        for report in run_on_ray(str(root), config, todo, ray_address):
            reports[report.shard] = report
            on_progress(report)
    elif workers == 1:
        def scene_done(partial: UnitReport) -> None:
            on_progress(partial)

        for shard in todo:
            report = run_unit(str(root), config, shard, scene_done)
            reports[shard] = report
            on_progress(UnitReport(shard, 0, 0, report.failures))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(run_unit, str(root), config, shard) for shard in todo]
            for future in as_completed(futures):
                report = future.result()
                reports[report.shard] = report
                on_progress(report)
    info = finalize_dataset(root, asdict(config), config.num_shards)
    return JobSummary(info, [reports[s] for s in sorted(reports)])
