"""nuScenes v1.0 keyframes (through nuscenes-devkit) turned into our `DriveScene`, one per window.

The map is converted by `scenes.adapters.nuscenes_map`. Choices, each also in the code:

- **Windows** (`scene_windows`, NAVSIM-like): keyframe k (2 Hz) is a current frame when the scene holds 3
  keyframes before it (1.5 s) and 10 after it (5 s), else TOO_LITTLE_HISTORY / TOO_LITTLE_FUTURE; keyframes
  k-3 .. k+10 not 0.5 s +- 0.1 s apart: TIME_GAP. Keyframe k-4 (-2.0 s) is used when 0.5 s +- 0.1 s before.
- **Time**: step i is at the current sample's `timestamp` + (i - 20) * 0.1 s (integer µs); everything is
  interpolated at those times from the keyframe timestamps (a keyframe 0.5 s apart lands exactly on a step).
- **Ego**: nuScenes' ego frame is the centre of the rear axle (the IMU, on the ground: devkit issues #108,
  #706), like `EgoState.pose`: no offset. Keyframe poses are the `ego_pose` of the LIDAR_TOP sample_data:
  `translation` x, y (z is 0) and the yaw of the wxyz `rotation`, interpolated linearly (unwrapped yaw). Steps
  outside the keyframes extrapolate from the end keyframe at its map-frame velocity, heading held.
- **Ego speed** (`CanSource`): the CAN bus `pose` messages (50 Hz; `vel`, `accel` in the ego frame,
  `rotation_rate[2]`) interpolated at the steps (held past the messages); for a scene on
  `NuScenesCanBus.can_blacklist`, without a pose file or `can_bus` folder, or not named `scene-NNNN`: the
  keyframe poses' `np.gradient` (velocity, then acceleration, in the map frame, rotated into the body frame at
  each keyframe; yaw rate of the unwrapped yaw), interpolated. Steering: the kinematic bicycle's
  atan(wheelbase * yaw_rate / v_forward), Renault Zoe wheelbase 2.588 m (VAD's), 0 below 0.5 m/s.
- **Agents** (`sample_annotation` of the window's keyframes): size `[w, l, h]` -> (l, w) from the annotation
  nearest the current keyframe; heading: yaw of the wxyz `rotation`; xy: box centre; velocity:
  `nusc.box_velocity` x, y, 0 where NaN (a lone annotation or neighbours too far apart: the devkit declines to
  estimate, so do we). `vehicle.bicycle`, `vehicle.motorcycle` -> BICYCLE; other `vehicle.*` -> VEHICLE;
  `human.*` -> PEDESTRIAN; `movable_object.*`, `static_object.*` -> STATIC_OBJECT; `animal` and unknown names
  are skipped (no category fits a moving animal). Valid between two keyframes (linear xy and velocity,
  shortest-way heading) only when both annotate it, at a keyframe when it does, never outside the keyframes.
  Track ids: `nuscenes_map.element_id` of the instance token (first 16 hex digits as a signed int64); a
  collision within a scene is a SourceError; `instance_token` maps an id back.
- **Command** (VAD `tools/data_converter/vad_nuscenes_converter.py:452-457`; real_data_ros2.md section 2):
  the LIDAR_TOP origin 6 keyframes (3 s) ahead in the current LIDAR_TOP frame, x pointing right: x >= 2 m
  RIGHT, x <= -2 m LEFT, else STRAIGHT; in our frame (y left), LEFT when >= 2 m to the left.
- **Route** (`nuscenes_map.route_lanes`): the lane nearest the ego (`closest_lane`: get_closest_lane's 5 m
  rule, lanes within 90 degrees of the ego heading) at the current and each future keyframe, chained: a lane
  reachable within 3 successor hops adds the lanes on the way; a lane of the same road block (lane change)
  replaces the last lane when the one before leads to it (or it is the only one); else the route ends. Then it
  follows single successors, stopping at a lane outside the map. No lane now: ROUTE_NOT_ON_MAP.
- **Map**: within 200 m of the pose now. **Traffic lights**: none (K = 0). **Metadata**: scene_id = the sample
  token, seed 0, ScenarioType.LOG, generator_version "nuscenes/1".
"""

