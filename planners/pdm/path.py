"""A discrete path that can be interpolated by arc length, as PDM's centreline and proposal paths."""

from __future__ import annotations

import numpy as np
import shapely
from shapely.ops import substring

from scenes.geometry import wrap_angle


class DiscretePath:
    """Poses (M, 3) [m, m, rad] along a path, with cumulative progress (M,) [m].

    Headings are unwrapped so that linear interpolation never jumps across +-pi.
    """

    def __init__(self, poses: np.ndarray):
        poses = np.asarray(poses, dtype=np.float64)
        keep = np.concatenate([[True], np.linalg.norm(np.diff(poses[:, :2], axis=0), axis=-1) > 1e-9])
        self.poses = poses[keep].copy()
        if len(self.poses) < 2:
            raise ValueError("a path needs at least two distinct points")
        self.poses[:, 2] = np.unwrap(self.poses[:, 2])
        steps = np.linalg.norm(np.diff(self.poses[:, :2], axis=0), axis=-1)
        self.progress = np.concatenate([[0.0], np.cumsum(steps)])
        self.linestring = shapely.LineString(self.poses[:, :2])

    @classmethod
    def from_points(cls, points: np.ndarray) -> DiscretePath:
        """A path through points (M, 2), headings taken from the segment directions."""
        points = np.asarray(points, dtype=np.float64)
        delta = np.diff(points, axis=0)
        heading = np.arctan2(delta[:, 1], delta[:, 0])
        heading = np.concatenate([heading, heading[-1:]])
        return cls(np.column_stack([points, heading]))

    @property
    def length(self) -> float:
        """Path length [m]."""
        return float(self.progress[-1])

    def interpolate(self, distances: np.ndarray) -> np.ndarray:
        """Poses (..., 3) at arc lengths `distances` (...) [m], clipped to [1e-5, length] as PDM does."""
        s = np.clip(np.asarray(distances, dtype=np.float64), 1e-5, self.length)
        out = np.stack([np.interp(s, self.progress, self.poses[:, i]) for i in range(3)], axis=-1)
        out[..., 2] = wrap_angle(out[..., 2])
        return out

    def project(self, points: np.ndarray) -> np.ndarray:
        """Arc length (...) [m] of the closest point on the path to each of `points` (..., 2)."""
        points = np.asarray(points, dtype=np.float64)
        return shapely.line_locate_point(self.linestring, shapely.points(points))

    def offset(self, lateral: float) -> DiscretePath:
        """The parallel path `lateral` [m] to the left (negative: right), same headings."""
        normal = self.poses[:, 2] + np.pi / 2
        shifted = self.poses.copy()
        shifted[:, 0] += lateral * np.cos(normal)
        shifted[:, 1] += lateral * np.sin(normal)
        return DiscretePath(shifted)

    def substring(self, start: float, end: float) -> shapely.LineString:
        """The path between arc lengths `start` and `end` [m]."""
        return substring(self.linestring, max(start, 0.0), min(end, self.length))
