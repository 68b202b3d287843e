"""Typed, validated records of the frames of an OpenScene / NAVSIM v1.1 log pickle.

A log is a plain pickle of a list of frame dicts at 2 Hz (layout: shared/reference/real_data_ros2.md §1.3).
`read_log` loads it with `restricted_load` and turns every dict into a frozen `LogFrame`; any missing key,
wrong type or shape, or non-finite number raises a one-line SourceError such as
"FILE: frame 12 (token abc): anns.gt_boxes has NaN". The dicts are the external format only: nothing past
this module sees them.

Conventions kept from the format: `ego2global_*` is the pose of the ego's **rear axle** (nuPlan's ego pose,
and our `EgoState.pose`); quaternions are **wxyz**. A quaternion whose norm is off unit (e.g. by 1e-6) is
normalised, as pyquaternion does before `yaw_pitch_roll`; a zero or non-finite one is an error.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np

from scenes.adapters.errors import SourceError
from scenes.adapters.pickles import restricted_load
from scenes.agents import AgentCategory

CAMERA_NAMES: tuple[str, ...] = ("CAM_F0", "CAM_L0", "CAM_L1", "CAM_L2", "CAM_R0", "CAM_R1", "CAM_R2", "CAM_B0")
MAP_LOCATIONS: tuple[str, ...] = ("sg-one-north", "us-ma-boston", "us-nv-las-vegas-strip",
                                  "us-pa-pittsburgh-hazelwood")
CAN_BUS_SIZE = 18  # x, y, z, qw, qx, qy, qz, ax, ay, az, vx, vy, vz, wx, wy, wz, 0, 0
CAN_BUS_YAW_RATE = 15  # wz [rad/s]
# nuPlan tracked-object class names (gt_names) -> our category.
CATEGORY_OF_NAME: dict[str, AgentCategory] = {
    "vehicle": AgentCategory.VEHICLE,
    "pedestrian": AgentCategory.PEDESTRIAN,
    "bicycle": AgentCategory.BICYCLE,
    "traffic_cone": AgentCategory.STATIC_OBJECT,
    "barrier": AgentCategory.STATIC_OBJECT,
    "czone_sign": AgentCategory.STATIC_OBJECT,
    "generic_object": AgentCategory.STATIC_OBJECT,
}
_MIN_QUATERNION_NORM = 1e-9


@dataclass(frozen=True, eq=False)
class Annotations:
    """The boxes of one frame (`anns`).

    Attributes:
        boxes: (N, 7) x, y, z [m], length, width, height [m], yaw [rad], in the ego (rear-axle) frame of the
            frame; yaw is relative to the ego heading.
        categories: (N,) int8 `AgentCategory` from `gt_names`.
        velocity: (N, 3) [m/s] in the lidar frame (`gt_velocity_3d`).
        instance_tokens: N per-frame box tokens.
        track_tokens: N track tokens, unique within the frame, stable across frames.
    """

    boxes: np.ndarray
    categories: np.ndarray
    velocity: np.ndarray
    instance_tokens: tuple[str, ...]
    track_tokens: tuple[str, ...]

    @property
    def num_boxes(self) -> int:
        """Boxes N."""
        return self.boxes.shape[0]


@dataclass(frozen=True, eq=False)
class LogFrame:
    """One 2 Hz frame of a log.

    Attributes:
        source: the log file, for messages.
        index: position of the frame in the log.
        token: the frame (lidar_pc) token.
        timestamp: [µs].
        log_name, log_token, scene_token, map_location: identity of the log and its nuPlan map.
        roadblock_ids: the route's roadblock ids (strings, as in the pickle); empty when there is no route.
        ego_translation: (3,) [m] rear-axle position in the map frame.
        ego_rotation: (4,) unit wxyz quaternion of the ego frame in the map frame.
        ego_dynamic_state: (4,) vx, vy [m/s], ax, ay [m/s^2] in the ego frame.
        can_bus: (18,) see CAN_BUS_SIZE.
        lidar2ego_translation: (3,) [m].
        lidar2ego_rotation: (4,) unit wxyz quaternion.
        traffic_lights: (lane connector id, is_red) pairs.
        driving_command: (4,) int64 one-hot: left, forward, right, unknown.
        lidar_path: relative path of the frame's point cloud.
        camera_paths: relative image paths, one per CAMERA_NAMES entry, in that order.
        annotations: the boxes, or None for test logs (no `anns`).
    """

    source: str
    index: int
    token: str
    timestamp: int
    log_name: str
    log_token: str
    scene_token: str
    map_location: str
    roadblock_ids: tuple[str, ...]
    ego_translation: np.ndarray
    ego_rotation: np.ndarray
    ego_dynamic_state: np.ndarray
    can_bus: np.ndarray
    lidar2ego_translation: np.ndarray
    lidar2ego_rotation: np.ndarray
    traffic_lights: tuple[tuple[int, bool], ...]
    driving_command: np.ndarray
    lidar_path: str
    camera_paths: tuple[str, ...]
    annotations: Annotations | None

    @property
    def where(self) -> str:
        """The prefix of messages about this frame: FILE: frame I (token T)."""
        return f"{self.source}: frame {self.index} (token {self.token})"

    @property
    def ego_pose(self) -> np.ndarray:
        """(3,) rear-axle x, y [m] and heading [rad] in the map frame."""
        return np.array([self.ego_translation[0], self.ego_translation[1], quaternion_yaw(self.ego_rotation)])

    @property
    def yaw_rate(self) -> float:
        """[rad/s] counter-clockwise, `can_bus[15]`."""
        return float(self.can_bus[CAN_BUS_YAW_RATE])


def quaternion_yaw(q: np.ndarray) -> float:
    """Yaw [rad] of unit wxyz quaternion `q` (4,), as pyquaternion's `yaw_pitch_roll[0]`."""
    w, x, y, z = (float(v) for v in q)
    return float(np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z)))


