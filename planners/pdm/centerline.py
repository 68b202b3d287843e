"""PDM's centreline: from the ego's starting lane through the route's lanes, as NAVSIM's Dijkstra search."""

from __future__ import annotations

import heapq

import numpy as np
import shapely

from planners.pdm.path import DiscretePath
from planners.pdm.scoring.areas import route_lane_mask
from scenes import PACIFICA, MapLayers, Route
from scenes.geometry import box_corners, wrap_angle


def lane_polygons(road: MapLayers) -> np.ndarray:
    """(L,) the map's lane polygons, made valid."""
    return np.asarray(shapely.make_valid(road.lane_polygons), dtype=object)


def starting_lane(road: MapLayers, on_route: np.ndarray, polygons: np.ndarray, ego_pose: np.ndarray) -> int:
    """Row of the on-route lane holding the rear axle with the lowest heading error, else the nearest one."""
    rear_axle = shapely.Point(*ego_pose[:2])
    rows = np.flatnonzero(on_route & shapely.intersects(polygons, rear_axle))
    if rows.size:
        errors = []
        for row in rows:
            xy = shapely.get_coordinates(road.lane_centerlines[row])
            nearest = int(np.argmin(np.linalg.norm(xy - ego_pose[:2], axis=-1)))
            step = xy[min(nearest + 1, len(xy) - 1)] - xy[max(nearest - 1, 0)]
            errors.append(abs(wrap_angle(np.arctan2(step[1], step[0]) - ego_pose[2])))
        return int(rows[int(np.argmin(errors))])
    center = ego_pose[:2] + PACIFICA.rear_axle_to_center * np.array([np.cos(ego_pose[2]), np.sin(ego_pose[2])])
    footprint = shapely.Polygon(box_corners(center, np.asarray(ego_pose[2]), np.asarray(PACIFICA.length),
                                            np.asarray(PACIFICA.width)))
    candidates = np.flatnonzero(on_route)
    return int(candidates[int(np.argmin(shapely.distance(polygons[candidates], footprint)))])


def route_centerline(road: MapLayers, route: Route, ego_pose: np.ndarray) -> tuple[DiscretePath, int]:
    """The centreline path (ego frame of `road`) and the starting lane's row.

    Dijkstra over lane successors restricted to route lanes, towards the furthest route roadblock reached.
    """
    on_route = route_lane_mask(road, route)
    if not on_route.any():
        raise ValueError("no lane of the route is near the ego")
    polygons = lane_polygons(road)
    start = starting_lane(road, on_route, polygons, ego_pose)
    order: dict[int, int] = {}  # roadblock id -> its first position along the route
    for lane_id in route.lane_ids:
        rows = np.flatnonzero(road.lane_ids == lane_id)
        if rows.size:
            order.setdefault(int(road.lane_roadblock_ids[rows[0]]), len(order))
    row_of = {int(lane_id): row for row, lane_id in enumerate(road.lane_ids)}
    lengths = shapely.length(road.lane_centerlines)
    cost, parent, heap = {start: 0.0}, {start: -1}, [(0.0, start)]
    while heap:
        c, row = heapq.heappop(heap)
        if c > cost[row]:
            continue
        for succ_id in road.lane_successors[row]:
            succ = row_of.get(int(succ_id))
            if succ is None or not on_route[succ] or c + lengths[succ] >= cost.get(succ, np.inf):
                continue
            cost[succ], parent[succ] = c + lengths[succ], row
            heapq.heappush(heap, (cost[succ], succ))
    target = max(cost, key=lambda r: (order.get(int(road.lane_roadblock_ids[r]), -1), -cost[r]))
    path_rows = []
    while target != -1:
        path_rows.append(target)
        target = parent[target]
    points = np.concatenate([shapely.get_coordinates(road.lane_centerlines[r]) for r in reversed(path_rows)])
    return DiscretePath.from_points(points), start
