"""`NavWorld`: a static navigation world as a struct of arrays, and its geometry per robot height slice.

Obstacles are boxes, cylinders and tables (a top slab on four legs), standing on the floor (z = 0) of a
rectangular world; walls are thick segments. Every obstacle and wall expands to `Primitives`: vertical
boxes and cylinders with a z-range, which the MJCF model, the occupancy grid, the clearance queries and the
obstacle surface points are all built from. A primitive blocks a robot when it reaches below the robot's
top (`z_bottom < robot.height`): a table's slab blocks the tall wheeled robot, and only its legs block the
short quadruped.
"""

from __future__ import annotations

import enum
import itertools
import math
from dataclasses import dataclass

import numpy as np
import shapely

from scenes import portable
from scenes._checks import ShapeChecker
from scenes.nav.types import RobotProfile

TABLE_TOP = 0.04  # [m] thickness of a table's slab
TABLE_LEG = 0.06  # [m] side of a table's square legs
TABLE_LEG_INSET = 0.04  # [m] from the slab's edge to the leg's outer face


class ObstacleKind(enum.IntEnum):
    """An obstacle's shape: a box, a cylinder, or a table (a top on four legs)."""

    BOX = 0
    CYLINDER = 1
    TABLE = 2


class PrimitiveKind(enum.IntEnum):
    """A primitive's shape: a vertical box or cylinder."""

    BOX = 0
    CYLINDER = 1


@dataclass(frozen=True, eq=False)
class Primitives:
    """Vertical boxes and cylinders, (P,) each field: what obstacles and walls are made of.

    Attributes:
        kind: (P,) int8 PrimitiveKind.
        center: (P, 2) float64 centre [m], world frame.
        half: (P, 2) float64 half length, half width [m] (a cylinder's radius is half[:, 0]).
        yaw: (P,) float64 heading of the length axis [rad].
        z: (P, 2) float64 bottom, top [m].
    """

    kind: np.ndarray
    center: np.ndarray
    half: np.ndarray
    yaw: np.ndarray
    z: np.ndarray

    def __len__(self) -> int:
        return int(self.kind.shape[0])

    def select(self, keep: np.ndarray) -> Primitives:
        """The primitives where `keep` (a (P,) mask or indices) holds."""
        return Primitives(self.kind[keep], self.center[keep], self.half[keep], self.yaw[keep], self.z[keep])

    def blocking(self, robot: RobotProfile) -> Primitives:
        """The primitives in `robot`'s height slice [0, robot.height]."""
        return self.select((self.z[:, 0] < robot.height) & (self.z[:, 1] > 0.0))

    def signed_distance(self, xy: np.ndarray) -> np.ndarray:
        """(N, P) signed xy distance [m] from points (N, 2) to each primitive's footprint (< 0 inside)."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        delta = xy[:, None, :] - self.center[None]
        s, c = portable.sincos(self.yaw)
        local = np.stack([delta[..., 0] * c + delta[..., 1] * s, -delta[..., 0] * s + delta[..., 1] * c], -1)
        q = np.abs(local) - self.half[None]
        box = portable.norm(np.maximum(q, 0.0)) + np.minimum(q.max(axis=-1), 0.0)
        circle = portable.norm(delta) - self.half[None, :, 0]
        return np.where(self.kind[None] == PrimitiveKind.CYLINDER, circle, box)

    def distance(self, xy: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """(N,) distance [m] from points (N, 2) to the nearest footprint (0 inside; inf without primitives)."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        if len(self) == 0:
            return np.full(len(xy), np.inf)
        out = np.empty(len(xy))
        for lo in range(0, len(xy), chunk):
            out[lo:lo + chunk] = self.signed_distance(xy[lo:lo + chunk]).min(axis=1)
        return np.maximum(out, 0.0)

    def footprints(self) -> list[shapely.Polygon]:
        """Shapely polygons of the footprints (cylinders as 32-gons)."""
        out = []
        for kind, (cx, cy), (hx, hy), yaw in zip(self.kind, self.center, self.half, self.yaw):
            if kind == PrimitiveKind.CYLINDER:
                out.append(shapely.Point(cx, cy).buffer(hx, quad_segs=8))
                continue
            corners = np.array([[hx, hy], [-hx, hy], [-hx, -hy], [hx, -hy]])
            s, c = portable.sincos(yaw)
            out.append(shapely.Polygon(portable.rotate(corners, (c, s)) + [cx, cy]))
        return out

    def surface_points(self, spacing: float = 0.05) -> np.ndarray:
        """(K, 2) points [m] along the footprint outlines, about `spacing` apart (NavDP's obstacle points)."""
        chunks = [np.zeros((0, 2))]
        for kind, (cx, cy), (hx, hy), yaw in zip(self.kind, self.center, self.half, self.yaw):
            if kind == PrimitiveKind.CYLINDER:
                n = max(8, math.ceil(2 * math.pi * hx / spacing))
                a = np.arange(n) * (2 * math.pi / n)
                sin, cos = portable.sincos(a)
                chunks.append(np.column_stack([cx + hx * cos, cy + hx * sin]))
                continue
            corners = np.array([[hx, hy], [-hx, hy], [-hx, -hy], [hx, -hy], [hx, hy]])
            for a, b in itertools.pairwise(corners):
                n = max(1, math.ceil(portable.norm(b - a) / spacing))
                t = np.arange(n)[:, None] / n
                s, c = portable.sincos(yaw)
                chunks.append(portable.rotate(a + t * (b - a), (c, s)) + [cx, cy])
        return np.concatenate(chunks)


