"""Reading a dataset: `DriveDataset(root)` (or `.open(root)`), then `ds[i]` (full DriveScene) or
`ds.observation(i)`.

Only files listed by info.json under their final names are read, so temp leftovers are never data. Shard
files are opened lazily and decoded shards are kept in a small per-process LRU; the reader holds no open
file, and drops its cache when pickled, so it travels cheaply to DataLoader workers.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from scenes._checks import ValidationError
from scenes.drive import DriveObservation, DriveScene
from scenes.store.codec import DecodedPart, assemble_scene
from scenes.store.errors import DatasetError, first_line
from scenes.store.extras import PREFIX, row_extras
from scenes.store.layout import EPISODES, META, DatasetInfo, completed_shards, shard_path
from scenes.store.schema import PRIVILEGED, SHARDS, episode_schema
from scenes.store.units import read_unit_records
from scenes.store.writer import check_file_version, read_parquet


class DriveDataset:
    """A finalized dataset on disk. Episode i is row `episodes["row"][i]` of shard `episodes["shard"][i]`.

    Attributes:
        root: the dataset folder.
        info: DatasetInfo from info.json.
        episodes: pyarrow.Table, one row per episode, sorted by episode_index (columns: see schema.py).
        privileged: whether privileged/ may be read (False: only `observation(i)` works).
    """

    def __init__(self, root: Path | str, privileged: bool = True, cache_size: int = 4):
        """Open and check the dataset at `root` (see `open`)."""
        info, episodes = _checked(Path(root), privileged)
        self.root = Path(root)
        self.info = info
        self.episodes = episodes
        self.privileged = privileged
        self.cache_size = max(1, cache_size)
        self._shard = episodes.column("shard").to_numpy().astype(np.int64)
        self._row = episodes.column("row").to_numpy().astype(np.int64)
        self._start = np.concatenate([[0], np.cumsum(info.shard_sizes)]).astype(np.int64)
        self._cache: dict[str, OrderedDict[int, DecodedPart]] = {
            SHARDS: OrderedDict(),
            PRIVILEGED: OrderedDict(),
        }
        self._extras: OrderedDict[int, list[dict[str, object]]] = OrderedDict()

    @classmethod
    def open(cls, root: Path | str, privileged: bool = True, cache_size: int = 4) -> DriveDataset:
        """Open and check a dataset: info.json, episodes.parquet and every shard's footer (not its data);
        the same as `DriveDataset(root)`.

        Raises DatasetError (one line naming the path) for a missing path, a folder that is not a dataset,
        a corrupt info.json or parquet file, another schema version, a missing or incomplete shard, or
        row counts that disagree. With privileged=False, privileged/ is neither checked nor ever opened.
        """
        return cls(root, privileged, cache_size)

    def __len__(self) -> int:
        return self.info.num_episodes

    def __repr__(self) -> str:
        return f"DriveDataset({str(self.root)!r}, {len(self)} episodes, {self.info.num_shards} shards)"

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_cache"] = {SHARDS: OrderedDict(), PRIVILEGED: OrderedDict()}  # decoded data stays home
        state["_extras"] = OrderedDict()
        return state

    def locate(self, i: int) -> tuple[int, int]:
        """(shard, row) of episode `i`; negative indices count from the end; IndexError when out of range."""
        n = len(self)
        index = int(i)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"{self.root}: episode {i} is out of range (the dataset has {n} episodes)")
        return int(self._shard[index]), int(self._row[index])

    def _part(self, part: str, shard: int) -> DecodedPart:
        cache = self._cache[part]
        if shard in cache:
            cache.move_to_end(shard)
            return cache[shard]
        path = shard_path(self.root, part, shard)
        table = read_parquet(path)
        lo, hi = self._start[shard], self._start[shard + 1]
        if table.num_rows != hi - lo:
            raise DatasetError(f"{path}: {table.num_rows} rows, but info.json lists {hi - lo}")
        expected = self.episodes.column("scene_id").slice(lo, hi - lo).to_pylist()
        if "scene_id" in table.column_names and table.column("scene_id").to_pylist() != expected:
            raise DatasetError(f"{path}: scene_id column does not match {EPISODES} (shard rewritten?)")
        decoded = DecodedPart(part, table, str(path))
        cache[shard] = decoded
        while len(cache) > self.cache_size:
            cache.popitem(last=False)
        return decoded

    def __getitem__(self, i: int) -> DriveScene:
        """The full, validated DriveScene of episode `i`, privileged future included."""
        shard, row = self.locate(i)
        if not self.privileged:
            raise DatasetError(
                f"{self.root}: opened with privileged=False; only observation({i}) is available"
            )
        obs = self._part(SHARDS, shard).row(row)
        priv = self._part(PRIVILEGED, shard).row(row)
        scene = assemble_scene(obs, priv)
        try:
            return scene.validate()
        except ValidationError as error:
            raise DatasetError(
                f"{shard_path(self.root, SHARDS, shard)} row {row}: {first_line(error)}"
            ) from None

    def extras(self, i: int) -> dict[str, object]:
        """Privileged extras of episode `i` (names without the "extra." prefix); {} when none were written."""
        shard, row = self.locate(i)
        if not self.privileged:
            raise DatasetError(f"{self.root}: opened with privileged=False; extras({i}) is privileged")
        if shard not in self._extras:
            path = shard_path(self.root, PRIVILEGED, shard)
            names = [n for n in pq.read_schema(path).names if n.startswith(PREFIX)]
            self._extras[shard] = row_extras(read_parquet(path, columns=names))
            while len(self._extras) > self.cache_size:
                self._extras.popitem(last=False)
        self._extras.move_to_end(shard)
        return dict(self._extras[shard][row])

    def observation(self, i: int) -> DriveObservation:
        """`self[i].observation()`, computed from shards/ alone (privileged/ is never opened)."""
        shard, row = self.locate(i)
        history = assemble_scene(self._part(SHARDS, shard).row(row), None)
        try:
            history.metadata.validate()
            obs = history.observation()
            for part in (obs.ego_history, obs.agents, obs.map, obs.route):
                part.validate()
        except ValidationError as error:
            raise DatasetError(
                f"{shard_path(self.root, SHARDS, shard)} row {row}: {first_line(error)}"
            ) from None
        return obs

    def iter_episodes(self) -> Iterator[dict[str, object]]:
        """Episode rows as dicts (episode_index, scene_id, split, stats, ...), without decoding any scene."""
        columns = self.episodes.to_pydict()
        names = list(columns)
        for values in zip(*columns.values()):
            yield dict(zip(names, values))

    def indices(self, split: str | None = None, scenario_type: str | None = None) -> np.ndarray:
        """(M,) int64 episode indices of one split and/or scenario type (ScenarioType value)."""
        keep = np.ones(len(self), bool)
        if split is not None:
            keep &= np.asarray(self.episodes.column("split").to_pylist()) == split
        if scenario_type is not None:
            keep &= np.asarray(self.episodes.column("scenario_type").to_pylist()) == scenario_type
        return np.flatnonzero(keep).astype(np.int64)


def _checked(root: Path, privileged: bool) -> tuple[DatasetInfo, pa.Table]:
    """info.json and episodes.parquet of the dataset at `root`, after checking every shard's footer."""
    info = DatasetInfo.read(root)
    path = root / EPISODES
    episodes = read_parquet(path)
    schema = episode_schema(with_index=True)
    if not episodes.schema.remove_metadata().equals(schema.remove_metadata()):
        raise DatasetError(
            f"{path}: columns {episodes.column_names} are not the episode schema {schema.names}"
        )
    if episodes.num_rows != info.num_episodes:
        raise DatasetError(
            f"{path}: {episodes.num_rows} rows, but info.json lists {info.num_episodes} episodes"
        )
    if episodes.column("episode_index").to_pylist() != list(range(episodes.num_rows)):
        raise DatasetError(f"{path}: episode_index is not 0..{episodes.num_rows - 1} in order")
    expected_shard = np.repeat(np.arange(info.num_shards), info.shard_sizes)
    expected_row = np.concatenate([np.arange(n) for n in info.shard_sizes]) if info.num_shards else []
    if not (
        np.array_equal(episodes.column("shard").to_numpy(), expected_shard)
        and np.array_equal(episodes.column("row").to_numpy(), expected_row)
    ):
        raise DatasetError(f"{path}: shard/row columns disagree with info.json shard_sizes")
    parts = (SHARDS, PRIVILEGED, META) if privileged else (SHARDS, META)
    for shard, size in enumerate(info.shard_sizes):
        for part in parts:
            file = shard_path(root, part, shard)
            if not file.is_file():
                raise DatasetError(f"{file}: missing (shard {shard} is incomplete)")
            try:
                footer = pq.read_metadata(file)
            except (OSError, pa.ArrowException) as error:
                raise DatasetError(f"{file}: unreadable parquet ({first_line(error)})") from None
            check_file_version(file, footer.metadata)
            if footer.num_rows != size:
                raise DatasetError(
                    f"{file}: {footer.num_rows} rows, but info.json lists {size} for shard {shard}"
                )
    return info, episodes


def damaged_shard(root: Path, shard: int) -> str | None:
    """Why a complete-looking shard cannot be read (its first unreadable file), or None when its files'
    footers read and carry this schema version."""
    for part in (SHARDS, PRIVILEGED, META):
        file = shard_path(Path(root), part, shard)
        try:
            check_file_version(file, pq.read_metadata(file).metadata)
        except (OSError, pa.ArrowException) as error:
            return f"{file} is unreadable ({first_line(error)})"
        except DatasetError as error:
            return str(error)
    return None


def committed_unit_records(root: Path, folder: str, num_units: int) -> tuple[dict[int, dict], dict[int, str]]:
    """What a job that writes shard u for unit u finds on resume: the unit records (in `root`/`folder`) of the
    shards an earlier run committed, and the committed shards whose files are damaged (shard: why)."""
    shards = sorted(s for s in completed_shards(root) if s < num_units)
    records, damaged = {}, {}
    for shard, record in read_unit_records(root, folder, shards).items():
        problem = damaged_shard(root, shard)
        if problem:
            damaged[shard] = problem
        else:
            records[shard] = record
    return records, damaged
