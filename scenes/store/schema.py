"""Column layout of a diffplan dataset: one `FieldSpec` per parquet column, in file order.

Every column holds one value per scene (one row per episode). Kinds:
    scalar      plain column (string / int).
    tensor      fixed shape -> fixed_size_list<dtype>[prod(shape)], reshaped on read.
    ragged      leading dim varies per scene (agents N, lanes L, ...) -> list<dtype> when the rest of the
                shape is (), else list<fixed_size_list<dtype>[prod(rest)]>.
    geometry    one shapely geometry -> binary WKB.
    geometries  a ragged array of shapely geometries -> list<binary> WKB.
Lane successors are stored as CSR: `map.lane_successors.offsets` (L + 1,) and `.ids` (E,).
Times: H = CURRENT_INDEX + 1 history steps (now included), F = NUM_FUTURE_STEPS future steps, at SIM_DT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from scenes.drive import CURRENT_INDEX, NUM_FUTURE_STEPS, NUM_HISTORY_STEPS, SIM_DT

STORE_SCHEMA_VERSION = "diffplan-store/3"  # 3: lane polygons; 2: 2.0 s of stored history (was 1.5 s)
SCHEMA_KEY = b"diffplan.store.schema_version"
PART_KEY = b"diffplan.store.part"
SHARDS, PRIVILEGED = "shards", "privileged"
H = CURRENT_INDEX + 1
F = NUM_FUTURE_STEPS
TIMELINE = {
    "sim_dt": SIM_DT,
    "num_history_steps": NUM_HISTORY_STEPS,
    "current_index": CURRENT_INDEX,
    "num_future_steps": NUM_FUTURE_STEPS,
}

_ARROW = {
    "float64": pa.float64(),
    "int64": pa.int64(),
    "int32": pa.int32(),
    "int8": pa.int8(),
    "bool": pa.bool_(),
    "string": pa.string(),
    "wkb": pa.binary(),
}


@dataclass(frozen=True)
class FieldSpec:
    """One column. `shape` is per scene; a str first entry names a ragged (per-scene) dimension."""

    name: str
    part: str  # SHARDS (observation side) or PRIVILEGED
    kind: str  # scalar | tensor | ragged | geometry | geometries
    dtype: str  # float64 | int64 | int32 | int8 | bool | string | wkb
    shape: tuple[int | str, ...]
    unit: str = ""
    doc: str = ""

    @property
    def privileged(self) -> bool:
        """Whether the column lives in privileged/ files."""
        return self.part == PRIVILEGED

    @property
    def inner(self) -> tuple[int, ...]:
        """The fixed part of the shape (all of it for tensors, all but the first dim for ragged)."""
        return tuple(self.shape[1:] if self.kind in ("ragged", "geometries") else self.shape)  # type: ignore

    @property
    def arrow_type(self) -> pa.DataType:
        """The column's arrow type: a value, a fixed-size list (tensor) or a list (ragged, geometries)."""
        base = _ARROW[self.dtype]
        if self.kind in ("scalar", "geometry"):
            return base
        if self.kind == "tensor":
            return pa.list_(base, math.prod(self.inner))
        if self.kind == "geometries" or not self.inner:
            return pa.list_(base)
        return pa.list_(pa.list_(base, math.prod(self.inner)))

    @property
    def numpy_dtype(self) -> np.dtype:
        """The numpy dtype of the column's values."""
        return np.dtype(bool if self.dtype == "bool" else self.dtype)

    def describe(self) -> dict:
        """JSON-ready description for info.json."""
        return {
            "part": self.part,
            "kind": self.kind,
            "dtype": self.dtype,
            "shape": list(self.shape),
            "unit": self.unit,
            "privileged": self.privileged,
            "doc": self.doc,
        }


def _f(name: str, part: str, kind: str, dtype: str, shape: tuple, unit: str = "", doc: str = "") -> FieldSpec:
    return FieldSpec(name, part, kind, dtype, shape, unit, doc)