def _concat(parts: list[Primitives]) -> Primitives:
    return Primitives(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("kind", "center", "half",
                                                                                   "yaw", "z")))


def _boxes(center: np.ndarray, half: np.ndarray, yaw: np.ndarray, z: np.ndarray) -> Primitives:
    return Primitives(np.zeros(len(center), np.int8), center, half, yaw, z)


@dataclass(frozen=True, eq=False)
class NavWorld:
    """A static world: obstacles (N,) and walls (W,) inside `bounds`, floor at z = 0.

    Attributes:
        world_id: "<kind>-<seed>" for generated worlds (`scenes.nav.generator.world_from_id` rebuilds it).
        bounds: (4,) float64 xmin, ymin, xmax, ymax [m]; outside is not traversable.
        kind: (N,) int8 ObstacleKind.
        center: (N, 2) float64 footprint centre [m].
        size: (N, 2) float64 full length, width [m]; a cylinder's diameter is size[:, 0] (= size[:, 1]).
        yaw: (N,) float64 heading of the length axis [rad].
        z_range: (N, 2) float64 bottom, top [m]; a table's slab is the top TABLE_TOP of it, its legs reach
            the floor.
        wall_start, wall_end: (W, 2) float64 centre-line end points [m].
        wall_thickness: (W,) float64 [m].
        wall_height: (W,) float64 [m].
    """

    world_id: str
    bounds: np.ndarray
    kind: np.ndarray
    center: np.ndarray
    size: np.ndarray
    yaw: np.ndarray
    z_range: np.ndarray
    wall_start: np.ndarray
    wall_end: np.ndarray
    wall_thickness: np.ndarray
    wall_height: np.ndarray

    @property
    def num_obstacles(self) -> int:
        """Obstacles N."""
        return int(self.kind.shape[0])

    @property
    def num_walls(self) -> int:
        """Walls W."""
        return int(self.wall_start.shape[0])

    def validate(self) -> NavWorld:
        """The world itself; ValidationError naming the field on a bad shape, dtype or value."""
        check = ShapeChecker(f"NavWorld({self.world_id})")
        check.array("bounds", self.bounds, (4,), "f")
        check.array("kind", self.kind, ("N",), "i")
        for field, shape in (("center", ("N", 2)), ("size", ("N", 2)), ("yaw", ("N",)),
                             ("z_range", ("N", 2)), ("wall_start", ("W", 2)), ("wall_end", ("W", 2)),
                             ("wall_thickness", ("W",)), ("wall_height", ("W",))):
            check.array(field, getattr(self, field), shape, "f")
        xmin, ymin, xmax, ymax = self.bounds
        if not (xmax > xmin and ymax > ymin):
            check.fail("bounds", f"{self.bounds.tolist()} is empty")
        if self.num_obstacles:
            if not np.isin(self.kind, [k.value for k in ObstacleKind]).all():
                check.fail("kind", "holds a value that is not an ObstacleKind")
            if (self.size <= 0).any():
                check.fail("size", "every size must be positive")
            if (self.z_range[:, 0] < 0).any() or (self.z_range[:, 1] <= self.z_range[:, 0]).any():
                check.fail("z_range", "needs 0 <= bottom < top")
            tables = self.kind == ObstacleKind.TABLE
            if (self.z_range[tables, 0] != 0).any() or (self.z_range[tables, 1] <= TABLE_TOP).any():
                check.fail("z_range", f"tables stand on the floor and are taller than {TABLE_TOP} m")
            if not ((self.center >= self.bounds[:2]) & (self.center <= self.bounds[2:])).all():
                check.fail("center", "an obstacle's centre lies outside bounds")
        if self.num_walls and ((self.wall_thickness <= 0).any() or (self.wall_height <= 0).any()):
            check.fail("wall_thickness/wall_height", "must be positive")
        return self

    def primitives(self) -> Primitives:
        """Every obstacle and wall as vertical boxes and cylinders."""
        kind, size, z = self.kind, self.size, self.z_range
        solid = kind != ObstacleKind.TABLE
        parts = [Primitives(np.where(kind[solid] == ObstacleKind.CYLINDER, PrimitiveKind.CYLINDER,
                                     PrimitiveKind.BOX).astype(np.int8),
                            self.center[solid], size[solid] / 2, self.yaw[solid], z[solid])]
        tables = np.flatnonzero(~solid)
        if len(tables):
            top = z[tables, 1]
            parts.append(_boxes(self.center[tables], size[tables] / 2, self.yaw[tables],
                                np.column_stack([top - TABLE_TOP, top])))
            offset = size[tables] / 2 - TABLE_LEG_INSET - TABLE_LEG / 2  # (T, 2) leg centre, table frame
            s, c = portable.sincos(self.yaw[tables])
            for sx, sy in ((1, 1), (-1, 1), (-1, -1), (1, -1)):
                lx, ly = sx * offset[:, 0], sy * offset[:, 1]
                centre = self.center[tables] + np.column_stack([lx * c - ly * s, lx * s + ly * c])
                parts.append(_boxes(centre, np.full((len(tables), 2), TABLE_LEG / 2), self.yaw[tables],
                                    np.column_stack([np.zeros(len(tables)), top - TABLE_TOP])))
        if self.num_walls:
            delta = self.wall_end - self.wall_start
            length = portable.norm(delta)
            parts.append(_boxes((self.wall_start + self.wall_end) / 2,
                                np.column_stack([length / 2 + self.wall_thickness / 2, self.wall_thickness / 2]),
                                portable.arctan2(delta[:, 1], delta[:, 0]),
                                np.column_stack([np.zeros(self.num_walls), self.wall_height])))
        return _concat(parts)

    def contains(self, xy: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """(N,) bool: the points (N, 2) lie inside bounds shrunk by `margin` [m]."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        return ((xy >= self.bounds[:2] + margin) & (xy <= self.bounds[2:] - margin)).all(axis=1)


def make_world(world_id: str, bounds, obstacles: list[tuple], walls: list[tuple]) -> NavWorld:
    """A validated NavWorld from plain rows.

    Args:
        obstacles: (kind, cx, cy, length, width, yaw, z_bottom, z_top) per obstacle.
        walls: (x0, y0, x1, y1, thickness, height) per wall.
    """
    obs = np.asarray(obstacles, dtype=np.float64).reshape(-1, 8)
    wall = np.asarray(walls, dtype=np.float64).reshape(-1, 6)
    return NavWorld(world_id, np.asarray(bounds, dtype=np.float64), obs[:, 0].astype(np.int8),
                    obs[:, 1:3].copy(), obs[:, 3:5].copy(), obs[:, 5].copy(), obs[:, 6:8].copy(),
                    wall[:, 0:2].copy(), wall[:, 2:4].copy(), wall[:, 4].copy(), wall[:, 5].copy()).validate()


def boundary_walls(bounds, thickness: float = 0.1, height: float = 2.0) -> list[tuple]:
    """Four walls just inside `bounds` (their outer faces on the bounds)."""
    xmin, ymin, xmax, ymax = (float(v) for v in bounds)
    h = thickness / 2
    return [(xmin + h, ymin + h, xmax - h, ymin + h, thickness, height),
            (xmax - h, ymin + h, xmax - h, ymax - h, thickness, height),
            (xmax - h, ymax - h, xmin + h, ymax - h, thickness, height),
            (xmin + h, ymax - h, xmin + h, ymin + h, thickness, height)]
