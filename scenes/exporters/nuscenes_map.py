"""A nuScenes map expansion (v1.3 JSON, what `nuscenes.map_expansion.map_api.NuScenesMap` reads) and the
legacy semantic-prior mask PNG (the `map` table's file), built from our scenes' MapLayers already placed on
one canvas.

Layers written: lane (non-connector lanes) and lane_connector (intersection lanes), each with a polygon and an
`arcline_path_3` entry: the centreline as one straight arcline path per polyline segment (shape "LSL", segment
lengths [0, length, 0], so `discretize_lanes` gives back points on our centreline), and `connectivity` from
`lane_successors`. drivable_area (one record per connected part of a scene's drivable polygons), road_segment
(one per drivable polygon; intersections flagged), road_block (one per roadblock of non-connector lanes: its
roadblock polygon, else the union of its lanes), carpark_area, ped_crossing (our crosswalks), stop_line (our
stop lines buffered to 0.6 m wide polygons; TRAFFIC_LIGHT type with one traffic_light record where the guarded
lane or one of its successors has a light, else STOP_SIGN), lane_divider (a lane's left boundary shared with
a lane of the same roadblock), road_divider (a left boundary shared with an opposite roadblock's), walkway
(empty). Lanes list their left/right boundary nodes as divider segments.
"""

from __future__ import annotations

import io
import itertools

import numpy as np
import shapely
from PIL import Image, ImageDraw

from scenes.drive import DriveScene
from scenes.exporters.nuscenes_tables import token
from scenes.geometry import polygon_parts
from scenes.maps import DrivableKind, MapLayers

MAP_VERSION = "1.3"
MASK_RESOLUTION = 0.1  # [m/px], the devkit's native map-mask resolution
STOP_LINE_HALF_WIDTH = 0.3  # [m]
SHARED_BOUNDARY = 0.3  # [m] midpoint distance under which two lane boundaries are one divider
LANE_FALLBACK_HALF_WIDTH = 1.75  # [m] polygon of a lane whose own polygon is empty
TRAFFIC_LIGHT_HEIGHT = 2.5  # [m]
LAYERS = ("node", "line", "polygon", "drivable_area", "road_segment", "road_block", "lane", "ped_crossing",
          "walkway", "stop_line", "carpark_area", "road_divider", "lane_divider", "traffic_light", "lane_connector")


class _Builder:
    """Accumulates the expansion's records; every token is a sha256 of the map name and a content path."""

    def __init__(self, map_name: str, canvas: tuple[float, float]) -> None:
        self.map_name = map_name
        self.json: dict = {name: [] for name in LAYERS}
        self.json.update(version=MAP_VERSION, canvas_edge=[float(canvas[0]), float(canvas[1])],
                         arcline_path_3={}, connectivity={})

    def tok(self, *parts: object) -> str:
        return token(self.map_name, *parts)

    def nodes(self, coords: np.ndarray, *key: object) -> list[str]:
        tokens = [self.tok("node", *key, i) for i in range(len(coords))]
        self.json["node"] += [{"token": t, "x": float(x), "y": float(y)}
                              for t, (x, y) in zip(tokens, coords[:, :2], strict=True)]
        return tokens

    def line(self, coords: np.ndarray, *key: object) -> str:
        line_token = self.tok("line", *key)
        self.json["line"].append({"token": line_token, "node_tokens": self.nodes(coords, "line", *key)})
        return line_token

    def polygon(self, polygon: shapely.Polygon, *key: object) -> str:
        polygon_token = self.tok("polygon", *key)
        exterior = shapely.get_coordinates(polygon.exterior)[:-1]
        holes = [{"node_tokens": self.nodes(shapely.get_coordinates(ring)[:-1], "hole", *key, h)}
                 for h, ring in enumerate(polygon.interiors)]
        self.json["polygon"].append({"token": polygon_token, "exterior_node_tokens": self.nodes(exterior, *key),
                                     "holes": holes})
        return polygon_token


