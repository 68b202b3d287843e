"""The navigation dataset store: expert demonstrations as Parquet, one row per recorded depth frame.

DATASET/
  info.json                    schema version, camera, robot, timeline, field shapes/units; written last
  episodes.parquet             one row per trajectory (episode), sorted by episode_index
  shards/NNNNN.parquet         observation columns per frame: depth (uint16, 0.1 mm), goal, velocity
  privileged/NNNNN.parquet     privileged columns of the same frames: pose, future, negatives, critic, world
  meta/episodes-NNNNN.parquet  the shard's episode rows, written last: marks the shard complete

Shards are written atomically (temp name, fsync, rename; meta last), exactly like `scenes.store.writer`, and
`completed_shards` / `finalize` work the same way. Frame rows are grouped 64 to a Parquet row group, so
`NavDataset[i]` decodes only the row group holding frame i.
"""

from __future__ import annotations

import io
import json
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from scenes._checks import ValidationError
from scenes.nav.types import (
    DEPTH_MAX,
    DEPTH_MIN,
    DEPTH_SCALE,
    NAV_CAMERA_DT,
    NAV_PLAN_DT,
    NAV_PLAN_POSES,
    NAVDP_ACTION_SCALE,
    CameraSpec,
    NavEpisode,
    NavObservation,
    NavTrainingSample,
)
from scenes.store.errors import DatasetError, IncompleteDatasetError, first_line
from scenes.store.layout import (
    EPISODES,
    INFO,
    META,
    PARQUET_OPTIONS,
    atomic_write_bytes,
    completed_shards,
    shard_path,
)
from scenes.store.nav_schema import (
    EPISODE_FIELDS,
    FRAME_FIELDS,
    NAV_SCHEMA_VERSION,
    ROW_GROUP,
    episode_schema,
    field_descriptions,
    part_schema,
)
from scenes.store.schema import PRIVILEGED, SHARDS, STORE_SCHEMA_VERSION
from scenes.store.writer import check_file_version, read_parquet


def _column(values: Sequence, kind: pa.DataType) -> pa.Array:
    if len(values) == 0:
        return pa.array([], type=kind)
    if pa.types.is_binary(kind):
        return pa.array([np.ascontiguousarray(v, dtype="<u2").tobytes() for v in values], type=kind)
    if isinstance(kind, pa.FixedSizeListType):
        flat = np.ascontiguousarray(np.stack(values)).reshape(len(values), -1)
        return pa.FixedSizeListArray.from_arrays(pa.array(flat.ravel(), type=kind.value_type), kind.list_size)
    return pa.array(list(values), type=kind)


def _table(columns: Mapping[str, Sequence], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_arrays([_column(columns[f.name], f.type) for f in schema], schema=schema)


def _write(path: Path, table: pa.Table) -> None:
    buffer = io.BytesIO()
    ids = [n for n in ("episode_id", "world_id") if n in table.column_names]  # no dictionaries for numbers
    pq.write_table(table, buffer, row_group_size=ROW_GROUP, use_dictionary=ids, **PARQUET_OPTIONS)
    atomic_write_bytes(path, buffer.getvalue())


def write_nav_shard(root: Path, shard: int, demos: Sequence, camera: CameraSpec, world_kinds: Sequence[str]) -> None:
    """Write `demos` (scenes.nav.types.NavDemo) as shard `shard`, atomically, meta/ last; zero demos make
    an empty (but complete) shard. `world_kinds`: each demo's world kind."""
    root = Path(root)
    obs: dict[str, list] = {name: [] for name in FRAME_FIELDS[SHARDS]}
    priv: dict[str, list] = {name: [] for name in FRAME_FIELDS[PRIVILEGED]}
    episodes: dict[str, list] = {name: [] for name in EPISODE_FIELDS if name not in ("episode_index",
                                                                                         "frame_index")}
    row = 0
    for demo, kind in zip(demos, world_kinds, strict=True):
        try:
            demo.validate()
        except ValidationError as error:
            raise DatasetError(f"{root}: shard {shard}: {first_line(error)}") from None
        if demo.depth.shape[1:] != (camera.height, camera.width):
            raise DatasetError(f"{root}: shard {shard}: depth {demo.depth.shape[1:]} is not the camera's "
                               f"{(camera.height, camera.width)}")
        ep, t = demo.episode, demo.num_frames
        obs["episode_id"] += [ep.episode_id] * t
        obs["frame"] += list(range(t))
        obs["time_s"] += list(np.arange(t) * NAV_CAMERA_DT)
        obs["depth"] += list(demo.depth)
        obs["goal"] += list(demo.goal)
        obs["velocity"] += list(demo.velocity)
        priv["episode_id"] += [ep.episode_id] * t
        priv["world_id"] += [ep.world_id] * t
        for name, values in (("pose", demo.poses), ("future", demo.future),
                             ("augmented_future", demo.augmented_future), ("augment_yaw", demo.augment_yaw),
                             ("critic_target", demo.critic), ("augmented_critic_target", demo.augmented_critic)):
            priv[name] += list(values)
        driven = float(np.linalg.norm(np.diff(demo.poses[:, :2], axis=0), axis=1).sum())
        for name, value in (("episode_id", ep.episode_id), ("world_id", ep.world_id), ("world_kind", kind),
                            ("robot", ep.robot), ("start", ep.start), ("goal", ep.goal),
                            ("geodesic_distance", float(ep.geodesic_distance)), ("path_length", driven),
                            ("num_frames", t), ("shard", shard), ("row", row)):
            episodes[name].append(value)
        row += t
    duplicated = [i for i, n in Counter(episodes["episode_id"]).items() if n > 1]
    if duplicated:
        raise DatasetError(f"{root}: shard {shard}: duplicate episode_id(s) {', '.join(duplicated[:5])}")
    for folder in (SHARDS, PRIVILEGED, META):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / INFO).unlink(missing_ok=True)
    shard_path(root, META, shard).unlink(missing_ok=True)  # incomplete until rewritten, last
    _write(shard_path(root, SHARDS, shard), _table(obs, part_schema(SHARDS, camera)))
    _write(shard_path(root, PRIVILEGED, shard), _table(priv, part_schema(PRIVILEGED, camera)))
    _write(shard_path(root, META, shard), _table(episodes, episode_schema(False)))


