"""The nuScenes v1.0 tables of one scene: samples at 2 Hz, sample_data (LIDAR_TOP and six cameras), ego poses,
calibrations, instances and sample annotations, plus the placeholder sensor files they point to.

Frames (nuScenes schema, docs/schema_nuscenes.md): translations in the map's global frame [m], quaternions
[w, x, y, z], box sizes [width, length, height]. The nuScenes ego body frame has its origin at the centre of
the rear axle (nutonomy/nuscenes-devkit#108), which is our EgoState pose point, so ego poses are our poses
as they are (z = 0, the ground). Boxes stand on the ground: z = height / 2.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import itertools
from dataclasses import dataclass

import numpy as np
from PIL import Image

from scenes.agents import AgentCategory
from scenes.drive import NUM_STEPS, SIM_DT, DriveScene

KEYFRAME_STRIDE = 5  # 10 Hz steps per 2 Hz keyframe
KEYFRAME_STEPS = tuple(range(0, NUM_STEPS, KEYFRAME_STRIDE))  # 0, 5, ..., 70: 15 samples
STEP_US = round(SIM_DT * 1e6)
LIDAR = "LIDAR_TOP"
CAMERAS = ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_BACK_RIGHT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_FRONT_LEFT")
IMAGE_SIZE = (160, 90)  # [px] placeholder images: nuScenes' 1600 x 900 at a tenth, intrinsics scaled to match
FOCAL_PX = 126.6  # nuScenes CAM_FRONT's ~1266 px focal length at a tenth
# Sensor mounts on the ego body frame (rear axle, x forward, y left, z up) [m] and yaw [deg], near nuScenes' own
CAMERA_MOUNTS = {"CAM_FRONT": ((1.70, 0.0, 1.51), 0.0), "CAM_FRONT_RIGHT": ((1.52, -0.49, 1.51), -55.0),
                 "CAM_BACK_RIGHT": ((1.04, -0.48, 1.56), -110.0), "CAM_BACK": ((0.03, 0.0, 1.57), 180.0),
                 "CAM_BACK_LEFT": ((1.04, 0.48, 1.56), 110.0), "CAM_FRONT_LEFT": ((1.52, 0.49, 1.51), 55.0)}
LIDAR_MOUNT = ((0.94, 0.0, 1.84), -90.0)  # nuScenes' LIDAR_TOP is yawed -90 deg: its x axis points right
# nuScenes category per AgentCategory, and the box height [m] we give it (nuScenes' mean for that category)
CATEGORY_NAMES = {AgentCategory.VEHICLE: "vehicle.car", AgentCategory.PEDESTRIAN: "human.pedestrian.adult",
                  AgentCategory.BICYCLE: "vehicle.bicycle", AgentCategory.STATIC_OBJECT: "movable_object.barrier"}
HEIGHTS = {AgentCategory.VEHICLE: 1.73, AgentCategory.PEDESTRIAN: 1.75, AgentCategory.BICYCLE: 1.28,
           AgentCategory.STATIC_OBJECT: 0.98}
ALL_CATEGORIES = (
    "animal", "human.pedestrian.adult", "human.pedestrian.child", "human.pedestrian.construction_worker",
    "human.pedestrian.personal_mobility", "human.pedestrian.police_officer", "human.pedestrian.stroller",
    "human.pedestrian.wheelchair", "movable_object.barrier", "movable_object.debris",
    "movable_object.pushable_pullable", "movable_object.trafficcone", "static_object.bicycle_rack",
    "vehicle.bicycle", "vehicle.bus.bendy", "vehicle.bus.rigid", "vehicle.car", "vehicle.construction",
    "vehicle.emergency.ambulance", "vehicle.emergency.police", "vehicle.motorcycle", "vehicle.trailer",
    "vehicle.truck")
ATTRIBUTES = ("vehicle.moving", "vehicle.stopped", "vehicle.parked", "cycle.with_rider", "cycle.without_rider",
              "pedestrian.sitting_lying_down", "pedestrian.standing", "pedestrian.moving")
VISIBILITIES = (("1", "v0-40"), ("2", "v40-60"), ("3", "v60-80"), ("4", "v80-100"))
MOVING_SPEED = 0.2  # [m/s] above which an agent gets a *.moving attribute
GROUND_POINTS = 64  # lidar points on a 8 m ground ring around the ego
GROUND_RADIUS = 8.0


def token(*parts: object) -> str:
    """Deterministic 32-hex token: sha256 of the record's content path `parts` joined by '/'."""
    return hashlib.sha256("/".join(str(p) for p in parts).encode()).hexdigest()[:32]