def lane_token(map_name: str, lane_id: int) -> str:
    """The expansion token of our lane `lane_id` (a lane or lane_connector record, its arcline and connectivity)."""
    return token(map_name, "lane", int(lane_id))


def _lane_polygon(m: MapLayers, row: int) -> shapely.Polygon:
    parts = polygon_parts(m.lane_polygons[row])
    if parts:
        return max(parts, key=lambda p: p.area)
    return m.lane_centerlines[row].buffer(LANE_FALLBACK_HALF_WIDTH, cap_style="flat")


def _arclines(centerline: shapely.LineString) -> list[dict]:
    """One straight arcline path per segment of `centerline` (zero-length segments dropped)."""
    xy = shapely.get_coordinates(centerline)
    out = []
    for (x0, y0), (x1, y1) in itertools.pairwise(xy):
        length = float(np.hypot(x1 - x0, y1 - y0))
        if length < 1e-6:
            continue
        yaw = float(np.arctan2(y1 - y0, x1 - x0))
        out.append({"start_pose": [float(x0), float(y0), yaw], "end_pose": [float(x1), float(y1), yaw],
                    "shape": "LSL", "radius": 999.999, "segment_length": [0.0, length, 0.0]})
    return out


def _midpoint_distance(a: shapely.LineString, others: np.ndarray) -> np.ndarray:
    return shapely.distance(shapely.line_interpolate_point(a, 0.5, normalized=True), others)


def _add_scene(b: _Builder, scene: DriveScene, key: str) -> None:
    """Add the records of one placed scene's map; `key` (the scene name) keys its unnamed elements."""
    m = scene.map
    ids = m.lane_ids.tolist()
    present = set(ids)
    incoming: dict[int, list[int]] = {lane: [] for lane in ids}
    for lane, successors in zip(ids, m.lane_successors, strict=True):
        for nxt in successors:
            if nxt in present:
                incoming[nxt].append(lane)
    road = ~m.lane_is_connector
    for row, lane in enumerate(ids):
        lane_token = b.tok("lane", lane)
        polygon_token = b.polygon(_lane_polygon(m, row), "lane", lane)
        b.json["arcline_path_3"][lane_token] = _arclines(m.lane_centerlines[row])
        b.json["connectivity"][lane_token] = {
            "incoming": [b.tok("lane", i) for i in incoming[lane]],
            "outgoing": [b.tok("lane", s) for s in m.lane_successors[row] if s in present]}
        if m.lane_is_connector[row]:
            b.json["lane_connector"].append({"token": lane_token, "polygon_token": polygon_token})
            continue
        left, right = m.lane_left_boundaries[row], m.lane_right_boundaries[row]
        same_block = road & (m.lane_roadblock_ids == m.lane_roadblock_ids[row]) & (m.lane_ids != lane)
        other_block = road & (m.lane_roadblock_ids != m.lane_roadblock_ids[row])
        left_type, right_type = "NIL", "NIL"
        left_xy, right_xy = shapely.get_coordinates(left), shapely.get_coordinates(right)
        if (_midpoint_distance(left, m.lane_right_boundaries[same_block]) < SHARED_BOUNDARY).any():
            left_type = "SINGLE_DASHED_WHITE"
            b.json["lane_divider"].append({"token": b.tok("lane_divider", lane), "lane_divider_segments": [],
                                           "line_token": b.line(left_xy, "lane_divider", lane)})
        else:
            near = _midpoint_distance(left, m.lane_left_boundaries[other_block]) < SHARED_BOUNDARY
            if near.any():
                left_type = "DOUBLE_SOLID_YELLOW"
                if lane < min(m.lane_ids[other_block][near]):  # one divider per pair of opposite lanes
                    b.json["road_divider"].append({"token": b.tok("road_divider", lane), "road_segment_token": "",
                                                   "line_token": b.line(left_xy, "road_divider", lane)})
        if (_midpoint_distance(right, m.lane_left_boundaries[same_block]) < SHARED_BOUNDARY).any():
            right_type = "SINGLE_DASHED_WHITE"
        b.json["lane"].append({
            "token": lane_token, "polygon_token": polygon_token, "lane_type": "CAR",
            "from_edge_line_token": b.line(np.array([left_xy[0], right_xy[0]]), "lane_from", lane),
            "to_edge_line_token": b.line(np.array([left_xy[-1], right_xy[-1]]), "lane_to", lane),
            "left_lane_divider_segments": [{"node_token": t, "segment_type": left_type}
                                           for t in b.nodes(left_xy, "lane_left", lane)],
            "right_lane_divider_segments": [{"node_token": t, "segment_type": right_type}
                                            for t in b.nodes(right_xy, "lane_right", lane)]})
    _add_areas(b, scene, key)


