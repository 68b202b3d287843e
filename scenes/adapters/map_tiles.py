"""A whole real map as MapLayers, queried by square tiles: what every map adapter (nuPlan GPKG, nuScenes map
expansion) serves scenes from.

`layers_near(xy, radius)` is `tile.crop(xy, radius)`, where the tile is the cached MapLayers of every element
(lane centreline, drivable polygon, stop line, crosswalk: what `MapLayers.crop` tests) meeting the 3x3 block
of `tile_size` squares around xy's square, found with STRtrees. It equals a crop of the whole map for any
radius <= tile_size; larger radii query the whole map, uncached.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import shapely

from scenes.maps import MapLayers

TILE_SIZE = 200.0  # [m]


@dataclass(frozen=True)
class _Index:
    """STRtrees over the whole map's lane centrelines, drivable polygons, stop lines and crosswalks."""

    lanes: shapely.STRtree
    drivable: shapely.STRtree
    stops: shapely.STRtree
    walks: shapely.STRtree

    def take(self, layers: MapLayers, area: shapely.Geometry) -> MapLayers:
        """The elements of `layers` (the whole map these trees index) meeting `area`, in map order."""

        def rows(tree: shapely.STRtree) -> np.ndarray:
            return np.unique(tree.query(area, predicate="intersects"))

        return layers.select(rows(self.lanes), rows(self.drivable), rows(self.stops), rows(self.walks))


class MapTiles:
    """A map read once (lazily) by `load`, and cached square tiles of it.

    Args:
        load: returns the whole map (MapLayers in the map's frame [m]); called on first use.
        tile_size: [m] side of the tiles.
        finish_tile: applied to each cached tile with its 3x3 block (e.g. clipping areas that span a district).
    """

    def __init__(self, load: Callable[[], MapLayers], tile_size: float = TILE_SIZE,
                 finish_tile: Callable[[MapLayers, shapely.Geometry], MapLayers] = lambda tile, block: tile):
        if not tile_size > 0:
            raise ValueError(f"tile_size must be positive, got {tile_size}")
        self.tile_size = float(tile_size)
        self._load, self._finish = load, finish_tile
        self._layers: MapLayers | None = None
        self._index: _Index | None = None
        self._tiles: dict[tuple[int, int], MapLayers] = {}

    def layers(self) -> MapLayers:
        """The whole map (loaded on first use, then kept)."""
        if self._layers is None:
            self._layers = self._load()
        return self._layers

    def _tree(self) -> _Index:
        if self._index is None:
            m = self.layers()
            self._index = _Index(shapely.STRtree(m.lane_centerlines), shapely.STRtree(m.drivable_polygons),
                                 shapely.STRtree(m.stop_lines), shapely.STRtree(m.crosswalks))
        return self._index

    def tile_key(self, xy: np.ndarray) -> tuple[int, int]:
        """(i, j): the tile square [i, i+1) x [j, j+1) * tile_size holding the point `xy` (2,) [m]."""
        i, j = np.floor(np.asarray(xy, np.float64) / self.tile_size).astype(np.int64)
        return int(i), int(j)

    def tile(self, key: tuple[int, int]) -> MapLayers:
        """Cached: every element meeting the 3x3 tile block centred on tile `key` (then `finish_tile`)."""
        if key not in self._tiles:
            i, j = key
            t = self.tile_size
            block = shapely.box((i - 1) * t, (j - 1) * t, (i + 2) * t, (j + 2) * t)
            self._tiles[key] = self._finish(self._tree().take(self.layers(), block), block)
        return self._tiles[key]

    def layers_near(self, xy: np.ndarray, radius: float) -> MapLayers:
        """Every element within `radius` [m] of `xy` (2,) [m], as `MapLayers.crop` selects them."""
        center = np.asarray(xy, np.float64).reshape(2)
        if not np.isfinite(center).all() or not radius >= 0:
            raise ValueError(f"layers_near needs a finite xy and radius >= 0, got {center}, {radius}")
        if radius <= self.tile_size:
            return self.tile(self.tile_key(center)).crop(center, radius)
        disk = shapely.Point(*center).buffer(radius)
        return self._tree().take(self.layers(), disk).crop(center, radius)