from __future__ import annotations

import contextlib
import enum
import io
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scenes.adapters.errors import SourceError
from scenes.adapters.nuscenes_map import check_map, element_id, map_layers, route_lanes
from scenes.adapters.openscene_frames import quaternion_matrix, quaternion_yaw
from scenes.adapters.openscene_route import route_centerline
from scenes.agents import AgentCategory, AgentTracks
from scenes.drive import (
    CURRENT_INDEX,
    NUM_STEPS,
    DriveScene,
    DrivingCommand,
    Route,
    ScenarioType,
    SceneMetadata,
    TrafficLights,
)
from scenes.ego import EgoState
from scenes.geometry import points_to_global, wrap_angle

GENERATOR_VERSION = "nuscenes/1"
TABLES = ("category", "attribute", "visibility", "instance", "sensor", "calibrated_sensor", "ego_pose", "log",
          "scene", "sample", "sample_data", "sample_annotation", "map")
LIDAR = "LIDAR_TOP"
KEYFRAME_US = 500_000
KEYFRAME_TOLERANCE_US = 100_000
STEP_US = 100_000
HISTORY_KEYFRAMES = 3  # 1.5 s
FUTURE_KEYFRAMES = 10  # 5.0 s
COMMAND_KEYFRAMES = 6  # VAD's fut_ts: 3 s
COMMAND_OFFSET = 2.0  # [m]
WHEELBASE = 2.588  # [m] Renault Zoe (VAD)
MIN_STEERING_SPEED = 0.5  # [m/s]
MAP_RADIUS = 200.0  # [m]


class DropReason(enum.Enum):
    """Why a keyframe of a nuScenes scene yields no scene."""

    TOO_LITTLE_HISTORY = "too_little_history"  # fewer than 3 keyframes before it in the scene
    TOO_LITTLE_FUTURE = "too_little_future"  # fewer than 10 keyframes after it in the scene
    TIME_GAP = "time_gap"  # keyframes of the window not 0.5 s +- 0.1 s apart
    ROUTE_NOT_ON_MAP = "route_not_on_map"  # no lane near the ego now (build_scene)


class CanSource(enum.Enum):
    """Where a scene's ego speed, acceleration and yaw rate come from."""

    CAN_BUS = "can_bus"  # CAN bus `pose` messages
    BLACKLISTED = "pose_differences_blacklisted"  # keyframe poses: the scene is on the devkit's can_blacklist
    NO_CAN_DATA = "pose_differences_no_can_data"  # keyframe poses: no can_bus folder or no pose file


@dataclass(frozen=True)
class Window:
    """Keyframe `index` (0-based) of a scene, `sample_token`, as current frame; `dropped`: None when kept."""

    index: int
    sample_token: str
    dropped: DropReason | None


@dataclass(frozen=True)
class NuScenesSource:
    """Where a nuScenes scene comes from (its provenance); sensor data are referenced by path only."""

    scene_name: str
    scene_token: str
    sample_token: str
    log_token: str
    logfile: str
    map_name: str
    can_source: str
    timestamp: int  # [µs] of the current sample
    lidar_path: str


@dataclass(frozen=True, eq=False)
class NuScenesScene:
    """A scene built from a nuScenes window and its provenance."""

    scene: DriveScene
    source: NuScenesSource