def _footer(path: Path) -> pq.FileMetaData:
    try:
        footer = pq.read_metadata(path)
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing") from None
    except (OSError, pa.ArrowException) as error:
        raise DatasetError(f"{path}: unreadable parquet ({first_line(error)})") from None
    check_file_version(path, footer.metadata, NAV_SCHEMA_VERSION)
    return footer


def camera_info(camera: CameraSpec) -> dict:
    """The camera's fields as info.json records them."""
    return {"width": camera.width, "height": camera.height, "hfov_deg": camera.hfov_deg,
            "mount_height": camera.mount_height}


def finalize_nav_dataset(root: Path, generator_config: dict, num_shards: int, camera: CameraSpec,
                         robot: dict) -> dict:
    """Check shards 0..num_shards-1 are complete, then write episodes.parquet and info.json; returns the info."""
    root = Path(root)
    done = completed_shards(root)
    missing = [i for i in range(num_shards) if i not in done]
    if missing:
        raise DatasetError(f"{root}: cannot finalize, {len(missing)} shard(s) incomplete or missing: "
                           f"{', '.join(map(str, missing[:10]))}")
    tables, frames = [], []
    for shard in range(num_shards):
        table = read_parquet(shard_path(root, META, shard), version=NAV_SCHEMA_VERSION)
        rows = int(np.sum(table.column("num_frames").to_numpy())) if table.num_rows else 0
        for part in (SHARDS, PRIVILEGED):
            footer = _footer(shard_path(root, part, shard))
            if footer.num_rows != rows:
                raise DatasetError(f"{shard_path(root, part, shard)}: {footer.num_rows} rows, but its episodes "
                                   f"list {rows} frames")
        tables.append(table.cast(episode_schema(False)))
        frames.append(rows)
    episodes = pa.concat_tables(tables)
    counts = episodes.column("num_frames").to_numpy().astype(np.int64)
    episodes = episodes.add_column(0, "episode_index", pa.array(np.arange(episodes.num_rows, dtype=np.int64)))
    episodes = episodes.append_column("frame_index", pa.array(np.concatenate([[0], np.cumsum(counts)[:-1]])
                                                              if len(counts) else np.zeros(0, np.int64)))
    episodes = episodes.cast(episode_schema(True))
    duplicated = [i for i, n in Counter(episodes.column("episode_id").to_pylist()).items() if n > 1]
    if duplicated:
        raise DatasetError(f"{root}: duplicate episode_id(s) across shards: {', '.join(duplicated[:5])}")
    info = {
        "schema_version": NAV_SCHEMA_VERSION,
        "num_episodes": episodes.num_rows,
        "num_frames": int(counts.sum()),
        "num_shards": num_shards,
        "shard_episodes": [t.num_rows for t in tables],
        "shard_frames": frames,
        "world_kinds": dict(sorted(Counter(episodes.column("world_kind").to_pylist()).items())),
        "camera": camera_info(camera),
        "robot": robot,
        "timeline": {"camera_dt": NAV_CAMERA_DT, "plan_dt": NAV_PLAN_DT, "plan_poses": NAV_PLAN_POSES,
                     "action_scale": NAVDP_ACTION_SCALE},
        "depth": {"unit": "0.1 mm", "scale": DEPTH_SCALE, "min_m": DEPTH_MIN, "max_m": DEPTH_MAX, "invalid": 0},
        "units": {"length": "m", "angle": "rad", "time": "s", "frame": "world frame unless a field says so"},
        "generator_config": json.loads(json.dumps(generator_config, sort_keys=True)),
        "fields": field_descriptions(camera),
    }
    buffer = io.BytesIO()
    pq.write_table(episodes, buffer, **PARQUET_OPTIONS)
    atomic_write_bytes(root / EPISODES, buffer.getvalue())
    atomic_write_bytes(root / INFO, (json.dumps(info, indent=2, sort_keys=True, allow_nan=False) + "\n").encode())
    return info