def quaternion_matrix(q: np.ndarray) -> np.ndarray:
    """(3, 3) rotation matrix of unit wxyz quaternion `q` (4,)."""
    w, x, y, z = (float(v) for v in q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def yaw_quaternion(yaw: float) -> np.ndarray:
    """(4,) wxyz quaternion of a rotation by `yaw` [rad] about z."""
    return np.array([np.cos(yaw / 2.0), 0.0, 0.0, np.sin(yaw / 2.0)])


class _Fields:
    """Typed access to one frame dict; every failure is a SourceError prefixed with `where`."""

    def __init__(self, raw: Mapping, where: str, prefix: str = ""):
        self.raw, self.where, self.prefix = raw, where, prefix

    def fail(self, key: str, problem: str) -> NoReturn:
        raise SourceError(f"{self.where}: {self.prefix}{key} {problem}")

    def get(self, key: str) -> object:
        if key not in self.raw:
            raise SourceError(f"{self.where}: missing key {self.prefix}{key!r}")
        return self.raw[key]

    def string(self, key: str) -> str:
        value = self.get(key)
        if not isinstance(value, str):
            self.fail(key, f"must be a str, got {type(value).__name__}")
        return value

    def integer(self, key: str) -> int:
        value = self.get(key)
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            self.fail(key, f"must be an int, got {type(value).__name__}")
        return int(value)

    def strings(self, key: str, length: int | None = None) -> tuple[str, ...]:
        value = self.get(key)
        if not isinstance(value, list | tuple | np.ndarray) or not all(isinstance(v, str) for v in value):
            self.fail(key, "must be a list of str")
        if length is not None and len(value) != length:
            self.fail(key, f"has {len(value)} entries for {length} boxes")
        return tuple(str(v) for v in value)

    def array(self, key: str, shape: tuple[int | None, ...], kind: str = "f") -> np.ndarray:
        value = self.get(key)
        try:
            out = np.array(value, dtype=np.float64 if kind == "f" else np.int64)
        except (TypeError, ValueError):
            self.fail(key, f"must be a numeric array, got {type(value).__name__}")
        if out.size == 0 and len(shape) > 1 and shape[0] in (None, 0) and None not in shape[1:]:
            out = out.reshape(0, *[int(d or 0) for d in shape[1:]])  # an empty box list pickled as [] or np.zeros(0)
        if out.ndim != len(shape) or any(d is not None and d != s for d, s in zip(shape, out.shape)):
            spec = ", ".join("N" if d is None else str(d) for d in shape)
            self.fail(key, f"has shape {out.shape}, expected ({spec})")
        if kind == "f" and not np.isfinite(out).all():
            self.fail(key, "has NaN" if np.isnan(out).any() else "has inf")
        return out

    def quaternion(self, key: str) -> np.ndarray:
        q = self.array(key, (4,))
        norm = float(np.linalg.norm(q))
        if norm < _MIN_QUATERNION_NORM:
            self.fail(key, "is a zero quaternion (wxyz)")
        return q / norm


def parse_frame(raw: object, source: str, index: int) -> LogFrame:
    """The LogFrame of frame dict `raw`, frame `index` of log file `source`; SourceError naming the field."""
    if not isinstance(raw, Mapping):
        raise SourceError(f"{source}: frame {index} must be a dict, got {type(raw).__name__}")
    token = _Fields(raw, f"{source}: frame {index}").string("token")
    fields = _Fields(raw, f"{source}: frame {index} (token {token})")
    map_location = fields.string("map_location")
    if map_location not in MAP_LOCATIONS:
        fields.fail("map_location", f"{map_location!r} is not a nuPlan map location ({', '.join(MAP_LOCATIONS)})")
    return LogFrame(
        source=source,
        index=index,
        token=token,
        timestamp=fields.integer("timestamp"),
        log_name=fields.string("log_name"),
        log_token=fields.string("log_token"),
        scene_token=fields.string("scene_token"),
        map_location=map_location,
        roadblock_ids=fields.strings("roadblock_ids"),
        ego_translation=fields.array("ego2global_translation", (3,)),
        ego_rotation=fields.quaternion("ego2global_rotation"),
        ego_dynamic_state=fields.array("ego_dynamic_state", (4,)),
        can_bus=fields.array("can_bus", (CAN_BUS_SIZE,)),
        lidar2ego_translation=fields.array("lidar2ego_translation", (3,)),
        lidar2ego_rotation=fields.quaternion("lidar2ego_rotation"),
        traffic_lights=_traffic_lights(fields),
        driving_command=_driving_command(fields),
        lidar_path=fields.string("lidar_path"),
        camera_paths=_camera_paths(fields),
        annotations=_annotations(fields) if "anns" in raw else None,
    )


def read_log(path: str | Path) -> list[LogFrame]:
    """The frames of OpenScene log pickle `path`, in file (time) order; SourceError naming file and field."""
    source = str(path)
    raw = restricted_load(path)
    if not isinstance(raw, list):
        raise SourceError(f"{source}: expected a list of frame dicts, got {type(raw).__name__}")
    frames = [parse_frame(item, source, index) for index, item in enumerate(raw)]
    for before, after in itertools.pairwise(frames):
        if after.timestamp <= before.timestamp:
            raise SourceError(f"{after.where}: timestamp {after.timestamp} is not after the previous frame's "
                              f"{before.timestamp}")
    return frames


def _traffic_lights(fields: _Fields) -> tuple[tuple[int, bool], ...]:
    value = fields.get("traffic_lights")
    if not isinstance(value, list | tuple):
        fields.fail("traffic_lights", f"must be a list of (lane_connector_id, is_red), got {type(value).__name__}")
    out = []
    for item in value:
        if (not isinstance(item, list | tuple) or len(item) != 2 or isinstance(item[0], bool)
                or not isinstance(item[0], int | np.integer)
                or not isinstance(item[1], bool | np.bool_ | int | np.integer) or int(item[1]) not in (0, 1)):
            fields.fail("traffic_lights", f"entry {item!r} is not a (lane_connector_id: int, is_red: bool) pair")
        out.append((int(item[0]), bool(item[1])))
    return tuple(out)


def _driving_command(fields: _Fields) -> np.ndarray:
    command = fields.array("driving_command", (4,), "i")
    if not np.isin(command, (0, 1)).all() or command.sum() != 1:
        fields.fail("driving_command", f"must be a one-hot (left, forward, right, unknown), got {command.tolist()}")
    return command


def _camera_paths(fields: _Fields) -> tuple[str, ...]:
    cams = fields.get("cams")
    if not isinstance(cams, Mapping):
        fields.fail("cams", f"must be a dict, got {type(cams).__name__}")
    missing = [name for name in CAMERA_NAMES if name not in cams]
    if missing:
        fields.fail("cams", f"lacks camera(s) {', '.join(missing)} (all 8 of {', '.join(CAMERA_NAMES)} are needed)")
    paths = []
    for name in CAMERA_NAMES:
        if not isinstance(cams[name], Mapping):
            fields.fail(f"cams.{name}", f"must be a dict, got {type(cams[name]).__name__}")
        camera = _Fields(cams[name], fields.where, f"cams.{name}.")
        camera.array("sensor2lidar_rotation", (3, 3))
        camera.array("sensor2lidar_translation", (3,))
        camera.array("cam_intrinsic", (3, 3))
        camera.array("distortion", (None,))
        paths.append(camera.string("data_path"))
    return tuple(paths)


def _annotations(fields: _Fields) -> Annotations:
    anns = fields.get("anns")
    if not isinstance(anns, Mapping):
        fields.fail("anns", f"must be a dict, got {type(anns).__name__}")
    box = _Fields(anns, fields.where, "anns.")
    boxes = box.array("gt_boxes", (None, 7))
    count = boxes.shape[0]
    if (boxes[:, 3:5] <= 0).any():
        box.fail("gt_boxes", "has a non-positive length or width")
    names = box.strings("gt_names", count)
    unknown = sorted(set(names) - set(CATEGORY_OF_NAME))
    if unknown:
        box.fail("gt_names", f"has unknown class {unknown[0]!r} (known: {', '.join(CATEGORY_OF_NAME)})")
    velocity = box.array("gt_velocity_3d", (count, 3))
    tracks = box.strings("track_tokens", count)
    if len(set(tracks)) != count:
        box.fail("track_tokens", "has a duplicate token")
    return Annotations(
        boxes=boxes,
        categories=np.array([CATEGORY_OF_NAME[n] for n in names], np.int8),
        velocity=velocity,
        instance_tokens=box.strings("instance_tokens", count),
        track_tokens=tracks,
    )
