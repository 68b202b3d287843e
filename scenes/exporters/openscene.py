"""Our DriveScene written as an OpenScene / NAVSIM v1.1 log pickle (layout: shared/reference/real_data_ros2.md
§1.3), so that NAVSIM's loaders, and `scenes.adapters.openscene`, read it.

A scene's 71 steps at 10 Hz give 15 frames at 2 Hz (steps 0, 5, ..., 70: -2.0 s .. 5.0 s); frame 4 is the
current one, so the NAVSIM window of the log starts at frame 1 and frame 0 fills our -2.0 s. Choices:

- Every frame carries the scene's route (its lanes' roadblock ids in driving order, as str) and its single
  command; lights list every lane of `scene.traffic_lights` with its state at the frame's step.
- Ego: `ego2global` is the rear-axle pose (z 0, yaw-only wxyz quaternion); `ego_dynamic_state` and the CAN bus
  velocity and acceleration are our body-frame values; CAN-bus wz is the yaw rate.
- Agents valid at a frame's step become boxes in that frame's ego frame (z = height / 2, heights per category
  below); velocity goes to the lidar frame through `lidar2ego_rotation`. Track tokens are `track_token(id)`
  (the inverse of the reader's id mapping); instance tokens are per-frame hashes.
- Tokens are the first 16 hex digits of a sha256 of the log name, scene id and frame; timestamps are
  `start_timestamp` + 0.5 s per frame. Camera and LiDAR calibrations are fixed placeholders (a real rig's are
  not known here); paths follow `<log_name>/<sensor>/<token>.<ext>`.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from pathlib import Path

import numpy as np

from scenes.adapters.errors import SourceError
from scenes.adapters.openscene import FRAME_INTERVAL_US, STEPS_PER_FRAME, track_token
from scenes.adapters.openscene_frames import CAMERA_NAMES, MAP_LOCATIONS, quaternion_matrix, yaw_quaternion
from scenes.agents import AgentCategory
from scenes.drive import NUM_STEPS, DriveScene
from scenes.geometry import points_to_local, vectors_to_local

DEFAULT_START_TIMESTAMP = 1_620_000_000_000_000  # [µs], May 2021
DEFAULT_LIDAR2EGO_TRANSLATION = (1.5, 0.0, 1.8)  # [m] placeholder roof lidar
NAME_OF_CATEGORY = {
    AgentCategory.VEHICLE: "vehicle",
    AgentCategory.PEDESTRIAN: "pedestrian",
    AgentCategory.BICYCLE: "bicycle",
    AgentCategory.STATIC_OBJECT: "generic_object",
}
HEIGHT_OF_CATEGORY = {  # [m] box heights; our agents are 2-D
    AgentCategory.VEHICLE: 1.7,
    AgentCategory.PEDESTRIAN: 1.75,
    AgentCategory.BICYCLE: 1.5,
    AgentCategory.STATIC_OBJECT: 1.0,
}
CAMERA_YAWS = {  # [deg] placeholder viewing directions, counter-clockwise from forward
    "CAM_F0": 0.0, "CAM_L0": 55.0, "CAM_L1": 90.0, "CAM_L2": 140.0,
    "CAM_R0": -55.0, "CAM_R1": -90.0, "CAM_R2": -140.0, "CAM_B0": 180.0,
}
_CAM_TO_FORWARD_LIDAR = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # x right, y down, z ahead
_INTRINSIC = np.array([[1545.0, 0.0, 960.0], [0.0, 1545.0, 560.0], [0.0, 0.0, 1.0]])  # 1920x1080 placeholder


def scene_frames(scene: DriveScene, log_name: str, map_location: str, *,
                 start_timestamp: int = DEFAULT_START_TIMESTAMP, vehicle_name: str = "pacifica",
                 lidar2ego_translation: tuple[float, float, float] = DEFAULT_LIDAR2EGO_TRANSLATION,
                 lidar2ego_rotation: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0),
                 with_annotations: bool = True) -> list[dict]:
    """The 15 OpenScene frame dicts (2 Hz, -2.0 s .. 5.0 s) of `scene`, format-exact.

    Args:
        scene: the scene (validated).
        log_name: the log name; relative sensor paths start with it.
        map_location: one of the nuPlan MAP_LOCATIONS.
        start_timestamp: time of the first frame [µs].
        vehicle_name: the frames' `vehicle_name`.
        lidar2ego_translation: (3,) [m].
        lidar2ego_rotation: wxyz unit quaternion.
        with_annotations: False writes test-log frames, without `anns`.

    Raises:
        SourceError: for an unknown map location.
    """
    if map_location not in MAP_LOCATIONS:
        raise SourceError(f"{log_name}: map_location {map_location!r} is not a nuPlan map location "
                          f"({', '.join(MAP_LOCATIONS)})")
    scene.validate()
    steps = list(range(0, NUM_STEPS, STEPS_PER_FRAME))
    scene_id = scene.metadata.scene_id
    tokens = [_hex(f"{log_name}/{scene_id}/{k}") for k in steps]
    blocks = [int(scene.map.lane_roadblock_ids[scene.map.lane_index(lane)]) for lane in scene.route.lane_ids]
    roadblock_ids = [str(b) for b in dict.fromkeys(blocks)]
    l2e_rotation = np.array(lidar2ego_rotation, np.float64)
    lidar2ego = _matrix(quaternion_matrix(l2e_rotation), np.array(lidar2ego_translation, np.float64))
    shared = {
        "log_name": log_name,
        "log_token": _hex(log_name),
        "scene_name": f"log-0000-{scene_id}",
        "scene_token": _hex(f"{log_name}/{scene_id}"),
        "map_location": map_location,
        "roadblock_ids": roadblock_ids,
        "vehicle_name": vehicle_name,
    }
    command = scene.command.one_hot().astype(np.int64)
    frames = []
    for index, (step, token) in enumerate(zip(steps, tokens)):
        x, y, heading = (float(v) for v in scene.ego.pose[step])
        rotation = yaw_quaternion(heading)
        ego2global = _matrix(quaternion_matrix(rotation), np.array([x, y, 0.0]))
        vx, vy = scene.ego.velocity[step]
        ax, ay = scene.ego.acceleration[step]
        frame = {
            "token": token,
            "frame_idx": index,
            "timestamp": int(start_timestamp + index * FRAME_INTERVAL_US),
            **shared,
            "roadblock_ids": list(roadblock_ids),
            "driving_command": command.copy(),
            "can_bus": np.array([x, y, 0.0, *rotation, ax, ay, 0.0, vx, vy, 0.0, 0.0, 0.0,
                                 scene.ego.yaw_rate[step], 0.0, 0.0], np.float64),
            "lidar_path": f"{log_name}/MergedPointCloud/{token}.pcd",
            "lidar2ego_translation": np.array(lidar2ego_translation, np.float64),
            "lidar2ego_rotation": l2e_rotation.copy(),
            "ego2global_translation": np.array([x, y, 0.0]),
            "ego2global_rotation": rotation,
            "ego_dynamic_state": np.array([vx, vy, ax, ay], np.float64),
            "traffic_lights": [(int(lane), bool(red)) for lane, red in
                               zip(scene.traffic_lights.lane_ids, scene.traffic_lights.is_red[:, step])],
            "cams": _cameras(log_name, token),
            "sample_prev": tokens[index - 1] if index > 0 else None,
            "sample_next": tokens[index + 1] if index + 1 < len(tokens) else None,
            "ego2global": ego2global,
            "lidar2ego": lidar2ego.copy(),
            "lidar2global": ego2global @ lidar2ego,
        }
        if with_annotations:
            frame["anns"] = _annotations(scene, step, token, quaternion_matrix(l2e_rotation))
        frames.append(frame)
    return frames


def write_log(path: str | Path, frames: list[dict]) -> None:
    """Write `frames` as a log pickle at `path` (protocol HIGHEST), atomically: a temporary file, then
    os.replace."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as f:
            pickle.dump(frames, f, protocol=pickle.HIGHEST_PROTOCOL)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_pcd(path: str | Path, points: np.ndarray) -> None:
    """Write (6, N) points (x, y, z [m], intensity, ring, lidar id) as a binary PCD nuPlan reads (all fields
    F 4, COUNT 1, integer VIEWPOINT)."""
    points = np.asarray(points, np.float32)
    if points.ndim != 2 or points.shape[0] != 6:
        raise ValueError(f"points must have shape (6, N), got {points.shape}")
    count = points.shape[1]
    header = "\n".join([
        "# .PCD v0.7 - Point Cloud Data file format", "VERSION 0.7", "FIELDS x y z intensity ring lidar_info",
        "SIZE 4 4 4 4 4 4", "TYPE F F F F F F", "COUNT 1 1 1 1 1 1", f"WIDTH {count}", "HEIGHT 1",
        "VIEWPOINT 0 0 0 1 0 0 0", f"POINTS {count}", "DATA binary", ""])
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(header.encode("ascii") + np.ascontiguousarray(points.T, "<f4").tobytes())