def yaw_quaternion(yaw: float) -> list[float]:
    """[w, x, y, z] of a rotation by `yaw` [rad] about z."""
    return [float(np.cos(yaw / 2.0)), 0.0, 0.0, float(np.sin(yaw / 2.0))]


def _multiply(a: list[float], b: list[float]) -> list[float]:
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return [aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw]


# camera axes (x right, y down, z forward) to the ego body frame (x forward, y left, z up)
_CAMERA_TO_BODY = [0.5, -0.5, 0.5, -0.5]


def static_tables() -> dict[str, list[dict]]:
    """category, attribute, visibility and sensor tables: the same in every export."""
    sensors = [{"token": token("sensor", LIDAR), "channel": LIDAR, "modality": "lidar"}]
    sensors += [{"token": token("sensor", c), "channel": c, "modality": "camera"} for c in CAMERAS]
    return {
        "category": [{"token": token("category", n), "name": n, "description": f"nuScenes category {n}"}
                     for n in ALL_CATEGORIES],
        "attribute": [{"token": token("attribute", n), "name": n, "description": f"nuScenes attribute {n}"}
                      for n in ATTRIBUTES],
        "visibility": [{"token": t, "level": level, "description": f"visibility of the instance is {level}"}
                       for t, level in VISIBILITIES],
        "sensor": sensors,
    }


def calibrated_sensors(scene_name: str) -> list[dict]:
    """The seven calibrations of one scene's log (tokens keyed by scene name and channel)."""
    k = np.array([[FOCAL_PX, 0.0, IMAGE_SIZE[0] / 2.0], [0.0, FOCAL_PX, IMAGE_SIZE[1] / 2.0], [0.0, 0.0, 1.0]])
    (lidar_xyz, lidar_yaw) = LIDAR_MOUNT
    out = [{"token": token("calibrated_sensor", scene_name, LIDAR), "sensor_token": token("sensor", LIDAR),
            "translation": list(lidar_xyz), "rotation": yaw_quaternion(np.radians(lidar_yaw)),
            "camera_intrinsic": []}]
    for channel in CAMERAS:
        xyz, yaw = CAMERA_MOUNTS[channel]
        out.append({"token": token("calibrated_sensor", scene_name, channel),
                    "sensor_token": token("sensor", channel), "translation": list(xyz),
                    "rotation": _multiply(yaw_quaternion(np.radians(yaw)), _CAMERA_TO_BODY),
                    "camera_intrinsic": k.tolist()})
    return out


def placeholder_jpeg() -> bytes:
    """A valid IMAGE_SIZE grey JPEG (the same bytes for every camera file)."""
    buffer = io.BytesIO()
    Image.new("RGB", IMAGE_SIZE, (128, 128, 128)).save(buffer, format="JPEG", quality=75)
    return buffer.getvalue()


@dataclass(frozen=True)
class SceneTables:
    """One scene's records per table, and the lidar files (relative path -> bytes) they name."""

    records: dict[str, list[dict]]
    lidar_files: dict[str, bytes]
    camera_files: tuple[str, ...]
    sample_tokens: tuple[str, ...]


def _box_frame(scene: DriveScene) -> tuple[np.ndarray, np.ndarray]:
    """(N,) heights and (N, 3) [w, l, h] of the agents."""
    heights = np.array([HEIGHTS[AgentCategory(int(c))] for c in scene.agents.category], np.float64)
    size = np.column_stack([scene.agents.size[:, 1], scene.agents.size[:, 0], heights]) if len(heights) else \
        np.zeros((0, 3))
    return heights, size


