"""Low-level nuPlan GPKG access shared by the map reader and writer: layer and field names, one layer read
the way nuPlan's `GPKGMapsDB.load_vector_layer` reads it, and parsers for nuPlan's fid-valued fields.

Every failure is a one-line `SourceError` naming the file and the layer / field / value.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyogrio  # type: ignore[import-untyped]
import pyogrio.raw  # type: ignore[import-untyped]
import pyproj
import shapely
import shapely.errors

from scenes.adapters.errors import SourceError

META = "meta"  # attribute table, columns key / value
PROJECTION_KEY = "projectedCoordSystem"
LANES = "lanes_polygons"
LANE_CONNECTORS = "lane_connectors"
CONNECTOR_POLYGONS = "gen_lane_connectors_scaled_width_polygons"
BASELINE_PATHS = "baseline_paths"
BOUNDARIES = "boundaries"
ROADBLOCKS = "lane_groups_polygons"
ROADBLOCK_CONNECTORS = "lane_group_connectors"
INTERSECTIONS = "intersections"
ROAD_SEGMENTS = "road_segments"
GENERIC_DRIVABLE = "generic_drivable_areas"
CARPARKS = "carpark_areas"
STOP_POLYGONS = "stop_polygons"
CROSSWALKS = "crosswalks"
WALKWAYS = "walkways"

LANE_FIELDS = ("lane_group_fid", "lane_index", "speed_limit_mps", "left_boundary_fid", "right_boundary_fid")
CONNECTOR_FIELDS = ("entry_lane_fid", "exit_lane_fid", "lane_group_connector_fid", "speed_limit_mps",
                    "traffic_light_stop_line_fids")
CONNECTOR_POLYGON_FIELDS = ("lane_connector_fid", "left_boundary_fid", "right_boundary_fid")
BASELINE_FIELDS = ("lane_fid", "lane_connector_fid")
ROADBLOCK_CONNECTOR_FIELDS = ("from_lane_group_fid", "to_lane_group_fid", "intersection_fid")
STOP_POLYGON_FIELDS = ("stop_polygon_type_fid",)
# diffplan extension (optional on read): the ordered successor fids of a lane / connector, comma-separated,
# for lane -> lane links that nuPlan can only express through connectors.
SUCCESSORS_FIELD = "diffplan_successor_fids"
TRAFFIC_LIGHT_STOP = 2  # nuPlan StopLineType.TRAFFIC_LIGHT


def one_line(error: BaseException) -> str:
    """The message of `error` on one line."""
    return " ".join(str(error).split())


@contextmanager
def gdal_errors(path: Path, what: str) -> Iterator[None]:
    """Turn GDAL / sqlite / WKB errors raised inside the block into a SourceError naming `path` and `what`."""
    try:
        yield
    except (RuntimeError, OSError, sqlite3.Error, shapely.errors.ShapelyError) as error:
        raise SourceError(f"{path}: {what}: cannot be read ({one_line(error)})") from error


def check_gpkg(path: Path) -> tuple[str, ...]:
    """The layer names of the GPKG at `path`; SourceError if it is absent, truncated or not a GPKG."""
    if not path.is_file():
        raise SourceError(f"{path}: map file is absent")
    with open(path, "rb") as f:
        header = f.read(100)
    if len(header) == 100 and header.startswith(b"SQLite format 3\x00"):
        page = int.from_bytes(header[16:18], "big")
        pages = int.from_bytes(header[28:32], "big")
        expected = (65536 if page == 1 else page) * pages
        if path.stat().st_size < expected:
            raise SourceError(f"{path}: file: truncated GPKG ({path.stat().st_size} of {expected} bytes)")
    with gdal_errors(path, "file"):
        listed = pyogrio.list_layers(path)
    return tuple(str(name) for name in listed[:, 0])


def read_projection(path: Path) -> str:
    """The `projectedCoordSystem` value of the `meta` table (nuPlan's target CRS for every layer)."""
    with gdal_errors(path, f"layer {META}"):
        _, _, _, values = pyogrio.raw.read(path, layer=META, read_geometry=False, columns=["key", "value"])
    if len(values) != 2:
        raise SourceError(f"{path}: layer {META}: needs the fields key and value")
    rows = np.flatnonzero(values[0] == PROJECTION_KEY)
    if rows.size == 0:
        raise SourceError(f"{path}: layer {META}: no row with key {PROJECTION_KEY}")
    projection = values[1][rows[0]]
    if not isinstance(projection, str) or not is_crs(projection):
        raise SourceError(f"{path}: layer {META} field value ({PROJECTION_KEY}): {projection!r} is not a CRS")
    return projection


@dataclass(frozen=True)
class VectorLayer:
    """One GPKG layer: N features in fid order.

    Attributes:
        path: the GPKG.
        name: the layer name.
        fids: (N,) int64 GPKG feature ids (1-based).
        geometries: (N,) object shapely geometries [m] in the map's projected CRS (None where NULL), or
            (0,) when the geometry was not read.
        field_names: the fields read.
        field_values: one (N,) array per field name, as GDAL returns it (integer fields holding NULL come back
            as float with NaN).
    """

    path: Path
    name: str
    fids: np.ndarray
    geometries: np.ndarray
    field_names: tuple[str, ...]
    field_values: tuple[np.ndarray, ...]

    def has(self, field: str) -> bool:
        """Whether `field` was read."""
        return field in self.field_names

    def field(self, field: str) -> np.ndarray:
        """(N,) values of `field`; SourceError if the layer lacks it."""
        if field not in self.field_names:
            raise SourceError(f"{self.path}: layer {self.name}: missing field {field}")
        return self.field_values[self.field_names.index(field)]

    def where(self, field: str = "") -> str:
        """`<file>: layer <name>[ field <field>]`, the prefix of every error about this layer."""
        return f"{self.path}: layer {self.name}" + (f" field {field}" if field else "")


def read_layer(path: Path, name: str, fields: tuple[str, ...], projection: str | None,
               optional: tuple[str, ...] = (), geometry: bool = True) -> VectorLayer:
    """Read layer `name` with `fields` (SourceError when absent) and `optional` ones (skipped when absent).

    As nuPlan: geometries go to `projection` (skipped when the layer's CRS equals it, or has none) and the
    fids are the GPKG feature ids.
    """
    if name not in check_gpkg_cached(path):
        raise SourceError(f"{path}: missing layer {name}")
    with gdal_errors(path, f"layer {name}"):
        meta, fids, wkb, values = pyogrio.raw.read(path, layer=name, columns=[*fields, *optional],
                                                   read_geometry=geometry, force_2d=True, return_fids=True)
        present = [str(f) for f in meta["fields"]]
        missing = [f for f in fields if f not in present]
        if missing:
            raise SourceError(f"{path}: layer {name}: missing field {missing[0]}")
        geoms = np.asarray(shapely.from_wkb(wkb), dtype=object) if geometry else np.empty(0, dtype=object)
        if geometry and projection is not None and meta["crs"] and geoms.size:
            geoms = _reproject(geoms, str(meta["crs"]), projection)
    return VectorLayer(path, name, np.asarray(fids, np.int64), geoms, tuple(present), tuple(values))


def check_gpkg_cached(path: Path) -> tuple[str, ...]:
    """`check_gpkg`, once per (path, size, mtime)."""
    stat = path.stat() if path.is_file() else None
    return _layers_of(path, None if stat is None else (stat.st_size, stat.st_mtime_ns))


@lru_cache(maxsize=64)
def _layers_of(path: Path, stamp: tuple[int, int] | None) -> tuple[str, ...]:
    return check_gpkg(path)


@lru_cache(maxsize=64)
def is_crs(text: str) -> bool:
    """Whether pyproj reads `text` (a PROJ string, WKT or authority code) as a CRS."""
    try:
        pyproj.CRS(text)
    except pyproj.exceptions.CRSError:
        return False
    return True


@lru_cache(maxsize=64)
def _transformer(source: str, target: str) -> pyproj.Transformer | None:
    """None when the two CRSs are equal (no reprojection, bit-exact coordinates)."""
    a, b = pyproj.CRS(source), pyproj.CRS(target)
    if a == b:
        return None
    return pyproj.Transformer.from_crs(a, b, always_xy=True)


def _reproject(geoms: np.ndarray, source: str, target: str) -> np.ndarray:
    transformer = _transformer(source, target)
    if transformer is None:
        return geoms

    def move(xy: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return np.asarray(shapely.transform(geoms, move), dtype=object)


def fid_values(layer: VectorLayer, field: str) -> np.ndarray:
    """(N,) int64 fids held by `field` (integer, float or string column); -1 where NULL or empty."""
    values = layer.field(field)
    if values.dtype.kind in "iu":
        return values.astype(np.int64)
    if values.dtype.kind == "f":
        bad = np.isfinite(values) & (values != np.round(values))
        if bad.any():
            raise SourceError(f"{layer.where(field)}: {values[bad][0]!r} is not an integer fid")
        return np.where(np.isfinite(values), values, -1).astype(np.int64)
    out = np.full(len(values), -1, np.int64)
    for row, value in enumerate(values):
        text = "" if value is None else str(value).strip()
        if text:
            out[row] = _parse_fid(text, layer, field)
    return out


def fid_lists(layer: VectorLayer, field: str) -> tuple[tuple[int, ...], ...]:
    """N tuples of the fids in a comma-separated `field` (nuPlan's `traffic_light_stop_line_fids`)."""
    out: list[tuple[int, ...]] = []
    for value in layer.field(field):
        if value is None or (isinstance(value, float) and not np.isfinite(value)):
            out.append(())
            continue
        out.append(tuple(_parse_fid(t.strip(), layer, field) for t in str(value).split(",") if t.strip()))
    return tuple(out)


def float_values(layer: VectorLayer, field: str) -> np.ndarray:
    """(N,) float64 of a numeric `field`; NaN where NULL."""
    values = layer.field(field)
    if values.dtype.kind in "iuf":
        return values.astype(np.float64)
    out = np.full(len(values), np.nan)
    for row, value in enumerate(values):
        if value is not None and str(value).strip():
            try:
                out[row] = float(value)
            except ValueError:
                raise SourceError(f"{layer.where(field)}: {value!r} is not a number") from None
    return out


def _parse_fid(text: str, layer: VectorLayer, field: str) -> int:
    try:
        return int(float(text)) if "." in text else int(text)
    except ValueError:
        raise SourceError(f"{layer.where(field)}: {text!r} is not an integer fid") from None
