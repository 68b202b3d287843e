"""Writing a dataset: one shard at a time (the unit of parallel, resumable work), then `finalize_dataset`.

Several processes may call `write_shard` on different shard indices of one root at the same time. Every
file goes to a temp name in its folder and is os.replace'd into place; the shard's meta/ episode rows go
last, so a shard counts as complete (`completed_shards`) only once all of its data is in place.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from scenes._checks import ValidationError
from scenes.drive import CURRENT_INDEX, DriveScene
from scenes.store.codec import encode_table, scene_values
from scenes.store.errors import DatasetError, first_line
from scenes.store.extras import extra_columns, extra_types, merge_types, with_extras
from scenes.store.layout import (
    EPISODES,
    INFO,
    META,
    DatasetInfo,
    atomic_write_bytes,
    atomic_write_parquet,
    completed_shards,
    field_descriptions,
    shard_path,
)
from scenes.store.schema import (
    PRIVILEGED,
    SCHEMA_KEY,
    SHARDS,
    STORE_SCHEMA_VERSION,
    TIMELINE,
    episode_schema,
    part_schema,
)


def episode_row(scene: DriveScene, shard: int, row: int) -> dict[str, object]:
    """The scene's row of the episode table (without episode_index), stats included."""
    meta = scene.metadata
    future_xy = scene.ego.pose[CURRENT_INDEX:, :2]
    return {
        "scene_id": meta.scene_id,
        "seed": int(meta.seed),
        "split": meta.split,
        "scenario_type": meta.scenario_type.value,
        "shard": shard,
        "row": row,
        "generator_version": meta.generator_version,
        "num_agents": scene.agents.num_agents,
        "ego_speed_now": float(scene.ego.speed[CURRENT_INDEX]),
        "ego_future_distance": float(np.linalg.norm(np.diff(future_xy, axis=0), axis=-1).sum()),
    }


def write_shard(root: Path, shard_index: int, scenes: Sequence[DriveScene],
                extras: Sequence[Mapping[str, object]] | None = None, allow_empty: bool = False) -> None:
    """Validate `scenes` and write them as shard `shard_index` (replacing it if present).

    `extras`: one flat mapping (str -> float | int | str) per scene, stored as `extra.NAME` columns of the
    privileged file (see `scenes.store.extras`). `allow_empty`: write a shard of zero rows (a work unit
    that produced nothing) instead of refusing. Writing a shard un-finalizes the dataset (removes
    info.json) until `finalize_dataset` runs again.
    """
    root = Path(root)
    if not isinstance(shard_index, (int, np.integer)) or shard_index < 0:
        raise DatasetError(f"{root}: shard index must be a non-negative int, got {shard_index!r}")
    shard_index = int(shard_index)
    if len(scenes) == 0 and not allow_empty:
        raise DatasetError(f"{root}: shard {shard_index} has no scenes")
    for k, scene in enumerate(scenes):
        try:
            scene.validate()
        except ValidationError as error:
            scene_id = getattr(getattr(scene, "metadata", None), "scene_id", "?")
            raise DatasetError(
                f"{root}: shard {shard_index}, scene {k} ({scene_id}): {first_line(error)}"
            ) from None
    ids = Counter(scene.metadata.scene_id for scene in scenes)
    duplicated = sorted(i for i, n in ids.items() if n > 1)
    if duplicated:
        raise DatasetError(f"{root}: shard {shard_index}: duplicate scene_id(s) {', '.join(duplicated[:5])}")

    values = [scene_values(scene) for scene in scenes]
    if values:
        tables = {part: encode_table(part, values) for part in (SHARDS, PRIVILEGED)}
    else:
        tables = {part: part_schema(part).empty_table() for part in (SHARDS, PRIVILEGED)}
    if extras is not None:
        fields, arrays = extra_columns(extras, len(scenes), root, shard_index)
        tables[PRIVILEGED] = with_extras(tables[PRIVILEGED], fields, arrays)
    rows = [episode_row(scene, shard_index, k) for k, scene in enumerate(scenes)]
    episodes = pa.Table.from_pylist(rows, schema=episode_schema(with_index=False))

    for folder in (SHARDS, PRIVILEGED, META):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / INFO).unlink(missing_ok=True)
    shard_path(root, META, shard_index).unlink(missing_ok=True)  # incomplete until rewritten, last
    for part in (SHARDS, PRIVILEGED):
        atomic_write_parquet(shard_path(root, part, shard_index), tables[part])
    atomic_write_parquet(shard_path(root, META, shard_index), episodes)


