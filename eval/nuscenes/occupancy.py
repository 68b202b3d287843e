"""Geometry behind the nuScenes collision rates: BEV rasters, the ego's raster footprint, oriented boxes.

Rasters are 200 x 200 cells of 0.5 m covering +-50 m in the ego frame at now (x forward, y left). Our index
(i, j) runs along +x and +y; cell (i, j) has its centre at (x0 + 0.5 i, y0 + 0.5 j) [m]. The three raster
metrics (ST-P3, UniAD, VAD) each keep their own grid: their labels round box corners to pixels with
`round((p + 50) / 0.5)`, so pixel k's centre lies at a multiple of 0.5 m, and UniAD and VAD run one or both
axes against ours. `RasterAxis` records that per axis; `RasterGrid` is the pair.

A cell is occupied when its centre is inside an obstacle box, decided by the crossing-number test of
`skimage.draw.polygon` (skimage/_shared/geometry.pxd `point_in_polygon`: a crossing counts where
`row_a <= row < row_b` and `col < crossing`, i.e. half-open). The repositories fill their labels with
`cv2.fillPoly` on rounded corners instead; that rasterisation is not reproduced.

The ego footprint is the repositories' own: the cells of the ego box at the origin (length along the ego's
forward axis, never rotated; centre 0.5 m ahead), found with the same crossing test in their index space
`(p + 49.75) / 0.5`, then shifted by `s * p / 0.5` at each waypoint, truncated to an integer and clipped onto
the grid (stp3/metrics.py:292-331, planning_metrics.py:43-82, metric_stp3.py:166-240).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GRID_CELLS = 200
CELL = 0.5  # [m]
FOOTPRINT_ORIGIN = -49.75  # [m] the repos' `bx`: the coordinate their footprint polygon is measured from
EGO_LENGTH = 4.084  # [m]
EGO_WIDTH = 1.85  # [m]
EGO_CENTER_OFFSET = 0.5  # [m] ego box centre ahead of the trajectory point


@dataclass(frozen=True)
class RasterAxis:
    """How one of our ego-frame axes sits on a repository's BEV raster.

    Attributes:
        first_centre: [m] coordinate, on our axis, of the centre of our cell 0.
        reversed: the repository's index grows against our axis (our index = 199 - theirs).
        footprint_from_end: the repository writes the ego footprint's index as `N - offset` (VAD's rows).
    """

    first_centre: float
    reversed: bool = False
    footprint_from_end: bool = False


@dataclass(frozen=True)
class RasterGrid:
    """A repository's BEV raster: `x` along our forward axis (its rows), `y` along our left axis (its columns)."""

    x: RasterAxis
    y: RasterAxis

    def cell_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """(200,) x and (200,) y coordinates [m] of our cells' centres."""
        index = np.arange(GRID_CELLS) * CELL
        return self.x.first_centre + index, self.y.first_centre + index


def points_in_quads(rows: np.ndarray, cols: np.ndarray, quads: np.ndarray) -> np.ndarray:
    """skimage's crossing-number test of points against quadrilaterals.

    Args:
        rows: (..., P) point coordinates on the half-open axis ([m] or cells).
        cols: (..., P) point coordinates on the other axis.
        quads: (..., Q, 4, 2) polygons as (row, col) corners, in order.

    Returns:
        (..., P, Q) bool, True where the point is inside the polygon.
    """
    r = rows[..., :, None]
    c = cols[..., :, None]
    inside = np.zeros(np.broadcast_shapes(r.shape, quads.shape[:-3] + (1, quads.shape[-3])), bool)
    for k in range(4):
        ra, ca = quads[..., None, :, k, 0], quads[..., None, :, k, 1]
        rb, cb = quads[..., None, :, k - 1, 0], quads[..., None, :, k - 1, 1]
        spans = ((ra <= r) & (r < rb)) | ((rb <= r) & (r < ra))
        with np.errstate(divide="ignore", invalid="ignore"):
            crossing = (cb - ca) * (r - ra) / (rb - ra) + ca
        inside ^= spans & (c < crossing)
    return inside


def box_corners(boxes: np.ndarray) -> np.ndarray:
    """Corners (..., 4, 2) [m] of boxes (..., 5) = (x, y, yaw, length, width), length along yaw."""
    x, y, yaw, length, width = np.moveaxis(boxes, -1, 0)
    along = np.array([1.0, -1.0, -1.0, 1.0]) * (length[..., None] / 2.0)
    across = np.array([1.0, 1.0, -1.0, -1.0]) * (width[..., None] / 2.0)
    cos, sin = np.cos(yaw)[..., None], np.sin(yaw)[..., None]
    return np.stack([x[..., None] + cos * along - sin * across, y[..., None] + sin * along + cos * across], -1)


