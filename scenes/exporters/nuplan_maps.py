"""`MapLayers` written as nuPlan map GPKGs (test fixtures, and our synthetic worlds for NAVSIM's loaders).

`write_map_gpkg` writes every layer nuPlan's map API opens (`scenes.adapters.nuplan_maps` documents the
mapping), with GPKG fids equal to our ids, in the given projected CRS (so reading back needs no
reprojection and is bit-exact), plus:
- `meta`: an attribute table (key, value) with `projectedCoordSystem`;
- `lane_groups_polygons`: one feature per roadblock of non-connector lanes (fid = roadblock id): the union of
  its lane polygons;
- `lane_group_connectors`: one per roadblock of connectors (fid = roadblock id): the union of its connector
  polygons, `from_lane_group_fid` / `to_lane_group_fid` (roadblocks of its first connector's entry / exit
  lane) and `intersection_fid` (the intersection it overlaps most, NULL if none);
- `lane_index`: 0 for the leftmost lane of a roadblock, increasing to the right;
- connectors: `entry_lane_fid` = the first non-connector lane (by row) that lists the connector as a
  successor, `exit_lane_fid` = its first non-connector successor (NULL when none); the full ordered
  successor lists go to the diffplan extension field `diffplan_successor_fids`;
- `boundaries`: fid 2k+1 / 2k+2 are the left / right boundary of lane row k;
- `baseline_paths`: fid k+1 is the centreline of lane row k;
- stop polygons: fid k+1 is stop line k as a 0.5 m deep band around its end-to-end segment
  (`stop_polygon_type_fid` 2, traffic light), listed in the `traffic_light_stop_line_fids` of every connector
  entered from the lane it guards;
- drivable polygons of one (kind, id) become one feature, a MultiPolygon of the parts when there are several;
  crosswalks: fid k+1; `walkways`: empty.
Every file is written to a temporary name in the same folder, then renamed over the target.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyogrio  # type: ignore[import-untyped]
import pyogrio.raw  # type: ignore[import-untyped]
import shapely

from scenes._checks import ValidationError
from scenes.adapters import _nuplan_gpkg as g
from scenes.adapters.errors import SourceError
from scenes.adapters.nuplan_maps import MAP_LOCATIONS, MAP_VERSION_FILE
from scenes.maps import DrivableKind, MapLayers

FIXED_GPKG_DATE = "2000-01-01T00:00:00.000Z"  # written as every layer's last_change
DEFAULT_PROJECTIONS = (  # UTM zones of the four nuPlan cities, for locations written empty
    ("sg-one-north", "+proj=utm +zone=48 +datum=WGS84 +units=m +no_defs"),
    ("us-ma-boston", "+proj=utm +zone=19 +datum=WGS84 +units=m +no_defs"),
    ("us-nv-las-vegas-strip", "+proj=utm +zone=11 +datum=WGS84 +units=m +no_defs"),
    ("us-pa-pittsburgh-hazelwood", "+proj=utm +zone=17 +datum=WGS84 +units=m +no_defs"),
)
STOP_BAND_HALF_DEPTH = 0.25  # [m]
_KIND_LAYERS = ((DrivableKind.ROADBLOCK, g.ROAD_SEGMENTS), (DrivableKind.INTERSECTION, g.INTERSECTIONS),
                (DrivableKind.CARPARK, g.CARPARKS), (DrivableKind.GENERIC, g.GENERIC_DRIVABLE))


@dataclass(frozen=True)
class _Field:
    """One column: name, (N,) values, and (N,) bool NULL mask (or None)."""

    name: str
    values: np.ndarray
    null: np.ndarray | None = None


def _objects(items: Sequence[object]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = list(items)
    return out


def _fid_field(name: str, fids: Iterable[int]) -> _Field:
    values = np.asarray(list(fids), np.int64)
    return _Field(name, values, values < 0)


def _text(rows: Sequence[Sequence[int]]) -> np.ndarray:
    return _objects([",".join(str(int(i)) for i in r) if len(r) else None for r in rows])


def _write(path: Path, layer: str, geoms: np.ndarray | None, fields: Sequence[_Field], fids: np.ndarray,
           projection: str, geometry_type: str = "Polygon") -> None:
    """Write one layer (geoms None: an attribute table) whose GPKG fids are `fids` (N,)."""
    if geoms is not None and len(geoms) and (shapely.get_type_id(geoms) == 6).any():
        geometry_type = "MultiPolygon"
        geoms = _objects([p if isinstance(p, shapely.MultiPolygon) else shapely.MultiPolygon([p])
                          for p in geoms])
    cols = [_Field("fid", np.asarray(fids, np.int64)), *fields]
    pyogrio.raw.write(
        path, None if geoms is None else np.asarray(shapely.to_wkb(geoms), dtype=object),
        [c.values for c in cols], [c.name for c in cols], field_mask=[c.null for c in cols], layer=layer,
        driver="GPKG", geometry_type=None if geoms is None else geometry_type,
        crs=None if geoms is None else projection)


def _lane_index(layers: MapLayers, rows: np.ndarray) -> np.ndarray:
    """(len(rows),) lane_index within one roadblock: 0 leftmost, by lateral offset of centreline middles."""
    first = shapely.get_coordinates(layers.lane_centerlines[rows[0]])
    d = first[-1] - first[0]
    left = np.array([-d[1], d[0]]) / max(float(np.linalg.norm(d)), 1e-12)
    mids = shapely.get_coordinates(shapely.line_interpolate_point(layers.lane_centerlines[rows], 0.5,
                                                                  normalized=True))
    order = np.argsort(-(mids @ left), kind="stable")
    out = np.empty(len(rows), np.int64)
    out[order] = np.arange(len(rows))
    return out


def _groups(ids: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(id, rows) for each distinct id in order of first appearance."""
    uniq, first = np.unique(ids, return_index=True)
    return [(int(uniq[k]), np.flatnonzero(ids == uniq[k])) for k in np.argsort(first)]


