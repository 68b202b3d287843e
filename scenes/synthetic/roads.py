"""Lane and map builders: lanes from reference lines, roadblock/intersection polygons, MapLayers."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
import shapely

from scenes.maps import DrivableKind, MapLayers, boundary_polygons
from scenes.portable import PortableRandom
from scenes.synthetic import polyline as pl


@dataclass
class Lane:
    """One lane in the local build frame. xy, left, right: (M, 2) [m]; width [m]; speed [m/s]."""

    id: int
    xy: np.ndarray
    left: np.ndarray
    right: np.ndarray
    width: float
    speed: float
    roadblock: int
    connector: bool = False
    successors: list[int] = field(default_factory=list)
    predecessors: list[int] = field(default_factory=list)

    @property
    def length(self) -> float:
        """Centreline length [m]."""
        return float(pl.arc_length(self.xy)[-1])

    def polygon(self) -> shapely.Polygon:
        """The lane's area, between its left and right borders."""
        return shapely.Polygon(np.concatenate([self.left, self.right[::-1]]))


class MapBuilder:
    """Collects lanes, polygons, stop lines and crosswalks; ids come from a seeded base."""

    def __init__(self, rng: PortableRandom):
        self.lanes: dict[int, Lane] = {}
        self._next_lane = int(rng.integers(1, 50_000)) * 10
        self._next_block = self._next_lane + 1_000_000
        self.intersections: list[tuple[int, shapely.Polygon]] = []
        self.stop_lines: list[tuple[int, np.ndarray]] = []
        self.crosswalks: list[shapely.Polygon] = []

    def new_roadblock(self) -> int:
        """A fresh roadblock id."""
        self._next_block += 1
        return self._next_block

    def add_lane(self, xy: np.ndarray, width: float, speed: float, roadblock: int, connector: bool = False,
                 left: np.ndarray | None = None, right: np.ndarray | None = None) -> int:
        """Add a lane with centerline xy (M, 2); boundaries default to +-width/2 offsets."""
        self._next_lane += 1
        lane_id = self._next_lane
        left = pl.offset(xy, width / 2) if left is None else left
        right = pl.offset(xy, -width / 2) if right is None else right
        self.lanes[lane_id] = Lane(lane_id, xy, left, right, width, speed, roadblock, connector)
        return lane_id

    def link(self, a: int, b: int) -> None:
        """Lane b follows lane a."""
        self.lanes[a].successors.append(b)
        self.lanes[b].predecessors.append(a)

    def add_stop_line(self, lane_id: int) -> None:
        """A stop line across the end of `lane_id`."""
        lane = self.lanes[lane_id]
        self.stop_lines.append((lane_id, np.stack([lane.left[-1], lane.right[-1]])))

    def add_road(self, ref: np.ndarray, n_lanes: int, width: float, speed: float, cuts: list[int],
                 side: float = -1.0) -> list[list[int]]:
        """Parallel lanes beside the reference line (M, 2), split at sample indices `cuts`.

        Lane k is centred (k + 0.5) * width to the `side` (-1 right, +1 left) of `ref`; lanes on the left
        side drive against `ref`. Returns lane ids [segment][k], k = 0 next to the reference; consecutive
        segments are linked.
        """
        bounds = [pl.offset(ref, side * k * width) for k in range(n_lanes + 1)]
        centres = [pl.offset(ref, side * (k + 0.5) * width) for k in range(n_lanes)]
        edges = [0, *cuts, len(ref) - 1]
        segments: list[list[int]] = []
        for a, b in pairwise(edges):
            block = self.new_roadblock()
            ids = []
            for k in range(n_lanes):
                c, inner, outer = centres[k][a:b + 1], bounds[k][a:b + 1], bounds[k + 1][a:b + 1]
                if side < 0:
                    ids.append(self.add_lane(c, width, speed, block, left=inner, right=outer))
                else:
                    ids.append(self.add_lane(c[::-1], width, speed, block, left=outer[::-1], right=inner[::-1]))
            segments.append(ids)
        if side > 0:
            segments = segments[::-1]
        for prev, nxt in pairwise(segments):
            for a_id, b_id in zip(prev, nxt):
                self.link(a_id, b_id)
        return segments

    def lane_polygons(self, roadblock: int) -> list[shapely.Polygon]:
        """The polygons of the lanes of `roadblock`."""
        return [lane.polygon() for lane in self.lanes.values() if lane.roadblock == roadblock]

    def build(self) -> MapLayers:
        """The map in the local build frame."""
        lanes = list(self.lanes.values())
        blocks: dict[int, list[shapely.Polygon]] = {}
        for lane in lanes:
            if not lane.connector:
                blocks.setdefault(lane.roadblock, []).append(lane.polygon())
        polys, kinds, ids = [], [], []
        for block, parts in blocks.items():
            polys.append(_single_polygon(parts))
            kinds.append(DrivableKind.ROADBLOCK)
            ids.append(block)
        for block, poly in self.intersections:
            polys.append(poly)
            kinds.append(DrivableKind.INTERSECTION)
            ids.append(block)
        left, right = lines([lane.left for lane in lanes]), lines([lane.right for lane in lanes])
        return MapLayers(
            lane_ids=np.array([lane.id for lane in lanes], np.int64),
            lane_centerlines=lines([lane.xy for lane in lanes]),
            lane_left_boundaries=left,
            lane_right_boundaries=right,
            lane_polygons=boundary_polygons(left, right),
            lane_successors=tuple(tuple(lane.successors) for lane in lanes),
            lane_speed_limits=np.array([lane.speed for lane in lanes], np.float64),
            lane_roadblock_ids=np.array([lane.roadblock for lane in lanes], np.int64),
            lane_is_connector=np.array([lane.connector for lane in lanes], bool),
            drivable_polygons=np.array(polys, dtype=object),
            drivable_kinds=np.array(kinds, np.int8),
            drivable_ids=np.array(ids, np.int64),
            stop_lines=lines([line for _, line in self.stop_lines]),
            stop_line_lane_ids=np.array([lane_id for lane_id, _ in self.stop_lines], np.int64),
            crosswalks=np.array(self.crosswalks, dtype=object),
        )


