"""Polyline helpers on (M, 2) numpy arrays [m]: arc length, resampling, offsets, smooth curves."""

from __future__ import annotations

from itertools import pairwise
from typing import cast

import numpy as np

from scenes import portable
from scenes.geometry import wrap_angle

STEP = 1.0  # [m] sampling of every generated line


def arc_length(xy: np.ndarray) -> np.ndarray:
    """(M,) cumulative distance [m] along the points (M, 2)."""
    seg = portable.norm(np.diff(xy, axis=0))
    return np.concatenate([[0.0], np.cumsum(seg)])


def resample(xy: np.ndarray, step: float = STEP) -> np.ndarray:
    """The line (M, 2) resampled at uniform arc-length spacing of at most `step` [m]; ends kept."""
    s = arc_length(xy)
    n = max(2, int(np.ceil(s[-1] / step)) + 1)
    t = np.linspace(0.0, s[-1], n)
    return np.stack([portable.interp(t, s, xy[:, 0]), portable.interp(t, s, xy[:, 1])], axis=-1)


def headings(xy: np.ndarray) -> np.ndarray:
    """(M,) tangent direction [rad] at each point of (M, 2)."""
    d = np.gradient(xy, axis=0)
    return portable.arctan2(d[:, 1], d[:, 0])


def curvature(xy: np.ndarray) -> np.ndarray:
    """(M,) signed curvature [1/m] (left positive) of (M, 2)."""
    h = np.unwrap(headings(xy))
    s = arc_length(xy)
    return np.gradient(h, s) if len(s) > 2 else np.zeros(len(s))


def normals(xy: np.ndarray) -> np.ndarray:
    """(M, 2) unit left normals of (M, 2)."""
    sin, cos = portable.sincos(headings(xy))
    return np.stack([-sin, cos], axis=-1)


def offset(xy: np.ndarray, d: np.ndarray | float) -> np.ndarray:
    """Points shifted by `d` [m] (scalar or (M,)) along the left normal."""
    return xy + np.asarray(d, dtype=float).reshape(-1, 1) * normals(xy)


def smoothstep(x: np.ndarray) -> np.ndarray:
    """Quintic 0 -> 1 with zero first and second derivatives at both ends, x clipped to [0, 1]."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * x * (10.0 - 15.0 * x + 6.0 * x * x)


def smoothstep_slope(x: np.ndarray) -> np.ndarray:
    """d smoothstep / dx."""
    x = np.clip(x, 0.0, 1.0)
    return 30.0 * (x * x) * ((1.0 - x) * (1.0 - x))


def hermite(p0: np.ndarray, h0: float, p1: np.ndarray, h1: float, step: float = STEP) -> np.ndarray:
    """Cubic Hermite curve from pose (p0, h0) to (p1, h1), resampled every `step` [m]; (M, 2)."""
    chord = float(portable.norm(p1 - p0))
    turn = abs(float(wrap_angle(h1 - h0)))
    k = chord * (1.0 + 0.17 * min(turn / (np.pi / 2), 1.0))  # ~circular arc for a 90 deg turn
    t = np.linspace(0.0, 1.0, 200)[:, None]
    (s0, c0), (s1, c1) = portable.sincos(h0), portable.sincos(h1)
    m0, m1 = k * np.array([c0, s0]), k * np.array([c1, s1])
    t2 = t * t
    t3 = t2 * t
    h00, h10 = 2 * t3 - 3 * t2 + 1, t3 - 2 * t2 + t
    h01, h11 = -2 * t3 + 3 * t2, t3 - t2
    pts = h00 * p0 + h10 * m0 + h01 * p1 + h11 * m1
    out = resample(pts, step)
    out[0], out[-1] = p0, p1
    return out


def integrate_curvature(kappa: np.ndarray, start: np.ndarray, heading: float, step: float = STEP) -> np.ndarray:
    """Points (M + 1, 2) of the line whose curvature is `kappa` (M,) [1/m] per `step` [m]."""
    h = heading + np.concatenate([[0.0], np.cumsum(kappa * step)])
    mid = 0.5 * (h[1:] + h[:-1])
    sin, cos = portable.sincos(mid)
    d = step * np.stack([cos, sin], axis=-1)
    return start + np.concatenate([[[0.0, 0.0]], np.cumsum(d, axis=0)])


def concat(lines: list[np.ndarray]) -> np.ndarray:
    """Lines joined end to start, dropping repeated junction points; (M, 2)."""
    parts = [lines[0]] + [line[1:] if np.allclose(line[0], prev[-1]) else line for prev, line in
                          pairwise(lines)]
    return np.concatenate(parts, axis=0)


def segments(line: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Of the polyline (M, 2): segment starts (M - 1, 2), segment vectors (M - 1, 2), squared segment
    lengths (M - 1,) [m^2] (at least 1e-12) and point stations (M,) [m]; what `project` needs."""
    a, b = line[:-1], line[1:]
    ab = b - a
    return a, ab, np.maximum((ab * ab).sum(-1), 1e-12), arc_length(line)


def project(points: np.ndarray, line: np.ndarray | None,
            segs: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """Station [m] and signed lateral distance [m] (left +) of points (K, 2) on the polyline (M, 2);
    `segs`, the line's `segments`, may be given instead of the line when it is projected on often."""
    a, ab, seg_len2, s = segments(cast(np.ndarray, line)) if segs is None else segs  # (line given then)
    ap = points[:, None, :] - a[None]
    t = np.clip((ap * ab[None]).sum(-1) / seg_len2[None], 0.0, 1.0)
    foot = a[None] + t[..., None] * ab[None]
    off = points[:, None, :] - foot
    dist2 = (off * off).sum(-1)
    k = np.argmin(dist2, axis=1)
    rows = np.arange(len(points))
    station = s[k] + t[rows, k] * np.sqrt(seg_len2[k])
    cross = ab[k, 0] * ap[rows, k, 1] - ab[k, 1] * ap[rows, k, 0]
    lateral = np.sign(cross) * np.sqrt(dist2[rows, k])
    return station, lateral
