"""Named STL signals of an ego trajectory in a DriveScene, vectorised over (trajectory B, state T).

A trajectory of T states starts at the current time (state 0 = the ego now) and is spaced `dt` [s]. Signals
(all float64; `SIGNAL_NAMES` order is the last axis of `Signals.values`):

- v [m/s] speed (finite differences of the rear-axle positions, negative when reversing); a [m/s^2] its
  derivative, j [m/s^3] the jerk; w [rad/s] yaw rate. Second-order differences, exact for quadratics.
- d_c [m] signed lateral offset of the rear axle to the nearest route lane's centreline (left positive);
  h_c [rad] heading error to that lane, wrapped to [-pi, pi).
- d_l, h_l / d_r, h_r: the same for the left / right neighbour of that lane (a non-connector lane of the same
  roadblock); `ABSENT` [m] and 0 rad where there is none.
- s [m] smallest distance between the ego box (PACIFICA, centre 1.461 m ahead of the rear axle) and any
  valid agent box at the same time (agents' logged future, nearest 0.1 s step, held after the log ends);
  negative = penetration depth when boxes overlap; `FAR` with no agent.
- stop_dist [m] route arc length from the ego's front bumper to the nearest stop point that is red at that
  time and lies ahead of the front bumper now (less `STOP_SLACK`); `FAR` when none is red. A stop point is a
  stop line guarding a route lane whose light (or the next route lane's) is red, else the start of a red
  route lane. red [0/1] 1 while such a point exists.
- goal_dist [m] distance from the rear axle to the goal: the route centreline point nearest the expert's
  position at the trajectory's final time.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any, TypeVar

import numpy as np
import shapely

from scenes.drive import CURRENT_INDEX, NUM_STEPS, SIM_DT, DriveScene
from scenes.ego import PACIFICA, Frame, Trajectory
from scenes.geometry import box_corners, poses_to_global, wrap_angle
from stl.robustness import Signals

SIGNAL_NAMES = ("v", "a", "j", "w", "d_c", "h_c", "d_l", "h_l", "d_r", "h_r", "s", "stop_dist", "red",
                "goal_dist")
ABSENT = 100.0  # [m] lateral offset to a neighbour lane that does not exist
FAR = 1000.0  # [m] stop distance with no red stop point; agent distance with no agent
STOP_SLACK = 1.0  # [m] a stop point up to this far behind the front bumper now still counts
HORIZON_S = 4.0  # [s] default window: the expert's future, 41 states at 0.1 s


def expert_trajectory(scene: DriveScene, horizon_s: float = HORIZON_S) -> Trajectory:
    """The expert's future after now at SIM_DT over `horizon_s` [s], map frame."""
    steps = round(horizon_s / SIM_DT)
    rows = slice(CURRENT_INDEX + 1, CURRENT_INDEX + 1 + steps)
    return Trajectory(scene.ego.pose[rows].copy(), SIM_DT, Frame.GLOBAL)


def _global_states(scene: DriveScene, trajectory: Trajectory, dt: float | None) -> tuple[np.ndarray, float]:
    """(T, 3) map-frame poses incl. now, resampled to `dt` [s] if given."""
    now = scene.current_pose
    poses = trajectory.poses if trajectory.frame is Frame.GLOBAL else poses_to_global(trajectory.poses, now)
    states = np.concatenate([now[None], poses], axis=0)
    if dt is None or np.isclose(dt, trajectory.dt):
        return states, float(trajectory.dt)
    times = trajectory.dt * np.arange(len(states))
    new = np.arange(0.0, times[-1] + 1e-9, dt)
    heading = np.unwrap(states[:, 2])
    out = np.stack([np.interp(new, times, states[:, 0]), np.interp(new, times, states[:, 1]),
                    np.interp(new, times, heading)], -1)
    return out, float(dt)


_T = TypeVar("_T")
_CACHE: dict[str, dict[tuple, tuple[tuple, Any]]] = {}  # kind -> key -> (parts, built value)
_CACHE_SIZE = {"polyline": 2048}  # entries per kind before that kind is cleared; others 64 (they hold maps)


