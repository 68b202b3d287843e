"""Where things live in a dataset folder, atomic file writes, and info.json as `DatasetInfo`.

DATASET/
  info.json                    written last by `finalize_dataset`; marks the dataset complete
  episodes.parquet             one row per episode (scene), sorted by episode_index
  shards/NNNNN.parquet         observation-side columns
  privileged/NNNNN.parquet     privileged columns, same rows in the same order
  meta/episodes-NNNNN.parquet  the shard's episode rows, written last: marks the shard complete
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from scenes.store.errors import DatasetError, IncompleteDatasetError, first_line
from scenes.store.nav_schema import NAV_SCHEMA_VERSION
from scenes.store.schema import (
    EPISODE_COLUMNS,
    EPISODE_UNITS,
    FIELDS,
    PRIVILEGED,
    SHARDS,
    STORE_SCHEMA_VERSION,
    TIMELINE,
)

INFO = "info.json"
EPISODES = "episodes.parquet"
META = "meta"
# Fixed writer options: the same table always gives the same bytes (pyarrow writes no timestamps).
PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 3, "version": "2.6", "write_statistics": False}
_META_NAME = re.compile(r"^episodes-(\d{5,})\.parquet$")
_SHARD_NAME = re.compile(r"^(\d{5,})\.parquet$")


def shard_path(root: Path, part: str, shard: int) -> Path:
    """shards/NNNNN.parquet, privileged/NNNNN.parquet or meta/episodes-NNNNN.parquet."""
    if part == META:
        return Path(root) / META / f"episodes-{shard:05d}.parquet"
    return Path(root) / part / f"{shard:05d}.parquet"


def _indices(folder: Path, pattern: re.Pattern) -> set[int]:
    if not folder.is_dir():
        return set()
    return {int(m.group(1)) for m in map(pattern.match, os.listdir(folder)) if m}


def completed_shards(root: Path) -> set[int]:
    """Shards whose three files are all present; `*.tmp-*` leftovers never count."""
    root = Path(root)
    return (
        _indices(root / META, _META_NAME)
        & _indices(root / SHARDS, _SHARD_NAME)
        & _indices(root / PRIVILEGED, _SHARD_NAME)
    )


def _temp_name(path: Path) -> Path:
    return path.with_name(f"{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to a temp name in the same folder, fsync, then os.replace onto `path`."""
    tmp = _temp_name(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_parquet(path: Path, table: pa.Table) -> None:
    """`table` to `path` with PARQUET_OPTIONS, atomically (temp name, fsync, os.replace)."""
    tmp = _temp_name(path)
    try:
        with open(tmp, "wb") as f:
            pq.write_table(table, f, **PARQUET_OPTIONS)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def field_descriptions() -> dict[str, dict]:
    """Every stored column as "part/name" -> shape, dtype, unit, privileged flag, doc."""
    out = {f"{spec.part}/{spec.name}": spec.describe() for spec in FIELDS}
    for name, kind in EPISODE_COLUMNS.items():
        dtype = "float64" if pa.types.is_floating(kind) else str(kind)
        out[f"episodes/{name}"] = {
            "part": "episodes",
            "kind": "scalar",
            "dtype": dtype,
            "shape": [],
            "unit": EPISODE_UNITS.get(name, ""),
            "privileged": name == "ego_future_distance",
            "doc": "",
        }
    return out


@dataclass(frozen=True)
class DatasetInfo:
    """Contents of info.json. `splits` and `scenario_types` count episodes; `shard_sizes` rows per shard."""

    schema_version: str
    num_episodes: int
    num_shards: int
    splits: dict[str, int]
    generator_config: dict
    fields: dict[str, dict]
    shard_sizes: tuple[int, ...] = ()
    scenario_types: dict[str, int] = field(default_factory=dict)
    timeline: dict[str, float] = field(default_factory=dict)
    extras: dict[str, str] = field(default_factory=dict)  # "extra.NAME" -> dtype of privileged extras

    def to_json(self) -> str:
        """info.json's text."""
        data = {
            "schema_version": self.schema_version,
            "num_episodes": self.num_episodes,
            "num_shards": self.num_shards,
            "shard_sizes": list(self.shard_sizes),
            "splits": self.splits,
            "scenario_types": self.scenario_types,
            "timeline": self.timeline,
            "units": {
                "length": "m",
                "angle": "rad",
                "time": "s",
                "speed": "m/s",
                "acceleration": "m/s^2",
                "frame": "map frame unless a field says otherwise",
            },
            "generator_config": self.generator_config,
            "fields": self.fields,
        }
        if self.extras:  # absent without extras: such datasets keep their exact bytes
            data["extras"] = self.extras
        return json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n"

    @classmethod
    def read(cls, root: Path) -> DatasetInfo:
        """Parse root/info.json; DatasetError (one line, naming the file) when missing, corrupt or foreign."""
        path = Path(root) / INFO
        if not Path(root).exists():
            raise DatasetError(f"{root}: no such dataset directory")
        if not Path(root).is_dir():
            raise DatasetError(f"{root}: not a directory")
        if not path.is_file():
            if (Path(root) / "meta" / "job.json").is_file():
                raise IncompleteDatasetError(root)
            raise DatasetError(f"{root}: not a diffplan dataset (no {INFO})")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise DatasetError(f"{path}: corrupt {INFO} ({error})") from None
        except OSError as error:
            raise DatasetError(f"{path}: unreadable ({error.strerror})") from None
        if not isinstance(data, dict) or "schema_version" not in data:
            raise DatasetError(f"{path}: corrupt {INFO} (no schema_version)")
        version = data["schema_version"]
        if version == NAV_SCHEMA_VERSION:
            raise DatasetError(f"{root}: this is a navigation dataset (datagen nav); a driving dataset is needed")
        if version != STORE_SCHEMA_VERSION:
            raise DatasetError(
                f"{root}: schema version {version}, this diffplan reads {STORE_SCHEMA_VERSION}; "
                "regenerate the dataset with this version"
            )
        try:
            info = cls(
                version,
                int(data["num_episodes"]),
                int(data["num_shards"]),
                dict(data["splits"]),
                dict(data["generator_config"]),
                dict(data["fields"]),
                tuple(data["shard_sizes"]),
                dict(data["scenario_types"]),
                dict(data["timeline"]),
                dict(data.get("extras", {})),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise DatasetError(f"{path}: corrupt {INFO} (bad or missing key {first_line(error)})") from None
        if info.timeline != TIMELINE:
            raise DatasetError(f"{path}: timeline {info.timeline} differs from this diffplan's {TIMELINE}")
        if len(info.shard_sizes) != info.num_shards or sum(info.shard_sizes) != info.num_episodes:
            raise DatasetError(f"{path}: corrupt {INFO} (shard_sizes do not add up to num_episodes)")
        return info
