"""The nuScenes import job: the scenes of one nuScenes split, through nuscenes-devkit, into a dataset.

Unit u is the u-th scene of the split (sorted by name; scenes the split lists but the tables lack are left out
and counted in the job record) and writes shard u: every kept window (`scene_windows`) as a `DriveScene`
with its provenance (`NuScenesSource`) as privileged extras `source.*`. The unit record reports the scene's
windows (kept, dropped by `DropReason`) and where its ego speeds came from (`CanSource`). The tables, each
map and the CAN bus API are opened once per worker.

Splits: `create_splits_scenes()` names; a version holds the splits the devkit's evaluation allows for it
(`nuscenes/eval/common/loaders.py`): v1.0-mini mini_train and mini_val, v1.0-trainval train, val,
train_detect and train_track, v1.0-test test. Our store split: mini_train, train, train_detect and
train_track -> "train"; mini_val and val -> "val"; test -> "test".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from scenes.adapters.errors import SourceError
from scenes.adapters.nuscenes import (
    MAP_RADIUS,
    CanSource,
    DropReason,
    NuScenesScene,
    NuScenesSource,
    build_scene,
    can_pose,
    map_name_of,
    open_can_bus,
    open_nuscenes,
    scene_windows,
)
from scenes.adapters.nuscenes_map import open_map
from scenes.errors import ConfigError
from scenes.store import DatasetInfo, committed_unit_records, finalize_dataset, write_shard
from scenes.store.units import write_unit_record

UNIT_DIR = "meta/import"
VERSION_SPLITS = {"mini": ("mini_train", "mini_val"),
                  "trainval": ("train", "val", "train_detect", "train_track"),
                  "test": ("test",)}
STORE_SPLIT = {"mini_train": "train", "train": "train", "train_detect": "train", "train_track": "train",
               "mini_val": "val", "val": "val", "test": "test"}


def version_splits(version: str) -> tuple[str, ...]:
    """The nuScenes splits of `version`: by its suffix, as the devkit checks it; any other version name (an
    export's v1.0-synth) may use every split, and its tables decide which scenes exist."""
    for suffix, splits in VERSION_SPLITS.items():
        if version.endswith(suffix):
            return splits
    return tuple(sorted(STORE_SPLIT))


@dataclass(frozen=True)
class NuScenesImportConfig:
    """What to import.

    Attributes:
        dataroot: the nuScenes root (`<version>/`, `maps/expansion/`, optionally `can_bus/`).
        version: e.g. "v1.0-mini".
        split: a `create_splits_scenes()` split of that version, e.g. "mini_val".
        map_radius: [m] of map kept around each scene's current pose.
    """

    dataroot: str
    version: str = "v1.0-mini"
    split: str = "mini_val"
    map_radius: float = MAP_RADIUS

    def validate(self) -> NuScenesImportConfig:
        """The config itself; ConfigError naming the field, SourceError for a split the version lacks."""
        if not Path(self.dataroot).is_dir():
            raise ConfigError("dataroot", f"{{field}} {self.dataroot}: not a folder")
        valid = version_splits(self.version)
        if self.split not in valid:  # a property of the data's version: SourceError, naming the folder
            raise SourceError(f"{Path(self.dataroot) / self.version}: split {self.split!r} is not a split of "
                              f"{self.version}; valid: {', '.join(valid)}")
        if not self.map_radius > 0:
            raise ConfigError("map_radius", f"{{field}} must be positive, got {self.map_radius}")
        return self

    @property
    def store_split(self) -> str:
        """Our split for the scenes ("train", "val" or "test")."""
        return STORE_SPLIT[self.split]

    def as_json(self) -> dict[str, object]:
        """The job file's record: the fields, with the dataroot absolute."""
        out = asdict(self)
        out["dataroot"] = str(Path(self.dataroot).resolve())
        return out


@dataclass
class SceneReport:
    """What unit u did with its nuScenes scene: windows seen, scenes kept, windows dropped by reason, and the
    source of the ego speeds. `done`: False in the progress reports sent while it runs."""

    unit: int
    scene_name: str
    windows: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    can_source: str = ""
    resumed: bool = False
    done: bool = True

    def stored(self) -> dict[str, object]:
        """The unit record."""
        return {"scene_name": self.scene_name, "windows": self.windows, "kept": self.kept,
                "dropped": dict(sorted(self.dropped.items())), "can_source": self.can_source}


def source_extras(source: NuScenesSource) -> dict[str, object]:
    """A scene's provenance as flat privileged extras (`source.*`)."""
    return {f"source.{key}": value for key, value in asdict(source).items()}


_OPEN: dict[tuple[str, str], Any] = {}
_MAPS: dict[tuple[str, str], Any] = {}
_CAN: dict[str, Any] = {}


def _nusc(dataroot: str, version: str) -> Any:
    key = (str(Path(dataroot).resolve()), version)
    if key not in _OPEN:
        _OPEN[key] = open_nuscenes(dataroot, version)
    return _OPEN[key]


def _map(dataroot: str, name: str) -> Any:
    key = (str(Path(dataroot).resolve()), name)
    if key not in _MAPS:
        _MAPS[key] = open_map(dataroot, name)
    return _MAPS[key]


def _can_bus(dataroot: str) -> Any | None:
    key = str(Path(dataroot).resolve())
    if key not in _CAN:
        _CAN[key] = open_can_bus(dataroot)
    return _CAN[key]


def import_scene(config: NuScenesImportConfig, scene_name: str, on_window: Callable[[], None] = lambda: None
                 ) -> tuple[list[NuScenesScene], Counter[str], int, CanSource]:
    """Every kept window of one scene; also the drop counts by reason, the number of windows and the CAN
    source."""
    nusc = _nusc(config.dataroot, config.version)
    scene = next(s for s in nusc.scene if s["name"] == scene_name)
    nusc_map = _map(config.dataroot, map_name_of(nusc, scene["token"]))
    can_bus = _can_bus(config.dataroot)
    scenes: list[NuScenesScene] = []
    dropped: Counter[str] = Counter()
    windows = scene_windows(nusc, scene["token"])
    for window in windows:
        on_window()
        if window.dropped is not None:
            dropped[window.dropped.value] += 1
            continue
        built = build_scene(nusc, nusc_map, can_bus, window.sample_token, config.store_split,
                            config.map_radius)
        if isinstance(built, DropReason):
            dropped[built.value] += 1
        else:
            scenes.append(built)
    return scenes, dropped, len(windows), can_pose(can_bus, scene_name)[0]


@dataclass(frozen=True)
class NuScenesImportJob:
    """The nuScenes import as a sharded job: unit u imports scene u of the split into shard u."""

    config: NuScenesImportConfig
    command: ClassVar[str] = "diffplan scenes import nuscenes"

    def __post_init__(self):
        self.config.validate()
        if not self.scene_names:
            raise SourceError(f"{Path(self.config.dataroot) / self.config.version}: none of the "
                              f"{len(self._split_scenes())} scenes of split {self.config.split} is in the "
                              "tables")

    def _split_scenes(self) -> list[str]:
        from nuscenes.utils.splits import create_splits_scenes  # type: ignore[import-untyped]

        return list(create_splits_scenes(verbose=False)[self.config.split])

    @property
    def scene_names(self) -> tuple[str, ...]:
        """The split's scenes present in the tables, sorted."""
        present = {s["name"] for s in _nusc(self.config.dataroot, self.config.version).scene}
        return tuple(sorted(name for name in self._split_scenes() if name in present))

    def job_record(self) -> dict[str, object]:
        """The config, our split, the scenes it imports and how many of the split's scenes are absent."""
        names = self.scene_names
        return {**self.config.as_json(), "store_split": self.config.store_split, "scene_names": list(names),
                "missing_scenes": len(self._split_scenes()) - len(names)}

    def job_defaults(self) -> dict[str, object]:
        """Empty: every field is in every job file."""
        return {}

    @property
    def num_units(self) -> int:
        """Number of scenes."""
        return len(self.scene_names)

    def finished(self, root: Path) -> tuple[dict[int, SceneReport], dict[int, str]]:
        """Scenes an earlier run committed (from their unit records), and those whose shards are damaged."""
        records, damaged = committed_unit_records(root, UNIT_DIR, self.num_units)
        done = {shard: SceneReport(shard, data["scene_name"], data["windows"], data["kept"], data["dropped"],
                                   data.get("can_source", ""), resumed=True)
                for shard, data in records.items()}
        return done, damaged

    def run_unit(self, root: Path, unit: int, on_item: Callable[[SceneReport], None]) -> SceneReport:
        """Import scene `unit` into shard `unit`, then write its unit record."""
        name = self.scene_names[unit]
        scenes, dropped, count, source = import_scene(self.config, name,
                                                      lambda: on_item(SceneReport(unit, name, done=False)))
        report = SceneReport(unit, name, count, len(scenes), dict(sorted(dropped.items())), source.value)
        on_item(report)
        write_shard(Path(root), unit, [s.scene for s in scenes],
                    extras=[source_extras(s.source) for s in scenes], allow_empty=True)
        write_unit_record(Path(root), UNIT_DIR, unit, report.stored())
        return report

    def amount(self, report: SceneReport) -> int:
        """Scenes imported."""
        return int(report.done)

    def finish(self, root: Path, run: Any) -> tuple[DatasetInfo, list[SceneReport]]:
        """Write the dataset's index; its DatasetInfo and every scene's report (in scene order)."""
        info = finalize_dataset(Path(root), self.job_record(), self.num_units)
        return info, [run.reports[u] for u in sorted(run.reports)]