def _lidar_points(scene: DriveScene, step: int, heights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P, 5) float32 lidar points (x, y, z, intensity, ring) in the LIDAR_TOP frame, and (P, 3) the same in
    the global frame: a ground ring around the ego and four points inside each valid agent's box."""
    ego = scene.ego.pose[step]
    angles = np.linspace(0.0, 2.0 * np.pi, GROUND_POINTS, endpoint=False)
    ring_body = np.column_stack([GROUND_RADIUS * np.cos(angles), GROUND_RADIUS * np.sin(angles)])
    c, s = np.cos(ego[2]), np.sin(ego[2])
    ring = ring_body @ np.array([[c, s], [-s, c]]) + ego[:2]
    parts = [np.column_stack([ring, np.zeros(GROUND_POINTS), np.zeros(GROUND_POINTS), np.zeros(GROUND_POINTS)])]
    agents = scene.agents
    for n in np.flatnonzero(agents.valid[:, step]):
        length, width = agents.size[n]
        local = np.array([[1, 1], [1, -1], [-1, 1], [-1, -1]], np.float64) * [0.25 * length, 0.25 * width]
        ca, sa = np.cos(agents.heading[n, step]), np.sin(agents.heading[n, step])
        xy = local @ np.array([[ca, sa], [-sa, ca]]) + agents.xy[n, step]
        parts.append(np.column_stack([xy, np.full(4, heights[n] / 2.0), np.full(4, 100.0), np.ones(4)]))
    world = np.concatenate(parts)
    body = np.column_stack([(world[:, :2] - ego[:2]) @ np.array([[c, -s], [s, c]]), world[:, 2]])
    (mount, yaw_deg) = LIDAR_MOUNT
    yaw = np.radians(yaw_deg)
    cl, sl = np.cos(yaw), np.sin(yaw)
    shifted = body - np.asarray(mount)
    sensor = np.column_stack([shifted[:, 0] * cl + shifted[:, 1] * sl, -shifted[:, 0] * sl + shifted[:, 1] * cl,
                              shifted[:, 2]])
    return np.column_stack([sensor, world[:, 3:]]).astype(np.float32), world[:, :3]


def _points_in_boxes(points: np.ndarray, xy: np.ndarray, heading: np.ndarray, size: np.ndarray) -> np.ndarray:
    """(N,) number of global points (P, 3) inside each box (centre xy (N, 2) on the ground, size [w, l, h])."""
    d = points[None, :, :2] - xy[:, None, :]
    c, s = np.cos(heading)[:, None], np.sin(heading)[:, None]
    u, v = d[..., 0] * c + d[..., 1] * s, -d[..., 0] * s + d[..., 1] * c
    inside = ((np.abs(u) <= size[:, None, 1] / 2) & (np.abs(v) <= size[:, None, 0] / 2)
              & (points[None, :, 2] >= 0) & (points[None, :, 2] <= size[:, None, 2]))
    return inside.sum(axis=1)


def _attribute(category: AgentCategory, speed: float) -> list[str]:
    moving = speed > MOVING_SPEED
    if category is AgentCategory.VEHICLE:
        return [token("attribute", "vehicle.moving" if moving else "vehicle.stopped")]
    if category is AgentCategory.PEDESTRIAN:
        return [token("attribute", "pedestrian.moving" if moving else "pedestrian.standing")]
    if category is AgentCategory.BICYCLE:
        return [token("attribute", "cycle.with_rider")]
    return []


def _link(records: list[dict]) -> None:
    for a, b in itertools.pairwise(records):
        a["next"], b["prev"] = b["token"], a["token"]