def open_nuscenes(dataroot: str | Path, version: str) -> Any:
    """The devkit's `NuScenes` of `dataroot`/`version`, silent; one-line SourceErrors for a missing folder,
    version or table, an unreadable table, and a scene's log whose map is unknown or lacks its expansion."""
    root = Path(dataroot)
    if not root.is_dir():
        raise SourceError(f"{root}: nuScenes dataroot is not a folder")
    tables = root / version
    if not tables.is_dir():
        found = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.startswith("v"))
        raise SourceError(f"{tables}: version {version!r} not found (version folders here: "
                          f"{', '.join(found) or 'none'})")
    for name in TABLES:
        if not (tables / f"{name}.json").is_file():
            raise SourceError(f"{tables / name}.json: table {name!r} is missing")
    from nuscenes.nuscenes import NuScenes  # type: ignore[import-untyped]

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            nusc = NuScenes(version=version, dataroot=str(root), verbose=False)
    except FileNotFoundError as error:
        raise SourceError(f"{error.filename}: file is missing ({error.strerror})") from None
    except json.JSONDecodeError as error:
        raise SourceError(f"{tables}: a table is not valid JSON ({error})") from None
    except KeyError as error:
        raise SourceError(f"{tables}: a record lacks field or token {error.args[0]!r}") from None
    except Exception as error:  # noqa: BLE001 - the devkit raises bare Exception / AssertionError / IndexError
        raise SourceError(f"{tables}: the devkit cannot load the tables ({type(error).__name__}: {error})") \
            from None
    used = {scene["log_token"] for scene in nusc.scene}
    for log in nusc.log:
        if log["token"] in used:
            where = f"{tables / 'log.json'}: log {log['token']} field location"
            check_map(root, str(log.get("location")), where)
    return nusc


def open_can_bus(dataroot: str | Path) -> Any | None:
    """The devkit's `NuScenesCanBus`, or None when `<dataroot>/can_bus` is absent."""
    from nuscenes.can_bus.can_bus_api import NuScenesCanBus  # type: ignore[import-untyped]

    return NuScenesCanBus(dataroot=str(dataroot)) if (Path(dataroot) / "can_bus").is_dir() else None


def map_name_of(nusc: Any, scene_token: str) -> str:  # noqa: D103 - the map (log location) of a scene
    return str(nusc.get("log", nusc.get("scene", scene_token)["log_token"])["location"])


def scene_samples(nusc: Any, scene_token: str) -> list[dict]:
    """The scene's keyframes (sample records) in order."""
    out, token = [], nusc.get("scene", scene_token)["first_sample_token"]
    while token:
        sample = nusc.get("sample", token)
        out.append(sample)
        token = sample["next"]
    return out


def _drop(times: list[int], k: int) -> DropReason | None:
    if k < HISTORY_KEYFRAMES:
        return DropReason.TOO_LITTLE_HISTORY
    if k + FUTURE_KEYFRAMES >= len(times):
        return DropReason.TOO_LITTLE_FUTURE
    span = times[k - HISTORY_KEYFRAMES:k + FUTURE_KEYFRAMES + 1]
    if any(abs(b - a - KEYFRAME_US) > KEYFRAME_TOLERANCE_US for a, b in itertools.pairwise(span)):
        return DropReason.TIME_GAP
    return None


def scene_windows(nusc: Any, scene_token: str) -> list[Window]:
    """One Window per keyframe of the scene, with its drop reason (see the module doc)."""
    samples = scene_samples(nusc, scene_token)
    times = [int(s["timestamp"]) for s in samples]
    return [Window(k, s["token"], _drop(times, k)) for k, s in enumerate(samples)]


track_id = element_id  # the int64 track id of an instance token


def instance_token(nusc: Any, track: int) -> str:
    """The instance token whose `track_id` is `track`; KeyError if none."""
    for record in nusc.instance:
        if element_id(record["token"]) == int(track):
            return str(record["token"])
    raise KeyError(f"no instance has track id {track}")


def category_of(name: str) -> AgentCategory | None:
    """Our category of a nuScenes category name; None for animals and unknown names (skipped)."""
    if name in ("vehicle.bicycle", "vehicle.motorcycle"):
        return AgentCategory.BICYCLE
    if name.startswith("vehicle."):
        return AgentCategory.VEHICLE
    if name.startswith("human."):
        return AgentCategory.PEDESTRIAN
    if name.startswith(("movable_object.", "static_object.")):
        return AgentCategory.STATIC_OBJECT
    return None


def vad_command(offset_right: float) -> DrivingCommand:
    """VAD's rule on the final future offset to the right [m] (VAD's lidar x): >= 2 RIGHT, <= -2 LEFT."""
    if offset_right >= COMMAND_OFFSET:
        return DrivingCommand.RIGHT
    if offset_right <= -COMMAND_OFFSET:
        return DrivingCommand.LEFT
    return DrivingCommand.STRAIGHT


