"""Our scenes written as a nuScenes v1.0 dataset that nuscenes-devkit loads (`NuScenes`, `NuScenesMap`,
`NuScenesCanBus`, `create_splits_scenes`).

Layout of the output folder (`out` is the devkit's `dataroot`):

    <version>/*.json                   the 13 tables (category ... map)
    samples/LIDAR_TOP/*.pcd.bin        a placeholder point cloud per keyframe (float32 x, y, z, intensity, ring)
    samples/CAM_*/*.jpg                a 160 x 90 grey placeholder image per keyframe and camera
    maps/<token>.png                   the semantic-prior mask (0.1 m/px over the whole canvas; a 1 x 1
                                       placeholder above MAX_MASK_PIXELS, see below)
    maps/expansion/<map_name>.json     the map expansion (v1.3) of every scene's map (scenes.exporters.nuscenes_map)
    can_bus/<scene>_pose.json          50 Hz ego pose; plus _route.json (our route) and _meta.json
    diffplan_export.json               what went where: per scene its name, our scene id, split, offset and
                                       lane id -> expansion token

Each DriveScene is one nuScenes scene with its own log: 15 samples at 2 Hz (our steps 0, 5, ..., 70, so sample 4
is our current step), each with LIDAR_TOP and six camera sample_data, an ego pose per sample_data (our rear
axle pose: nuScenes' ego body frame is the rear axle too), and one annotation per valid agent per sample.

Placement: every scene shares the map's one global frame, so scene k is translated by `offset` onto a grid of
square cells (side: the largest scene's extent + 2 x MARGIN, rounded up to 10 m; ceil(sqrt(N)) columns), its
bounding box's lower-left corner MARGIN inside its cell. All coordinates are then positive and inside the
expansion's `canvas_edge` (the devkit's explorer and the map mask take the canvas origin as (0, 0)).

The mask is as big as the canvas (4 synthetic scenes: 880 m square, 77 Mpx; real nuScenes masks reach 1.2 Gpx).
Above MAX_MASK_PIXELS (about 25 synthetic scenes) a 1 x 1 black placeholder is written instead: the tables,
expansion and CAN bus are unaffected, but the devkit's map underlay (`render_sample_data(underlay_map=True)`,
`render_egoposes_on_map`) then shows nothing or fails; export fewer scenes per dataroot to keep it.

Scene names: with `scene_names` None, N <= 10 scenes take v1.0-mini's names in splits.py's order (the first
8 are `mini_train`, the next 2 `mini_val`); more take nuScenes' train/val/test names by each scene's split
(train -> train, val -> val, test -> test), in splits.py's order, skipping the CAN-bus blacklist.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from scipy.interpolate import CubicHermiteSpline

from scenes.adapters.errors import SourceError
from scenes.drive import CURRENT_INDEX, NUM_STEPS, SIM_DT, DriveScene
from scenes.exporters.nuscenes_map import MASK_RESOLUTION, lane_token, map_expansion, mask_png
from scenes.exporters.nuscenes_tables import (
    CAMERAS,
    KEYFRAME_STRIDE,
    STEP_US,
    capture_date,
    placeholder_jpeg,
    scene_tables,
    static_tables,
    token,
)
from scenes.exporters.openscene_dataset import merge_maps, translate_scene
from scenes.store.layout import atomic_write_bytes

MAP_NAMES = ("singapore-onenorth", "singapore-hollandvillage", "singapore-queenstown", "boston-seaport")
TABLES = ("category", "attribute", "visibility", "instance", "sensor", "calibrated_sensor", "ego_pose", "log",
          "scene", "sample", "sample_data", "sample_annotation", "map")
MINI_NAMES = ("scene-0061", "scene-0553", "scene-0655", "scene-0757", "scene-0796", "scene-1077", "scene-1094",
              "scene-1100", "scene-0103", "scene-0916")
CAN_BLACKLIST = frozenset((161, 162, 163, 164, 165, 166, 167, 168, 170, 171, 172, 173, 174, 175, 176, 309, 310,
                           311, 312, 313, 314))  # NuScenesCanBus.can_blacklist: get_messages raises for these
MARGIN = 50.0  # [m] between a scene's bounding box and its cell's edge
CELL_ROUNDING = 10.0  # [m]
START_US = 1_535_000_000_000_000  # [us] 2018-08-23, first scene's first sample
SCENE_GAP_US = 3_600_000_000  # [us] an hour between scenes' starts
CAN_POSE_HZ = 50
MAX_MASK_PIXELS = 400_000_000
CURRENT_SAMPLE = CURRENT_INDEX // KEYFRAME_STRIDE


@dataclass(frozen=True)
class ExportedNuScene:
    """Where one scene went.

    Attributes:
        scene_id: our scene id.
        name: the nuScenes scene name (scene-XXXX).
        token: the nuScenes scene token.
        sample_tokens: the 15 sample tokens in time order; `sample_tokens[CURRENT_SAMPLE]` is our current step.
        offset: (2,) [m] added to our map-frame x, y to get nuScenes global coordinates.
    """

    scene_id: str
    name: str
    token: str
    sample_tokens: tuple[str, ...]
    offset: np.ndarray

    @property
    def current_sample_token(self) -> str:
        """The sample at our current step (CURRENT_INDEX)."""
        return self.sample_tokens[CURRENT_SAMPLE]


def _bounds(scene: DriveScene) -> np.ndarray:
    """(4,) x_min, y_min, x_max, y_max [m] of the scene's map, ego and valid agents."""
    m = scene.map
    geoms = np.concatenate([m.lane_centerlines, m.lane_polygons, m.drivable_polygons, m.crosswalks, m.stop_lines])
    points = [scene.ego.pose[:, :2], scene.agents.xy[scene.agents.valid]]
    if geoms.size:
        points.append(shapely.total_bounds(geoms).reshape(2, 2))
    xy = np.concatenate(points)
    xy = xy[np.isfinite(xy).all(axis=1)]
    return np.concatenate([xy.min(axis=0), xy.max(axis=0)])