def _add_areas(b: _Builder, scene: DriveScene, key: str) -> None:
    """Drivable area, road segments and blocks, car parks, crossings, stop lines and traffic lights."""
    m = scene.map
    areas = [p for poly in m.drivable_polygons for p in polygon_parts(poly)]
    union = shapely.union_all(areas) if areas else shapely.Polygon()
    parts = polygon_parts(union)
    part_tokens = [b.tok("drivable_area", key, k) for k in range(len(parts))]
    for k, part in enumerate(parts):
        b.json["drivable_area"].append({"token": part_tokens[k],
                                        "polygon_tokens": [b.polygon(part, "drivable_area", key, k)]})
    segments: list[tuple[str, shapely.Polygon]] = []
    for row, poly in enumerate(m.drivable_polygons):
        for j, part in enumerate(polygon_parts(poly)):
            kind = DrivableKind(int(m.drivable_kinds[row]))
            polygon_token = b.polygon(part, "area", key, row, j)
            if kind is DrivableKind.CARPARK:
                b.json["carpark_area"].append({"token": b.tok("carpark_area", key, row, j), "orientation": 0.0,
                                               "polygon_token": polygon_token, "road_block_token": ""})
                continue
            inside = [t for t, p in zip(part_tokens, parts, strict=True) if p.contains(part.representative_point())]
            segment_token = b.tok("road_segment", key, row, j)
            segments.append((segment_token, part))
            b.json["road_segment"].append({
                "token": segment_token, "polygon_token": polygon_token,
                "is_intersection": kind is DrivableKind.INTERSECTION,
                "drivable_area_token": inside[0] if inside else ""})

    def segment_of(geometry: shapely.Geometry) -> str:
        hits = [t for t, p in segments if p.intersects(geometry)]
        return hits[0] if hits else ""

    road = ~m.lane_is_connector
    for block in sorted(set(m.lane_roadblock_ids[road].tolist())):
        rows = np.flatnonzero(road & (m.lane_roadblock_ids == block))
        own = [p for r in np.flatnonzero(m.drivable_ids == block) for p in polygon_parts(m.drivable_polygons[r])]
        lanes = shapely.union_all([_lane_polygon(m, r) for r in rows])
        shape = max(own, key=lambda p: p.area) if own else max(polygon_parts(lanes.convex_hull), key=lambda p: p.area)
        b.json["road_block"].append({"token": b.tok("road_block", block), "from_edge_line_token": "",
                                     "to_edge_line_token": "", "polygon_token": b.polygon(shape, "road_block", block),
                                     "road_segment_token": segment_of(shape.representative_point())})
    for c, crosswalk in enumerate(m.crosswalks):
        for j, part in enumerate(polygon_parts(crosswalk)):
            b.json["ped_crossing"].append({"token": b.tok("ped_crossing", key, c, j),
                                           "polygon_token": b.polygon(part, "ped_crossing", key, c, j),
                                           "road_segment_token": segment_of(part)})
    _add_stop_lines(b, scene, key)