def _stop_band(line: shapely.LineString) -> shapely.Polygon:
    xy = shapely.get_coordinates(line)[[0, -1]]
    d = xy[1] - xy[0]
    n = np.array([-d[1], d[0]]) / max(float(np.linalg.norm(d)), 1e-12) * STOP_BAND_HALF_DEPTH
    return shapely.Polygon([xy[0] + n, xy[1] + n, xy[1] - n, xy[0] - n])


def _union(polys: np.ndarray) -> shapely.Geometry:
    merged = shapely.union_all(shapely.make_valid(polys))
    parts = [p for p in shapely.get_parts(merged) if isinstance(p, shapely.Polygon) and not p.is_empty]
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)


def write_map_gpkg(path: str | Path, layers: MapLayers, projection: str) -> None:
    """Write `layers` (coordinates [m] in `projection`, a PROJ string or EPSG code) as a nuPlan map GPKG.

    Raises:
        SourceError: naming `path` and the field, when `layers` is invalid or the projection unknown.
    """
    path = Path(path)
    try:  # NaN speed limits ("no limit") are written as NULL; everything else must pass validate()
        replace(layers, lane_speed_limits=np.nan_to_num(layers.lane_speed_limits, nan=1.0)).validate()
    except ValidationError as error:
        raise SourceError(f"{path}: {g.one_line(error)}") from error
    for name in ("lane_ids", "lane_roadblock_ids", "drivable_ids"):
        ids = getattr(layers, name)
        if ids.size and ids.min() < 1:
            raise SourceError(f"{path}: field {name}: id {ids.min()} is not a positive GPKG fid")
    if not g.is_crs(projection):
        raise SourceError(f"{path}: layer {g.META} field value ({g.PROJECTION_KEY}): {projection!r} "
                          "is not a CRS")
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.gpkg")
    tmp.unlink(missing_ok=True)
    options = {"OGR_SQLITE_SYNCHRONOUS": "OFF",  # no fsync per layer (15 layers: seconds); one before the rename
               "OGR_CURRENT_DATE": FIXED_GPKG_DATE}  # gpkg_contents.last_change: same inputs, same bytes
    previous = {key: pyogrio.get_gdal_config_option(key) for key in options}
    try:
        pyogrio.set_gdal_config_options(options)
        _write_all(tmp, layers, projection)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        pyogrio.set_gdal_config_options(previous)
        tmp.unlink(missing_ok=True)