def placement(scenes: Sequence[DriveScene]) -> tuple[list[np.ndarray], tuple[float, float]]:
    """Offset (2,) [m] of each scene and the canvas (width, height) [m] holding them all (module docstring)."""
    bounds = [_bounds(s) for s in scenes]
    extent = max(float(np.max(b[2:] - b[:2])) for b in bounds) + 2.0 * MARGIN
    cell = float(np.ceil(extent / CELL_ROUNDING) * CELL_ROUNDING)
    columns = int(np.ceil(np.sqrt(len(scenes))))
    rows = int(np.ceil(len(scenes) / columns))
    offsets = [np.array([(k % columns) * cell, (k // columns) * cell]) + MARGIN - np.floor(b[:2])
               for k, b in enumerate(bounds)]
    return offsets, (columns * cell, rows * cell)


def default_scene_names(scenes: Sequence[DriveScene], where: str) -> list[str]:
    """nuScenes names for `scenes` (module docstring); SourceError when a split runs out of names."""
    if len(scenes) <= len(MINI_NAMES):
        return list(MINI_NAMES[:len(scenes)])
    try:
        from nuscenes.utils import splits  # type: ignore[import-untyped]
    except ImportError as error:
        raise SourceError(f"{where}: scenes: naming more than {len(MINI_NAMES)} scenes needs nuscenes-devkit's "
                          f"splits (pip install nuscenes-devkit) or scene_names") from error

    pools = {split: [n for n in getattr(splits, split) if int(n[-4:]) not in CAN_BLACKLIST]
             for split in ("train", "val", "test")}
    used = dict.fromkeys(pools, 0)
    names = []
    for scene in scenes:
        split = scene.metadata.split
        if used[split] >= len(pools[split]):
            raise SourceError(f"{where}: scenes: more than {len(pools[split])} {split} scenes; nuScenes has no "
                              f"more {split} scene names (pass scene_names)")
        names.append(pools[split][used[split]])
        used[split] += 1
    return names


def _check_names(names: Sequence[str], count: int, where: str) -> list[str]:
    names = list(names)
    if len(names) != count:
        raise SourceError(f"{where}: scene_names: {len(names)} names for {count} scenes")
    for name in names:
        if not re.fullmatch(r"scene-\d{4}", name):
            raise SourceError(f"{where}: scene_names: {name!r} is not scene-XXXX (NuScenesCanBus needs 4 digits)")
        if int(name[-4:]) in CAN_BLACKLIST:
            raise SourceError(f"{where}: scene_names: {name} is on the devkit's CAN-bus blacklist")
    if len(set(names)) != len(names):
        raise SourceError(f"{where}: scene_names: names repeat")
    return names


def can_bus_pose(scene: DriveScene, start_us: int) -> list[dict]:
    """`pose` messages at CAN_POSE_HZ over the scene: position and heading by cubic Hermite interpolation of our
    10 Hz poses (slopes: velocity rotated to the map frame, yaw rate), body-frame velocity, acceleration and
    yaw rate linearly; through our poses exactly at every 10 Hz step."""
    ego = scene.ego
    t = np.arange(NUM_STEPS) * SIM_DT
    heading = np.unwrap(ego.pose[:, 2])
    c, s = np.cos(heading), np.sin(heading)
    vx = c * ego.velocity[:, 0] - s * ego.velocity[:, 1]
    vy = s * ego.velocity[:, 0] + c * ego.velocity[:, 1]
    count = (NUM_STEPS - 1) * round(CAN_POSE_HZ * SIM_DT) + 1
    times = np.arange(count) / CAN_POSE_HZ
    x = CubicHermiteSpline(t, ego.pose[:, 0], vx)(times)
    y = CubicHermiteSpline(t, ego.pose[:, 1], vy)(times)
    yaw = CubicHermiteSpline(t, heading, ego.yaw_rate)(times)
    exact = np.arange(0, count, round(CAN_POSE_HZ * SIM_DT))  # keep our own values bit for bit at our steps
    x[exact], y[exact], yaw[exact] = ego.pose[:, 0], ego.pose[:, 1], heading

    def lin(values: np.ndarray) -> np.ndarray:
        return np.interp(times, t, values)

    vel = np.column_stack([lin(ego.velocity[:, 0]), lin(ego.velocity[:, 1]), np.zeros(count)])
    acc = np.column_stack([lin(ego.acceleration[:, 0]), lin(ego.acceleration[:, 1]), np.zeros(count)])
    rate = lin(ego.yaw_rate)
    return [{"utime": start_us + round(float(times[i]) * 1e6), "pos": [float(x[i]), float(y[i]), 0.0],
             "orientation": [float(np.cos(yaw[i] / 2)), 0.0, 0.0, float(np.sin(yaw[i] / 2))],
             "vel": vel[i].tolist(), "accel": acc[i].tolist(), "rotation_rate": [0.0, 0.0, float(rate[i])]}
            for i in range(count)]


def _write_json(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, json.dumps(obj, indent=1).encode())


def export_nuscenes(scenes: Iterable[DriveScene], out: Path, version: str = "v1.0-synth",
                    map_name: str = "boston-seaport", scene_names: Sequence[str] | None = None
                    ) -> list[ExportedNuScene]:
    """Write `scenes` as a nuScenes dataset into `out` (see the module docstring); what went where.

    Args:
        scenes: the scenes, each a nuScenes scene with its own log.
        out: the dataroot to write.
        version: the tables' folder name (`NuScenes(version=...)`).
        map_name: one of the devkit's four map names (MAP_NAMES); every log is at this location.
        scene_names: one scene-XXXX name per scene; None: v1.0-mini names or real split names.

    Returns:
        One ExportedNuScene per scene, in order.

    Raises:
        SourceError: unknown map name, bad version or names, no scenes, or lane/area ids shared by two scenes.
    """
    out = Path(out)
    where = str(out)
    if map_name not in MAP_NAMES:
        raise SourceError(f"{where}: map_name: unknown nuScenes map {map_name!r}; known: {', '.join(MAP_NAMES)}")
    if not re.fullmatch(r"[A-Za-z0-9._-]+", version):
        raise SourceError(f"{where}: version: {version!r} is not a folder name")
    scene_list = list(scenes)
    if not scene_list:
        raise SourceError(f"{where}: scenes: nothing to export (the devkit cannot load an empty map table)")
    names = _check_names(scene_names, len(scene_list), where) if scene_names is not None \
        else default_scene_names(scene_list, where)
    offsets, canvas = placement(scene_list)
    placed = [translate_scene(scene, offset) for scene, offset in zip(scene_list, offsets, strict=True)]
    merge_maps([p.map for p in placed], where)  # SourceError when two scenes share a lane or area id

    tables: dict[str, list[dict]] = {name: [] for name in TABLES}
    for name, records in static_tables().items():
        tables[name] += records
    jpeg = placeholder_jpeg()
    exported, manifest = [], []
    for k, (scene, name, offset) in enumerate(zip(placed, names, offsets, strict=True)):
        start_us = START_US + k * SCENE_GAP_US
        logfile = f"diffplan-{capture_date(start_us)}-{name}"
        result = scene_tables(scene, name, logfile, start_us, map_name)
        for table, records in result.records.items():
            tables[table] += records
        for filename, data in result.lidar_files.items():
            _write_file(out / filename, data)
        for filename in result.camera_files:
            _write_file(out / filename, jpeg)
        poses = can_bus_pose(scene, start_us)
        _write_json(out / "can_bus" / f"{name}_pose.json", poses)
        _write_json(out / "can_bus" / f"{name}_route.json",
                    shapely.get_coordinates(scene.route.centerline).tolist())
        _write_json(out / "can_bus" / f"{name}_meta.json", {"pose": {
            "count": len(poses), "frequency_hz": CAN_POSE_HZ, "utime_start": poses[0]["utime"],
            "utime_end": poses[-1]["utime"]}})
        record = result.records["scene"][0]
        exported.append(ExportedNuScene(scene_list[k].metadata.scene_id, name, record["token"],
                                        result.sample_tokens, offset))
        manifest.append({"name": name, "token": record["token"], "scene_id": scene_list[k].metadata.scene_id,
                         "split": scene_list[k].metadata.split, "offset": [float(v) for v in offset],
                         "current_sample_token": exported[-1].current_sample_token,
                         "lane_tokens": {str(lane): lane_token(map_name, lane)
                                         for lane in scene.map.lane_ids.tolist()}})
    mask_file = f"maps/{token('map', map_name, *names)}.png"
    full_mask = np.prod(np.ceil(np.asarray(canvas) / MASK_RESOLUTION)) <= MAX_MASK_PIXELS
    _write_file(out / mask_file, mask_png(placed, canvas if full_mask else None))
    tables["map"] = [{"token": token("map", map_name, *names), "category": "semantic_prior",
                      "filename": mask_file, "log_tokens": [r["token"] for r in tables["log"]]}]
    _write_json(out / "maps" / "expansion" / f"{map_name}.json", map_expansion(placed, names, map_name, canvas))
    for name in TABLES:
        _write_json(out / version / f"{name}.json", tables[name])
    _write_json(out / "diffplan_export.json", {"version": version, "map_name": map_name,
                                               "canvas": list(canvas), "cameras": list(CAMERAS),
                                               "mask": "semantic_prior" if full_mask else "placeholder",
                                               "keyframe_step_us": KEYFRAME_STRIDE * STEP_US,
                                               "scenes": manifest})
    return exported


def _write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)
