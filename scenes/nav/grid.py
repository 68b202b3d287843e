"""Occupancy grids, the ESDF, grid shortest paths and string pulling: the planner's privileged map.

Cell (r, c) of a grid with `origin` (xmin, ymin) and `resolution` res covers x in origin_x + [c, c + 1) res
and y in origin_y + [r, r + 1) res; its centre is origin + (c + 0.5, r + 0.5) res. Paths search the
8-connected graph of traversable cells (no corner cutting) with scipy's compiled Dijkstra.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from scenes import portable
from scenes.nav.world import Primitives

# (dr, dc) of the 4 edge directions; each edge is added both ways.
_STEPS = ((0, 1), (1, 0), (1, 1), (1, -1))


@dataclass(frozen=True, eq=False)
class GridMap:
    """An occupancy grid and its ESDF.

    Attributes:
        origin: (2,) float64 xmin, ymin [m] of cell (0, 0)'s corner.
        resolution: cell side [m].
        occupied: (H, W) bool, True where an obstacle of the height slice covers the cell.
        esdf: (H, W) float64 distance [m] from each cell centre to the nearest occupied cell centre, or to
            the first cell centre outside the grid (the world's bounds count as an obstacle); 0 when occupied.
    """

    origin: np.ndarray
    resolution: float
    occupied: np.ndarray
    esdf: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) cells."""
        return self.occupied.shape  # type: ignore[return-value]

    def cells(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, cols, inside) of the cells holding points (N, 2); rows/cols are clipped into the grid."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        rc = np.floor((xy - self.origin) / self.resolution).astype(np.int64)[:, ::-1]
        h, w = self.shape
        inside = (rc[:, 0] >= 0) & (rc[:, 0] < h) & (rc[:, 1] >= 0) & (rc[:, 1] < w)
        return np.clip(rc[:, 0], 0, h - 1), np.clip(rc[:, 1], 0, w - 1), inside

    def centres(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """(N, 2) centres [m] of cells (rows, cols)."""
        return self.origin + (np.column_stack([cols, rows]) + 0.5) * self.resolution

    def esdf_at(self, xy: np.ndarray) -> np.ndarray:
        """(N,) ESDF [m] of the cells holding the points; 0 outside the grid."""
        rows, cols, inside = self.cells(xy)
        return np.where(inside, self.esdf[rows, cols], 0.0)


def esdf(occupied: np.ndarray, resolution: float, border: bool = True) -> np.ndarray:
    """(H, W) Euclidean distance [m] from each cell centre to the nearest occupied cell centre.

    With `border`, a ring of occupied cells surrounds the grid (outside is an obstacle).
    """
    free = ~np.asarray(occupied, dtype=bool)
    if border:
        free = np.pad(free, 1, constant_values=False)
    if free.all():
        return np.full(occupied.shape, np.inf)
    out = ndimage.distance_transform_edt(free) * resolution
    return out[1:-1, 1:-1] if border else out


def rasterize(primitives: Primitives, bounds: np.ndarray, resolution: float) -> GridMap:
    """Occupancy of `primitives` over `bounds` (a cell is occupied when its centre lies within half a cell
    of a footprint, so thin table legs never fall between centres), with its ESDF."""
    bounds = np.asarray(bounds, dtype=np.float64)
    origin = bounds[:2].copy()
    w = max(1, math.ceil((bounds[2] - bounds[0]) / resolution - 1e-9))
    h = max(1, math.ceil((bounds[3] - bounds[1]) / resolution - 1e-9))
    occupied = np.zeros((h, w), dtype=bool)
    reach = np.where(primitives.kind == 1, primitives.half[:, 0], portable.norm(primitives.half))
    for k in range(len(primitives)):
        lo = np.floor((primitives.center[k] - reach[k] - resolution - origin) / resolution).astype(int)
        hi = np.ceil((primitives.center[k] + reach[k] + resolution - origin) / resolution).astype(int)
        c0, r0 = np.maximum(lo, 0)
        c1, r1 = np.minimum(hi, [w, h])
        if c0 >= c1 or r0 >= r1:
            continue
        rows, cols = np.mgrid[r0:r1, c0:c1]
        xy = origin + (np.column_stack([cols.ravel(), rows.ravel()]) + 0.5) * resolution
        near = primitives.select(np.array([k])).signed_distance(xy)[:, 0] < resolution / 2
        occupied[rows.ravel()[near], cols.ravel()[near]] = True
    return GridMap(origin, float(resolution), occupied, esdf(occupied, resolution))


def grid_graph(traversable: np.ndarray, resolution: float, cost: np.ndarray | None = None) -> csr_matrix:
    """The 8-connected graph over H * W cells (node r * W + c); edges join traversable cells only.

    Edge weight = length [m] x mean of the two cells' `cost` (>= 1; None: plain length). A diagonal edge
    needs both cells beside it traversable too.
    """
    h, w = traversable.shape
    ids = np.arange(h * w).reshape(h, w)
    cost = np.ones((h, w)) if cost is None else cost
    src, dst, weight = [], [], []
    for dr, dc in _STEPS:
        r0, r1 = 0, h - dr
        c0, c1 = max(0, -dc), w - max(0, dc)
        a = (slice(r0, r1), slice(c0, c1))
        b = (slice(r0 + dr, r1 + dr), slice(c0 + dc, c1 + dc))
        ok = traversable[a] & traversable[b]
        if dr and dc:
            ok &= traversable[r0 + dr:r1 + dr, c0:c1] & traversable[r0:r1, c0 + dc:c1 + dc]
        length = resolution * math.sqrt(dr * dr + dc * dc)
        s, d = ids[a][ok], ids[b][ok]
        wgt = length * 0.5 * (cost[a][ok] + cost[b][ok])
        src += [s, d]
        dst += [d, s]
        weight += [wgt, wgt]
    return csr_matrix((np.concatenate(weight), (np.concatenate(src), np.concatenate(dst))), shape=(h * w, h * w))


def shortest_field(graph: csr_matrix, source: int) -> tuple[np.ndarray, np.ndarray]:
    """(cost-to-source (H*W,), predecessor (H*W,)) of every node; inf / -9999 where unreachable."""
    dist, pred = dijkstra(graph, directed=True, indices=int(source), return_predecessors=True)
    return dist, pred


def trace(pred: np.ndarray, source: int, target: int) -> np.ndarray | None:
    """Node ids from `target` back to `source` along `pred` (a field rooted at `source`), or None."""
    if target == source:
        return np.array([source])
    out = [int(target)]
    node = int(target)
    while node != source:
        node = int(pred[node])
        if node < 0:
            return None
        out.append(node)
    return np.array(out)


def path_length(points: np.ndarray) -> float:
    """Length [m] of a polyline (P, 2)."""
    return float(portable.norm(np.diff(points, axis=0)).sum()) if len(points) > 1 else 0.0


def pull_string(points: np.ndarray, clear_at, threshold: np.ndarray | float, step: float) -> np.ndarray:
    """Shortcut a polyline (P, 2): from each kept vertex jump to the farthest later vertex in sight.

    A chord i -> j is in sight when `clear_at` (points (N, 2) -> (N,) clearance [m]) is at least
    min(threshold[i..j]) at samples `step` apart along it. With threshold = the clearance of the path's own
    vertices (capped), shortcuts never pass closer to obstacles than the path they replace.
    """
    points = np.asarray(points, dtype=np.float64)
    n = len(points)
    if n <= 2:
        return points
    threshold = np.broadcast_to(np.asarray(threshold, dtype=np.float64), (n,))
    kept, i = [0], 0
    while i < n - 1:
        j = np.arange(i + 1, n)
        length = portable.norm(points[j] - points[i])
        samples = max(2, math.ceil(length.max() / step) + 1)
        t = np.linspace(0.0, 1.0, samples)
        chords = points[i] + t[None, :, None] * (points[j] - points[i])[:, None, :]  # (J, S, 2)
        used = t[None, :] * length[:, None] <= length[:, None] + 1e-9
        clear = clear_at(chords.reshape(-1, 2)).reshape(len(j), samples)
        need = np.minimum(threshold[i], np.minimum.accumulate(threshold[i + 1:]))
        ok = np.where(used, clear >= need[:, None] - 1e-9, True).all(axis=1)
        ok[0] = True  # neighbours along the path are always joined
        i = int(j[np.flatnonzero(ok)[-1]])
        kept.append(i)
    return points[kept]
