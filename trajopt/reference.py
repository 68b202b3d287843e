"""Route reference line and per-step scene data (map frame) for the driving NLP.

The route centreline is resampled every 0.5 m and extended straight 30 m before and 150 m after, so a
reference point exists for any reachable state. Offsets use a second-order local model around a reference
point r with unit tangent t, normal n and curvature kappa [1/m]:
    lateral(p) ~= n.(p - r) - kappa (t.(p - r))^2 / 2,   along(p) = t.(p - r)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import shapely
from scipy.spatial import cKDTree

PRE, POST, STEP = 30.0, 150.0, 0.5  # [m]


@dataclass(frozen=True, eq=False)
class Reference:
    """Polyline over arc length s [m] (s = 0 at the route start): x, y, heading (unwrapped), kappa, each
    (S,)."""

    s: np.ndarray
    xy: np.ndarray
    heading: np.ndarray
    kappa: np.ndarray
    line: shapely.LineString  # the extended polyline, arc length s + PRE

    @classmethod
    def from_line(cls, centerline: shapely.LineString) -> Reference:
        """The reference of a route centreline, sampled every STEP and extended straight by PRE before and
        POST after it."""
        length = centerline.length
        s_in = np.arange(0.0, length + 1e-9, STEP) if length > STEP else np.array([0.0, length])
        xy = shapely.get_coordinates(shapely.line_interpolate_point(centerline, s_in))
        h0 = np.arctan2(*(xy[1] - xy[0])[::-1]) if len(xy) > 1 else 0.0
        h1 = np.arctan2(*(xy[-1] - xy[-2])[::-1]) if len(xy) > 1 else 0.0
        pre = np.arange(-PRE, 0.0, STEP)
        post = np.arange(STEP, POST + 1e-9, STEP)
        xy = np.concatenate([xy[0] + pre[:, None] * [np.cos(h0), np.sin(h0)], xy,
                             xy[-1] + post[:, None] * [np.cos(h1), np.sin(h1)]])
        s = np.concatenate([pre, s_in, s_in[-1] + post])
        d = np.gradient(xy, s, axis=0)
        heading = np.unwrap(np.arctan2(d[:, 1], d[:, 0]))
        kappa = np.gradient(heading, s)
        kernel = np.ones(9) / 9.0  # smooth over +-2 m
        kappa = np.convolve(np.pad(kappa, 4, mode="edge"), kernel, mode="valid")
        return cls(s, xy, heading, kappa, shapely.LineString(xy))

    @functools.cached_property
    def _tree(self) -> cKDTree:
        return cKDTree(self.xy)

    def project(self, xy: np.ndarray) -> np.ndarray:
        """Arc length s [m] of the nearest reference point of points (..., 2): the nearest vertex (0.5 m
        apart) refined on its two segments, which is the polyline's nearest point wherever the route does
        not fold back within the point's distance."""
        flat = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        _, vertex = self._tree.query(flat)
        best_s, best_d = self.s[vertex], np.linalg.norm(flat - self.xy[vertex], axis=-1)
        for first in (vertex - 1, vertex):
            first = np.clip(first, 0, len(self.s) - 2)
            a, seg = self.xy[first], self.xy[first + 1] - self.xy[first]
            u = np.clip(((flat - a) * seg).sum(-1) / np.maximum((seg * seg).sum(-1), 1e-12), 0.0, 1.0)
            d = np.linalg.norm(flat - a - u[:, None] * seg, axis=-1)
            closer = d < best_d
            best_s = np.where(closer, self.s[first] + u * (self.s[first + 1] - self.s[first]), best_s)
            best_d = np.minimum(d, best_d)
        return best_s.reshape(np.shape(xy)[:-1])

    def at(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Point (..., 2) [m], heading (...,) [rad] and curvature (...,) [1/m] at arc lengths s."""
        xy = np.stack([np.interp(s, self.s, self.xy[:, 0]), np.interp(s, self.s, self.xy[:, 1])], -1)
        return xy, np.interp(s, self.s, self.heading), np.interp(s, self.s, self.kappa)

    def frenet(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Arc length s [m] and signed lateral offset [m] (left +) of points (..., 2)."""
        s = self.project(xy)
        foot, heading, _ = self.at(s)
        rel = np.asarray(xy) - foot
        return s, np.cos(heading) * rel[..., 1] - np.sin(heading) * rel[..., 0]


def neighbour_offsets(scene, ref: Reference, s: np.ndarray, side: int) -> np.ndarray:
    """(K,) lateral offset [m] of the neighbour lane on `side` (+1 left, -1 right) at arc lengths s; NaN where
    the nearest route lane has no such non-connector peer in its roadblock."""
    m = scene.map
    pts_xy, _, _ = ref.at(s)
    pts = shapely.points(pts_xy)
    rows = [m.lane_index(lane) for lane in scene.route.lane_ids]
    dist = np.stack([shapely.distance(m.lane_centerlines[r], pts) for r in rows])
    nearest = np.asarray(rows)[np.argmin(dist, axis=0)]
    out = np.full(len(s), np.nan)
    for row in np.unique(nearest):
        mask = nearest == row
        if m.lane_is_connector[row]:
            continue
        peers = np.flatnonzero((m.lane_roadblock_ids == m.lane_roadblock_ids[row]) & ~m.lane_is_connector)
        best = np.full(mask.sum(), np.inf)
        for peer in peers[peers != row]:
            line = m.lane_centerlines[peer]
            foot = shapely.get_coordinates(shapely.line_interpolate_point(line, shapely.line_locate_point(
                line, pts[mask])))
            _, off = ref.frenet(foot)
            off = np.where(side * off > 0.5, off, np.inf * side)
            best = np.where(np.abs(off) < np.abs(best), off, best)
        out[mask] = np.where(np.isfinite(best), best, np.nan)
    return out


def corridor(area: shapely.Geometry, ref: Reference, s: np.ndarray, reach: float = 12.0) -> np.ndarray:
    """(K, 2) lateral bounds [m] (right, left) of the drivable area along the normals at arc lengths s."""
    xy, heading, _ = ref.at(s)
    normal = np.stack([-np.sin(heading), np.cos(heading)], -1)
    segs = shapely.linestrings(np.stack([xy - reach * normal, xy + reach * normal], 1))
    cuts = shapely.intersection(segs, area)
    out = np.tile([-1.0, 1.0], (len(s), 1))
    for k, cut in enumerate(cuts):
        parts = getattr(cut, "geoms", [cut])
        for part in parts:
            coords = shapely.get_coordinates(part)
            if len(coords) < 2:
                continue
            lat = (coords - xy[k]) @ normal[k]
            if lat.min() <= 1e-6 and lat.max() >= -1e-6:
                out[k] = (min(lat.min(), -1.0), max(lat.max(), 1.0))
    return out


class StationCorridor:
    """`corridor` at the reference's vertices (0.5 m apart), computed on first use and kept; between vertices
    the narrower of the two neighbouring corridors (a conservative bound)."""

    def __init__(self, area: shapely.Geometry, ref: Reference, reach: float = 12.0):
        self.area, self.ref, self.reach = area, ref, reach
        self._bounds = np.full((len(ref.s), 2), np.nan)

    def __call__(self, s: np.ndarray) -> np.ndarray:
        """(K, 2) lateral bounds [m] (right, left) at arc lengths s (K,)."""
        s = np.clip(np.asarray(s, dtype=np.float64), self.ref.s[0], self.ref.s[-1])
        lower = np.clip(np.searchsorted(self.ref.s, s, side="right") - 1, 0, len(self.ref.s) - 2)
        stations = np.concatenate([lower, lower + 1])
        missing = np.unique(stations[np.isnan(self._bounds[stations, 0])])
        if len(missing):
            self._bounds[missing] = corridor(self.area, self.ref, self.ref.s[missing], self.reach)
        a, b = self._bounds[lower], self._bounds[lower + 1]
        return np.stack([np.maximum(a[:, 0], b[:, 0]), np.minimum(a[:, 1], b[:, 1])], -1)
