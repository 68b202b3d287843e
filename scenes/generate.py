"""The `scenes generate` job: synthetic scenes into a dataset, shard by shard, resumable and parallel.

Scene i of a dataset has seed `scene_seed(split, seed, i)` and lands in shard i // shard_size, so the
bytes written depend only on the config, never on the number of workers or on interruptions. A benchmark
(`--benchmark navtest-synth`) checks every scene against its shipped manifest (`scenes/manifests/`) before a
shard is written: another machine or checkout that generates different bits stops at the first such scene.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

from scenes.digest import combined_digest, content_digest
from scenes.drive import SPLITS, DriveScene, ScenarioType
from scenes.errors import ConfigError
from scenes.manifest import BenchmarkIdentity, BenchmarkManifest, ManifestError, load_manifest
from scenes.store import (
    DatasetInfo,
    DriveDataset,
    completed_shards,
    damaged_shard,
    finalize_dataset,
    write_shard,
)
from scenes.store.units import Shards
from scenes.synthetic import GENERATOR_VERSION, SYNTHETIC_SCENARIOS, generate_scene, scene_seed


@dataclass(frozen=True)
class GenerateConfig:
    """What to generate. `scenario` None draws the scenario type from each scene's seed."""

    n: int
    split: str = "train"
    seed: int = 0
    shard_size: int = 100
    scenario: str | None = None
    balanced: bool = False  # scene i gets SYNTHETIC_SCENARIOS[i % 10]: every type equally often
    benchmark: str | None = None
    generator_version: str = GENERATOR_VERSION

    def validate(self) -> GenerateConfig:
        """The config itself; ConfigError naming the field when a value is out of range or unknown."""
        if self.n < 1:
            raise ConfigError("n", f"{{field}} must be a positive number of scenes, got {self.n}")
        if self.split not in SPLITS:
            raise ConfigError("split", f"unknown split {self.split!r}; expected one of {', '.join(SPLITS)}")
        if self.shard_size < 1:
            raise ConfigError("shard_size", f"{{field}} must be positive, got {self.shard_size}")
        if self.scenario is not None and self.scenario not in {s.value for s in ScenarioType}:
            known = ", ".join(s.value for s in ScenarioType if s is not ScenarioType.LOG)
            raise ConfigError("scenario", f"unknown scenario {self.scenario!r}; expected one of {known}")
        try:
            scene_seed(self.split, self.seed, self.n - 1)
        except ValueError as error:
            raise ConfigError("seed", f"{{field}} {self.seed} with n {self.n}: {error}") from None
        return self

    def scenario_of(self, index: int) -> ScenarioType | None:
        """Scenario type of scene `index`, or None to draw it from the scene's seed."""
        if self.scenario:
            return ScenarioType(self.scenario)
        return SYNTHETIC_SCENARIOS[index % len(SYNTHETIC_SCENARIOS)] if self.balanced else None

    def scene(self, index: int):
        """Generate scene `index` of this dataset."""
        return generate_scene(scene_seed(self.split, self.seed, index), self.split, self.scenario_of(index))

    @property
    def shards(self) -> Shards:
        """Items in shards of `shard_size` (the units of its job)."""
        return Shards(self.n, self.seed, self.shard_size)


def benchmark_manifest(config: GenerateConfig) -> BenchmarkManifest | None:
    """The shipped manifest of the config's benchmark (None for other datasets)."""
    return None if config.benchmark is None else load_manifest(config.benchmark, config.generator_version)


def checked_scene(config: GenerateConfig, index: int, manifest: BenchmarkManifest | None) -> DriveScene:
    """Scene `index`, checked against the benchmark manifest when there is one (ManifestError if it differs)."""
    scene = config.scene(index)
    if manifest is not None:
        manifest.check(index, scene.metadata.scene_id, content_digest(scene))
    return scene


