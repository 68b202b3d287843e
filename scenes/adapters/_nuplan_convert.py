"""nuPlan GPKG layers -> one `MapLayers` of a whole map location (the choices are documented in
`scenes.adapters.nuplan_maps`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import shapely

from scenes._checks import ValidationError
from scenes.adapters import _nuplan_gpkg as g
from scenes.adapters.errors import SourceError
from scenes.geometry import largest_polygon
from scenes.maps import DrivableKind, MapLayers

STOP_LANE_TOLERANCE = 0.5  # [m] a stop polygon's centroid this close to a lane polygon counts as inside it
DRIVABLE_LAYERS: tuple[tuple[str, DrivableKind], ...] = (
    (g.ROAD_SEGMENTS, DrivableKind.ROADBLOCK),
    (g.INTERSECTIONS, DrivableKind.INTERSECTION),
    (g.CARPARKS, DrivableKind.CARPARK),
    (g.GENERIC_DRIVABLE, DrivableKind.GENERIC),
)


def read_map_layers(path: Path, projection: str) -> MapLayers:
    """Every lane, connector, drivable area, stop line and crosswalk of the GPKG at `path`, in `projection`.

    Lanes are sorted by id; drivable polygons by (kind, fid, part); stop lines and crosswalks by fid.
    """
    lanes = g.read_layer(path, g.LANES, g.LANE_FIELDS, projection, optional=(g.SUCCESSORS_FIELD,))
    conns = g.read_layer(path, g.LANE_CONNECTORS, g.CONNECTOR_FIELDS, None, optional=(g.SUCCESSORS_FIELD,),
                         geometry=False)
    clash = np.intersect1d(lanes.fids, conns.fids)
    if clash.size:
        raise SourceError(f"{path}: layer {g.LANES} fid {clash[0]} collides with layer {g.LANE_CONNECTORS} "
                          f"fid {clash[0]}: lane and connector ids share one id space")
    cpolys = g.read_layer(path, g.CONNECTOR_POLYGONS, g.CONNECTOR_POLYGON_FIELDS, projection)
    crow = _rows(g.fid_values(cpolys, "lane_connector_fid"), conns.fids, cpolys, "lane_connector_fid")
    paths = g.read_layer(path, g.BASELINE_PATHS, g.BASELINE_FIELDS, projection)
    bounds = g.read_layer(path, g.BOUNDARIES, (), projection)

    is_conn = np.concatenate([np.zeros(len(lanes.fids), bool), np.ones(len(conns.fids), bool)])
    ids = np.concatenate([lanes.fids, conns.fids])
    order = np.argsort(ids, kind="stable")
    lane_paths = _rows(g.fid_values(paths, "lane_fid"), lanes.fids, paths, "lane_fid")
    conn_paths = _rows(g.fid_values(paths, "lane_connector_fid"), conns.fids, paths, "lane_connector_fid")
    centre = paths.geometries[np.concatenate([lane_paths, conn_paths])][order]
    centre = _linestrings(centre, ids[order], paths)
    sides = []
    for side in ("left_boundary_fid", "right_boundary_fid"):
        wanted = np.concatenate([g.fid_values(lanes, side), g.fid_values(cpolys, side)[crow]])[order]
        sides.append(_along(_linestrings(bounds.geometries[_rows(bounds.fids, wanted, bounds, "fid")],
                                         wanted, bounds), centre))
    polygons = np.concatenate([_polygons(lanes.geometries, lanes, lanes.fids),
                               _polygons(cpolys.geometries[crow], cpolys, cpolys.fids[crow])])
    speeds = np.concatenate([g.float_values(lanes, "speed_limit_mps"),
                             g.float_values(conns, "speed_limit_mps")])
    blocks = np.concatenate([g.fid_values(lanes, "lane_group_fid"),
                             g.fid_values(conns, "lane_group_connector_fid")])
    ids, is_conn, successors = ids[order], is_conn[order], _successors(lanes, conns)
    lane_polygons = polygons[order]
    stops, stop_lanes = _stop_lines(path, projection, conns, ids, centre, lane_polygons)
    kinds_ids_polys = [_areas(g.read_layer(path, layer, (), projection), kind)
                       for layer, kind in DRIVABLE_LAYERS]
    walks = _areas(g.read_layer(path, g.CROSSWALKS, (), projection), DrivableKind.GENERIC)[2]
    layers = MapLayers(
        lane_ids=ids,
        lane_centerlines=centre,
        lane_left_boundaries=sides[0],
        lane_right_boundaries=sides[1],
        lane_polygons=lane_polygons,
        lane_successors=tuple(successors.get(int(i), ()) for i in ids),
        lane_speed_limits=np.where(np.isfinite(speeds) & (speeds > 0), speeds, np.nan)[order],
        lane_roadblock_ids=blocks[order],
        lane_is_connector=is_conn,
        drivable_polygons=_objects([p for _, _, ps in kinds_ids_polys for p in ps]),
        drivable_kinds=np.concatenate([k for k, _, _ in kinds_ids_polys]).astype(np.int8),
        drivable_ids=np.concatenate([i for _, i, _ in kinds_ids_polys]).astype(np.int64),
        stop_lines=stops,
        stop_line_lane_ids=stop_lanes,
        crosswalks=walks,
    )
    try:
        layers.validate()
    except ValidationError as error:
        raise SourceError(f"{path}: {g.one_line(error)}") from error
    return layers


def _objects(items: list) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def _rows(keys: np.ndarray, wanted: np.ndarray, layer: g.VectorLayer, field: str) -> np.ndarray:
    """(K,) rows of `layer` whose `keys` (N,) equal each of `wanted` (K,) (first match).

    Raises:
        SourceError: naming `field` and the first wanted value that no row holds.
    """
    order = np.argsort(keys, kind="stable")
    pos = np.clip(np.searchsorted(keys[order], wanted), 0, max(len(keys) - 1, 0))
    found = (keys[order][pos] == wanted) if len(keys) else np.zeros(len(wanted), bool)
    if not found.all():
        raise SourceError(f"{layer.where(field)}: no feature with {field} {wanted[~found][0]}")
    return order[pos]


def _linestrings(geoms: np.ndarray, ids: np.ndarray, layer: g.VectorLayer) -> np.ndarray:
    """(K,) LineStrings; a MultiLineString is merged; SourceError for anything else."""
    out = np.asarray(geoms, dtype=object).copy()
    types = shapely.get_type_id(out)
    multi = np.flatnonzero(types == 5)
    if multi.size:
        out[multi] = shapely.line_merge(out[multi])
        types = shapely.get_type_id(out)
    bad = (types != 1) | shapely.is_empty(out)
    if bad.any():
        raise SourceError(f"{layer.where()}: feature for id {ids[bad][0]} is not a non-empty LineString")
    return out


def _along(bounds: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """`bounds` (K,) LineStrings reversed where they run against the centrelines (K,)."""
    if not len(bounds):
        return bounds
    def end(lines: np.ndarray, index: int) -> np.ndarray:
        return shapely.get_coordinates(shapely.get_point(lines, index))

    bs, be, cs, ce = end(bounds, 0), end(bounds, -1), end(centre, 0), end(centre, -1)
    dist = np.linalg.norm
    flip = dist(bs - cs, axis=1) + dist(be - ce, axis=1) > dist(bs - ce, axis=1) + dist(be - cs, axis=1)
    out = bounds.copy()
    out[flip] = shapely.reverse(out[flip])
    return out


def _polygons(geoms: np.ndarray, layer: g.VectorLayer, fids: np.ndarray) -> np.ndarray:
    """(K,) valid Polygons: invalid ones go through make_valid, multi-part ones keep their largest Polygon."""
    out = np.asarray(geoms, dtype=object).copy()
    fix = np.flatnonzero((shapely.get_type_id(out) != 3) | ~shapely.is_valid(out))
    for row in fix:
        out[row] = None if out[row] is None else largest_polygon(out[row])
    bad = np.flatnonzero(shapely.is_missing(out) | shapely.is_empty(out))
    if bad.size:
        raise SourceError(f"{layer.where()}: feature fid {fids[bad[0]]} has no polygon area")
    return out


def _areas(layer: g.VectorLayer, kind: DrivableKind) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(kinds, fids, Polygons) of every polygonal part of the layer (valid, non-empty; NULLs dropped)."""
    geoms = layer.geometries
    bad = ~shapely.is_valid(geoms) & ~shapely.is_missing(geoms)
    geoms = geoms.copy()
    geoms[bad] = shapely.make_valid(geoms[bad])
    parts, rows = shapely.get_parts(geoms, return_index=True)
    parts2, rows2 = shapely.get_parts(parts, return_index=True)  # collection -> MultiPolygon -> Polygon
    rows = rows[rows2]
    keep = (shapely.get_type_id(parts2) == 3) & ~shapely.is_empty(parts2)
    fids = layer.fids[rows[keep]]
    return np.full(len(fids), int(kind), np.int8), fids, np.asarray(parts2[keep], dtype=object)