def _add_stop_lines(b: _Builder, scene: DriveScene, key: str) -> None:
    m = scene.map
    lit = set(scene.traffic_lights.lane_ids.tolist())
    ids = m.lane_ids.tolist()
    for s, (line, lane) in enumerate(zip(m.stop_lines, m.stop_line_lane_ids.tolist(), strict=True)):
        polygons = polygon_parts(line.buffer(STOP_LINE_HALF_WIDTH, cap_style="flat"))
        if not polygons:
            continue
        row = ids.index(lane) if lane in ids else -1
        guarded = {lane, *(m.lane_successors[row] if row >= 0 else ())}
        block = b.tok("road_block", int(m.lane_roadblock_ids[row])) if row >= 0 and not m.lane_is_connector[row] \
            else ""
        lights = []
        if guarded & lit:
            centre = shapely.line_interpolate_point(line, 0.5, normalized=True)
            yaw = 0.0
            if row >= 0:  # the light faces the traffic that approaches along the guarded lane
                lane_line = m.lane_centerlines[row]
                at = shapely.line_locate_point(lane_line, centre)
                a, c = (shapely.line_interpolate_point(lane_line, d) for d in (max(at - 1.0, 0.0), at + 1.0))
                yaw = float(np.arctan2(a.y - c.y, a.x - c.x))
            xy = np.array([[centre.x, centre.y], [centre.x + np.cos(yaw), centre.y + np.sin(yaw)]])
            light = b.tok("traffic_light", key, s)
            lights.append(light)
            b.json["traffic_light"].append({
                "token": light, "line_token": b.line(xy, "traffic_light", key, s), "traffic_light_type": "VERTICAL",
                "from_road_block_token": block, "items": [],
                "pose": {"tx": float(centre.x), "ty": float(centre.y), "tz": TRAFFIC_LIGHT_HEIGHT,
                         "rx": 0.0, "ry": 0.0, "rz": yaw}})
        b.json["stop_line"].append({
            "token": b.tok("stop_line", key, s), "polygon_token": b.polygon(polygons[0], "stop_line", key, s),
            "stop_line_type": "TRAFFIC_LIGHT" if lights else "STOP_SIGN", "ped_crossing_tokens": [],
            "traffic_light_tokens": lights, "road_block_token": block})


def map_expansion(scenes: list[DriveScene], keys: list[str], map_name: str, canvas: tuple[float, float]) -> dict:
    """The expansion JSON object of `scenes` (placed on the canvas), `keys[k]` naming scene k's elements."""
    b = _Builder(map_name, canvas)
    for scene, key in zip(scenes, keys, strict=True):
        _add_scene(b, scene, key)
    return b.json


def mask_png(scenes: list[DriveScene], canvas: tuple[float, float] | None) -> bytes:
    """The semantic-prior mask (8-bit, 255 on drivable polygons, lanes and crosswalks) at MASK_RESOLUTION over
    the canvas [m], row 0 at the canvas top (y = canvas height), as the devkit's MapMask reads it; canvas None:
    a 1 x 1 black placeholder."""
    width, height = (int(np.ceil(v / MASK_RESOLUTION)) for v in canvas) if canvas is not None else (1, 1)
    image = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(image)

    def pixels(ring: shapely.LinearRing) -> list[tuple[float, float]]:
        xy = shapely.get_coordinates(ring)
        return [(float(x) / MASK_RESOLUTION, height - float(y) / MASK_RESOLUTION) for x, y in xy]

    for scene in scenes if canvas is not None else []:
        m = scene.map
        for geometry in (*m.drivable_polygons, *m.lane_polygons, *m.crosswalks):
            for polygon in polygon_parts(geometry):
                draw.polygon(pixels(polygon.exterior), fill=255)
                for hole in polygon.interiors:
                    draw.polygon(pixels(hole), fill=0)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()
