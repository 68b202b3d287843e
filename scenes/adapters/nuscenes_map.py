"""A nuScenes map expansion (`nuscenes.map_expansion.map_api.NuScenesMap`) read as `scenes.maps.MapLayers`.

The map frame is the expansion's own (metres, the frame of `ego_pose` and `sample_annotation`). Every layer is
converted once per map (lazily) and cut into cached tiles, as `scenes.adapters.nuplan_maps` does. Choices:

- **Ids.** A token becomes an int64 through `element_id`: a 32-hex-char token (every nuScenes token) keeps
  its first 16 hex digits, read as a signed int64; any other token the first 8 bytes of its sha256. Within a
  map, two lanes (lanes and connectors share one id space) or two road blocks, segments or crossings whose
  ids collide are a SourceError naming both tokens.
- **Lanes.** Every `lane` and `lane_connector` with an arcline path is one MapLayers lane (a lane without one
  has no centreline and is left out); lanes are sorted by id. Centrelines are `discretize_lanes` at
  `resolution` (0.5 m), with the point repeated where two arcline segments meet kept once. Lane polygons are
  the record's polygon (`shapely.make_valid`, largest part). Boundaries are that polygon's exterior split by
  the side of the centreline each vertex lies on, ordered along the centreline (nuScenes' lane divider
  segments are not used: connectors have none and they repeat the polygon's nodes); with fewer than two
  vertices on a side, or no polygon, the centreline offset by half the lane's mean width (default 3.5 m).
  Successors: `connectivity[token]["outgoing"]` that are lanes of the map. Speed limits: NaN (none).
- **Road blocks.** A lane's roadblock id is the id of the `road_block` whose polygon holds the middle of its
  centreline (else the one overlapping its polygon most); a connector, or a lane in no road block, has its
  own id.
- **Drivable area.** `road_segment` polygons (INTERSECTION when `is_intersection`, else ROADBLOCK),
  `carpark_area` polygons (CARPARK), then every polygon of `drivable_area` (GENERIC, the authoritative
  drivable surface; clipped to the tile block in tiles, since they span whole districts). Ids: the record's.
- **Stop lines.** `stop_line` polygons become the mid-line of their minimum-area rectangle across the guarded
  lane (`_nuplan_convert.stop_lines`, as for nuPlan); the guarded lane is the non-connector lane whose polygon
  comes within 0.5 m of the polygon's centroid and whose centreline ends nearest to it, else -1.
- **Crosswalks**: `ped_crossing` polygons. Walkways, road and lane dividers and traffic lights have no
  MapLayers field and are not converted.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from scenes.adapters._nuplan_convert import stop_lines
from scenes.adapters.errors import SourceError
from scenes.adapters.map_tiles import TILE_SIZE, MapTiles
from scenes.geometry import largest_polygon, polygon_parts
from scenes.maps import DrivableKind, MapLayers

RESOLUTION = 0.5  # [m] between centreline points (discretize_lanes)

DEFAULT_LANE_WIDTH = 3.5  # [m] when a lane has no usable polygon
STOP_LANE_TOLERANCE = 0.5  # [m]
CLOSEST_LANE_RADIUS = 5.0  # [m], get_closest_lane's default
MAX_CHAIN_HOPS = 3  # successors between two route lanes
MAP_NAMES = ("singapore-onenorth", "singapore-hollandvillage", "singapore-queenstown", "boston-seaport")
_HEX32 = re.compile(r"[0-9a-f]{32}")


def element_id(token: str) -> int:
    """Stable int64 id of a nuScenes token: its first 16 hex digits as a signed int64 for a 32-hex-char token
    (the rest is dropped, so users check collisions), else the first 8 bytes of its sha256."""
    if _HEX32.fullmatch(token):
        value = int(token[:16], 16)
        return value - (1 << 64) if value >= 1 << 63 else value
    return int.from_bytes(hashlib.sha256(token.encode()).digest()[:8], "big", signed=True)


def unique_ids(tokens: list[str], where: str) -> np.ndarray:
    """(N,) int64 `element_id` of `tokens`; SourceError naming `where` and both tokens on a collision."""
    owner: dict[int, str] = {}
    for token in tokens:
        value = element_id(token)
        if owner.setdefault(value, token) != token:
            raise SourceError(f"{where}: tokens {owner[value]!r} and {token!r} map to the same id {value}")
    return np.array([element_id(t) for t in tokens], np.int64)


def check_map(dataroot: str | Path, map_name: str, where: str = "map name") -> Path:
    """`<dataroot>/maps/expansion/<map_name>.json`; SourceError for an unknown map name or a missing file."""
    if map_name not in MAP_NAMES:
        raise SourceError(f"{where}: unknown map name {map_name!r}; known: {', '.join(MAP_NAMES)}")
    path = Path(dataroot) / "maps" / "expansion" / f"{map_name}.json"
    if not path.is_file():
        raise SourceError(f"{path}: map expansion is missing ({where} names {map_name!r})")
    return path


def open_map(dataroot: str | Path, map_name: str) -> Any:
    """The devkit's `NuScenesMap`; SourceError for an unknown name, a missing or outdated (< 1.3) expansion,
    or a missing key."""
    path = check_map(dataroot, map_name)
    from nuscenes.map_expansion.map_api import NuScenesMap  # type: ignore[import-untyped]

    try:
        return NuScenesMap(dataroot=str(dataroot), map_name=map_name)
    except KeyError as error:
        raise SourceError(f"{path}: field {error.args[0]!r} is missing") from None
    except Exception as error:  # noqa: BLE001 - the devkit raises a bare Exception for an outdated map
        raise SourceError(f"{path}: {type(error).__name__}: {error}") from None


def _objects(items: list) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


@dataclass(frozen=True)
class _Lane:
    token: str
    connector: bool
    centerline: shapely.LineString
    polygon: shapely.Polygon


class NuScenesMapLayers:
    """One map expansion as MapLayers: converted once (lazily), with cached square tiles.

    Args:
        nusc_map: the devkit's map.
        resolution: [m] between discretised centreline points.
        tile_size: [m] side of the cached tiles.
    """

    def __init__(self, nusc_map: Any, resolution: float = RESOLUTION, tile_size: float = TILE_SIZE):
        self.nusc_map, self.resolution, self.tile_size = nusc_map, float(resolution), float(tile_size)
        self.where = str(getattr(nusc_map, "json_fname", getattr(nusc_map, "map_name", "map expansion")))
        self.tiles = MapTiles(self._converted, tile_size, _clip_generic)
        self._lane_polys: shapely.STRtree | None = None

    def _converted(self) -> MapLayers:
        try:
            return self._convert()
        except SourceError:
            raise
        except (KeyError, TypeError, ValueError) as error:
            raise SourceError(f"{self.where}: cannot convert the map ({type(error).__name__}: {error})") from None

    def layers(self) -> MapLayers:
        """The whole map (converted on first use, then kept)."""
        return self.tiles.layers()

    def layers_near(self, xy: np.ndarray, radius: float) -> MapLayers:
        """Every element within `radius` [m] of `xy` (2,), as `MapLayers.crop` selects them (GENERIC areas
        clipped to the tile block when `radius` <= tile_size)."""
        return self.tiles.layers_near(xy, radius)

    def closest_lane(self, x: float, y: float, heading: float | None = None,
                     radius: float = CLOSEST_LANE_RADIUS) -> int | None:
        """`NuScenesMap.get_closest_lane` on the converted lanes: among lanes whose polygon meets the square
        of half-side `radius` around (x, y), the one with the nearest centreline point; with `heading` [rad],
        only lanes whose direction at that point is within 90 degrees of it. None when there is none."""
        m = self.layers()
        if self._lane_polys is None:
            self._lane_polys = shapely.STRtree(m.lane_polygons)
        rows = self._lane_polys.query(shapely.box(x - radius, y - radius, x + radius, y + radius),
                                      predicate="intersects")
        best: tuple[float, int] | None = None
        for row in sorted(rows.tolist()):
            xy = shapely.get_coordinates(m.lane_centerlines[row])
            d = np.hypot(xy[:, 0] - x, xy[:, 1] - y)
            k = int(np.argmin(d))
            if heading is not None:
                a, b = xy[max(k - 1, 0)], xy[min(k + 1, len(xy) - 1)]
                turn = (np.arctan2(b[1] - a[1], b[0] - a[0]) - heading + np.pi) % (2 * np.pi) - np.pi
                if abs(turn) >= np.pi / 2:
                    continue
            if best is None or d[k] < best[0]:
                best = (float(d[k]), row)
        return None if best is None else int(m.lane_ids[best[1]])

    # --- conversion ---

    def _polygon(self, token: object) -> shapely.Polygon:
        if not isinstance(token, str) or not token:
            return shapely.Polygon()
        return largest_polygon(self.nusc_map.extract_polygon(token))

    def _convert(self) -> MapLayers:
        nm = self.nusc_map
        records = [(r, False) for r in nm.lane] + [(r, True) for r in nm.lane_connector]
        poses = nm.discretize_lanes([r["token"] for r, _ in records], self.resolution)
        lanes: list[_Lane] = []
        for record, connector in records:
            xy = np.array([p[:2] for p in poses.get(record["token"], [])], np.float64).reshape(-1, 2)
            if len(xy):
                xy = xy[np.concatenate([[True], np.any(xy[1:] != xy[:-1], axis=1)])]
            if len(xy) < 2:
                continue
            lanes.append(_Lane(record["token"], connector, shapely.LineString(xy),
                               self._polygon(record.get("polygon_token"))))
        lanes.sort(key=lambda lane: element_id(lane.token))
        ids = unique_ids([lane.token for lane in lanes], f"{self.where}: lane/lane_connector")
        centre = _objects([lane.centerline for lane in lanes])
        sides = [_boundaries(lane.centerline, lane.polygon) for lane in lanes]
        left, right = _objects([s[0] for s in sides]), _objects([s[1] for s in sides])
        polys = _objects([lane.polygon if not lane.polygon.is_empty else _side_polygon(a, b)
                          for lane, (a, b) in zip(lanes, sides, strict=True)])
        known = {lane.token: int(i) for lane, i in zip(lanes, ids.tolist(), strict=True)}
        successors = tuple(tuple(known[t] for t in nm.connectivity.get(lane.token, {}).get("outgoing", [])
                                 if t in known) for lane in lanes)
        is_connector = np.array([lane.connector for lane in lanes], bool)
        roadblocks = self._roadblocks(centre, polys, ids, is_connector)
        drivable, kinds, area_ids = self._drivable()
        stops, guarded = self._stop_lines(centre, polys, ids, is_connector)
        walks = [self._polygon(r["polygon_token"]) for r in nm.ped_crossing]
        return MapLayers(
            lane_ids=ids, lane_centerlines=centre, lane_left_boundaries=left, lane_right_boundaries=right,
            lane_polygons=polys, lane_successors=successors, lane_speed_limits=np.full(len(lanes), np.nan),
            lane_roadblock_ids=roadblocks, lane_is_connector=is_connector,
            drivable_polygons=drivable, drivable_kinds=kinds, drivable_ids=area_ids,
            stop_lines=stops, stop_line_lane_ids=guarded,
            crosswalks=_objects([w for w in walks if not w.is_empty]),
        ).validate()

    def _roadblocks(self, centre: np.ndarray, polys: np.ndarray, ids: np.ndarray, connector: np.ndarray
                    ) -> np.ndarray:
        blocks = self.nusc_map.road_block
        out = ids.copy()
        if not blocks or not len(ids):
            return out
        block_ids = unique_ids([b["token"] for b in blocks], f"{self.where}: road_block")
        block_polys = _objects([self._polygon(b["polygon_token"]) for b in blocks])
        tree = shapely.STRtree(block_polys)
        for row in np.flatnonzero(~connector):
            mid = shapely.line_interpolate_point(centre[row], 0.5, normalized=True)
            inside = tree.query(mid, predicate="within")
            if len(inside):
                out[row] = block_ids[int(np.min(inside))]
                continue
            near = tree.query(polys[row], predicate="intersects")
            if len(near):
                areas = shapely.area(shapely.intersection(block_polys[near], polys[row]))
                if areas.max() > 0:
                    out[row] = block_ids[int(near[int(np.argmax(areas))])]
        return out

    def _drivable(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        nm = self.nusc_map
        polys: list[shapely.Polygon] = []
        kinds: list[int] = []
        tokens: list[str] = []

        def add(geom: shapely.Geometry, kind: DrivableKind, token: str) -> None:
            for part in polygon_parts(geom):
                polys.append(part)
                kinds.append(int(kind))
                tokens.append(token)

        for seg in nm.road_segment:
            kind = DrivableKind.INTERSECTION if seg.get("is_intersection") else DrivableKind.ROADBLOCK
            add(self._polygon(seg["polygon_token"]), kind, seg["token"])
        for park in nm.carpark_area:
            add(self._polygon(park["polygon_token"]), DrivableKind.CARPARK, park["token"])
        for area in nm.drivable_area:
            for token in area.get("polygon_tokens", []):
                add(nm.extract_polygon(token), DrivableKind.GENERIC, area["token"])
        unique_ids(sorted(set(tokens)), f"{self.where}: road_segment/carpark_area/drivable_area")
        return (_objects(polys), np.array(kinds, np.int8),
                np.array([element_id(t) for t in tokens], np.int64))

    def _stop_lines(self, centre: np.ndarray, polys: np.ndarray, ids: np.ndarray, connector: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
        stops = [p for p in (self._polygon(r["polygon_token"]) for r in self.nusc_map.stop_line)
                 if not p.is_empty]
        if not stops:
            return _objects([]), np.zeros(0, np.int64)
        stop_polys = _objects(stops)
        cents = shapely.centroid(stop_polys)
        guard = np.full(len(stops), -1, np.int64)
        headings = np.full((len(stops), 2), np.nan)
        lanes = np.flatnonzero(~connector)
        if lanes.size:
            stop_row, lane_row = shapely.STRtree(polys[lanes]).query(cents, predicate="dwithin",
                                                                      distance=STOP_LANE_TOLERANCE)
            dist = shapely.distance(shapely.get_point(centre[lanes[lane_row]], -1), cents[stop_row])
            for k in np.lexsort((dist, stop_row))[::-1]:  # nearest last, so it wins
                row = lanes[lane_row[k]]
                guard[stop_row[k]] = ids[row]
                line = centre[row]
                s = shapely.line_locate_point(line, cents[stop_row[k]])
                a = shapely.get_coordinates(shapely.line_interpolate_point(line, max(s - 0.5, 0.0)))[0]
                b = shapely.get_coordinates(shapely.line_interpolate_point(line, min(s + 0.5, line.length)))
                b = b[0]
                headings[stop_row[k]] = b - a
        return stop_lines(stop_polys, headings), guard


_MAPS: dict[int, tuple[Any, NuScenesMapLayers]] = {}


def map_layers(nusc_map: Any) -> NuScenesMapLayers:
    """The converted layers of a devkit map, one per map object and process."""
    entry = _MAPS.get(id(nusc_map))
    if entry is None or entry[0] is not nusc_map:
        entry = (nusc_map, NuScenesMapLayers(nusc_map))
        _MAPS[id(nusc_map)] = entry
    return entry[1]


def _boundaries(centerline: shapely.LineString, polygon: shapely.Polygon
                ) -> tuple[shapely.LineString, shapely.LineString]:
    """(left, right) boundaries of a lane: the polygon's exterior vertices on each side of the centreline,
    ordered along it; the centreline offset by half the mean width when a side has fewer than 2 vertices."""
    width = DEFAULT_LANE_WIDTH
    if not polygon.is_empty:
        ring = shapely.get_coordinates(polygon.exterior)[:-1]
        s = shapely.line_locate_point(centerline, shapely.points(ring))
        foot = shapely.get_coordinates(shapely.line_interpolate_point(centerline, s))
        ahead = shapely.get_coordinates(
            shapely.line_interpolate_point(centerline, np.minimum(s + 0.25, centerline.length)))
        behind = shapely.get_coordinates(shapely.line_interpolate_point(centerline, np.maximum(s - 0.25, 0)))
        tangent = ahead - behind
        offset = ring - foot
        cross = tangent[:, 0] * offset[:, 1] - tangent[:, 1] * offset[:, 0]
        left, right = cross > 0, cross < 0
        if left.sum() >= 2 and right.sum() >= 2:
            lo, ro = np.argsort(s[left], kind="stable"), np.argsort(s[right], kind="stable")
            return shapely.LineString(ring[left][lo]), shapely.LineString(ring[right][ro])
        width = max(polygon.area / max(centerline.length, 1e-9), 0.5)  # mean width
    half = width / 2.0
    left_line = shapely.offset_curve(centerline, half)
    right_line = shapely.offset_curve(centerline, -half)
    return _as_line(left_line, centerline, half), _as_line(right_line, centerline, -half)


def _as_line(geom: shapely.Geometry, centerline: shapely.LineString, distance: float) -> shapely.LineString:
    """`geom` when it is a non-empty LineString running like the centreline, else the centreline's vertices
    shifted sideways by `distance` (left positive)."""
    if isinstance(geom, shapely.LineString) and not geom.is_empty and len(shapely.get_coordinates(geom)) >= 2:
        xy = shapely.get_coordinates(geom)
        c = shapely.get_coordinates(centerline)
        if np.hypot(*(xy[0] - c[0])) > np.hypot(*(xy[-1] - c[0])):
            xy = xy[::-1]
        return shapely.LineString(xy)
    c = shapely.get_coordinates(centerline)
    d = np.gradient(c, axis=0)
    n = np.stack([-d[:, 1], d[:, 0]], axis=1) / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    return shapely.LineString(c + distance * n)


def _side_polygon(left: shapely.LineString, right: shapely.LineString) -> shapely.Polygon:
    ring = np.concatenate([shapely.get_coordinates(left), shapely.get_coordinates(right)[::-1]])
    return largest_polygon(shapely.Polygon(ring))


def _clip_generic(layers: MapLayers, block: shapely.Geometry) -> MapLayers:
    """`layers` with GENERIC drivable polygons clipped to `block` (split into parts, each keeping its id)."""
    generic = layers.drivable_kinds == int(DrivableKind.GENERIC)
    if not generic.any():
        return layers
    polys, kinds, ids = [], [], []
    rows = zip(layers.drivable_polygons, layers.drivable_kinds, layers.drivable_ids, generic, strict=True)
    for poly, kind, i, clip in rows:
        for part in (polygon_parts(shapely.intersection(poly, block)) if clip else [poly]):
            polys.append(part)
            kinds.append(kind)
            ids.append(i)
    return replace(layers, drivable_polygons=_objects(polys), drivable_kinds=np.array(kinds, np.int8),
                   drivable_ids=np.array(ids, np.int64))


def route_lanes(layers: NuScenesMapLayers, poses: np.ndarray, road: MapLayers) -> tuple[int, ...]:
    """Route lane ids from the closest lanes at the current and future keyframe poses (J, 3) (the rule is in
    `scenes.adapters.nuscenes`' module doc); only lanes of `road` (the scene's map); empty: no lane now."""
    whole = layers.layers()
    succ = {int(i): tuple(s) for i, s in zip(whole.lane_ids.tolist(), whole.lane_successors, strict=True)}
    block = dict(zip(whole.lane_ids.tolist(), whole.lane_roadblock_ids.tolist(), strict=True))
    seq = [layers.closest_lane(float(p[0]), float(p[1]), float(p[2])) for p in poses]
    if seq[0] is None:
        return ()
    route = [seq[0]]
    for lane in seq[1:]:
        if lane is None or lane == route[-1] or lane in route:
            continue
        path = _path(succ, route[-1], lane)
        if path is not None:
            route += path
        elif block.get(lane) == block.get(route[-1]) and (len(route) == 1 or lane in succ.get(route[-2], ())):
            route[-1] = lane
        else:
            break
    while len(succ.get(route[-1], ())) == 1 and succ[route[-1]][0] not in route:  # no fork: follow it
        route.append(succ[route[-1]][0])
    in_map = set(road.lane_ids.tolist())
    kept: list[int] = []
    for lane in route:
        if lane not in in_map:
            break
        kept.append(lane)
    return tuple(kept)


def _path(succ: dict[int, tuple[int, ...]], start: int, goal: int) -> list[int] | None:
    """The lanes after `start` up to `goal` through successors (breadth first, <= MAX_CHAIN_HOPS), or None."""
    frontier: list[list[int]] = [[start]]
    for _ in range(MAX_CHAIN_HOPS):
        nxt = []
        for path in frontier:
            for s in sorted(succ.get(path[-1], ())):
                if s == goal:
                    return path[1:] + [s]
                if s not in path:
                    nxt.append(path + [s])
        frontier = nxt
    return None