def _successors(lanes: g.VectorLayer, conns: g.VectorLayer) -> dict[int, tuple[int, ...]]:
    """nuPlan's graph (lane -> connectors entering from it, by fid; connector -> its exit lane), after the
    ordered `diffplan_successor_fids` of a feature where that extension field is present."""
    derived: dict[int, list[int]] = {}
    entry, exit_ = g.fid_values(conns, "entry_lane_fid"), g.fid_values(conns, "exit_lane_fid")
    for cid, a, b in sorted(zip(conns.fids.tolist(), entry.tolist(), exit_.tolist(), strict=True)):
        if a >= 0:
            derived.setdefault(a, []).append(cid)
        if b >= 0:
            derived.setdefault(cid, []).append(b)
    out: dict[int, tuple[int, ...]] = {}
    for layer in (lanes, conns):
        given = (g.fid_lists(layer, g.SUCCESSORS_FIELD) if layer.has(g.SUCCESSORS_FIELD)
                 else ((),) * len(layer.fids))
        for fid, first in zip(layer.fids.tolist(), given, strict=True):
            rest = [s for s in derived.get(fid, []) if s not in first]
            out[fid] = tuple(dict.fromkeys([*first, *rest]))
    return out


def _stop_lines(path: Path, projection: str, conns: g.VectorLayer, ids: np.ndarray, centre: np.ndarray,
                lane_polygons: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(S,) LineStrings and (S,) int64 guarded lane ids of the stop polygons (see the module docstring)."""
    stops = g.read_layer(path, g.STOP_POLYGONS, g.STOP_POLYGON_FIELDS, projection)
    present = np.flatnonzero(~shapely.is_missing(stops.geometries) & ~shapely.is_empty(stops.geometries))
    polys = _polygons(stops.geometries[present], stops, stops.fids[present])
    fids = stops.fids[present]
    guard = dict.fromkeys(fids.tolist(), -1)
    entry = g.fid_values(conns, "entry_lane_fid")
    for cid, enter, listed in sorted(zip(conns.fids.tolist(), entry.tolist(),
                                         g.fid_lists(conns, "traffic_light_stop_line_fids"), strict=True)):
        for sid in listed:
            if guard.get(sid) == -1:
                guard[sid] = enter if enter >= 0 else cid
    lanes = np.array([guard[f] for f in fids.tolist()], np.int64)
    cents = shapely.centroid(polys)
    free = np.flatnonzero(lanes == -1)
    if free.size and ids.size:  # the lane whose polygon holds the centroid and whose centreline ends nearest
        stop_row, lane_row = shapely.STRtree(lane_polygons).query(cents[free], predicate="dwithin",
                                                                  distance=STOP_LANE_TOLERANCE)
        dist = shapely.distance(shapely.get_point(centre[lane_row], -1), cents[free][stop_row])
        for k in np.lexsort((dist, stop_row))[::-1]:  # nearest last, so it wins
            lanes[free[stop_row[k]]] = ids[lane_row[k]]
    row_of = {int(i): k for k, i in enumerate(ids.tolist())}
    rows = np.array([row_of.get(int(lane), -1) for lane in lanes], np.int64)
    headings = np.full((len(lanes), 2), np.nan)
    has = np.flatnonzero(rows >= 0)
    if has.size:
        lines = centre[rows[has]]
        s = shapely.line_locate_point(lines, cents[has])
        a = shapely.line_interpolate_point(lines, np.maximum(s - 0.5, 0.0))
        b = shapely.line_interpolate_point(lines, np.minimum(s + 0.5, shapely.length(lines)))
        headings[has] = shapely.get_coordinates(b) - shapely.get_coordinates(a)
    return stop_lines(polys, headings), lanes


def stop_lines(polys: np.ndarray, headings: np.ndarray) -> np.ndarray:
    """(S,) 2-point LineStrings [m]: the mid-line of each stop polygon's minimum-area rectangle.

    With the guarded lane's heading (row of `headings` (S, 2), NaN when there is no lane): the rectangle
    axis most perpendicular to it, oriented from the lane's left to its right (the heading points to the
    line's left). Without: the long axis, pointing to +x (+y when vertical).
    """
    coords, which = shapely.get_coordinates(shapely.convex_hull(polys), return_index=True)
    starts = np.searchsorted(which, np.arange(len(polys) + 1))
    ends = np.empty((len(polys), 2, 2))
    for k in range(len(polys)):
        c = min_area_rectangle(coords[starts[k]:starts[k + 1]])
        a = np.stack([(c[0] + c[3]) / 2, (c[1] + c[2]) / 2])  # along edge c0 -> c1
        b = np.stack([(c[0] + c[1]) / 2, (c[3] + c[2]) / 2])  # along edge c1 -> c2
        da, db = a[1] - a[0], b[1] - b[0]
        h = headings[k]
        if not np.isfinite(h).all() or not h.any():
            seg = a if da @ da >= db @ db else b
            v = seg[1] - seg[0]  # canonical direction: +x, or +y when vertical
            ends[k] = seg[::-1] if v[0] < -1e-9 * np.abs(v).max() or (abs(v[0]) <= 1e-9 * np.abs(v).max()
                                                                    and v[1] < 0) else seg
            continue
        cos_a = abs(da @ h) / max(float(np.linalg.norm(da)), 1e-300)
        cos_b = abs(db @ h) / max(float(np.linalg.norm(db)), 1e-300)
        seg = a if cos_a <= cos_b else b
        v = seg[1] - seg[0]
        ends[k] = seg[::-1] if v[0] * h[1] - v[1] * h[0] < 0 else seg
    return _objects(list(shapely.linestrings(ends))) if len(polys) else _objects([])


def min_area_rectangle(hull: np.ndarray) -> np.ndarray:
    """(4, 2) corners [m], in ring order, of the minimum-area rectangle around the convex hull points `hull`
    (M, 2) (rotating calipers over the hull edges, relative to the first point so that large UTM values keep
    their precision). A degenerate hull gives a zero-width rectangle."""
    origin = hull[0]
    rel = hull - origin
    edges = np.diff(rel, axis=0)
    lengths = np.linalg.norm(edges, axis=1)
    if not (lengths > 0).any():
        return np.repeat(origin[None], 4, axis=0)
    u = edges[lengths > 0] / lengths[lengths > 0, None]  # (K, 2) candidate axis directions
    v = np.stack([-u[:, 1], u[:, 0]], axis=1)
    pu, pv = rel @ u.T, rel @ v.T  # (M, K)
    lo_u, hi_u, lo_v, hi_v = pu.min(0), pu.max(0), pv.min(0), pv.max(0)
    k = int(np.argmin((hi_u - lo_u) * (hi_v - lo_v)))
    uv = np.array([(lo_u[k], lo_v[k]), (hi_u[k], lo_v[k]), (hi_u[k], hi_v[k]), (lo_u[k], hi_v[k])])
    return origin + uv[:, :1] * u[k] + uv[:, 1:] * v[k]
