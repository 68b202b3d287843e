"""The `scenes import openscene` job: OpenScene / NAVSIM log pickles and nuPlan maps into a dataset.

Unit u is the u-th log (sorted by name, after the scene filter's `log_names`) and writes shard u: every kept
window of the log as a `DriveScene` with the map within `map_radius` of the current pose, and its provenance
(`LogSceneSource`) as privileged extras `source.*`. One log is in memory at a time per worker, so the peak
memory does not grow with the number of logs; each location's map is read once per worker. The unit record
reports the log's windows: kept, and dropped by `DropReason`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from scenes.adapters.errors import SourceError
from scenes.adapters.nuplan_maps import NuplanMaps
from scenes.adapters.openscene import LogScene, LogSceneSource, build_scene
from scenes.adapters.openscene_filter import DropReason, SceneFilter, missing_logs, read_scene_filter, windows
from scenes.adapters.openscene_frames import read_log
from scenes.drive import SPLITS
from scenes.errors import ConfigError
from scenes.store import DatasetInfo, committed_unit_records, finalize_dataset, write_shard
from scenes.store.units import write_unit_record

UNIT_DIR = "meta/import"
MAP_RADIUS = 200.0  # [m] of map kept around a scene's current pose (the observation sees 80 m)
LOG_SUFFIX = ".pkl"


@dataclass(frozen=True)
class OpenSceneImportConfig:
    """What to import.

    Attributes:
        logs: folder of `<log_name>.pkl` files (NAVSIM's `navsim_logs/<split>`).
        maps: nuPlan maps root (`nuplan-maps-v1.0.json`, `<location>/<version>/map.gpkg`); None: NUPLAN_MAPS_ROOT.
        scene_filter: a NAVSIM scene_filter YAML; None: NAVSIM's defaults (4 + 10 frames, has_route, all logs).
        split: the scenes' split in our store (navtest: test, navtrain: train).
        map_radius: [m] of map kept around each scene's current pose.
    """

    logs: str
    maps: str | None = None
    scene_filter: str | None = None
    split: str = "test"
    map_radius: float = MAP_RADIUS

    def validate(self) -> OpenSceneImportConfig:
        """The config itself; ConfigError naming the field, SourceError for an unreadable filter."""
        if not Path(self.logs).is_dir():
            raise ConfigError("logs", f"{{field}} {self.logs}: not a folder")
        if self.split not in SPLITS:
            raise ConfigError("split", f"unknown split {self.split!r}; expected one of {', '.join(SPLITS)}")
        if not self.map_radius > 0:
            raise ConfigError("map_radius", f"{{field}} must be positive, got {self.map_radius}")
        if self.filter.max_scenes is not None:
            raise ConfigError("filter", f"{{field}} {self.scene_filter}: max_scenes is not supported "
                                              "(it depends on the order logs are read); list tokens instead")
        return self

    @cached_property
    def filter(self) -> SceneFilter:
        """The scene filter (NAVSIM's defaults without a file)."""
        return SceneFilter() if self.scene_filter is None else read_scene_filter(self.scene_filter)

    @cached_property
    def log_names(self) -> tuple[str, ...]:
        """The logs to import, sorted; SourceError when the filter names logs the folder lacks."""
        available = sorted(p.name[: -len(LOG_SUFFIX)] for p in Path(self.logs).glob(f"*{LOG_SUFFIX}"))
        if self.filter.log_names is None:
            return tuple(available)
        missing_logs(self.filter, available, str(self.scene_filter))
        wanted = set(self.filter.log_names)
        return tuple(name for name in available if name in wanted)

    def as_json(self) -> dict[str, object]:
        """The job file's record: the fields, with folders as absolute paths."""
        out = asdict(self)
        out["logs"] = str(Path(self.logs).resolve())
        out["maps"] = None if self.maps is None else str(Path(self.maps).resolve())
        out["scene_filter"] = None if self.scene_filter is None else str(Path(self.scene_filter).resolve())
        return out


@dataclass
class LogReport:
    """What unit u did with its log: windows seen, scenes kept, windows dropped by reason. `done`: the log is
    imported (False in the reports sent while it is, which only let the runner check for Ctrl-C)."""

    unit: int
    log_name: str
    windows: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    resumed: bool = False
    done: bool = True

    def stored(self) -> dict[str, object]:
        """The unit record."""
        return {"log_name": self.log_name, "windows": self.windows, "kept": self.kept,
                "dropped": dict(sorted(self.dropped.items()))}


def source_extras(source: LogSceneSource) -> dict[str, object]:
    """A scene's provenance as flat privileged extras (`source.*`)."""
    out: dict[str, object] = {"source.log_name": source.log_name, "source.map_location": source.map_location,
                              "source.token": source.token, "source.timestamp": source.timestamp,
                              "source.lidar_path": source.lidar_path}
    for k, path in enumerate(source.camera_paths):
        out[f"source.camera_{k}"] = path
    return out


def import_log(path: Path, scene_filter: SceneFilter, maps: NuplanMaps, split: str, map_radius: float,
               on_window: Callable[[], None] = lambda: None) -> tuple[list[LogScene], Counter[str], int]:
    """Every kept window of one log as a LogScene; also the drop counts by reason and the number of windows."""
    frames = read_log(path)
    scenes: list[LogScene] = []
    dropped: Counter[str] = Counter()
    cut = windows(frames, scene_filter)
    for window in cut:
        on_window()
        if window.dropped is not None:
            dropped[window.dropped.value] += 1
            continue
        now = frames[window.current]
        road = maps.location(now.map_location).layers_near(now.ego_translation[:2], map_radius)
        built = build_scene(frames, window.start, road, split, scene_filter.num_history_frames)
        if isinstance(built, DropReason):
            dropped[built.value] += 1
        else:
            scenes.append(built)
    return scenes, dropped, len(cut)


@dataclass(frozen=True)
class OpenSceneImportJob:
    """`diffplan scenes import openscene` as a sharded job: unit u imports log u into shard u."""

    config: OpenSceneImportConfig
    command: ClassVar[str] = "diffplan scenes import openscene"

    def __post_init__(self):
        self.config.validate()
        if not self.config.log_names:
            raise SourceError(f"{self.config.logs}: no {LOG_SUFFIX} log files to import")
        NuplanMaps(self.config.maps)  # a missing or unreadable maps root fails before any work

    def job_record(self) -> dict[str, object]:
        """The config, and the logs it imports."""
        return {**self.config.as_json(), "log_names": list(self.config.log_names)}

    def job_defaults(self) -> dict[str, object]:
        """Empty: every field is in every job file."""
        return {}

    @property
    def num_units(self) -> int:
        """Number of logs."""
        return len(self.config.log_names)

    def finished(self, root: Path) -> tuple[dict[int, LogReport], dict[int, str]]:
        """Logs an earlier run committed (from their unit records), and those whose shard files are damaged."""
        records, damaged = committed_unit_records(root, UNIT_DIR, self.num_units)
        done = {shard: LogReport(shard, data["log_name"], data["windows"], data["kept"], data["dropped"],
                                 resumed=True) for shard, data in records.items()}
        return done, damaged

    def run_unit(self, root: Path, unit: int, on_item: Callable[[LogReport], None]) -> LogReport:
        """Import log `unit` into shard `unit`, then write its unit record."""
        config, name = self.config, self.config.log_names[unit]
        maps = _maps(config.maps)
        scenes, dropped, count = import_log(Path(config.logs) / f"{name}{LOG_SUFFIX}", config.filter, maps,
                                            config.split, config.map_radius,
                                            lambda: on_item(LogReport(unit, name, done=False)))
        report = LogReport(unit, name, count, len(scenes), dict(sorted(dropped.items())))
        on_item(report)
        write_shard(Path(root), unit, [s.scene for s in scenes], extras=[source_extras(s.source) for s in scenes],
                    allow_empty=True)
        write_unit_record(Path(root), UNIT_DIR, unit, report.stored())
        return report

    def amount(self, report: LogReport) -> int:
        """Logs imported."""
        return int(report.done)

    def finish(self, root: Path, run: Any) -> tuple[DatasetInfo, list[LogReport]]:
        """Write the dataset's index; its DatasetInfo and every log's report (in log order)."""
        info = finalize_dataset(Path(root), self.job_record(), self.num_units)
        return info, [run.reports[u] for u in sorted(run.reports)]


_MAPS: dict[str | None, NuplanMaps] = {}


def _maps(root: str | None) -> NuplanMaps:
    """One NuplanMaps per root and process, so that a worker reads each location's map once."""
    if root not in _MAPS:
        _MAPS[root] = NuplanMaps(root)
    return _MAPS[root]