def _write_all(path: Path, m: MapLayers, proj: str) -> None:
    L = m.num_lanes
    rows = np.arange(L)
    conn = m.lane_is_connector
    row_of = {int(i): k for k, i in enumerate(m.lane_ids)}
    preds: dict[int, list[int]] = {}
    for k, succ in enumerate(m.lane_successors):
        for s in succ:
            preds.setdefault(int(s), []).append(k)
    lanes, conns = rows[~conn], rows[conn]
    succ_text = _text(m.lane_successors)
    speeds = np.asarray(m.lane_speed_limits, np.float64)

    def first_lane(candidates: Iterable[int]) -> int:
        return next((int(m.lane_ids[k]) for k in candidates if not conn[k]), -1)

    entry = [first_lane(preds.get(int(m.lane_ids[k]), [])) for k in conns]
    exit_ = [first_lane(row_of[int(s)] for s in m.lane_successors[k] if int(s) in row_of) for k in conns]
    stops_of: dict[int, list[int]] = {}
    for s, guarded in enumerate(m.stop_line_lane_ids.tolist()):
        stops_of.setdefault(guarded, []).append(s + 1)
    stop_lists = [stops_of.get(e, []) if e >= 0 else [] for e in entry]
    lane_index = np.zeros(L, np.int64)
    for _, group in _groups(m.lane_roadblock_ids[lanes]):
        lane_index[lanes[group]] = _lane_index(m, lanes[group])

    _write(path, g.META, None, [_Field("key", np.array([g.PROJECTION_KEY], dtype=object)),
                                _Field("value", np.array([proj], dtype=object))], np.array([1]), proj)
    _write(path, g.LANES, m.lane_polygons[lanes], [
        _fid_field("lane_group_fid", m.lane_roadblock_ids[lanes]), _Field("lane_index", lane_index[lanes]),
        _Field("speed_limit_mps", speeds[lanes]), _fid_field("left_boundary_fid", 2 * lanes + 1),
        _fid_field("right_boundary_fid", 2 * lanes + 2), _Field(g.SUCCESSORS_FIELD, succ_text[lanes]),
    ], m.lane_ids[lanes], proj)
    _write(path, g.LANE_CONNECTORS, m.lane_centerlines[conns], [
        _fid_field("entry_lane_fid", entry), _fid_field("exit_lane_fid", exit_),
        _fid_field("lane_group_connector_fid", m.lane_roadblock_ids[conns]),
        _Field("speed_limit_mps", speeds[conns]), _Field("traffic_light_stop_line_fids", _text(stop_lists)),
        _Field(g.SUCCESSORS_FIELD, succ_text[conns]),
    ], m.lane_ids[conns], proj, "LineString")
    _write(path, g.CONNECTOR_POLYGONS, m.lane_polygons[conns], [
        _fid_field("lane_connector_fid", m.lane_ids[conns]), _fid_field("left_boundary_fid", 2 * conns + 1),
        _fid_field("right_boundary_fid", 2 * conns + 2)], m.lane_ids[conns], proj)
    _write(path, g.BASELINE_PATHS, m.lane_centerlines, [
        _fid_field("lane_fid", np.where(conn, -1, m.lane_ids)),
        _fid_field("lane_connector_fid", np.where(conn, m.lane_ids, -1))], rows + 1, proj, "LineString")
    bounds = np.empty(2 * L, dtype=object)
    bounds[0::2], bounds[1::2] = m.lane_left_boundaries, m.lane_right_boundaries
    _write(path, g.BOUNDARIES, bounds, [], np.arange(1, 2 * L + 1), proj, "LineString")
    blocks = _groups(m.lane_roadblock_ids[lanes])
    _write(path, g.ROADBLOCKS, _objects([_union(m.lane_polygons[lanes[r]]) for _, r in blocks]),
           [], np.array([b for b, _ in blocks], np.int64), proj)
    _write_roadblock_connectors(path, m, conns, entry, exit_, row_of, proj)
    kinds = m.drivable_kinds.astype(np.int64)
    for kind, layer in _KIND_LAYERS:
        sel = np.flatnonzero(kinds == int(kind))
        groups = _groups(m.drivable_ids[sel])
        geoms = [shapely.MultiPolygon(list(m.drivable_polygons[sel[r]])) if len(r) > 1
                 else m.drivable_polygons[sel[r[0]]] for _, r in groups]
        _write(path, layer, _objects(geoms), [],
               np.array([i for i, _ in groups], np.int64), proj)
    S = len(m.stop_lines)
    _write(path, g.STOP_POLYGONS, _objects([_stop_band(s) for s in m.stop_lines]),
           [_Field("stop_polygon_type_fid", np.full(S, g.TRAFFIC_LIGHT_STOP, np.int64))],
           np.arange(1, S + 1), proj)
    _write(path, g.CROSSWALKS, m.crosswalks, [], np.arange(1, len(m.crosswalks) + 1), proj)
    _write(path, g.WALKWAYS, np.empty(0, dtype=object), [], np.empty(0, np.int64), proj)


