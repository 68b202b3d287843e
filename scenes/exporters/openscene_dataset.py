"""A dataset of our scenes written as NAVSIM input: OpenScene log pickles, nuPlan maps and a scene filter.

Layout of the output folder (what NAVSIM expects under OPENSCENE_DATA_ROOT and NUPLAN_MAPS_ROOT):

    logs/<log_name>.pkl            one log per scene, 15 frames at 2 Hz (scenes.exporters.openscene)
    maps/nuplan-maps-v1.0.json     and maps/<location>/<version>/map.gpkg for all four nuPlan locations
    scene_filter.yaml              NAVSIM scene_filter: these logs, and the token of each scene's current frame

Every scene's map lives in one GPKG (`location`), so scenes are placed side by side: scene k is translated by
`scene_offset(k)`, a grid of CELL_SIZE squares (synthetic maps span under 400 m). Lane, roadblock and area ids
are the scenes' own (synthetic ids are unique across scenes; a clash is an error). Importing the folder with
`scene_filter.yaml` gives back every scene, translated by its offset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import shapely
import yaml

from scenes.adapters.errors import SourceError
from scenes.adapters.nuplan_maps import MAP_LOCATIONS
from scenes.drive import CURRENT_INDEX, DriveScene, Route
from scenes.exporters.nuplan_maps import write_maps_root
from scenes.exporters.openscene import scene_frames, write_log
from scenes.geometry import largest_polygon
from scenes.maps import MapLayers
from scenes.store.layout import atomic_write_bytes

CELL_SIZE = 1000.0  # [m] between neighbouring scenes' origins
GRID_COLUMNS = 100
DEFAULT_LOCATION = "us-nv-las-vegas-strip"
# nuPlan's projection for Las Vegas (UTM zone 11N); the exported coordinates are our map frame, shifted
DEFAULT_PROJECTION = "+proj=utm +zone=11 +datum=WGS84 +units=m +no_defs"
CURRENT_FRAME = CURRENT_INDEX // 5  # frame 4 of the 15 exported frames is the scene's current frame


def scene_offset(index: int) -> np.ndarray:
    """(2,) [m] translation of the `index`-th exported scene."""
    return np.array([(index % GRID_COLUMNS) * CELL_SIZE, (index // GRID_COLUMNS) * CELL_SIZE], np.float64)


def translate_scene(scene: DriveScene, offset: np.ndarray) -> DriveScene:
    """`scene` moved by `offset` (2,) [m]: ego, agents (valid steps), map and route. Rounding can make a polygon
    whose ring touches itself cross itself: such a polygon is
    repaired (the largest polygon of `shapely.make_valid`)."""
    dx = np.asarray(offset, np.float64)

    def move(geoms: np.ndarray) -> np.ndarray:
        return shapely.transform(geoms, lambda xy: xy + dx) if geoms.size else geoms

    def move_areas(polygons: np.ndarray) -> np.ndarray:  # a ring touching itself may cross after rounding
        out = np.empty(len(polygons), dtype=object)
        out[:] = [p if shapely.is_valid(p) else largest_polygon(p) for p in move(polygons)]
        return out

    m = scene.map
    road = replace(m, lane_centerlines=move(m.lane_centerlines), lane_left_boundaries=move(m.lane_left_boundaries),
                   lane_right_boundaries=move(m.lane_right_boundaries), lane_polygons=move_areas(m.lane_polygons),
                   drivable_polygons=move_areas(m.drivable_polygons), stop_lines=move(m.stop_lines),
                   crosswalks=move_areas(m.crosswalks))
    pose = scene.ego.pose.copy()
    pose[:, :2] += dx
    agents = scene.agents
    xy = np.where(agents.valid[..., None], agents.xy + dx, 0.0)
    return replace(scene, ego=replace(scene.ego, pose=pose), agents=replace(agents, xy=xy), map=road,
                   route=Route(scene.route.lane_ids, shapely.transform(scene.route.centerline, lambda p: p + dx)))


def merge_maps(maps: list[MapLayers], where: str) -> MapLayers:
    """One MapLayers holding every element of `maps`; SourceError if two maps share a lane or area id."""
    def cat(name: str) -> np.ndarray:
        arrays = [getattr(m, name) for m in maps]
        return np.concatenate(arrays) if arrays else np.zeros(0)

    merged = MapLayers(
        lane_ids=cat("lane_ids"), lane_centerlines=cat("lane_centerlines"),
        lane_left_boundaries=cat("lane_left_boundaries"), lane_right_boundaries=cat("lane_right_boundaries"),
        lane_polygons=cat("lane_polygons"), lane_successors=tuple(s for m in maps for s in m.lane_successors),
        lane_speed_limits=cat("lane_speed_limits"), lane_roadblock_ids=cat("lane_roadblock_ids"),
        lane_is_connector=cat("lane_is_connector"), drivable_polygons=cat("drivable_polygons"),
        drivable_kinds=cat("drivable_kinds"), drivable_ids=cat("drivable_ids"), stop_lines=cat("stop_lines"),
        stop_line_lane_ids=cat("stop_line_lane_ids"), crosswalks=cat("crosswalks"))
    for name in ("lane_ids", "drivable_ids"):
        ids, counts = np.unique(getattr(merged, name), return_counts=True)
        if (counts > 1).any():
            raise SourceError(f"{where}: {name} {ids[counts > 1][:5].tolist()} occur in more than one scene")
    return merged


@dataclass(frozen=True)
class ExportedScene:
    """Where one exported scene went: its log, the token of its current frame and its offset (2,) [m]."""

    scene_id: str
    log_name: str
    token: str
    offset: np.ndarray


def export_openscene(scenes: Iterable[DriveScene], out: Path, location: str = DEFAULT_LOCATION,
                     projection: str = DEFAULT_PROJECTION, log_prefix: str = "diffplan",
                     on_scene: Callable[[], None] = lambda: None) -> list[ExportedScene]:
    """Write `scenes` as NAVSIM input into `out` (see the module docstring); what went where."""
    if location not in MAP_LOCATIONS:
        raise SourceError(f"{out}: unknown map location {location!r}; known: {', '.join(MAP_LOCATIONS)}")
    out = Path(out)
    exported, maps = [], []
    for index, scene in enumerate(scenes):
        offset = scene_offset(index)
        placed = translate_scene(scene, offset)
        log_name = f"{log_prefix}-{index:05d}-{scene.metadata.scene_id}"
        frames = scene_frames(placed, log_name, location)
        write_log(out / "logs" / f"{log_name}.pkl", frames)
        maps.append(placed.map)
        exported.append(ExportedScene(scene.metadata.scene_id, log_name, frames[CURRENT_FRAME]["token"], offset))
        on_scene()
    write_maps_root(out / "maps", {location: (merge_maps(maps, str(out)), projection)})
    scene_filter = {
        "_target_": "navsim.common.dataclasses.SceneFilter",
        "_convert_": "all",
        "num_history_frames": 4,
        "num_future_frames": 10,
        "frame_interval": 1,
        "has_route": True,
        "max_scenes": None,
        "log_names": [e.log_name for e in exported],
        "tokens": [e.token for e in exported],
    }
    atomic_write_bytes(out / "scene_filter.yaml", yaml.safe_dump(scene_filter, sort_keys=False).encode())
    return exported