def _lidar(nusc: Any, sample: dict) -> tuple[dict, dict, dict]:
    """(sample_data, calibrated_sensor, ego_pose) of a keyframe's LIDAR_TOP."""
    token = sample["data"].get(LIDAR)
    if not token:
        raise SourceError(f"{Path(nusc.table_root) / 'sample_data.json'}: sample {sample['token']} has no "
                          f"key-frame {LIDAR} sample_data")
    sd = nusc.get("sample_data", token)
    calibration = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
    return sd, calibration, nusc.get("ego_pose", sd["ego_pose_token"])


def lidar_offset_right(nusc: Any, now: dict, ahead: dict) -> float:
    """VAD's command input: x of the LIDAR_TOP origin at sample `ahead` in the LIDAR_TOP frame at `now`."""
    _, cs0, ep0 = _lidar(nusc, now)
    _, cs1, ep1 = _lidar(nusc, ahead)
    point = np.asarray(ep1["translation"], float) + quaternion_matrix(np.asarray(ep1["rotation"], float)) @ \
        np.asarray(cs1["translation"], float)
    ego = quaternion_matrix(np.asarray(ep0["rotation"], float)).T @ (point - np.asarray(ep0["translation"]))
    lidar = quaternion_matrix(np.asarray(cs0["rotation"], float)).T @ (ego - np.asarray(cs0["translation"]))
    return float(lidar[0])


_CAN_CACHE: dict[tuple[str, str], tuple[CanSource, np.ndarray | None]] = {}


def can_pose(can_bus: Any | None, scene_name: str) -> tuple[CanSource, np.ndarray | None]:
    """(source, (M, 6) float64 [utime µs, vel x, y, accel x, y, yaw rate] sorted by time, or None)."""
    if can_bus is None or not re.fullmatch(r"scene-\d{4}", scene_name):
        return CanSource.NO_CAN_DATA, None
    if int(scene_name[-4:]) in can_bus.can_blacklist:
        return CanSource.BLACKLISTED, None
    key = (str(can_bus.can_dir), scene_name)
    if key not in _CAN_CACHE:
        path = Path(can_bus.can_dir) / f"{scene_name}_pose.json"
        if not path.is_file():
            return CanSource.NO_CAN_DATA, None
        try:
            messages = can_bus.get_messages(scene_name, "pose", print_warnings=False)
        except json.JSONDecodeError as error:
            raise SourceError(f"{path}: not valid JSON ({error})") from None
        rows = []
        for i, m in enumerate(messages if isinstance(messages, list) else []):
            try:
                rows.append([float(m["utime"]), *m["vel"][:2], *m["accel"][:2], m["rotation_rate"][2]])
            except (KeyError, IndexError, TypeError, ValueError) as error:
                raise SourceError(f"{path}: message {i}: field {error} is missing or malformed "
                                  "(expected utime, vel[3], accel[3], rotation_rate[3])") from None
        if not rows:
            raise SourceError(f"{path}: no pose messages")
        data = np.array(rows, np.float64)
        if len(_CAN_CACHE) >= 8:
            _CAN_CACHE.clear()
        _CAN_CACHE[key] = (CanSource.CAN_BUS, data[np.argsort(data[:, 0], kind="stable")])
    return _CAN_CACHE[key]