def _write_roadblock_connectors(path: Path, m: MapLayers, conns: np.ndarray, entry: list[int],
                                exit_: list[int], row_of: dict[int, int], proj: str) -> None:
    inter = np.flatnonzero(m.drivable_kinds.astype(np.int64) == int(DrivableKind.INTERSECTION))
    geoms, fids, frm, to, where = [], [], [], [], []
    for block, r in _groups(m.lane_roadblock_ids[conns]):
        poly = _union(m.lane_polygons[conns[r]])
        overlap = shapely.area(shapely.intersection(m.drivable_polygons[inter], poly)) if inter.size else []
        geoms.append(poly)
        fids.append(block)
        frm.append(int(m.lane_roadblock_ids[row_of[entry[r[0]]]]) if entry[r[0]] in row_of else -1)
        to.append(int(m.lane_roadblock_ids[row_of[exit_[r[0]]]]) if exit_[r[0]] in row_of else -1)
        best = int(np.argmax(overlap)) if len(overlap) else -1
        where.append(int(m.drivable_ids[inter[best]]) if best >= 0 and overlap[best] > 0 else -1)
    _write(path, g.ROADBLOCK_CONNECTORS, _objects(geoms),
           [_fid_field("from_lane_group_fid", frm), _fid_field("to_lane_group_fid", to),
            _fid_field("intersection_fid", where)], np.array(fids, np.int64), proj)


def write_maps_root(root: str | Path, maps: dict[str, tuple[MapLayers, str]],
                    version: str = "9.12.1883") -> None:
    """Write `<root>/<location>/<version>/map.gpkg` for all four MAP_LOCATIONS, plus `nuplan-maps-v1.0.json`.

    Args:
        root: the maps root folder (created if absent).
        maps: location -> (MapLayers [m] in the projection, projection); locations not given get empty
            layers (NAVSIM's loader opens the `lane_connectors` layer of every location).
        version: the map version folder name.
    """
    root = Path(root)
    unknown = sorted(set(maps) - set(MAP_LOCATIONS))
    if unknown:
        raise SourceError(f"{root / MAP_VERSION_FILE}: unknown map location {unknown[0]!r}; "
                          f"known: {', '.join(MAP_LOCATIONS)}")
    for location, projection in DEFAULT_PROJECTIONS:
        layers, proj = maps.get(location, (_empty_layers(), projection))
        folder = root / location / version
        folder.mkdir(parents=True, exist_ok=True)
        write_map_gpkg(folder / "map.gpkg", layers, proj)
    doc = {location: {"version": version, "layers": {}} for location in MAP_LOCATIONS}
    target = root / MAP_VERSION_FILE
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, target)


def _empty_layers() -> MapLayers:
    none = np.empty(0, dtype=object)
    ints = np.empty(0, np.int64)
    return MapLayers(lane_ids=ints, lane_centerlines=none, lane_left_boundaries=none,
                     lane_right_boundaries=none, lane_polygons=none, lane_successors=(),
                     lane_speed_limits=np.empty(0), lane_roadblock_ids=ints,
                     lane_is_connector=np.empty(0, bool), drivable_polygons=none,
                     drivable_kinds=np.empty(0, np.int8), drivable_ids=ints, stop_lines=none,
                     stop_line_lane_ids=ints, crosswalks=none)