@dataclass(frozen=True)
class SceneGenerationJob:
    """`diffplan scenes generate` as a sharded job (`diffplan.jobs.run_job` runs it): unit s generates, checks
    and writes shard s; the store's meta/NNNNN.parquet, written last, marks it committed. `finish` writes the
    dataset's index and returns its DatasetInfo. Reports are scene counts."""

    config: GenerateConfig
    command: ClassVar[str] = "diffplan scenes generate"

    def __post_init__(self):
        self.config.validate()
        benchmark_manifest(self.config)  # a missing or stale manifest fails before any work

    def job_record(self) -> dict[str, object]:
        """The config's fields."""
        return asdict(self.config)

    @property
    def num_units(self) -> int:
        """Number of shards."""
        return self.config.shards.num_units

    def finished(self, root: Path) -> tuple[dict[int, int], dict[int, str]]:
        """Shards an earlier run committed (report: their scene counts), and those whose files are damaged."""
        done, damaged = {}, {}
        for shard in sorted(completed_shards(root)):
            if shard >= self.num_units:
                continue
            problem = damaged_shard(root, shard)
            if problem:
                damaged[shard] = problem
            else:
                done[shard] = len(self.config.shards.indices(shard))
        return done, damaged

    def run_unit(self, root: Path, unit: int, on_item: Callable[[int], None]) -> int:
        """Generate, check and write shard `unit`; its scene count."""
        manifest = benchmark_manifest(self.config)
        scenes = []
        for index in self.config.shards.indices(unit):
            scenes.append(checked_scene(self.config, index, manifest))
            on_item(1)
        write_shard(Path(root), unit, scenes)
        return len(scenes)

    def amount(self, report: int) -> int:
        """Scenes generated."""
        return report

    def finish(self, root: Path, run) -> DatasetInfo:
        """Write the dataset's index; its DatasetInfo."""
        return finalize_dataset(Path(root), asdict(self.config), self.config.shards.num_units)

    def job_defaults(self) -> dict[str, object]:
        """Fields that older job files lack, at their defaults."""
        return asdict(GenerateConfig(n=self.config.n))  # fields added later default in older job files


# Fixed held-out benchmarks: test-split seeds (disjoint from every train seed), every scenario type equally.
BENCHMARK_SETS: dict[str, GenerateConfig] = {
    "navtest-synth": GenerateConfig(n=500, split="test", seed=0, shard_size=100, balanced=True,
                                    benchmark="navtest-synth"),
}
# bumped with every change of a benchmark's scenes (2: synthetic-drive/3, portable float math)
BENCHMARK_VERSIONS: dict[str, str] = {"navtest-synth": "3"}  # 3: lane polygons stored (v2 scenes, same scores)


def benchmark_config(name: str) -> GenerateConfig:
    """The config of a named benchmark set."""
    if name not in BENCHMARK_SETS:
        raise ConfigError("benchmark", f"unknown benchmark {name!r}; expected one of {', '.join(BENCHMARK_SETS)}")
    return BENCHMARK_SETS[name]


def build_manifest(name: str, on_progress: Callable[[int], None] = lambda n: None) -> BenchmarkManifest:
    """The manifest of benchmark `name` as this checkout generates it (to ship when its version is bumped)."""
    config = benchmark_config(name)
    ids, digests = [], []
    for index in range(config.n):
        scene = config.scene(index)
        ids.append(scene.metadata.scene_id)
        digests.append(content_digest(scene))
        on_progress(1)
    return BenchmarkManifest(name, BENCHMARK_VERSIONS[name], config.generator_version, tuple(ids), tuple(digests))


def dataset_identity(data: DriveDataset, count: int) -> BenchmarkIdentity:
    """What evaluating the first `count` scenes of `data` runs on. For a benchmark, every one of them is checked
    against the manifest first (ManifestError names the first that differs, e.g. an edited shard)."""
    digests, ids = [], []
    for index in range(count):
        scene = data[index]
        ids.append(scene.metadata.scene_id)
        digests.append(content_digest(scene))
    name = data.info.generator_config.get("benchmark")
    if not name:
        return BenchmarkIdentity(None, "", "", combined_digest(digests), count, len(data))
    version = str(data.info.generator_config.get("generator_version"))
    if version != GENERATOR_VERSION:
        raise ManifestError(f"{data.root}: benchmark {name} built with {version}, but this checkout generates "
                            f"{GENERATOR_VERSION}: build the benchmark again")
    manifest = load_manifest(str(name), version)
    try:
        manifest.check_all(ids, digests)
    except ManifestError as error:
        raise ManifestError(f"{data.root}: {error}") from None
    return manifest.identity(digests)
