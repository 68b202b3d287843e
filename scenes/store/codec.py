"""DriveScene <-> arrow columns, exact: float64 stays float64, ids int64, enums their value, geometry WKB.

Encoding goes scene -> {field name: numpy value} -> one arrow column per field for many scenes at once.
Decoding goes the other way per shard (vectorised, WKB parsed once per shard) into `DecodedPart`, from
which single rows are sliced cheaply.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import shapely

from scenes.agents import AgentTracks
from scenes.drive import (
    CURRENT_INDEX,
    DriveScene,
    DrivingCommand,
    Route,
    ScenarioType,
    SceneMetadata,
    TrafficLights,
)
from scenes.ego import EgoState
from scenes.maps import MapLayers
from scenes.store.errors import DatasetError
from scenes.store.schema import PART_FIELDS, PRIVILEGED, SHARDS, FieldSpec, part_schema

_EGO = ("pose", "velocity", "acceleration", "yaw_rate", "steering")
_AGENT_TIME = ("xy", "heading", "velocity", "valid")
_MAP_PLAIN = (
    "lane_ids",
    "lane_centerlines",
    "lane_left_boundaries",
    "lane_right_boundaries",
    "lane_polygons",
    "lane_speed_limits",
    "lane_roadblock_ids",
    "lane_is_connector",
    "drivable_polygons",
    "drivable_kinds",
    "drivable_ids",
    "stop_lines",
    "stop_line_lane_ids",
    "crosswalks",
)
_NOW = CURRENT_INDEX + 1


def scene_values(scene: DriveScene) -> dict[str, dict[str, object]]:
    """{part: {field name: value}} for one scene, split exactly along `DriveScene.observation()` lines."""
    meta, agents, lights = scene.metadata, scene.agents, scene.traffic_lights
    obs: dict[str, object] = {
        "scene_id": meta.scene_id,
        "seed": int(meta.seed),
        "split": meta.split,
        "scenario_type": meta.scenario_type.value,
        "generator_version": meta.generator_version,
        "command": int(scene.command),
        "agents.track_ids": agents.track_ids,
        "agents.category": agents.category,
        "agents.size": agents.size,
        "route.lane_ids": np.asarray(scene.route.lane_ids, np.int64),
        "route.centerline": scene.route.centerline,
        "traffic_lights.lane_ids": lights.lane_ids,
        "traffic_lights.is_red.history": lights.is_red[:, :_NOW],
    }
    priv: dict[str, object] = {
        "scene_id": meta.scene_id,
        "traffic_lights.is_red.future": lights.is_red[:, _NOW:],
    }
    for name in _EGO:
        obs[f"ego.{name}.history"] = getattr(scene.ego, name)[:_NOW]
        priv[f"ego.{name}.future"] = getattr(scene.ego, name)[_NOW:]
    for name in _AGENT_TIME:
        obs[f"agents.{name}.history"] = getattr(agents, name)[:, :_NOW]
        priv[f"agents.{name}.future"] = getattr(agents, name)[:, _NOW:]
    for name in _MAP_PLAIN:
        obs[f"map.{name}"] = getattr(scene.map, name)
    successors = scene.map.lane_successors
    obs["map.lane_successors.offsets"] = np.cumsum([0, *map(len, successors)], dtype=np.int32)
    obs["map.lane_successors.ids"] = np.fromiter((i for s in successors for i in s), np.int64)
    return {SHARDS: obs, PRIVILEGED: priv}


def _exact(spec: FieldSpec, value: object) -> np.ndarray:
    """`value` as the spec's dtype; refuses a lossy cast (e.g. int64 category 300 -> int8)."""
    array = np.asarray(value)
    dtype = spec.numpy_dtype
    if array.dtype != dtype:
        cast = array.astype(dtype)
        if not np.array_equal(cast, array):
            raise DatasetError(
                f"field {spec.name}: dtype {array.dtype} does not fit the stored {dtype} exactly"
            )
        array = cast
    return array


def _wkb(geoms: np.ndarray) -> list[bytes]:
    return list(shapely.to_wkb(geoms, byte_order=1, include_srid=False, output_dimension=3))


def encode_column(spec: FieldSpec, values: Sequence[object]) -> pa.Array:
    """One arrow column of `spec` from per-scene values."""
    if spec.kind == "scalar":
        return pa.array(list(values), spec.arrow_type)
    if spec.kind == "geometry":
        return pa.array(_wkb(np.asarray(values, dtype=object)), pa.binary())
    if spec.kind == "tensor":
        data = np.stack([_exact(spec, v) for v in values])
        if data.shape[1:] != spec.inner:
            raise DatasetError(f"field {spec.name}: shape {data.shape[1:]} is not the stored {spec.inner}")
        return pa.FixedSizeListArray.from_arrays(pa.array(data.reshape(-1)), math.prod(spec.inner))
    if spec.kind == "geometries":
        parts = [np.asarray(v, dtype=object).reshape(-1) for v in values]
        inner: pa.Array = pa.array(_wkb(np.concatenate(parts)), pa.binary())
    else:  # ragged
        parts = [_exact(spec, v) for v in values]
        for part in parts:
            if part.ndim == 0 or part.shape[1:] != spec.inner:
                raise DatasetError(f"field {spec.name}: shape {part.shape} does not match {spec.shape}")
        flat = np.concatenate([p.reshape(-1) for p in parts])
        inner = pa.array(flat, pa.from_numpy_dtype(spec.numpy_dtype))
        if spec.inner:
            inner = pa.FixedSizeListArray.from_arrays(inner, math.prod(spec.inner))
    offsets = np.cumsum([0, *(len(p) for p in parts)], dtype=np.int64)
    if offsets[-1] >= 2**31:
        raise DatasetError(f"field {spec.name}: {offsets[-1]} items in one shard; use smaller shards")
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), inner)