def build_scene(nusc: Any, nusc_map: Any, can_bus: Any | None, sample_token: str, split: str,
                map_radius: float = MAP_RADIUS) -> NuScenesScene | DropReason:
    """The validated scene whose current frame is keyframe `sample_token`, or why there is none.

    Args:
        nusc: the devkit's NuScenes.
        nusc_map: the devkit's NuScenesMap of the scene's log location.
        can_bus: the devkit's NuScenesCanBus, or None (no CAN data: speeds from pose differences).
        sample_token: the current keyframe.
        split: "train", "val" or "test", for the metadata.
        map_radius: [m] of map kept around the current pose.

    Returns:
        The NuScenesScene, or TOO_LITTLE_HISTORY, TOO_LITTLE_FUTURE, TIME_GAP or ROUTE_NOT_ON_MAP.

    Raises:
        SourceError: naming the file: malformed CAN messages, no LIDAR_TOP keyframe, a track id collision.
    """
    sample = nusc.get("sample", sample_token)
    scene = nusc.get("scene", sample["scene_token"])
    samples = scene_samples(nusc, scene["token"])
    times = [int(s["timestamp"]) for s in samples]
    k = next(i for i, s in enumerate(samples) if s["token"] == sample_token)
    dropped = _drop(times, k)
    if dropped is not None:
        return dropped
    first = k - HISTORY_KEYFRAMES
    if first > 0 and abs(times[first] - times[first - 1] - KEYFRAME_US) <= KEYFRAME_TOLERANCE_US:
        first -= 1
    keys = samples[first:k + FUTURE_KEYFRAMES + 1]
    knots = np.array(times[first:k + FUTURE_KEYFRAMES + 1], np.int64)
    now_us = times[k]
    grid = now_us + (np.arange(NUM_STEPS, dtype=np.int64) - CURRENT_INDEX) * STEP_US
    lidar = [_lidar(nusc, s) for s in keys]
    pose = np.array([[*ep["translation"][:2], quaternion_yaw(np.asarray(ep["rotation"], float))]
                     for _, _, ep in lidar], np.float64)
    source, can = can_pose(can_bus, scene["name"])
    ego = _ego(pose, knots, grid, now_us, can)
    layers = map_layers(nusc_map)
    road = layers.layers_near(ego.pose[CURRENT_INDEX, :2], map_radius)
    lanes = route_lanes(layers, pose[k - first:], road)
    if not lanes:
        return DropReason.ROUTE_NOT_ON_MAP
    log = nusc.get("log", scene["log_token"])
    built = DriveScene(
        metadata=SceneMetadata(sample_token, 0, split, ScenarioType.LOG, GENERATOR_VERSION),
        ego=ego,
        agents=_agents(nusc, keys, knots, grid, k - first),
        map=road,
        route=Route(lanes, route_centerline(road, lanes)),
        command=vad_command(lidar_offset_right(nusc, sample, samples[k + COMMAND_KEYFRAMES])),
        traffic_lights=TrafficLights(np.zeros(0, np.int64), np.zeros((0, NUM_STEPS), bool)),
    ).validate()
    info = NuScenesSource(scene["name"], scene["token"], sample_token, log["token"], str(log.get("logfile")),
                          str(log["location"]), source.value, now_us, str(lidar[k - first][0]["filename"]))
    return NuScenesScene(built, info)


def _ego(pose: np.ndarray, knots: np.ndarray, grid: np.ndarray, now_us: int, can: np.ndarray | None
         ) -> EgoState:
    """EgoState (NUM_STEPS,) at the grid times [µs] from keyframe poses (J, 3) at `knots` [µs]."""
    t = (knots - now_us) / 1e6
    g = (grid - now_us) / 1e6
    yaw = np.unwrap(pose[:, 2])
    if can is not None:
        ct = (can[:, 0] - now_us) / 1e6
        at_knots = np.stack([np.interp(t, ct, can[:, i]) for i in range(1, 6)], axis=-1)
        body = np.stack([np.interp(g, ct, can[:, i]) for i in range(1, 6)], axis=-1)
    else:
        velocity_map = np.gradient(pose[:, :2], t, axis=0)
        accel_map = np.gradient(velocity_map, t, axis=0)
        at_knots = np.empty((len(t), 5))
        for j in range(len(t)):
            frame = np.array([0.0, 0.0, -yaw[j]])
            at_knots[j, :2] = points_to_global(velocity_map[j], frame)
            at_knots[j, 2:4] = points_to_global(accel_map[j], frame)
        at_knots[:, 4] = np.gradient(yaw, t)
        body = np.stack([np.interp(g, t, at_knots[:, i]) for i in range(5)], axis=-1)
    out = np.stack([np.interp(g, t, pose[:, 0]), np.interp(g, t, pose[:, 1]), np.interp(g, t, yaw)], axis=-1)
    for end, side in ((0, g < t[0]), (-1, g > t[-1])):  # extrapolate at the end keyframe's map velocity
        if side.any():
            v = points_to_global(at_knots[end, :2], np.array([0.0, 0.0, yaw[end]]))
            out[side, :2] = pose[end, :2] + (g[side] - t[end])[:, None] * v
            out[side, 2] = yaw[end]
    out[:, 2] = wrap_angle(out[:, 2])
    forward, rate = body[:, 0], body[:, 4]
    moving = np.abs(forward) >= MIN_STEERING_SPEED
    steering = np.where(moving, np.arctan(WHEELBASE * rate / np.where(moving, forward, 1.0)), 0.0)
    return EgoState(out, body[:, :2].copy(), body[:, 2:4].copy(), rate.copy(), steering)


