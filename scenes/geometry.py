"""SE(2) helpers on numpy arrays. Poses are (..., 3): x [m], y [m], heading [rad], counter-clockwise.

Frame changes rotate element by element with `scenes.portable`'s sine and cosine, so the same pose gives the
same bits on every CPU (a BLAS 2x2 product does not). `box_corners`, used in evaluation's hot loops over
many boxes, keeps numpy's vectorised trigonometry.
"""

from __future__ import annotations

import numpy as np
import shapely

from scenes import portable


def wrap_angle(angle: np.ndarray | float) -> np.ndarray:
    """Wrap angles [rad] to [-pi, pi)."""
    return (np.asarray(angle) + np.pi) % (2.0 * np.pi) - np.pi


def rotation(heading: float) -> np.ndarray:
    """2x2 rotation matrix for `heading` [rad]."""
    s, c = portable.sincos(float(heading))
    return np.array([[c, -s], [s, c]])


def points_to_local(points: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """Express global points (..., 2) [m] in the frame of pose `origin` (3,)."""
    s, c = portable.sincos(float(origin[2]))
    return portable.rotate(np.asarray(points, dtype=np.float64) - origin[:2], (c, -s))


def points_to_global(points: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """Inverse of `points_to_local`: local points (..., 2) [m] to the global frame."""
    s, c = portable.sincos(float(origin[2]))
    return portable.rotate(points, (c, s)) + origin[:2]


def poses_to_local(poses: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """Express global poses (..., 3) in the frame of pose `origin` (3,)."""
    out = np.empty(np.shape(poses), dtype=np.float64)
    out[..., :2] = points_to_local(poses[..., :2], origin)
    out[..., 2] = wrap_angle(poses[..., 2] - origin[2])
    return out


def poses_to_global(poses: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """Inverse of `poses_to_local`."""
    out = np.empty(np.shape(poses), dtype=np.float64)
    out[..., :2] = points_to_global(poses[..., :2], origin)
    out[..., 2] = wrap_angle(poses[..., 2] + origin[2])
    return out


def vectors_to_local(vectors: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """Rotate free vectors (..., 2), e.g. velocities [m/s], into the frame of `origin` (3,)."""
    s, c = portable.sincos(float(origin[2]))
    return portable.rotate(vectors, (c, -s))


def box_corners(center_xy: np.ndarray, heading: np.ndarray, length: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Corners (..., 4, 2) [m] of oriented boxes: front-left, rear-left, rear-right, front-right."""
    half = np.stack([np.asarray(length) / 2.0, np.asarray(width) / 2.0], axis=-1)[..., None, :]
    signs = np.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])
    local = signs * half  # (..., 4, 2)
    c, s = np.cos(heading)[..., None], np.sin(heading)[..., None]
    x = local[..., 0] * c - local[..., 1] * s
    y = local[..., 0] * s + local[..., 1] * c
    return np.stack([x, y], axis=-1) + np.asarray(center_xy)[..., None, :]


def polygon_parts(geometry: shapely.Geometry) -> list[shapely.Polygon]:
    """The Polygons (area > 0) of `geometry`, made valid first when it is not (`shapely.make_valid`); collections
    and multi-polygons are flattened, in shapely's part order."""
    if geometry.is_empty:
        return []
    if not shapely.is_valid(geometry):
        geometry = shapely.make_valid(geometry)
    parts = shapely.get_parts(shapely.get_parts(geometry))  # collection -> MultiPolygon -> Polygon
    return [p for p in parts if isinstance(p, shapely.Polygon) and p.area > 0]


def largest_polygon(geometry: shapely.Geometry) -> shapely.Polygon:
    """The largest of `polygon_parts(geometry)`; an empty Polygon when it has none."""
    parts = polygon_parts(geometry)
    return max(parts, key=lambda p: p.area) if parts else shapely.Polygon()