def encode_table(part: str, scenes: Sequence[dict[str, dict[str, object]]]) -> pa.Table:
    """The shards/ or privileged/ table of `scenes` (outputs of `scene_values`), with store metadata."""
    columns = [encode_column(spec, [s[part][spec.name] for s in scenes]) for spec in PART_FIELDS[part]]
    return pa.Table.from_arrays(columns, schema=part_schema(part))


class DecodedPart:
    """One shard file decoded into numpy: tensors (R, *shape); ragged fields as (flat data, offsets)."""

    def __init__(self, part: str, table: pa.Table, where: str):
        self.num_rows = table.num_rows
        self.data: dict[str, list | np.ndarray] = {}  # scalars as lists; tensors, geometries, ragged data
        self.offsets: dict[str, np.ndarray] = {}
        self.specs = PART_FIELDS[part]
        for spec in self.specs:
            if spec.name not in table.column_names:
                raise DatasetError(f"{where}: missing column {spec.name!r}")
            column = table.column(spec.name)
            if not column.type.equals(spec.arrow_type):
                raise DatasetError(
                    f"{where}: column {spec.name!r} has type {column.type}, expected {spec.arrow_type}"
                )
            array = column.combine_chunks()
            if spec.kind == "scalar":
                self.data[spec.name] = array.to_pylist()
            elif spec.kind == "geometry":
                self.data[spec.name] = shapely.from_wkb(array.to_numpy(zero_copy_only=False))
            elif spec.kind == "tensor":
                flat = array.flatten().to_numpy(zero_copy_only=False)
                self.data[spec.name] = flat.reshape(self.num_rows, *spec.inner)
            else:
                offsets = array.offsets.to_numpy().astype(np.int64)
                self.offsets[spec.name] = offsets - offsets[0]
                flat = array.flatten()
                if spec.kind == "geometries":
                    self.data[spec.name] = shapely.from_wkb(flat.to_numpy(zero_copy_only=False))
                    continue
                if spec.inner:
                    flat = flat.flatten()
                self.data[spec.name] = flat.to_numpy(zero_copy_only=False).reshape(-1, *spec.inner)

    def row(self, r: int) -> dict[str, Any]:
        """Fresh (writable, unshared) values of row `r`."""
        out: dict[str, Any] = {}
        for spec in self.specs:
            data = self.data[spec.name]
            if spec.kind in ("scalar", "geometry"):
                out[spec.name] = data[r]
            elif spec.kind == "tensor":
                out[spec.name] = data[r].copy()
            else:
                lo, hi = self.offsets[spec.name][r : r + 2]
                out[spec.name] = data[lo:hi].copy()
        return out


def assemble_scene(obs: dict[str, Any], priv: dict[str, Any] | None) -> DriveScene:
    """The DriveScene of one row. Without `priv`, a history-only scene (steps 0..CURRENT_INDEX) whose
    `observation()` equals the full scene's; it is not a valid DriveScene and must not leave the store."""

    def steps(name: str, axis: int) -> np.ndarray:
        history = obs[f"{name}.history"]
        return history if priv is None else np.concatenate([history, priv[f"{name}.future"]], axis=axis)

    offsets, ids = obs["map.lane_successors.offsets"].tolist(), obs["map.lane_successors.ids"].tolist()
    successors = tuple(tuple(ids[lo:hi]) for lo, hi in itertools.pairwise(offsets))
    return DriveScene(
        metadata=SceneMetadata(
            obs["scene_id"],
            obs["seed"],
            obs["split"],
            ScenarioType(obs["scenario_type"]),
            obs["generator_version"],
        ),
        ego=EgoState(*(steps(f"ego.{name}", 0) for name in _EGO)),
        agents=AgentTracks(
            obs["agents.track_ids"],
            obs["agents.category"],
            obs["agents.size"],
            *(steps(f"agents.{name}", 1) for name in _AGENT_TIME),
        ),
        map=MapLayers(**{name: obs[f"map.{name}"] for name in _MAP_PLAIN}, lane_successors=successors),
        route=Route(tuple(obs["route.lane_ids"].tolist()), obs["route.centerline"]),
        command=DrivingCommand(obs["command"]),
        traffic_lights=TrafficLights(obs["traffic_lights.lane_ids"], steps("traffic_lights.is_red", 1)),
    )