def lines(arrays: list[np.ndarray]) -> np.ndarray:
    """(K,) object array of LineStrings from K point arrays (M_k, 2)."""
    if not arrays:
        return np.array([], dtype=object)
    idx = np.repeat(np.arange(len(arrays)), [len(a) for a in arrays])
    return np.asarray(shapely.linestrings(np.concatenate(arrays), indices=idx), dtype=object)


def _single_polygon(parts: list[shapely.Polygon]) -> shapely.Polygon:
    """Union of touching polygons as one Polygon (tiny gaps closed)."""
    merged = shapely.union_all(shapely.make_valid(np.array(parts, dtype=object)))
    if not isinstance(merged, shapely.Polygon):
        merged = shapely.union_all(shapely.buffer(np.array(parts, dtype=object), 1e-3, join_style="mitre"))
    if not isinstance(merged, shapely.Polygon):
        merged = max(merged.geoms, key=lambda g: g.area) if hasattr(merged, "geoms") else merged.convex_hull
    return merged


def reference_line(rng: PortableRandom, length: float, curved: bool) -> np.ndarray:
    """A road reference line (M, 2) [m] from the origin heading +x: straight, or with 1-2 smooth bends."""
    n = int(length / pl.STEP)
    kappa = np.zeros(n)
    if curved:
        pos = int(rng.uniform(30, 70))
        for _ in range(int(rng.integers(1, 3))):
            radius = rng.uniform(50.0, 250.0)
            angle = rng.uniform(0.35, 1.4)
            arc = int(radius * angle)
            ramp = int(rng.uniform(12, 25))
            sign = rng.choice([-1.0, 1.0])
            prof = np.concatenate([np.linspace(0, 1, ramp), np.ones(arc), np.linspace(1, 0, ramp)])
            end = min(n, pos + len(prof))
            kappa[pos:end] += sign / radius * prof[: end - pos]
            pos = end + int(rng.uniform(10, 40))
            if pos >= n - 40:
                break
    return pl.integrate_curvature(kappa, np.zeros(2), 0.0)
