"""nuPlan map GPKGs read as `scenes.maps.MapLayers`, in the map's projected frame [m].

Files (nuplan `gpkg_mapsdb.py`): `<root>/nuplan-maps-v1.0.json` holds `{location: {"version": "9.x.y", ...}}`
and each map is `<root>/<location>/<version>/map.gpkg`. Each layer is read once per location, the way
`GPKGMapsDB.load_vector_layer` reads it: the `meta` table's `projectedCoordSystem` value is the target CRS,
geometries are reprojected to it with pyproj (skipped when the layer's CRS already equals it, so coordinates
stay bit-exact, or when the layer has no CRS), and ids are the GPKG feature ids (1-based fids; nuPlan turns
them into strings, we keep int64). Fid-valued fields may be integer, float or string columns.

Conversion (semantics of nuplan `nuplan_map.py`, `lane.py`, `lane_connector.py`):
- Lanes: every feature of `lanes_polygons` and every lane connector of `lane_connectors` is one MapLayers
  lane; `lane_ids` = its fid. nuPlan keeps the two in separate tables; MapLayers has one id space, so a lane
  fid equal to a connector fid is a SourceError naming both. `lane_is_connector` is True for connectors. Lanes
  are sorted by id.
- Centrelines: the `baseline_paths` LineString whose `lane_fid` (lanes) or `lane_connector_fid` (connectors)
  is the lane (nuPlan's baseline path, in driving direction).
- Boundaries: the `boundaries` LineStrings named by `left_boundary_fid` / `right_boundary_fid` (of
  `lanes_polygons`, and of `gen_lane_connectors_scaled_width_polygons` for connectors), each reversed when
  its ends lie closer to the opposite ends of the centreline (nuPlan stores shared boundaries in one
  direction only).
- Lane polygons: `lanes_polygons` geometry; for connectors the `gen_lane_connectors_scaled_width_polygons`
  feature whose `lane_connector_fid` is the connector. An invalid polygon goes through `shapely.make_valid`
  and a multi-part result (or a MultiPolygon from GDAL) keeps its largest Polygon, as MapLayers holds one
  valid Polygon per lane.
- `lane_roadblock_ids`: `lane_group_fid` for lanes, `lane_group_connector_fid` for connectors (fids of
  `lane_groups_polygons` / `lane_group_connectors`, nuPlan's ROADBLOCK / ROADBLOCK_CONNECTOR).
- `lane_successors`: nuPlan's lane graph: a lane is followed by the connectors whose `entry_lane_fid` is the
  lane (by fid), a connector by its `exit_lane_fid`. diffplan extension: where the optional field
  `diffplan_successor_fids` (comma-separated fids, written by `scenes.exporters.nuplan_maps`) is present, its
  order comes first; it also carries lane -> lane links (synthetic roads) that nuPlan only expresses
  through connectors.
- `lane_speed_limits`: `speed_limit_mps`; NULL, NaN or <= 0 -> NaN, meaning "no limit in the map".
- Drivable area (nuplan_map.py DRIVABLE_AREA): `road_segments` -> ROADBLOCK, `intersections` -> INTERSECTION,
  `carpark_areas` -> CARPARK, `generic_drivable_areas` -> GENERIC, in that order then by fid;
  `drivable_ids` = the fid. MultiPolygons are split into parts (each keeps the fid); invalid polygons are
  made valid; NULL geometries are dropped. Crosswalks: `crosswalks` polygons, split the same way.
- Stop lines: nuPlan's `stop_polygons` are areas, MapLayers stop lines are LineStrings. A stop line is the
  mid-line of the polygon's minimum rotated rectangle across the guarded lane (the rectangle axis most
  perpendicular to the lane), running from the lane's left to its right as synthetic stop lines do; with no
  guarded lane, the long axis, pointing to +x (+y when vertical). (The exterior ring as a LineString would
  close on itself and not survive a write/read round trip; the mid-line keeps the centroid that users
  project onto routes.) `stop_line_lane_ids`, as synthetic maps
  use it (the lane that ends at the stop line, never a connector): the `entry_lane_fid` of the lowest-fid
  connector whose `traffic_light_stop_line_fids` (comma-separated, empty/NULL allowed) lists the polygon;
  else the lane whose polygon contains the polygon's centroid (within 0.5 m) and whose centreline ends
  nearest to it; else -1 (no lane).

Tiles: `NuplanMap.layers_near(xy, radius)` serves a location's map by cached square tiles
(`scenes.adapters.map_tiles`): equal to a crop of the whole map for any radius <= tile_size.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from scenes.adapters import _nuplan_gpkg as gpkg
from scenes.adapters._nuplan_convert import read_map_layers
from scenes.adapters.errors import SourceError
from scenes.adapters.map_tiles import TILE_SIZE, MapTiles
from scenes.maps import MapLayers

MAP_LOCATIONS = ("sg-one-north", "us-ma-boston", "us-nv-las-vegas-strip", "us-pa-pittsburgh-hazelwood")
MAP_VERSION_FILE = "nuplan-maps-v1.0.json"


def maps_root(path: str | Path | None) -> Path:
    """The maps root: `path`, else the environment variable NUPLAN_MAPS_ROOT.

    Raises:
        SourceError: when neither is given.
    """
    if path is not None and str(path):
        return Path(path)
    env = os.environ.get("NUPLAN_MAPS_ROOT", "")
    if not env:
        raise SourceError("nuPlan maps root: neither a path nor the environment variable NUPLAN_MAPS_ROOT "
                          "was given")
    return Path(env)


def _read_versions(root: Path) -> dict[str, str]:
    path = root / MAP_VERSION_FILE
    if not path.is_file():
        raise SourceError(f"{path}: map version file is absent")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SourceError(f"{path}: not valid JSON ({gpkg.one_line(error)})") from error
    if not isinstance(doc, dict):
        raise SourceError(f"{path}: the top level must be an object of locations")
    versions = {}
    for location, entry in doc.items():
        version = entry.get("version") if isinstance(entry, dict) else None
        if not isinstance(version, str) or not version or "/" in version or version in (".", ".."):
            raise SourceError(f"{path}: field {location}.version: expected a version string, got {version!r}")
        versions[str(location)] = version
    return versions


class NuplanMap:
    """One location's map.gpkg: its layers read once (lazily), and cached square tiles of them.

    Args:
        location: the map location name.
        path: its map.gpkg; SourceError here if it is absent, truncated or not a GPKG.
        tile_size: [m] side of the cached tiles.
    """

    def __init__(self, location: str, path: Path, tile_size: float = TILE_SIZE):
        if not tile_size > 0:
            raise SourceError(f"{path}: tile_size must be positive, got {tile_size}")
        gpkg.check_gpkg(path)
        self.location, self.path, self.tile_size = location, path, float(tile_size)
        self._projection: str | None = None
        self.tiles = MapTiles(lambda: read_map_layers(self.path, self.projection), tile_size)

    @property
    def projection(self) -> str:
        """The map's projected CRS: the `meta` table's `projectedCoordSystem` value (a PROJ string)."""
        if self._projection is None:
            self._projection = gpkg.read_projection(self.path)
        return self._projection

    def layers(self) -> MapLayers:
        """The whole map, in the projected frame [m] (read on first use, then kept)."""
        return self.tiles.layers()

    def layers_near(self, xy: np.ndarray, radius: float) -> MapLayers:
        """Every element within `radius` [m] of `xy` (2,) [m], as `MapLayers.crop` selects them, in the map's
        projected frame [m]: lanes by id, areas by (kind, fid), stop lines and crosswalks by fid."""
        return self.tiles.layers_near(xy, radius)


class NuplanMaps:
    """A nuPlan maps root: the version file, and each location's `NuplanMap` (cached).

    Args:
        root: the maps root; None reads the environment variable NUPLAN_MAPS_ROOT.
        tile_size: [m] side of the cached tiles of every location.
    """

    def __init__(self, root: str | Path | None = None, tile_size: float = TILE_SIZE):
        self.root = maps_root(root)
        self.tile_size = tile_size
        self._versions = _read_versions(self.root)
        self._maps: dict[str, NuplanMap] = {}

    def version(self, location: str) -> str:
        """The map version the version file names for `location`; SourceError if it names none."""
        if location not in self._versions:
            raise SourceError(f"{self.root / MAP_VERSION_FILE}: field {location}: location missing from the "
                              "version file")
        return self._versions[location]

    def map_path(self, location: str) -> Path:
        """`<root>/<location>/<version>/map.gpkg`; SourceError for an unknown location or version."""
        version_file = self.root / MAP_VERSION_FILE
        if location not in MAP_LOCATIONS:
            raise SourceError(f"{version_file}: unknown map location {location!r}; "
                              f"known: {', '.join(MAP_LOCATIONS)}")
        version = self.version(location)
        path = self.root / location / version / "map.gpkg"
        if not path.is_file():
            raise SourceError(f"{version_file}: field {location}.version: unknown version {version!r} "
                              f"({path} is absent)")
        return path

    def location(self, name: str) -> NuplanMap:
        """The map of location `name` (one of MAP_LOCATIONS), opened once."""
        if name not in self._maps:
            self._maps[name] = NuplanMap(name, self.map_path(name), self.tile_size)
        return self._maps[name]