def write_jpeg(path: str | Path, image: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 image as a JPEG (fixtures)."""
    from PIL import Image

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(image, np.uint8), "RGB").save(path, format="JPEG", quality=90)


def _hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _matrix(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = rotation, translation
    return out


def _cameras(log_name: str, token: str) -> dict:
    cams = {}
    for name in CAMERA_NAMES:
        yaw = np.radians(CAMERA_YAWS[name])
        turn = np.array([[np.cos(yaw), -np.sin(yaw), 0.0], [np.sin(yaw), np.cos(yaw), 0.0], [0.0, 0.0, 1.0]])
        cams[name] = {
            "data_path": f"{log_name}/{name}/{token}.jpg",
            "sensor2lidar_rotation": turn @ _CAM_TO_FORWARD_LIDAR,
            "sensor2lidar_translation": np.array([0.0, 0.0, 0.0]),
            "cam_intrinsic": _INTRINSIC.copy(),
            "distortion": np.zeros(5),
        }
    return cams


def _annotations(scene: DriveScene, step: int, token: str, lidar2ego: np.ndarray) -> dict:
    agents, ego = scene.agents, scene.ego.pose[step]
    rows = np.flatnonzero(agents.valid[:, step])
    categories = [AgentCategory(int(c)) for c in agents.category[rows]]
    height = np.array([HEIGHT_OF_CATEGORY[c] for c in categories])
    local = points_to_local(agents.xy[rows, step], ego)
    yaw = (agents.heading[rows, step] - ego[2] + np.pi) % (2 * np.pi) - np.pi
    boxes = np.column_stack([local, height / 2.0, agents.size[rows], height, yaw]).reshape(-1, 7)
    velocity_ego = np.zeros((len(rows), 3))
    velocity_ego[:, :2] = vectors_to_local(agents.velocity[rows, step], ego)
    tracks = [track_token(int(i)) for i in agents.track_ids[rows]]
    return {
        "gt_boxes": boxes.astype(np.float64),
        "gt_names": np.array([NAME_OF_CATEGORY[c] for c in categories], dtype=str),
        "gt_velocity_3d": velocity_ego @ lidar2ego,  # ego -> lidar: R^T v, row-vector form
        "instance_tokens": [_hex(f"{token}/{t}") for t in tracks],
        "track_tokens": tracks,
    }