S, P = SHARDS, PRIVILEGED
FIELDS: tuple[FieldSpec, ...] = (
    # --- shards/: what a planner may see (history up to now, map, route, command) ---
    _f("scene_id", S, "scalar", "string", ()),
    _f("seed", S, "scalar", "int64", ()),
    _f("split", S, "scalar", "string", (), doc="train | val | test"),
    _f("scenario_type", S, "scalar", "string", (), doc="ScenarioType value"),
    _f("generator_version", S, "scalar", "string", ()),
    _f("command", S, "scalar", "int8", (), doc="DrivingCommand value"),
    _f("ego.pose.history", S, "tensor", "float64", (H, 3), "m, m, rad", "rear axle, map frame"),
    _f("ego.velocity.history", S, "tensor", "float64", (H, 2), "m/s", "body frame: forward, left"),
    _f("ego.acceleration.history", S, "tensor", "float64", (H, 2), "m/s^2", "body frame"),
    _f("ego.yaw_rate.history", S, "tensor", "float64", (H,), "rad/s"),
    _f("ego.steering.history", S, "tensor", "float64", (H,), "rad"),
    _f("agents.track_ids", S, "ragged", "int64", ("N",)),
    _f("agents.category", S, "ragged", "int8", ("N",), doc="AgentCategory value"),
    _f("agents.size", S, "ragged", "float64", ("N", 2), "m", "box length, width"),
    _f("agents.xy.history", S, "ragged", "float64", ("N", H, 2), "m", "box centre, map frame"),
    _f("agents.heading.history", S, "ragged", "float64", ("N", H), "rad"),
    _f("agents.velocity.history", S, "ragged", "float64", ("N", H, 2), "m/s", "map frame"),
    _f("agents.valid.history", S, "ragged", "bool", ("N", H)),
    _f("map.lane_ids", S, "ragged", "int64", ("L",)),
    _f("map.lane_centerlines", S, "geometries", "wkb", ("L",), "m", "LineString, driving direction"),
    _f("map.lane_left_boundaries", S, "geometries", "wkb", ("L",), "m", "LineString"),
    _f("map.lane_right_boundaries", S, "geometries", "wkb", ("L",), "m", "LineString"),
    _f("map.lane_polygons", S, "geometries", "wkb", ("L",), "m", "Polygon, the lane's surface"),
    _f("map.lane_successors.offsets", S, "ragged", "int32", ("L+1",), doc="CSR row offsets into .ids"),
    _f("map.lane_successors.ids", S, "ragged", "int64", ("E",), doc="CSR successor lane ids"),
    _f("map.lane_speed_limits", S, "ragged", "float64", ("L",), "m/s"),
    _f("map.lane_roadblock_ids", S, "ragged", "int64", ("L",)),
    _f("map.lane_is_connector", S, "ragged", "bool", ("L",)),
    _f("map.drivable_polygons", S, "geometries", "wkb", ("P",), "m", "Polygon"),
    _f("map.drivable_kinds", S, "ragged", "int8", ("P",), doc="DrivableKind value"),
    _f("map.drivable_ids", S, "ragged", "int64", ("P",)),
    _f("map.stop_lines", S, "geometries", "wkb", ("S",), "m", "LineString"),
    _f("map.stop_line_lane_ids", S, "ragged", "int64", ("S",)),
    _f("map.crosswalks", S, "geometries", "wkb", ("C",), "m", "Polygon"),
    _f("route.lane_ids", S, "ragged", "int64", ("R",)),
    _f("route.centerline", S, "geometry", "wkb", (), "m", "LineString, map frame"),
    _f("traffic_lights.lane_ids", S, "ragged", "int64", ("K",)),
    _f("traffic_lights.is_red.history", S, "ragged", "bool", ("K", H)),
    # --- privileged/: the future (expert ego, agents, lights); scene_id only to check row alignment ---
    _f("scene_id", P, "scalar", "string", (), doc="same rows, same order as shards/"),
    _f("ego.pose.future", P, "tensor", "float64", (F, 3), "m, m, rad", "expert, map frame"),
    _f("ego.velocity.future", P, "tensor", "float64", (F, 2), "m/s", "body frame"),
    _f("ego.acceleration.future", P, "tensor", "float64", (F, 2), "m/s^2", "body frame"),
    _f("ego.yaw_rate.future", P, "tensor", "float64", (F,), "rad/s"),
    _f("ego.steering.future", P, "tensor", "float64", (F,), "rad"),
    _f("agents.xy.future", P, "ragged", "float64", ("N", F, 2), "m", "map frame"),
    _f("agents.heading.future", P, "ragged", "float64", ("N", F), "rad"),
    _f("agents.velocity.future", P, "ragged", "float64", ("N", F, 2), "m/s", "map frame"),
    _f("agents.valid.future", P, "ragged", "bool", ("N", F)),
    _f("traffic_lights.is_red.future", P, "ragged", "bool", ("K", F)),
)
del S, P

PART_FIELDS: dict[str, tuple[FieldSpec, ...]] = {
    part: tuple(f for f in FIELDS if f.part == part) for part in (SHARDS, PRIVILEGED)
}

# episodes.parquet / meta/episodes-NNNNN.parquet: one row per scene, cheap to scan for stats.
EPISODE_COLUMNS: dict[str, pa.DataType] = {
    "episode_index": pa.int64(),
    "scene_id": pa.string(),
    "seed": pa.int64(),
    "split": pa.string(),
    "scenario_type": pa.string(),
    "shard": pa.int32(),
    "row": pa.int32(),
    "generator_version": pa.string(),
    "num_agents": pa.int32(),
    "ego_speed_now": pa.float64(),
    "ego_future_distance": pa.float64(),
}
EPISODE_UNITS = {"ego_speed_now": "m/s", "ego_future_distance": "m"}


def part_schema(part: str) -> pa.Schema:
    """Arrow schema of shards/ or privileged/ files, with the store's key-value metadata."""
    return pa.schema(
        [pa.field(f.name, f.arrow_type, nullable=False) for f in PART_FIELDS[part]],
        metadata={SCHEMA_KEY: STORE_SCHEMA_VERSION.encode(), PART_KEY: part.encode()},
    )


def episode_schema(with_index: bool) -> pa.Schema:
    """Arrow schema of episodes.parquet (`with_index`: with the episode_index column), with the store's
    metadata."""
    names = [n for n in EPISODE_COLUMNS if with_index or n != "episode_index"]
    return pa.schema(
        [pa.field(n, EPISODE_COLUMNS[n], nullable=False) for n in names],
        metadata={SCHEMA_KEY: STORE_SCHEMA_VERSION.encode(), PART_KEY: b"episodes"},
    )