def _agents(nusc: Any, keys: list[dict], knots: np.ndarray, grid: np.ndarray, current: int) -> AgentTracks:
    """AgentTracks (N, NUM_STEPS) from the keyframes' annotations (module doc)."""
    rows: dict[str, int] = {}
    category: dict[str, AgentCategory] = {}
    per_key = []
    for j, sample in enumerate(keys):
        for token in sample["anns"]:
            ann = nusc.get("sample_annotation", token)
            cat = category_of(str(ann.get("category_name", "")))
            if cat is None:
                continue
            rows.setdefault(ann["instance_token"], len(rows))
            category[ann["instance_token"]] = cat
            per_key.append((j, token, ann))
    n, count = len(keys), len(rows)
    if count == 0:
        return AgentTracks.empty(NUM_STEPS)
    xy, heading = np.zeros((count, n, 2)), np.zeros((count, n))
    velocity, size = np.zeros((count, n, 2)), np.zeros((count, n, 2))
    present = np.zeros((count, n), bool)
    for j, token, ann in per_key:
        r = rows[ann["instance_token"]]
        xy[r, j] = ann["translation"][:2]
        heading[r, j] = quaternion_yaw(np.asarray(ann["rotation"], float))
        v = np.asarray(nusc.box_velocity(token), float)[:2]
        velocity[r, j] = np.where(np.isfinite(v), v, 0.0)
        size[r, j] = (ann["size"][1], ann["size"][0])  # [w, l, h] -> (l, w)
        present[r, j] = True
    where = Path(nusc.table_root) / "sample_annotation.json"
    if (size[present] <= 0).any():
        raise SourceError(f"{where}: field size: box sizes must be positive")
    ids = np.array([track_id(t) for t in rows], np.int64)
    if len(np.unique(ids)) != count:
        seen: dict[int, str] = {}
        for token, value in zip(rows, ids.tolist(), strict=True):
            if seen.setdefault(value, token) != token:
                raise SourceError(f"{where}: instance tokens {seen[value]!r} and {token!r} share a track id")
    nearest = np.argmin(np.where(present, np.abs(np.arange(n) - current), n), axis=1)
    j0 = np.clip(np.searchsorted(knots, grid, side="right") - 1, 0, n - 1)
    j1 = np.minimum(j0 + 1, n - 1)
    inside = (grid >= knots[0]) & (grid <= knots[-1])
    exact = grid == knots[j0]
    a = np.where(exact, 0.0, (grid - knots[j0]) / np.maximum(knots[j1] - knots[j0], 1))
    valid = inside[None] & present[:, j0] & (exact[None] | present[:, j1])
    out_xy = (1.0 - a)[None, :, None] * xy[:, j0] + a[None, :, None] * xy[:, j1]
    out_heading = wrap_angle(heading[:, j0] + a[None] * wrap_angle(heading[:, j1] - heading[:, j0]))
    out_velocity = (1.0 - a)[None, :, None] * velocity[:, j0] + a[None, :, None] * velocity[:, j1]
    pick = np.arange(count)
    return AgentTracks(
        track_ids=ids,
        category=np.array([category[t] for t in rows], np.int8),
        size=size[pick, nearest],
        xy=np.where(valid[..., None], out_xy, 0.0),
        heading=np.where(valid, out_heading, 0.0),
        velocity=np.where(valid[..., None], out_velocity, 0.0),
        valid=valid,
    )