def read_parquet(path: Path, columns: list[str] | None = None, version: str = STORE_SCHEMA_VERSION) -> pa.Table:
    """Read a store parquet file; DatasetError naming the file when unreadable or of another schema `version`."""
    try:
        table = pq.read_table(path, columns=columns)
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing") from None
    except (OSError, pa.ArrowException) as error:
        raise DatasetError(f"{path}: unreadable parquet ({first_line(error)})") from None
    check_file_version(path, table.schema.metadata, version)
    return table


def check_file_version(path: Path, metadata: dict | None, expected: str = STORE_SCHEMA_VERSION) -> None:
    """DatasetError unless the file's key-value `metadata` names schema version `expected`."""
    version = (metadata or {}).get(SCHEMA_KEY, b"").decode(errors="replace")
    if version != expected:
        raise DatasetError(f"{path}: schema version {version or '(none)'}, this diffplan reads {expected}")


def finalize_dataset(root: Path, generator_config: dict, num_shards: int) -> DatasetInfo:
    """Check shards 0..num_shards-1 are complete, write episodes.parquet then info.json (atomically)."""
    root = Path(root)
    if num_shards < 1:
        raise DatasetError(f"{root}: num_shards must be positive, got {num_shards}")
    done = completed_shards(root)
    missing = [i for i in range(num_shards) if i not in done]
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise DatasetError(f"{root}: cannot finalize, {len(missing)} shard(s) incomplete or missing: {shown}")
    extra = sorted(i for i in done if i >= num_shards)
    if extra:
        raise DatasetError(
            f"{root}: cannot finalize {num_shards} shard(s), found extra complete shard(s) {extra[:10]}"
        )
    try:
        config = json.loads(json.dumps(generator_config, sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise DatasetError(
            f"{root}: generator_config is not JSON-serialisable ({first_line(error)})"
        ) from None

    tables = []
    extras: dict[str, str] = {}
    for shard in range(num_shards):
        path = shard_path(root, META, shard)
        table = read_parquet(path)
        rows = table.num_rows
        for part in (SHARDS, PRIVILEGED):
            data_path = shard_path(root, part, shard)
            try:
                footer = pq.read_metadata(data_path)
            except (OSError, pa.ArrowException) as error:
                raise DatasetError(f"{data_path}: unreadable parquet ({first_line(error)})") from None
            if footer.num_rows != rows:
                raise DatasetError(f"{data_path}: {footer.num_rows} rows, but {path.name} lists {rows}")
            if part == PRIVILEGED:
                try:
                    merge_types(extras, extra_types(footer.schema.to_arrow_schema()), data_path)
                except DatasetError as error:
                    raise DatasetError(f"{data_path}: {error}") from None
        if table.column("shard").to_pylist() != [shard] * rows or table.column("row").to_pylist() != list(
            range(rows)
        ):
            raise DatasetError(f"{path}: shard/row columns do not match shard {shard}")
        tables.append(table.select(episode_schema(False).names).cast(episode_schema(False)))
    episodes = pa.concat_tables(tables)
    episodes = episodes.add_column(0, "episode_index", pa.array(np.arange(episodes.num_rows, dtype=np.int64)))
    episodes = episodes.cast(episode_schema(with_index=True))
    ids = Counter(episodes.column("scene_id").to_pylist())
    duplicated = sorted(i for i, n in ids.items() if n > 1)
    if duplicated:
        raise DatasetError(f"{root}: duplicate scene_id(s) across shards: {', '.join(duplicated[:5])}")

    info = DatasetInfo(
        schema_version=STORE_SCHEMA_VERSION,
        num_episodes=episodes.num_rows,
        num_shards=num_shards,
        splits=dict(sorted(Counter(episodes.column("split").to_pylist()).items())),
        generator_config=config,
        fields=field_descriptions(),
        shard_sizes=tuple(t.num_rows for t in tables),
        scenario_types=dict(sorted(Counter(episodes.column("scenario_type").to_pylist()).items())),
        timeline=dict(TIMELINE),
        extras=dict(sorted(extras.items())),
    )
    atomic_write_parquet(root / EPISODES, episodes)
    atomic_write_bytes(root / INFO, info.to_json().encode())
    return info
