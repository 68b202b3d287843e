"""Vector map layers as shapely 2 geometries held in numpy object arrays (one entry per element)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

import numpy as np
import shapely

from scenes._checks import ShapeChecker
from scenes.geometry import points_to_local


class DrivableKind(enum.IntEnum):
    """What a drivable-area polygon is, as in nuPlan's ROADBLOCK / INTERSECTION / CARPARK layers."""

    ROADBLOCK = 0  # nuPlan's road segments; a synthetic roadblock's polygon
    INTERSECTION = 1
    CARPARK = 2
    GENERIC = 3  # nuPlan's generic drivable areas


@dataclass(frozen=True, eq=False)
class MapLayers:
    """Lanes (L), drivable polygons (P), stop lines (S) and crosswalks (C), in the frame the owner states.

    Attributes:
        lane_ids: (L,) int64, unique.
        lane_centerlines: (L,) LineString [m], in driving direction.
        lane_left_boundaries: (L,) LineString [m].
        lane_right_boundaries: (L,) LineString [m].
        lane_polygons: (L,) Polygon [m], the lane's surface: a real map's surveyed polygon, or (synthetic maps)
            `boundary_polygons` of the two boundaries. Not repaired: users that need a valid one call
            `shapely.make_valid`.
        lane_successors: L tuples of the lane ids that follow each lane.
        lane_speed_limits: (L,) [m/s]; NaN where the map gives none (real maps).
        lane_roadblock_ids: (L,) int64; parallel lanes of one road segment share a roadblock.
        lane_is_connector: (L,) bool; True for lanes inside an intersection.
        drivable_polygons: (P,) Polygon [m].
        drivable_kinds: (P,) int8 `DrivableKind`.
        drivable_ids: (P,) int64; a roadblock polygon carries its roadblock id.
        stop_lines: (S,) LineString [m].
        stop_line_lane_ids: (S,) int64, the lane each stop line guards.
        crosswalks: (C,) Polygon [m].
    """

    lane_ids: np.ndarray
    lane_centerlines: np.ndarray
    lane_left_boundaries: np.ndarray
    lane_right_boundaries: np.ndarray
    lane_polygons: np.ndarray
    lane_successors: tuple[tuple[int, ...], ...]
    lane_speed_limits: np.ndarray
    lane_roadblock_ids: np.ndarray
    lane_is_connector: np.ndarray
    drivable_polygons: np.ndarray
    drivable_kinds: np.ndarray
    drivable_ids: np.ndarray
    stop_lines: np.ndarray
    stop_line_lane_ids: np.ndarray
    crosswalks: np.ndarray

    def validate(self) -> MapLayers:
        """The layers themselves; ValidationError naming the field on a bad shape, dtype or geometry."""
        check = ShapeChecker("MapLayers")
        check.array("lane_ids", self.lane_ids, ("L",), "i")
        for name in ("lane_centerlines", "lane_left_boundaries", "lane_right_boundaries"):
            check.geometries(name, getattr(self, name), "LineString", "L")
        check.geometries("lane_polygons", self.lane_polygons, "Polygon", "L")
        if len(self.lane_successors) != check.dims["L"]:
            check.fail("lane_successors", f"has {len(self.lane_successors)} entries for {check.dims['L']} lanes")
        check.array("lane_speed_limits", self.lane_speed_limits, ("L",), "f", finite=False)
        check.array("lane_roadblock_ids", self.lane_roadblock_ids, ("L",), "i")
        check.array("lane_is_connector", self.lane_is_connector, ("L",), "b")
        check.geometries("drivable_polygons", self.drivable_polygons, "Polygon", "P")
        check.array("drivable_kinds", self.drivable_kinds, ("P",), "i")
        check.array("drivable_ids", self.drivable_ids, ("P",), "i")
        check.geometries("stop_lines", self.stop_lines, "LineString", "S")
        check.array("stop_line_lane_ids", self.stop_line_lane_ids, ("S",), "i")
        check.geometries("crosswalks", self.crosswalks, "Polygon", "C")
        if len(np.unique(self.lane_ids)) != len(self.lane_ids):
            check.fail("lane_ids", "ids are not unique")
        if (self.lane_speed_limits <= 0).any() or np.isinf(self.lane_speed_limits).any():
            check.fail("lane_speed_limits", "speed limits must be positive and finite (NaN: no limit)")
        if not np.isin(self.drivable_kinds, [k.value for k in DrivableKind]).all():
            check.fail("drivable_kinds", "unknown DrivableKind value")
        return self

    @property
    def num_lanes(self) -> int:
        """Lanes L."""
        return self.lane_ids.shape[0]

    def lane_index(self, lane_id: int) -> int:
        """Row of `lane_id`; KeyError if absent."""
        rows = np.flatnonzero(self.lane_ids == lane_id)
        if rows.size == 0:
            raise KeyError(f"lane id {lane_id} is not in this map")
        return int(rows[0])

    def drivable_area(self) -> shapely.Geometry:
        """Union of every drivable polygon."""
        return shapely.union_all(self.drivable_polygons)

    def crop(self, center_xy: np.ndarray, radius: float) -> MapLayers:
        """Elements whose geometry comes within `radius` [m] of `center_xy` (2,)."""
        disk = shapely.Point(*center_xy).buffer(radius)
        lanes = shapely.intersects(self.lane_centerlines, disk)
        polys = shapely.intersects(self.drivable_polygons, disk)
        stops = shapely.intersects(self.stop_lines, disk)
        walks = shapely.intersects(self.crosswalks, disk)
        return self.select(lanes, polys, stops, walks)

    def select(self, lanes: np.ndarray, drivable: np.ndarray, stops: np.ndarray, crosswalks: np.ndarray
               ) -> MapLayers:
        """The lanes, drivable polygons, stop lines and crosswalks at these rows (index arrays or boolean
        masks of each layer's length), in the order given."""
        lane_rows = np.arange(self.num_lanes)[lanes]
        return replace(
            self,
            lane_ids=self.lane_ids[lane_rows],
            lane_centerlines=self.lane_centerlines[lane_rows],
            lane_left_boundaries=self.lane_left_boundaries[lane_rows],
            lane_right_boundaries=self.lane_right_boundaries[lane_rows],
            lane_polygons=self.lane_polygons[lane_rows],
            lane_successors=tuple(self.lane_successors[i] for i in lane_rows),
            lane_speed_limits=self.lane_speed_limits[lane_rows],
            lane_roadblock_ids=self.lane_roadblock_ids[lane_rows],
            lane_is_connector=self.lane_is_connector[lane_rows],
            drivable_polygons=self.drivable_polygons[drivable],
            drivable_kinds=self.drivable_kinds[drivable],
            drivable_ids=self.drivable_ids[drivable],
            stop_lines=self.stop_lines[stops],
            stop_line_lane_ids=self.stop_line_lane_ids[stops],
            crosswalks=self.crosswalks[crosswalks],
        )

    def to_local(self, origin: np.ndarray) -> MapLayers:
        """Every geometry expressed in the frame of pose `origin` (3,)."""

        def move(geoms: np.ndarray) -> np.ndarray:
            if geoms.size == 0:
                return geoms
            return shapely.transform(geoms, lambda xy: points_to_local(xy, origin))

        return replace(
            self,
            lane_centerlines=move(self.lane_centerlines),
            lane_left_boundaries=move(self.lane_left_boundaries),
            lane_right_boundaries=move(self.lane_right_boundaries),
            lane_polygons=move(self.lane_polygons),
            drivable_polygons=move(self.drivable_polygons),
            stop_lines=move(self.stop_lines),
            crosswalks=move(self.crosswalks),
        )


def boundary_polygons(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """(L,) Polygon of each lane whose boundaries are (L,) LineString `left` and `right`: the left boundary
    followed by the reversed right one (an empty Polygon below 3 points). Coordinates only, no arithmetic."""
    rings = [np.concatenate([shapely.get_coordinates(a), shapely.get_coordinates(b)[::-1]])
             for a, b in zip(left, right, strict=True)]
    out = np.empty(len(rings), dtype=object)
    out[:] = [shapely.Polygon(ring) if len(ring) >= 3 else shapely.Polygon() for ring in rings]
    return out
