"""Privileged extras: per-scene flat records (str -> float | int | str) stored as `extra.NAME` columns of
privileged/NNNNN.parquet, e.g. the STL parameters, robustness and solver status of a generated demo.

Columns are the union of the shard's keys, sorted by name; a scene without a key holds null there (and
`DriveDataset.extras(i)` leaves it out). A key's values must be all str, or all numbers (int and float mixed
-> float64). Column types of the whole dataset are listed under "extras" in info.json.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa

from scenes.store.errors import DatasetError

PREFIX = "extra."
_TYPES = {"float64": pa.float64(), "int64": pa.int64(), "string": pa.string()}


def _kind(value: object, where: str) -> str:
    if isinstance(value, (bool, np.bool_)):
        raise DatasetError(f"{where}: bool values are not supported; store 0/1 as int")
    if isinstance(value, (int, np.integer)):
        return "int64"
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(float(value)):
            raise DatasetError(f"{where}: {value!r} is not finite")
        return "float64"
    if isinstance(value, str):
        return "string"
    raise DatasetError(f"{where}: {type(value).__name__} is not float, int or str")


def extra_columns(extras: Sequence[Mapping[str, object]], num_scenes: int, root: object,
                  shard: int) -> tuple[list[pa.Field], list[pa.Array]]:
    """Fields and arrays of the `extra.*` columns of one shard, in sorted name order."""
    if len(extras) != num_scenes:
        raise DatasetError(f"{root}: shard {shard}: {len(extras)} extras for {num_scenes} scenes")
    kinds: dict[str, set[str]] = {}
    for k, record in enumerate(extras):
        if not isinstance(record, Mapping):
            raise DatasetError(f"{root}: shard {shard}, scene {k}: extras must be a mapping")
        for name, value in record.items():
            if not isinstance(name, str) or not name:
                raise DatasetError(f"{root}: shard {shard}, scene {k}: extra names must be non-empty str")
            kinds.setdefault(name, set()).add(_kind(value, f"{root}: shard {shard}, scene {k}, extra {name!r}"))
    fields, arrays = [], []
    for name in sorted(kinds):
        found = kinds[name]
        if "string" in found and len(found) > 1:
            raise DatasetError(f"{root}: shard {shard}: extra {name!r} mixes str and numbers")
        kind = "string" if "string" in found else ("float64" if "float64" in found else "int64")
        values: list = [record.get(name) for record in extras]  # float | int | str | None (checked above)
        if kind == "float64":
            values = [None if v is None else float(v) for v in values]
        elif kind == "int64":
            values = [None if v is None else int(v) for v in values]
        fields.append(pa.field(PREFIX + name, _TYPES[kind], nullable=True))
        arrays.append(pa.array(values, _TYPES[kind]))
    return fields, arrays


def with_extras(table: pa.Table, fields: list[pa.Field], arrays: list[pa.Array]) -> pa.Table:
    """`table` with the extra columns appended (schema metadata kept)."""
    schema = table.schema
    for field in fields:
        schema = schema.append(field)
    return pa.Table.from_arrays([*table.columns, *arrays], schema=schema)


def extra_types(schema: pa.Schema) -> dict[str, str]:
    """{"extra.NAME": dtype} of a privileged file's schema."""
    out = {}
    for field in schema:
        if field.name.startswith(PREFIX):
            kind = next((k for k, t in _TYPES.items() if t.equals(field.type)), None)
            if kind is None:
                raise DatasetError(f"column {field.name!r} has unsupported type {field.type}")
            out[field.name] = kind
    return out


def merge_types(into: dict[str, str], more: Mapping[str, str], where: object) -> None:
    """Union of column types across shards; int64 and float64 widen to float64, str vs number fails."""
    for name, kind in more.items():
        before = into.get(name, kind)
        if before != kind:
            if "string" in (before, kind):
                raise DatasetError(f"{where}: {name} is {kind} here but {before} in another shard")
            kind = "float64"
        into[name] = kind


def row_extras(table: pa.Table) -> list[dict[str, object]]:
    """Per row: {NAME: value} of the non-null extra columns (prefix removed)."""
    names = [n for n in table.column_names if n.startswith(PREFIX)]
    columns = {n[len(PREFIX):]: table.column(n).to_pylist() for n in names}
    return [{k: v[r] for k, v in columns.items() if v[r] is not None} for r in range(table.num_rows)]