def _decode(table: pa.Table) -> dict[str, np.ndarray | list]:
    """Columns of a row group as numpy arrays (fixed-size lists as (rows, size)) or lists (strings, bytes)."""
    decoded: dict[str, np.ndarray | list] = {}
    for name in table.column_names:
        column = table.column(name).combine_chunks()
        if isinstance(column.type, pa.FixedSizeListType):
            decoded[name] = column.flatten().to_numpy().reshape(len(column), -1)
        elif pa.types.is_string(column.type) or pa.types.is_binary(column.type):
            decoded[name] = column.to_pylist()
        else:
            decoded[name] = column.to_numpy()
    return decoded


class NavDataset:
    """A finalized navigation dataset; `ds[i]` is frame i as a NavTrainingSample (frames of one episode are
    consecutive; `episodes()` and `frames(e)` map between episodes and frames).

    Attributes:
        root, info (info.json as a dict), camera, episode_table (pyarrow, one row per episode).
    """

    def __init__(self, root: Path | str, privileged: bool = True, cache_size: int = 32):
        """Open and check the dataset at `root` (see `open`)."""
        info, episodes, group_starts = _checked_nav(Path(root), privileged)
        self.root, self.info, self.episode_table, self.privileged = Path(root), info, episodes, privileged
        cam = info["camera"]
        self.camera = CameraSpec(cam["width"], cam["height"], cam["hfov_deg"], cam["mount_height"])
        self._shard_start = np.concatenate([[0], np.cumsum(info["shard_frames"])]).astype(np.int64)
        self._first = episodes.column("frame_index").to_numpy().astype(np.int64)
        self._cache: OrderedDict[tuple[str, int, int], dict[str, np.ndarray | list]] = OrderedDict()
        self._group_starts = group_starts  # (part, shard) -> first row of each row group, from the footers
        self.cache_size = max(1, cache_size)

    @classmethod
    def open(cls, root: Path | str, privileged: bool = True, cache_size: int = 32) -> NavDataset:
        """Open and check a dataset (info.json, episodes.parquet, every shard's footer), as `NavDataset(root)`;
        DatasetError names the path when something is missing, corrupt, incomplete or of another schema
        version."""
        return cls(root, privileged, cache_size)

    def __len__(self) -> int:
        return int(self.info["num_frames"])

    def __repr__(self) -> str:
        return f"NavDataset({str(self.root)!r}, {self.info['num_episodes']} episodes, {len(self)} frames)"

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_cache": OrderedDict()}

    def locate(self, i: int) -> tuple[int, int]:
        """(shard, row) of frame `i` (negative counts from the end); IndexError when out of range."""
        n = len(self)
        index = int(i) + (n if int(i) < 0 else 0)
        if not 0 <= index < n:
            raise IndexError(f"{self.root}: frame {i} is out of range (the dataset has {n} frames)")
        shard = int(np.searchsorted(self._shard_start, index, side="right") - 1)
        return shard, index - int(self._shard_start[shard])

    def _group(self, part: str, shard: int, row: int) -> tuple[dict[str, np.ndarray | list], int]:
        """(decoded columns of the row group holding `row`, the row's index in it); row groups are located
        from each file's own footer, so files written with any row-group size read alike."""
        starts = self._group_starts[(part, shard)]
        group = int(np.searchsorted(starts, row, side="right") - 1)
        key = (part, shard, group)
        if key not in self._cache:
            path = shard_path(self.root, part, shard)
            try:
                self._cache[key] = _decode(pq.ParquetFile(path).read_row_group(group))
            except (OSError, pa.ArrowException) as error:
                raise DatasetError(f"{path}: unreadable parquet ({first_line(error)})") from None
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        self._cache.move_to_end(key)
        return self._cache[key], row - int(starts[group])

    def observation(self, i: int) -> NavObservation:
        """What the planner saw at frame `i` (reads shards/ only)."""
        shard, row = self.locate(i)
        obs, r = self._group(SHARDS, shard, row)
        raw = np.frombuffer(obs["depth"][r], dtype="<u2").reshape(self.camera.height, self.camera.width)
        depth = raw.astype(np.float32) / np.float32(DEPTH_SCALE)
        return NavObservation(depth, obs["goal"][r].astype(np.float32), obs["velocity"][r].astype(np.float32),
                              self.camera, float(obs["time_s"][r]))

    def privileged_frame(self, i: int) -> dict[str, Any]:
        """Frame `i`'s privileged columns: world_id, pose (3,), future and augmented_future (24, 3), ..."""
        if not self.privileged:
            raise DatasetError(f"{self.root}: opened with privileged=False; frame {i}'s labels are privileged")
        shard, row = self.locate(i)
        priv, r = self._group(PRIVILEGED, shard, row)
        out = {name: values[r] for name, values in priv.items()}
        for name in ("future", "augmented_future"):
            out[name] = out[name].reshape(NAV_PLAN_POSES, 3)
        return out

    def __getitem__(self, i: int) -> NavTrainingSample:
        priv = self.privileged_frame(i)
        sample = NavTrainingSample(self.observation(i), priv["future"], priv["augmented_future"],
                                   float(priv["critic_target"]), float(priv["augmented_critic_target"]))
        try:
            return sample.validate()
        except ValidationError as error:
            raise DatasetError(f"{self.root}: frame {i}: {first_line(error)}") from None

    def episodes(self) -> list[NavEpisode]:
        """Every episode, in episode_index order."""
        cols = self.episode_table.to_pydict()
        return [NavEpisode(cols["episode_id"][k], cols["world_id"][k], np.array(cols["start"][k]),
                           np.array(cols["goal"][k]), cols["geodesic_distance"][k], cols["robot"][k])
                for k in range(self.episode_table.num_rows)]

    def frames(self, episode_index: int) -> range:
        """The dataset frame indices of episode `episode_index`."""
        start = int(self._first[episode_index])
        return range(start, start + int(self.episode_table.column("num_frames")[episode_index].as_py()))

    def episode_poses(self, episode_index: int) -> np.ndarray:
        """(T, 3) world poses of an episode's frames (privileged)."""
        return np.stack([self.privileged_frame(i)["pose"] for i in self.frames(episode_index)])