def _cached(kind: str, parts: tuple, build: Callable[[], _T], *extra) -> _T:
    """build() memoised on the identity of `parts` (scene objects, taken as immutable) and `extra` values."""
    cache = _CACHE.setdefault(kind, {})
    key = (*(id(part) for part in parts), *extra)
    hit = cache.get(key)
    if hit is None or any(a is not b for a, b in zip(hit[0], parts, strict=True)):
        if len(cache) >= _CACHE_SIZE.get(kind, 64):
            cache.clear()
        hit = cache[key] = (parts, build())
    return hit[1]


class _Polyline:
    """Segment arrays (S,) of a LineString, for projections that repeat GEOS's arithmetic step by step.

    Attributes: x0, y0 / x1, y1 segment ends [m]; dx, dy = end - start [m]; len2 [m^2] and length [m] of each
    segment (1 where it has none, `point`); start (S + 1,) [m] arc length at each vertex (running sum, as GEOS
    sums); lo, hi (2, S) [m] segment bounding boxes; every (2, V') [m] every `STRIDE`-th vertex and the last;
    box (4,) [m] bounding box.
    """

    CHUNK = 1 << 16  # points x segments per block, to bound memory on large batches
    STRIDE = 4

    def __init__(self, line: shapely.LineString):
        xy = shapely.get_coordinates(line)
        self.x0, self.y0, self.x1, self.y1 = xy[:-1, 0], xy[:-1, 1], xy[1:, 0], xy[1:, 1]
        self.dx, self.dy = self.x1 - self.x0, self.y1 - self.y0
        len2 = self.dx * self.dx + self.dy * self.dy
        length = np.sqrt(len2)
        self.start = np.concatenate([[0.0], np.cumsum(length)])
        self.point = len2 == 0.0
        self.len2, self.length = np.where(self.point, 1.0, len2), np.where(self.point, 1.0, length)
        self.lo, self.hi = np.minimum(xy[:-1], xy[1:]).T, np.maximum(xy[:-1], xy[1:]).T
        self.every = np.concatenate([xy[::self.STRIDE], xy[-1:]]).T
        self.box = np.concatenate([xy.min(axis=0), xy.max(axis=0)])  # x_min, y_min, x_max, y_max [m]

    @staticmethod
    def of(line: shapely.LineString) -> _Polyline:
        return _cached("polyline", (line,), lambda: _Polyline(line))

    def nearest(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distance [m] from points (P, 2) to the line and the first nearest segment (P,), as GEOS finds."""
        rows = max(1, self.CHUNK // len(self.x0))
        if len(xy) <= rows:
            return self._nearest(xy)
        parts = [self._nearest(xy[lo:lo + rows]) for lo in range(0, len(xy), rows)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _nearest(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        seg = None
        if len(self.x0) > 2 * self.STRIDE:
            # Each point is within `reach` of some vertex, so of the line: a segment whose box is further than
            # that from the points' box is nobody's nearest (a small margin covers rounding)
            vx, vy = xy[:, :1] - self.every[0], xy[:, 1:] - self.every[1]
            reach2 = (vx * vx + vy * vy).min(axis=1).max() * (1.0 + 1e-9) + 1e-9
            low, high = xy.min(axis=0)[:, None], xy.max(axis=0)[:, None]
            gap = np.maximum(np.maximum(self.lo - high, low - self.hi), 0.0)
            seg = np.flatnonzero(gap[0] * gap[0] + gap[1] * gap[1] <= reach2)
        d = self._segment_distance(xy, seg)
        i = np.argmin(d, axis=1)
        dist = d[np.arange(len(xy)), i]
        return dist, (i if seg is None else seg[i])

    def _segment_distance(self, xy: np.ndarray, seg: np.ndarray | None) -> np.ndarray:
        """(P, S') point-to-segment distances [m] (GEOS Distance::pointToSegment) to segments `seg` (S',)."""
        x0, y0, x1, y1, dx, dy, len2, length, point = (a if seg is None else a[seg] for a in (
            self.x0, self.y0, self.x1, self.y1, self.dx, self.dy, self.len2, self.length, self.point))
        px, py = xy[:, :1], xy[:, 1:]
        rx, ry = px - x0, py - y0
        bx, by = px - x1, py - y1
        r = (rx * dx + ry * dy) / len2
        out = np.where(r >= 1.0, np.sqrt(bx * bx + by * by), np.abs((rx * dy - ry * dx) / len2) * length)
        return np.where((r <= 0.0) | point, np.sqrt(rx * rx + ry * ry), out)

    def locate(self, xy: np.ndarray, seg: np.ndarray) -> np.ndarray:
        """Arc length [m] of points (P, 2) on their nearest segments `seg` (P,) (GEOS's project)."""
        x0, y0, x1, y1 = self.x0[seg], self.y0[seg], self.x1[seg], self.y1[seg]
        px, py = xy[:, 0], xy[:, 1]
        r = ((px - x0) * self.dx[seg] + (py - y0) * self.dy[seg]) / self.len2[seg]
        r = np.where((px == x0) & (py == y0), 0.0, np.where((px == x1) & (py == y1), 1.0, r))
        start, length = self.start[seg], self.length[seg]
        return np.where(r <= 0.0, start, np.where(r <= 1.0, start + r * length, start + length))

    def interpolate(self, s: np.ndarray) -> np.ndarray:
        """Points (P, 2) [m] at arc lengths s (P,) [m] (GEOS LengthIndexedLine.extractPoint, s >= 0)."""
        last = len(self.x0) - 1
        seg = np.searchsorted(self.start[1:], s, side="right")
        beyond = seg > last
        seg = np.minimum(seg, last)
        frac = np.where(beyond, 1.0, (s - self.start[seg]) / self.length[seg])
        x = np.where(frac >= 1.0, self.x1[seg], self.dx[seg] * frac + self.x0[seg])
        y = np.where(frac >= 1.0, self.y1[seg], self.dy[seg] * frac + self.y0[seg])
        at_start = (frac <= 0.0) | (s <= 0.0)
        return np.stack([np.where(at_start, self.x0[seg], x), np.where(at_start, self.y0[seg], y)], -1)


def _frenet(line: shapely.LineString, xy: np.ndarray, nearest: tuple[np.ndarray, np.ndarray] | None = None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Arc length s [m], signed lateral offset [m] (left +) and lane heading [rad] of points (..., 2).

    `nearest`: the line's (distance, segment) for the flattened points when already known.
    """
    poly = _Polyline.of(line)
    flat = xy.reshape(-1, 2)
    s = poly.locate(flat, (nearest or poly.nearest(flat))[1])
    n = len(s)
    ahead, behind = np.minimum(s + 0.5, poly.start[-1]), np.maximum(s - 0.5, 0.0)
    points = poly.interpolate(np.concatenate([ahead, behind, s]))
    tx, ty = points[:n, 0] - points[n:2 * n, 0], points[:n, 1] - points[n:2 * n, 1]  # ahead - behind
    norm = np.maximum(np.sqrt(tx * tx + ty * ty), 1e-9)
    tx, ty = tx / norm, ty / norm
    offset = tx * (flat[:, 1] - points[2 * n:, 1]) - ty * (flat[:, 0] - points[2 * n:, 0])  # x (point - foot)
    heading = np.arctan2(ty, tx)
    shape = xy.shape[:-1]
    return s.reshape(shape), offset.reshape(shape), heading.reshape(shape)


def _arc_length(line: shapely.LineString, xy: np.ndarray) -> np.ndarray:
    """Arc length s [m] of points (..., 2) on `line` (its nearest point's)."""
    poly = _Polyline.of(line)
    flat = xy.reshape(-1, 2)
    return poly.locate(flat, poly.nearest(flat)[1]).reshape(xy.shape[:-1])


def _nearest_lanes(lines: list[_Polyline], xy: np.ndarray) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """`_Polyline.nearest` of points (P, 2) on each line; None for a line that is nearest to none of them.

    A line is skipped when, for every point, the distance to its bounding box exceeds the distance to some
    vertex of another line (a small margin covers rounding), so it cannot be the nearest or tie with it.
    """
    if len(lines) == 1:
        return [lines[0].nearest(xy)]
    px, py = xy[:, :1], xy[:, 1:]
    upper, lower = [], []
    for line in lines:
        vx, vy = px - line.every[0], py - line.every[1]
        upper.append((vx * vx + vy * vy).min(axis=1))
        gx = np.maximum(np.maximum(line.box[0] - px[:, 0], px[:, 0] - line.box[2]), 0.0)
        gy = np.maximum(np.maximum(line.box[1] - py[:, 0], py[:, 0] - line.box[3]), 0.0)
        lower.append(gx * gx + gy * gy)
    best = np.min(upper, axis=0) * (1.0 + 1e-9) + 1e-9
    return [line.nearest(xy) if (low <= best).any() else None for line, low in zip(lines, lower, strict=True)]


def _lane_signals(scene: DriveScene, poses: np.ndarray, neighbours: bool = True) -> np.ndarray:
    """(B, T, 6): d_c, h_c, d_l, h_l, d_r, h_r; without `neighbours`, d_l .. h_r stay ABSENT / 0."""
    m = scene.map
    route_rows = _cached("route_rows", (m, scene.route),
                         lambda: [m.lane_index(lane) for lane in scene.route.lane_ids])
    xy, psi = poses[..., :2], poses[..., 2]
    flat = xy.reshape(-1, 2)
    frenet = {}
    found = _nearest_lanes([_Polyline.of(m.lane_centerlines[row]) for row in route_rows], flat)
    near = dict(zip(route_rows, found, strict=True))

    def lane(row: int) -> tuple[np.ndarray, np.ndarray]:
        if row not in frenet:
            _, offset, heading = _frenet(m.lane_centerlines[row], xy, near.get(row))
            frenet[row] = (offset, wrap_angle(psi - heading))
        return frenet[row]

    dist = np.stack([np.full(len(flat), np.inf) if near[r] is None
                     else near[r][0] for r in route_rows])  # type: ignore[index]  # near[r] is not None here
    nearest = np.asarray(route_rows)[np.argmin(dist, axis=0)].reshape(xy.shape[:-1])
    out = np.zeros((*xy.shape[:-1], 6))
    out[..., 2] = out[..., 4] = ABSENT
    for row in np.unique(nearest):
        mask = nearest == row
        d_c, h_c = lane(row)
        out[mask, 0], out[mask, 1] = d_c[mask], h_c[mask]
        if m.lane_is_connector[row] or not neighbours:
            continue
        peers = np.flatnonzero((m.lane_roadblock_ids == m.lane_roadblock_ids[row]) & ~m.lane_is_connector)
        for col, sign in ((2, 1.0), (4, -1.0)):
            best, gap = None, np.inf
            for peer in peers[peers != row]:
                rel = sign * np.median(d_c[mask] - lane(peer)[0][mask])  # peer's offset from this lane
                if 0.5 < rel < gap:
                    best, gap = peer, rel
            if best is not None:
                d, h = lane(best)
                out[mask, col], out[mask, col + 1] = d[mask], h[mask]
    return out


def _sat_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance [m] between boxes (parallelograms) a, b (..., 4, 2); minus the penetration depth on overlap.

    The distance is the smallest corner-to-edge distance either way; the depth the smallest overlap of the two
    boxes' projections on the normals of their first two edges (separating axes).
    """
    a, b = np.broadcast_arrays(a, b)
    shape = a.shape[:-2]
    a, b = (x.reshape(-1, 4, 2).transpose(2, 1, 0) for x in (a, b))  # (2 xy, 4 corners, M)
    return _box_distance(a[0], a[1], b[0], b[1]).reshape(shape)


def _box_distance(ax: np.ndarray, ay: np.ndarray, bx: np.ndarray, by: np.ndarray) -> np.ndarray:
    """`_sat_distance` (M,) [m] of boxes with corners x, y (4, M) [m]; the axis test only runs for pairs whose
    bounding circles (about the corners' mean) come within `_SAT_MARGIN`: others cannot overlap."""
    num = ax.shape[1]
    px, py = np.concatenate([ax, bx], axis=1), np.concatenate([ay, by], axis=1)  # a's corners, then b's
    qx, qy = np.concatenate([bx, ax], axis=1), np.concatenate([by, ay], axis=1)  # the other box of each pair
    sq = _corner_edge_sq(px, py, qx, qy)
    out = np.sqrt(np.minimum(sq[:num], sq[num:]))
    cx, cy = (px[0] + px[1] + px[2] + px[3]) / 4.0, (py[0] + py[1] + py[2] + py[3]) / 4.0
    radius = np.sqrt(((px - cx) ** 2 + (py - cy) ** 2).max(axis=0))
    near = np.hypot(cx[:num] - cx[num:], cy[:num] - cy[num:]) <= radius[:num] + radius[num:] + _SAT_MARGIN
    if near.any():
        a, b = np.stack([ax[:, near].T, ay[:, near].T], -1), np.stack([bx[:, near].T, by[:, near].T], -1)
        edges = np.concatenate([a[..., 1:3, :] - a[..., 0:2, :], b[..., 1:3, :] - b[..., 0:2, :]], axis=-2)
        axes = np.stack([-edges[..., 1], edges[..., 0]], -1)
        axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
        pa, pb = a @ np.swapaxes(axes, -1, -2), b @ np.swapaxes(axes, -1, -2)  # (M', 4 corners, 4 axes)
        overlap = np.minimum(pa.max(-2), pb.max(-2)) - np.maximum(pa.min(-2), pb.min(-2))
        depth = overlap.min(-1)
        out[near] = np.where(depth > 0, -depth, out[near])
    return out


_SAT_MARGIN = 1e-3  # [m]


def _corner_edge_sq(px: np.ndarray, py: np.ndarray, qx: np.ndarray, qy: np.ndarray) -> np.ndarray:
    """Smallest squared distance [m^2] from the corners p (4, M) of M boxes to the edges of boxes q (4, M)."""
    x0, y0 = qx[None], qy[None]  # edge k runs from corner k to corner k + 1
    sx, sy = qx[_NEXT][None] - x0, qy[_NEXT][None] - y0
    rx, ry = px[:, None] - x0, py[:, None] - y0  # (4 corners, 4 edges, M)
    u = np.minimum(np.maximum((rx * sx + ry * sy) / np.maximum(sx * sx + sy * sy, 1e-12), 0.0), 1.0)
    fx, fy = px[:, None] - (x0 + u * sx), py[:, None] - (y0 + u * sy)
    return (fx * fx + fy * fy).reshape(16, -1).min(axis=0)


_NEXT = np.array([1, 2, 3, 0])


def _agent_steps(num: int, dt: float) -> np.ndarray:
    """Scene step index of each trajectory state (nearest, held at the last step)."""
    return np.minimum(CURRENT_INDEX + np.rint(np.arange(num) * dt / SIM_DT).astype(int), NUM_STEPS - 1)


def _agent_boxes(scene: DriveScene, num: int, dt: float) -> tuple[np.ndarray, ...]:
    """Agents at each state's step: valid (N, T), centre (2, N, T) [m], corners (2 xy, 4, N, T) [m], and the
    radii (N,) [m] of the circles about the centre that hold (outer) and that fit in (inner) the box."""
    agents = scene.agents

    def build():
        steps = _agent_steps(num, dt)
        corners = box_corners(agents.xy[:, steps], agents.heading[:, steps], agents.size[:, None, 0],
                              agents.size[:, None, 1])
        outer, inner = 0.5 * np.hypot(*agents.size.T), 0.5 * agents.size.min(axis=1)
        return (agents.valid[:, steps], np.ascontiguousarray(np.moveaxis(agents.xy[:, steps], -1, 0)),
                np.ascontiguousarray(np.moveaxis(corners, (-1, -2), (0, 1))), outer, inner)

    return _cached("agents", (agents,), build, num, float(dt))


def _agent_distance(scene: DriveScene, poses: np.ndarray, dt: float) -> np.ndarray:
    """(B, T) s [m]."""
    if scene.agents.num_agents == 0:
        return np.full(poses.shape[:2], FAR)
    valid, xy, other, outer, inner = _agent_boxes(scene, poses.shape[1], dt)
    cos, sin = np.cos(poses[..., 2]), np.sin(poses[..., 2])
    cx = poses[..., 0] + PACIFICA.rear_axle_to_center * cos
    cy = poses[..., 1] + PACIFICA.rear_axle_to_center * sin
    # Box distance lies between centre distance - the two outer radii and centre distance - the two inner ones
    # (also when the boxes overlap): only (agent, state) pairs whose lower bound is below the least upper
    # bound at that state (or below 0: they may overlap) can be the nearest. The margin covers rounding.
    rx, ry = xy[0][None] - cx[:, None], xy[1][None] - cy[:, None]  # (B, N, T)
    centres = np.sqrt(rx * rx + ry * ry)
    lower = np.where(valid[None], centres - (_EGO_OUTER + outer)[None, :, None], np.inf)
    upper = np.where(valid[None], centres - (_EGO_INNER + inner)[None, :, None], np.inf)
    upper = upper.min(axis=1, keepdims=True)
    keep = lower <= np.minimum(np.maximum(upper, 0.0) + 1e-6, FAR)
    b, t, n = np.nonzero(np.swapaxes(keep, 1, 2))  # grouped by state (b, t)
    out = np.full(poses.shape[:2], FAR)
    if len(b):
        c, s = cos[b, t], sin[b, t]  # the ego's corners as scenes.geometry.box_corners computes them
        ex = _EGO_X[:, None] * c - _EGO_Y[:, None] * s + cx[b, t]
        ey = _EGO_X[:, None] * s + _EGO_Y[:, None] * c + cy[b, t]
        dist = _box_distance(ex, ey, other[0][:, n, t], other[1][:, n, t])
        first = np.flatnonzero(np.r_[True, (b[1:] != b[:-1]) | (t[1:] != t[:-1])])
        out[b[first], t[first]] = np.minimum(np.minimum.reduceat(dist, first), FAR)
    return out


_EGO_X = np.array([1.0, -1.0, -1.0, 1.0]) * (PACIFICA.length / 2.0)  # [m] corners in the box frame, as
_EGO_Y = np.array([1.0, 1.0, -1.0, -1.0]) * (PACIFICA.width / 2.0)  # box_corners orders them
_EGO_OUTER = PACIFICA.half_diagonal  # [m]
_EGO_INNER = 0.5 * min(PACIFICA.length, PACIFICA.width)  # [m]


def _stop_points(scene: DriveScene) -> list[tuple[float, np.ndarray]]:
    """(route arc length [m], red (NUM_STEPS,) bool) of every stop point on the route."""
    route, lights, m = scene.route, scene.traffic_lights, scene.map
    red_of = {int(k): lights.is_red[i] for i, k in enumerate(lights.lane_ids)}
    lanes = list(scene.route.lane_ids)
    never = np.zeros(NUM_STEPS, bool)
    points, guarded = [], set()
    for line, lane in zip(m.stop_lines, m.stop_line_lane_ids, strict=True):
        if lane in lanes:
            k = lanes.index(lane)
            after = red_of.get(lanes[k + 1], never) if k + 1 < len(lanes) else never
            red = red_of.get(int(lane), never) | after
            points.append((route.centerline.project(line.centroid), red))
            guarded |= {lanes[k], *lanes[k + 1:k + 2]}
    for lane in lanes:
        if lane in red_of and lane not in guarded:
            start = shapely.Point(m.lane_centerlines[m.lane_index(lane)].coords[0])
            points.append((route.centerline.project(start), red_of[lane]))
    return points


def _stop_signals(scene: DriveScene, poses: np.ndarray, dt: float) -> np.ndarray:
    """(B, T, 2): stop_dist [m], red [0/1]."""
    front = poses[..., :2] + PACIFICA.rear_axle_to_front * np.stack([np.cos(poses[..., 2]),
                                                                     np.sin(poses[..., 2])], -1)
    s_front = _arc_length(scene.route.centerline, front)  # (B, T)
    steps = _agent_steps(poses.shape[1], dt)
    out = np.zeros((*poses.shape[:2], 2))
    out[..., 0] = FAR
    stops = _cached("stops", (scene.route, scene.map, scene.traffic_lights), lambda: _stop_points(scene))
    for s_stop, red in stops:
        ahead = s_stop > s_front[:, :1] - STOP_SLACK  # (B, 1)
        active = ahead & red[steps][None]
        out[..., 0] = np.where(active, np.minimum(out[..., 0], s_stop - s_front), out[..., 0])
        out[..., 1] = np.maximum(out[..., 1], active)
    return out


def _goal(scene: DriveScene, horizon_s: float) -> np.ndarray:
    """(2,) [m] route centreline point nearest the expert at `horizon_s` after now."""
    step = min(CURRENT_INDEX + round(horizon_s / SIM_DT), NUM_STEPS - 1)
    line = scene.route.centerline
    return np.asarray(line.interpolate(line.project(shapely.Point(scene.ego.pose[step, :2]))).coords[0])


def _rate(f: np.ndarray, dt: float) -> np.ndarray:
    """d/dt of (B, T) samples spaced dt [s]: np.gradient(f, dt, axis=1, edge_order=2), the same arithmetic."""
    out = np.empty_like(f)
    out[:, 1:-1] = (f[:, 2:] - f[:, :-2]) / (2.0 * dt)
    out[:, 0] = -1.5 / dt * f[:, 0] + 2.0 / dt * f[:, 1] + -0.5 / dt * f[:, 2]
    out[:, -1] = 0.5 / dt * f[:, -3] + -2.0 / dt * f[:, -2] + 1.5 / dt * f[:, -1]
    return out


def _unwrap(angle: np.ndarray) -> np.ndarray:
    """np.unwrap(angle, axis=1) of (B, T) angles [rad]; a shortcut when no step reaches pi."""
    if (np.abs(angle[:, 1:] - angle[:, :-1]) < np.pi).all():
        out = angle.copy()
        out[:, 1:] += 0.0  # what np.unwrap adds: a zero correction
        return out
    return np.unwrap(angle, axis=1)


def signals_from_poses(scene: DriveScene, poses: np.ndarray, dt: float,
                       names: Collection[str] | None = None) -> Signals:
    """Signals (B, T, D) of map-frame rear-axle poses (B, T, 3) [m, rad], state 0 = now, spaced dt [s].

    `names` (default: all of SIGNAL_NAMES) picks the signals to compute, in SIGNAL_NAMES order; groups that no
    picked signal needs (lanes, agents, stop points, goal) are not computed.
    """
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[-1] != 3 or poses.shape[1] < 3:
        raise ValueError(f"poses must be (B, T >= 3, 3), got {poses.shape}")
    wanted = set(SIGNAL_NAMES if names is None else names)
    if wanted - set(SIGNAL_NAMES):
        raise ValueError(f"unknown signals {sorted(wanted - set(SIGNAL_NAMES))}; known: {SIGNAL_NAMES}")
    columns: dict[str, np.ndarray] = {}
    if wanted & {"v", "a", "j"}:
        vx, vy = _rate(poses[..., 0], dt), _rate(poses[..., 1], dt)
        step = np.sqrt(vx * vx + vy * vy)
        columns["v"] = np.where(vx * np.cos(poses[..., 2]) + vy * np.sin(poses[..., 2]) < 0, -step, step)
        columns["a"] = _rate(columns["v"], dt)
        columns["j"] = _rate(columns["a"], dt)
    if "w" in wanted:
        columns["w"] = _rate(_unwrap(poses[..., 2]), dt)
    if wanted & set(SIGNAL_NAMES[4:10]):
        lanes = _lane_signals(scene, poses, neighbours=bool(wanted & set(SIGNAL_NAMES[6:10])))
        columns.update(zip(SIGNAL_NAMES[4:10], np.moveaxis(lanes, -1, 0), strict=True))
    if "s" in wanted:
        columns["s"] = _agent_distance(scene, poses, dt)
    if wanted & {"stop_dist", "red"}:
        columns["stop_dist"], columns["red"] = np.moveaxis(_stop_signals(scene, poses, dt), -1, 0)
    if "goal_dist" in wanted:
        horizon = (poses.shape[1] - 1) * dt
        goal = _cached("goal", (scene.ego, scene.route), lambda: _goal(scene, horizon), horizon)
        columns["goal_dist"] = np.linalg.norm(poses[..., :2] - goal, axis=-1)
    picked = tuple(name for name in SIGNAL_NAMES if name in wanted)
    return Signals(picked, np.stack([columns[name] for name in picked], axis=-1))


def drive_signals(scene: DriveScene, trajectory: Trajectory | None = None,
                  dt: float | None = None) -> Signals:
    """Signals (1, T, D) of `trajectory` (default: the expert's 4 s future at 0.1 s, T = 41), state 0 = now.

    `trajectory` may be in the ego or the map frame; `dt` [s] resamples it (linear), else its own dt is used.
    """
    trajectory = expert_trajectory(scene) if trajectory is None else trajectory
    states, dt = _global_states(scene, trajectory, dt)
    return signals_from_poses(scene, states[None], dt)


def batch_signals(scene: DriveScene, trajectories: Sequence[Trajectory], dt: float | None = None) -> Signals:
    """Signals (B, T, D) of B trajectories of one scene (same length and dt once resampled)."""
    if not trajectories:
        raise ValueError("batch_signals needs at least one trajectory")
    states = [_global_states(scene, trajectory, dt) for trajectory in trajectories]
    if len({(len(s), round(d, 9)) for s, d in states}) > 1:
        raise ValueError("trajectories differ in length or dt; pass dt to resample them")
    return signals_from_poses(scene, np.stack([s for s, _ in states]), states[0][1])


GAP_RANGE = (0.5, 8.0)  # [m] bounds of a controllable gap
GAP_MIN_SPREAD = 0.5  # [m] less room than this between the logged least gap and the gap now: not controllable


def controllable_gap(scene: DriveScene, horizon_s: float) -> tuple[float, float] | None:
    """(low, high) [m]: the least gaps to the agents (signal "s") a plan over the next `horizon_s` [s] can
    choose here, from the logged ego's least gap (it closes in on an agent) up to the gap now - 0.3 m, within
    GAP_RANGE; None when that leaves less than GAP_MIN_SPREAD (no agent near, or one beside the ego whose gap
    no speed changes). Privileged: the agents' logged futures. `datagen drive --gap-fraction` asks d_safe in
    this range; pSTL's d_safe sweep runs on the windows that have one."""
    rows = min(CURRENT_INDEX + round(horizon_s / SIM_DT) + 1, scene.ego.pose.shape[0])
    logged = scene.ego.pose[None, CURRENT_INDEX:rows]
    if logged.shape[1] < 3:
        return None
    signals = signals_from_poses(scene, logged, SIM_DT, names=("s",))
    gaps = np.asarray(signals.values)[0, :, signals.names.index("s")]
    low, high = max(float(gaps.min()), GAP_RANGE[0]), min(float(gaps[0]) - 0.3, GAP_RANGE[1])
    return (low, high) if high - low >= GAP_MIN_SPREAD else None
