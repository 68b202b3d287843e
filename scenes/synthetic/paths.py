"""Lane paths as uniform 1 m samples, and the lane tables the traffic simulation looks things up in."""

from __future__ import annotations

import numpy as np
import shapely

from scenes import portable
from scenes.synthetic import polyline as pl
from scenes.synthetic import roads
from scenes.synthetic.layouts import Layout

A_LAT = 2.0  # [m/s^2] comfortable lateral acceleration
B_ANTICIPATE = 1.5  # [m/s^2] deceleration used to slow before curves and slower lanes
MAX_CROSS = 4


class PathTable:
    """P paths over L lanes (row L is a sentinel). Stations s [m] run along each path from 0.

    xy (P, M, 2), heading (P, M), curv (P, M), vmax (P, M) [m/s] sampled at s = 0, 1, 2 ... m;
    length (P,); lanes (P, K) lane rows, start (P, K) their start stations; offset (P, L + 1) start
    station of a lane on a path (NaN if absent); stop_s / light (P,) first signalised lane; yield_s (P,);
    cw_in, cw_out, cw_u (P, C) crosswalk entries [m] and cw_id (P, C) crossing index (-1 none).
    """

    def __init__(self, lay: Layout):
        lanes = list(lay.builder.lanes.values())
        self.row = {lane.id: r for r, lane in enumerate(lanes)}
        n_l = len(lanes)
        self.lane_len = np.array([lane.length for lane in lanes] + [np.nan])
        self.pred = np.full(n_l + 1, n_l)
        self.partner = np.full(n_l + 1, n_l)
        self.yield_pt = np.full(n_l + 1, np.inf)
        for r, lane in enumerate(lanes):
            if len(lane.predecessors) == 1:
                self.pred[r] = self.row[lane.predecessors[0]]
            for succ in lane.successors[:1]:
                others = [p for p in lay.builder.lanes[succ].predecessors if p != lane.id]
                if others:
                    self.partner[r] = self.row[others[0]]
        for lane_id in lay.yield_lanes:
            lane = lay.builder.lanes[lane_id]
            other = lay.builder.lanes[lanes[self.partner[self.row[lane_id]]].id]
            _, lat = pl.project(lane.xy, other.xy)
            close = np.flatnonzero(np.abs(lat) < 2.6)
            s = pl.arc_length(lane.xy)
            self.yield_pt[self.row[lane_id]] = s[close[0]] - 1.0 if close.size else s[-1] - 1.0
        light = np.full(n_l + 1, -1)
        for k, lane_id in enumerate(lay.lights):
            light[self.row[lane_id]] = k
        p_count = len(lay.paths)
        k_max = max(len(p) for p in lay.paths)
        self.lanes = np.full((p_count, k_max), n_l)
        self.start = np.full((p_count, k_max), np.inf)
        self.offset = np.full((p_count, n_l + 1), np.nan)
        self.stop_s = np.full(p_count, np.inf)
        self.light = np.full(p_count, -1)
        self.yield_s = np.full(p_count, np.inf)
        lines = []
        for p, path in enumerate(lay.paths):
            rows = [self.row[i] for i in path]
            starts = np.concatenate([[0.0], np.cumsum(self.lane_len[rows])[:-1]])
            self.lanes[p, : len(rows)] = rows
            self.start[p, : len(rows)] = starts
            self.offset[p, rows] = starts
            for r, s0 in zip(rows, starts):
                if light[r] >= 0 and self.light[p] < 0:
                    self.stop_s[p], self.light[p] = s0, light[r]
                if np.isfinite(self.yield_pt[r]) and not np.isfinite(self.yield_s[p]):
                    self.yield_s[p] = s0 + self.yield_pt[r]
            lines.append(pl.concat([lay.builder.lanes[i].xy for i in path]))
        self.length = np.array([pl.arc_length(x)[-1] for x in lines])
        m = int(np.ceil(self.length.max())) + 2
        self.xy = np.zeros((p_count, m, 2))
        self.heading = np.zeros((p_count, m))
        self.curv = np.zeros((p_count, m))
        self.vmax = np.zeros((p_count, m))
        grid = np.arange(m, dtype=float)
        for p, line in enumerate(lines):
            s = pl.arc_length(line)
            self.xy[p] = np.stack([portable.interp(grid, s, line[:, 0]), portable.interp(grid, s, line[:, 1])], -1)
            n_valid = int(np.ceil(s[-1])) + 1
            h = np.unwrap(pl.headings(self.xy[p, :n_valid]))
            kappa = portable.moving_average(np.gradient(h), 5)
            self.heading[p] = np.concatenate([h, np.full(m - n_valid, h[-1])])
            self.curv[p] = np.concatenate([kappa, np.zeros(m - n_valid)])
            lane_k = np.clip(np.searchsorted(self.start[p], grid, side="right") - 1, 0, len(lay.paths[p]) - 1)
            limit = np.array([lay.builder.lanes[i].speed for i in lay.paths[p]])[lane_k]
            vlim = np.minimum(limit, np.sqrt(A_LAT / np.maximum(np.abs(self.curv[p]), 1e-4)))
            cost = vlim * vlim + 2 * B_ANTICIPATE * grid
            best = np.minimum.accumulate(cost[::-1])[::-1]
            self.vmax[p] = np.sqrt(np.maximum(best - 2 * B_ANTICIPATE * grid, 0.25))
        self._segments: dict[int, tuple] = {}
        self._crosswalks(lay, lines)

    def segments(self, p: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """`polyline.segments` of path p's 1 m samples (cached)."""
        if p not in self._segments:
            self._segments[p] = pl.segments(self.xy[p, : int(np.ceil(self.length[p])) + 1])
        return self._segments[p]

    def _crosswalks(self, lay: Layout, lines: list[np.ndarray]) -> None:
        p_count = len(lines)
        self.cw_in = np.full((p_count, MAX_CROSS), np.inf)
        self.cw_out = np.full((p_count, MAX_CROSS), np.inf)
        self.cw_u = np.zeros((p_count, MAX_CROSS))
        self.cw_id = np.full((p_count, MAX_CROSS), -1)
        if not lay.crossings:
            return
        strings = roads.lines(lines)
        segs: dict[int, tuple] = {}
        for c, cross in enumerate(lay.crossings):
            hits = shapely.intersection(strings, cross.polygon)
            across = (cross.b - cross.a) / portable.norm(cross.b - cross.a)
            for p in np.flatnonzero(~shapely.is_empty(hits)):
                pts = shapely.get_coordinates(hits[p])
                if p not in segs:
                    segs[p] = pl.segments(lines[p])
                st, _ = pl.project(pts, None, segs[p])
                slot = np.argmax(self.cw_id[p] < 0)
                if self.cw_id[p, slot] >= 0:
                    continue
                mid = self.xy[p, round((st.min() + st.max()) / 2)]
                self.cw_in[p, slot], self.cw_out[p, slot] = st.min(), st.max()
                rel = mid - cross.a
                self.cw_u[p, slot] = float(rel[0] * across[0] + rel[1] * across[1])
                self.cw_id[p, slot] = c

    def locate(self, path: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lane row (N,) and station in that lane [m] (N,) of vehicles at stations s on paths."""
        k = np.maximum((self.start[path] <= s[:, None]).sum(1) - 1, 0)
        return self.lanes[path, k], s - self.start[path, k]

    def sample(self, path: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Point (..., 2), heading (...) and curvature (...) at stations s on paths (linear interpolation)."""
        s = np.clip(s, 0.0, self.xy.shape[1] - 1.001)
        i = np.floor(s).astype(np.int64)
        f = s - i
        xy = self.xy[path, i] * (1 - f)[..., None] + self.xy[path, i + 1] * f[..., None]
        h = self.heading[path, i] * (1 - f) + self.heading[path, i + 1] * f
        return xy, h, self.curv[path, i]