def occupancy_grid(boxes: np.ndarray, valid: np.ndarray, grid: RasterGrid) -> np.ndarray:
    """The occupancy raster of one time step.

    Args:
        boxes: (A, 5) obstacle boxes (x, y, yaw, length, width) [m, rad], ego frame.
        valid: (A,) bool; invalid boxes are left out.
        grid: the raster's cell layout.

    Returns:
        (200, 200) bool, [i, j] along our x and y: True where the cell's centre is inside a valid box.
    """
    xs, ys = grid.cell_centres()
    rows, cols = np.meshgrid(xs, ys, indexing="ij")
    inside = points_in_quads(rows.ravel(), cols.ravel(), box_corners(boxes[valid]))
    return inside.any(axis=-1).reshape(GRID_CELLS, GRID_CELLS)


def _footprint_offsets() -> tuple[np.ndarray, np.ndarray]:
    """(K,) row and (K,) column offsets: the cells of the ego box at the origin in the repos' index space."""
    half_l, half_w = EGO_LENGTH / 2.0, EGO_WIDTH / 2.0
    corners = np.array([[-half_l, half_w], [half_l, half_w], [half_l, -half_w], [-half_l, -half_w]])
    corners = (corners + [EGO_CENTER_OFFSET, 0.0] - FOOTPRINT_ORIGIN) / CELL
    lo, hi = np.floor(corners.min(axis=0)).astype(int), np.ceil(corners.max(axis=0)).astype(int)
    rows, cols = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1), indexing="ij")
    inside = points_in_quads(rows.ravel().astype(float), cols.ravel().astype(float), corners[None])[:, 0]
    return rows.ravel()[inside], cols.ravel()[inside]


FOOTPRINT_ROWS, FOOTPRINT_COLS = _footprint_offsets()  # 32 cells for the nuScenes ego box


def _footprint_axis(coordinate: np.ndarray, offsets: np.ndarray, axis: RasterAxis) -> np.ndarray:
    """(..., K) our cell indices of the footprint along one axis at waypoint coordinates (...,) [m]."""
    sign = -1.0 if axis.reversed else 1.0
    base = GRID_CELLS - offsets if axis.footprint_from_end else offsets
    theirs = np.clip(np.trunc(sign * coordinate[..., None] / CELL + base), 0, GRID_CELLS - 1).astype(np.int64)
    return GRID_CELLS - 1 - theirs if axis.reversed else theirs


def footprint_centres(xy: np.ndarray, grid: RasterGrid) -> tuple[np.ndarray, np.ndarray]:
    """Centres [m] of the cells the axis-aligned ego raster covers at each waypoint.

    Args:
        xy: (..., 2) trajectory points [m], ego frame.
        grid: the raster's cell layout.

    Returns:
        (..., K) x and (..., K) y cell centres [m] (clipped onto the grid, as the repos do).
    """
    xs, ys = grid.cell_centres()
    i = _footprint_axis(xy[..., 0], FOOTPRINT_ROWS, grid.x)
    j = _footprint_axis(xy[..., 1], FOOTPRINT_COLS, grid.y)
    return xs[i], ys[j]


def plan_yaw(xy: np.ndarray) -> np.ndarray:
    """SparseDrive's heading of a plan (planning_eval.py:35-53), in our frame.

    Central differences with the origin prepended, a backward difference at the last point; forward (0)
    at every point when the last point is less than 0.5 m from the first.

    Args:
        xy: (N, T, 2) trajectory points [m], ego frame.

    Returns:
        (N, T) yaw [rad].
    """
    padded = np.concatenate([np.zeros_like(xy[:, :1]), xy], axis=1)
    delta = np.concatenate([padded[:, 2:] - padded[:, :-2], padded[:, -1:] - padded[:, -2:-1]], axis=1)
    yaw = np.arctan2(delta[..., 1], delta[..., 0])
    still = np.linalg.norm(xy[:, -1] - xy[:, 0], axis=-1) < 0.5
    return np.where(still[:, None], 0.0, yaw)


def ego_boxes(xy: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """(..., 5) rotated ego boxes at trajectory points xy (..., 2) [m] with headings yaw (...,) [rad]."""
    centre = xy + EGO_CENTER_OFFSET * np.stack([np.cos(yaw), np.sin(yaw)], axis=-1)
    size = np.broadcast_to([EGO_LENGTH, EGO_WIDTH], yaw.shape + (2,))
    return np.concatenate([centre, yaw[..., None], size], axis=-1)
