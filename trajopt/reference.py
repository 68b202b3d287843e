"""Route reference line and per-step scene data (map frame) for the driving NLP.

The route centreline is resampled every 0.5 m and extended straight 30 m before and 150 m after, so a
reference point exists for any reachable state. Offsets use a second-order local model around a reference
point r with unit tangent t, normal n and curvature kappa [1/m]:
    lateral(p) ~= n.(p - r) - kappa (t.(p - r))^2 / 2,   along(p) = t.(p - r)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

PRE, POST, STEP = 30.0, 150.0, 0.5  # [m]


@dataclass(frozen=True, eq=False)
class Reference:
    """Polyline over arc length s [m] (s = 0 at the route start): x, y, heading (unwrapped), kappa, each (S,)."""

    s: np.ndarray
    xy: np.ndarray
    heading: np.ndarray
    kappa: np.ndarray
    line: shapely.LineString  # the extended polyline, arc length s + PRE

    @classmethod
    def from_line(cls, centerline: shapely.LineString) -> Reference:
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

    def project(self, xy: np.ndarray) -> np.ndarray:
        """Arc length s [m] of the nearest reference point of points (..., 2)."""
        flat = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        s = shapely.line_locate_point(self.line, shapely.points(flat)) - PRE
        return s.reshape(np.shape(xy)[:-1])

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