def _checked_nav(root: Path, privileged: bool) -> tuple[dict, pa.Table, dict[tuple[str, int], np.ndarray]]:
    """info.json, episodes.parquet and each shard's row-group starts, after checking every footer."""
    path = root / INFO
    if not root.is_dir():
        raise DatasetError(f"{root}: no such dataset directory")
    if not path.is_file():
        if (root / "meta" / "job.json").is_file():
            raise IncompleteDatasetError(root)
        raise DatasetError(f"{root}: not a diffplan nav dataset (no {INFO})")
    try:
        info = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: corrupt {INFO} ({error})") from None
    if not isinstance(info, dict) or info.get("schema_version") != NAV_SCHEMA_VERSION:
        version = info.get("schema_version") if isinstance(info, dict) else None
        if version == STORE_SCHEMA_VERSION:
            raise DatasetError(f"{root}: this is a driving dataset (scenes generate or datagen drive); a "
                               "navigation dataset is needed")
        raise DatasetError(f"{root}: schema version {version}, this diffplan reads {NAV_SCHEMA_VERSION}")
    episodes = read_parquet(root / EPISODES, version=NAV_SCHEMA_VERSION)
    if episodes.num_rows != info["num_episodes"]:
        raise DatasetError(f"{root / EPISODES}: {episodes.num_rows} rows, info.json lists {info['num_episodes']}")
    parts = (SHARDS, PRIVILEGED) if privileged else (SHARDS,)
    group_starts = {}
    for shard, frames in enumerate(info["shard_frames"]):
        for part in parts:
            footer = _footer(shard_path(root, part, shard))
            if footer.num_rows != frames:
                raise DatasetError(f"{shard_path(root, part, shard)}: {footer.num_rows} rows, info.json "
                                   f"lists {frames}")
            sizes = [footer.row_group(k).num_rows for k in range(footer.num_row_groups)]
            group_starts[(part, shard)] = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    return info, episodes, group_starts