def scene_tables(scene: DriveScene, name: str, logfile: str, start_us: int, map_name: str) -> SceneTables:
    """Every record of `scene` (already placed in the map's frame), named `name`, starting at `start_us`."""
    scene_token, log_token = token("scene", name), token("log", name)
    stamps = [start_us + step * STEP_US for step in KEYFRAME_STEPS]
    samples: list[dict] = [{"token": token("sample", name, k), "timestamp": stamps[k], "scene_token": scene_token,
                "prev": "", "next": ""} for k in range(len(KEYFRAME_STEPS))]
    _link(samples)
    sample_data: list[dict] = []
    ego_poses, lidar_files, camera_files = [], {}, []
    heights, size = _box_frame(scene)
    annotations: dict[int, list[dict]] = {}
    for channel in (LIDAR, *CAMERAS):
        chain = []
        for k, step in enumerate(KEYFRAME_STEPS):
            sd_token = token("sample_data", name, channel, k)
            extension = "pcd.bin" if channel == LIDAR else "jpg"
            filename = f"samples/{channel}/{logfile}__{channel}__{stamps[k]}.{extension}"
            pose = scene.ego.pose[step]
            ego_poses.append({"token": sd_token, "timestamp": stamps[k],
                              "translation": [float(pose[0]), float(pose[1]), 0.0],
                              "rotation": yaw_quaternion(float(pose[2]))})
            chain.append({"token": sd_token, "sample_token": samples[k]["token"], "ego_pose_token": sd_token,
                          "calibrated_sensor_token": token("calibrated_sensor", name, channel),
                          "timestamp": stamps[k], "fileformat": "pcd" if channel == LIDAR else "jpg",
                          "is_key_frame": True, "height": 0 if channel == LIDAR else IMAGE_SIZE[1],
                          "width": 0 if channel == LIDAR else IMAGE_SIZE[0], "filename": filename,
                          "prev": "", "next": ""})
            if channel == LIDAR:
                points, world = _lidar_points(scene, step, heights)
                lidar_files[filename] = points.tobytes()
                _annotate(scene, step, samples[k]["token"], world, heights, size, name, annotations)
            else:
                camera_files.append(filename)
        _link(chain)
        sample_data += chain
    instances, flat = [], []
    for n, records in annotations.items():
        _link(records)
        flat += records
        category = CATEGORY_NAMES[AgentCategory(int(scene.agents.category[n]))]
        instances.append({"token": token("instance", name, int(scene.agents.track_ids[n])),
                          "category_token": token("category", category), "nbr_annotations": len(records),
                          "first_annotation_token": records[0]["token"],
                          "last_annotation_token": records[-1]["token"]})
    record = {"token": scene_token, "name": name, "log_token": log_token, "nbr_samples": len(samples),
              "first_sample_token": samples[0]["token"], "last_sample_token": samples[-1]["token"],
              "description": f"diffplan {scene.metadata.scene_id}: {scene.metadata.scenario_type.value}, "
                             f"command {scene.command.name.lower()}"}
    return SceneTables(
        records={"scene": [record], "sample": samples, "sample_data": sample_data, "ego_pose": ego_poses,
                 "calibrated_sensor": calibrated_sensors(name), "instance": instances,
                 "sample_annotation": flat, "log": [{"token": log_token, "logfile": logfile,
                                                     "vehicle": "diffplan-pacifica",
                                                     "date_captured": capture_date(start_us), "location": map_name}]},
        lidar_files=lidar_files, camera_files=tuple(camera_files),
        sample_tokens=tuple(s["token"] for s in samples))


def _annotate(scene: DriveScene, step: int, sample_token: str, points: np.ndarray, heights: np.ndarray,
              size: np.ndarray, name: str, out: dict[int, list[dict]]) -> None:
    """Append a sample_annotation per agent valid at `step` to `out` (agent row -> its annotations)."""
    agents = scene.agents
    rows = np.flatnonzero(agents.valid[:, step])
    counts = _points_in_boxes(points, agents.xy[rows, step], agents.heading[rows, step], size[rows])
    for n, count in zip(rows, counts, strict=True):
        track = int(agents.track_ids[n])
        x, y = agents.xy[n, step]
        out.setdefault(int(n), []).append({
            "token": token("sample_annotation", name, track, step), "sample_token": sample_token,
            "instance_token": token("instance", name, track), "visibility_token": "",
            "attribute_tokens": _attribute(AgentCategory(int(agents.category[n])),
                                           float(np.hypot(*agents.velocity[n, step]))),
            "translation": [float(x), float(y), float(heights[n] / 2.0)], "size": [float(v) for v in size[n]],
            "rotation": yaw_quaternion(float(agents.heading[n, step])), "prev": "", "next": "",
            "num_lidar_pts": int(count), "num_radar_pts": 0})


def capture_date(utime: int) -> str:
    """ISO date (UTC) of `utime` [us]."""
    return datetime.datetime.fromtimestamp(utime / 1e6, tz=datetime.UTC).date().isoformat()
