"""A NAVSIM route (roadblock ids) turned into our `Route`: route lanes of the map, in driving order.

The route lanes are the lanes of the map whose roadblock is among the route's roadblock ids. The chain starts
at the route lane nearest the ego's rear axle whose direction there is within 90 degrees of the ego heading
(at most `MAX_ROUTE_DISTANCE` away), follows `lane_successors` that stay among the route lanes (preferring
the successor whose roadblock comes next in the roadblock-id order, then one whose own successors continue
the route, then the lowest id), and is extended backwards the same way through predecessors behind the ego.
The centreline is the lanes' centrelines joined end to end (a point shared by consecutive lanes is kept once).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely

from scenes.maps import MapLayers

MAX_ROUTE_DISTANCE = 10.0  # [m] from the ego rear axle to the start lane's centreline
_DIRECTION_PROBE = 0.5  # [m] along the centreline either side of the projection, for its direction


def route_lanes(road: MapLayers, roadblock_ids: Sequence[int], ego_pose: np.ndarray,
                max_distance: float = MAX_ROUTE_DISTANCE) -> tuple[int, ...] | None:
    """Ids of the route lanes in driving order, or None when no route lane is near the ego.

    Args:
        road: the map.
        roadblock_ids: the route's roadblock ids in driving order.
        ego_pose: (3,) rear-axle x, y [m], heading [rad] now, map frame.
        max_distance: [m] farthest the start lane's centreline may be from the ego.
    """
    rank: dict[int, int] = {}
    for position, block in enumerate(roadblock_ids):
        rank.setdefault(int(block), position)
    lane_rank = {int(lane): rank[int(block)] for lane, block in zip(road.lane_ids, road.lane_roadblock_ids)
                 if int(block) in rank}
    start = _start_lane(road, lane_rank, ego_pose, max_distance)
    if start is None:
        return None
    successors = {int(lane): tuple(int(s) for s in succ) for lane, succ in zip(road.lane_ids, road.lane_successors)}
    predecessors: dict[int, list[int]] = {}
    for lane, succ in successors.items():
        for s in succ:
            predecessors.setdefault(s, []).append(lane)
    backward = {lane: tuple(preds) for lane, preds in predecessors.items()}
    ahead = _walk(start, successors, lane_rank, {start}, +1)
    behind = _walk(start, backward, lane_rank, {start, *ahead}, -1)
    return (*reversed(behind), start, *ahead)


def route_centerline(road: MapLayers, lane_ids: Sequence[int]) -> shapely.LineString:
    """The centrelines of `lane_ids` joined in order [m]; a point repeated at a junction is kept once."""
    parts = [shapely.get_coordinates(road.lane_centerlines[road.lane_index(lane)]) for lane in lane_ids]
    xy = np.concatenate(parts)
    keep = np.ones(len(xy), bool)
    keep[1:] = np.any(xy[1:] != xy[:-1], axis=1)
    return shapely.LineString(xy[keep])


def _start_lane(road: MapLayers, lane_rank: dict[int, int], ego_pose: np.ndarray,
                max_distance: float) -> int | None:
    best: tuple[float, int, int] | None = None
    point = shapely.Point(float(ego_pose[0]), float(ego_pose[1]))
    for row, lane in enumerate(road.lane_ids.tolist()):
        if lane not in lane_rank:
            continue
        line = road.lane_centerlines[row]
        distance = float(shapely.distance(line, point))
        if distance > max_distance:
            continue
        s = float(shapely.line_locate_point(line, point))
        a = shapely.get_coordinates(shapely.line_interpolate_point(line, max(s - _DIRECTION_PROBE, 0.0)))[0]
        b = shapely.get_coordinates(shapely.line_interpolate_point(line, min(s + _DIRECTION_PROBE, line.length)))[0]
        direction = float(np.arctan2(b[1] - a[1], b[0] - a[0]))
        if abs((direction - float(ego_pose[2]) + np.pi) % (2 * np.pi) - np.pi) >= np.pi / 2:
            continue
        key = (distance, lane_rank[lane], lane)
        if best is None or key < best:
            best = key
    return None if best is None else best[2]


def _walk(start: int, links: dict[int, tuple[int, ...]], lane_rank: dict[int, int], seen: set[int],
          sign: int) -> list[int]:
    """Lanes reached from `start` through `links` among the route lanes, nearest first; `sign` +1 walks
    forward (rank increases), -1 backward."""
    out: list[int] = []
    seen = set(seen)
    lane = start
    while True:
        options = [n for n in links.get(lane, ()) if n in lane_rank and n not in seen]
        if not options:
            return out

        def key(n: int, here: int = lane) -> tuple[int, int, int, int]:
            advance = sign * (lane_rank[n] - lane_rank[here])
            order = (0, advance) if advance > 0 else (1, 0) if advance == 0 else (2, -advance)
            continues = any(m in lane_rank and m not in seen and m != n for m in links.get(n, ()))
            return (*order, 0 if continues else 1, n)

        lane = min(options, key=key)
        seen.add(lane)
        out.append(lane)
