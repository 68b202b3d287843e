"""ROS 2 messages as rosbags' Jazzy dataclasses: one typestore (vision_msgs 4.x registered), constructors and
readers.

Transports serialize exactly these types (`TYPESTORE.serialize_cdr`), so the node core never builds anything
else. Readers raise `NodeInputError` with a one-line reason when a message is malformed (wrong encoding, sizes
that do not match the data, NaN poses, oversized images).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from scenes.errors import DiffplanError

# vision_msgs 4.x (ROS 2 Humble .. Jazzy), msg/*.msg without comments.
VISION_MSGS = {
    "vision_msgs/msg/ObjectHypothesis": "string class_id\nfloat64 score\n",
    "vision_msgs/msg/ObjectHypothesisWithPose":
        "vision_msgs/ObjectHypothesis hypothesis\ngeometry_msgs/PoseWithCovariance pose\n",
    "vision_msgs/msg/BoundingBox3D": "geometry_msgs/Pose center\ngeometry_msgs/Vector3 size\n",
    "vision_msgs/msg/Detection3D": "std_msgs/Header header\nvision_msgs/ObjectHypothesisWithPose[] results\n"
                                   "vision_msgs/BoundingBox3D bbox\nstring id\n",
    "vision_msgs/msg/Detection3DArray": "std_msgs/Header header\nvision_msgs/Detection3D[] detections\n",
}


def _typestore() -> Any:
    store = get_typestore(Stores.ROS2_JAZZY)
    types: dict = {}
    for name, text in VISION_MSGS.items():
        types.update(get_types_from_msg(text, name))
    store.register(types)
    return store


TYPESTORE = _typestore()
T = TYPESTORE.types  # message classes by name, e.g. T["nav_msgs/msg/Path"]
MAX_IMAGE_SIDE = 4096  # [px] larger images are refused


class NodeInputError(DiffplanError, ValueError):
    """A received message cannot be used (one-line reason)."""


def stamp_to_seconds(stamp: Any) -> float:
    """builtin_interfaces/Time -> seconds."""
    return float(stamp.sec) + 1e-9 * float(stamp.nanosec)


def header_stamp(message: Any) -> float:
    """The message's header stamp [s]; NodeInputError when it is not finite."""
    stamp = stamp_to_seconds(message.header.stamp)
    if not math.isfinite(stamp):
        raise NodeInputError("header stamp is not finite")
    return stamp


def check_frame(what: str, frame: str, odom_frame: str) -> None:
    """NodeInputError unless `frame` is `odom_frame`, "map" or empty (no TF lookups: "map" is taken as odom)."""
    if frame not in ("", odom_frame, "map"):
        raise NodeInputError(f"{what} frame {frame!r} is not {odom_frame!r} or 'map'")


def time_msg(stamp_s: float) -> Any:
    """builtin_interfaces/Time of `stamp_s` [s] (non-negative)."""
    nanoseconds = max(0, round(stamp_s * 1e9))
    return T["builtin_interfaces/msg/Time"](sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


def header(stamp_s: float, frame_id: str) -> Any:
    """std_msgs/Header at `stamp_s` [s] in `frame_id`."""
    return T["std_msgs/msg/Header"](stamp=time_msg(stamp_s), frame_id=frame_id)


def quaternion_from_yaw(yaw: float) -> Any:
    """geometry_msgs/Quaternion of a rotation by `yaw` [rad] about z."""
    return T["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=math.sin(yaw / 2), w=math.cos(yaw / 2))


def yaw_from_quaternion(q: Any) -> float:
    """Yaw [rad] (rotation about z) of a geometry_msgs/Quaternion."""
    return math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))


def pose(x: float, y: float, yaw: float, z: float = 0.0) -> Any:
    """geometry_msgs/Pose at (x, y, z) [m] with heading `yaw` [rad]."""
    position = T["geometry_msgs/msg/Point"](x=float(x), y=float(y), z=float(z))
    return T["geometry_msgs/msg/Pose"](position=position, orientation=quaternion_from_yaw(float(yaw)))


def pose_stamped(stamp_s: float, frame_id: str, x: float, y: float, yaw: float) -> Any:
    """geometry_msgs/PoseStamped of (x, y, yaw) in `frame_id`."""
    return T["geometry_msgs/msg/PoseStamped"](header=header(stamp_s, frame_id), pose=pose(x, y, yaw))


def path(stamp_s: float, frame_id: str, poses: np.ndarray) -> Any:
    """nav_msgs/Path of `poses` (N, 3) x, y [m], yaw [rad] in `frame_id`, every pose stamped `stamp_s`."""
    items = [pose_stamped(stamp_s, frame_id, *row) for row in np.asarray(poses, dtype=np.float64)[:, :3]]
    return T["nav_msgs/msg/Path"](header=header(stamp_s, frame_id), poses=items)


def vector3(x: float = 0.0, y: float = 0.0, z: float = 0.0) -> Any:
    """geometry_msgs/Vector3."""
    return T["geometry_msgs/msg/Vector3"](x=float(x), y=float(y), z=float(z))


def twist(v: float = 0.0, omega: float = 0.0) -> Any:
    """geometry_msgs/Twist: forward speed `v` [m/s], yaw rate `omega` [rad/s]."""
    return T["geometry_msgs/msg/Twist"](linear=vector3(v), angular=vector3(0.0, 0.0, omega))


def twist_stamped(stamp_s: float, frame_id: str, v: float = 0.0, omega: float = 0.0) -> Any:
    """geometry_msgs/TwistStamped in `frame_id` (base_link)."""
    return T["geometry_msgs/msg/TwistStamped"](header=header(stamp_s, frame_id), twist=twist(v, omega))


def color(r: float, g: float, b: float, a: float = 1.0) -> Any:
    """std_msgs/ColorRGBA."""
    return T["std_msgs/msg/ColorRGBA"](r=float(r), g=float(g), b=float(b), a=float(a))


def value_colors(values: np.ndarray) -> list[tuple[float, float, float]]:
    """RGB per value, blue for the lowest through red for the highest (all blue-red midpoint when equal)."""
    values = np.asarray(values, dtype=np.float64)
    span = float(values.max() - values.min()) if values.size else 0.0
    fraction = (values - values.min()) / span if span > 0 else np.full(values.shape, 0.5)
    return [(float(f), 0.0, float(1.0 - f)) for f in fraction]


def marker_array(stamp_s: float, frame_id: str, lines: Sequence[np.ndarray], values: np.ndarray | None,
                 namespace: str = "candidates", width: float = 0.02) -> Any:
    """visualization_msgs/MarkerArray: DELETEALL, then one LINE_STRIP per line (K, 2+) [m] coloured by `values`
    (K,) from blue (low) to red (high); grey when `values` is None."""
    marker_cls = T["visualization_msgs/msg/Marker"]
    markers = [_marker(stamp_s, frame_id, namespace, 0, marker_cls.DELETEALL, [], color(0, 0, 0, 0), 0.0)]
    colors = value_colors(values) if values is not None and len(values) else [(0.5, 0.5, 0.5)] * len(lines)
    for index, (line, rgb) in enumerate(zip(lines, colors, strict=True)):
        points = [T["geometry_msgs/msg/Point"](x=float(x), y=float(y), z=0.0)
                  for x, y in np.asarray(line, dtype=np.float64)[:, :2]]
        markers.append(_marker(stamp_s, frame_id, namespace, index, marker_cls.ADD, points, color(*rgb), width))
    return T["visualization_msgs/msg/MarkerArray"](markers=markers)


def _marker(stamp_s: float, frame_id: str, namespace: str, index: int, action: int, points: list, rgba: Any,
            width: float) -> Any:
    marker_cls = T["visualization_msgs/msg/Marker"]
    return marker_cls(
        header=header(stamp_s, frame_id), ns=namespace, id=index, type=marker_cls.LINE_STRIP, action=action,
        pose=pose(0.0, 0.0, 0.0), scale=vector3(width, 0.0, 0.0), color=rgba,
        lifetime=T["builtin_interfaces/msg/Duration"](sec=0, nanosec=0), frame_locked=False, points=points,
        colors=[], texture_resource="", texture=T["sensor_msgs/msg/CompressedImage"](
            header=header(0.0, ""), format="", data=np.zeros(0, np.uint8)),
        uv_coordinates=[], text="", mesh_resource="",
        mesh_file=T["visualization_msgs/msg/MeshFile"](filename="", data=np.zeros(0, np.uint8)),
        mesh_use_embedded_materials=False)


def diagnostic_array(stamp_s: float, name: str, level: int, message: str, values: dict[str, str],
                     hardware_id: str = "") -> Any:
    """diagnostic_msgs/DiagnosticArray with one status `name` at `level` (0 OK, 1 WARN, 2 ERROR, 3 STALE)."""
    status = T["diagnostic_msgs/msg/DiagnosticStatus"](
        level=int(level), name=name, message=message,
        hardware_id=hardware_id,
        values=[T["diagnostic_msgs/msg/KeyValue"](key=str(k), value=str(v)) for k, v in values.items()])
    return T["diagnostic_msgs/msg/DiagnosticArray"](header=header(stamp_s, ""), status=[status])


def depth_image(stamp_s: float, frame_id: str, depth_m: np.ndarray, encoding: str = "16UC1",
                big_endian: bool = False) -> Any:
    """sensor_msgs/Image of `depth_m` (H, W) [m]: 16UC1 rounded to mm, or 32FC1 in m."""
    depth_m = np.asarray(depth_m, dtype=np.float64)
    order = ">" if big_endian else "<"
    if encoding == "16UC1":
        pixels = np.clip(np.round(depth_m * 1e3), 0, 65535).astype(order + "u2")
    elif encoding == "32FC1":
        pixels = depth_m.astype(order + "f4")
    else:
        raise ValueError(f"encoding {encoding!r} is not 16UC1 or 32FC1")
    height, width = depth_m.shape
    return T["sensor_msgs/msg/Image"](header=header(stamp_s, frame_id), height=height, width=width,
                                      encoding=encoding, is_bigendian=int(big_endian),
                                      step=width * pixels.itemsize,
                                      data=np.frombuffer(pixels.tobytes(), dtype=np.uint8).copy())


def odometry(stamp_s: float, frame_id: str, child_frame_id: str, x: float, y: float, yaw: float,
             v: float = 0.0, omega: float = 0.0, v_left: float = 0.0) -> Any:
    """nav_msgs/Odometry: pose (x, y, yaw) in `frame_id`, twist (v, v_left, omega) in `child_frame_id`."""
    covariance = np.zeros(36, dtype=np.float64)
    return T["nav_msgs/msg/Odometry"](
        header=header(stamp_s, frame_id), child_frame_id=child_frame_id,
        pose=T["geometry_msgs/msg/PoseWithCovariance"](pose=pose(x, y, yaw), covariance=covariance),
        twist=T["geometry_msgs/msg/TwistWithCovariance"](
            twist=T["geometry_msgs/msg/Twist"](linear=vector3(v, v_left), angular=vector3(0.0, 0.0, omega)),
            covariance=covariance.copy()))


def detection(stamp_s: float, frame_id: str, track_id: int | str, class_id: str, x: float, y: float,
              yaw: float, length: float, width: float, height: float = 1.5, score: float = 1.0) -> Any:
    """vision_msgs/Detection3D of a tracked box centred at (x, y) [m] with heading `yaw` [rad]."""
    hypothesis = T["vision_msgs/msg/ObjectHypothesisWithPose"](
        hypothesis=T["vision_msgs/msg/ObjectHypothesis"](class_id=class_id, score=float(score)),
        pose=T["geometry_msgs/msg/PoseWithCovariance"](pose=pose(x, y, yaw), covariance=np.zeros(36)))
    return T["vision_msgs/msg/Detection3D"](
        header=header(stamp_s, frame_id), results=[hypothesis],
        bbox=T["vision_msgs/msg/BoundingBox3D"](center=pose(x, y, yaw), size=vector3(length, width, height)),
        id=str(track_id))


def detection_array(stamp_s: float, frame_id: str, detections: Sequence[Any]) -> Any:
    """vision_msgs/Detection3DArray."""
    return T["vision_msgs/msg/Detection3DArray"](header=header(stamp_s, frame_id), detections=list(detections))


# --- readers ---------------------------------------------------------------------------------------------


def _finite(name: str, *values: float) -> None:
    if not all(math.isfinite(float(v)) for v in values):
        raise NodeInputError(f"{name}: non-finite value (NaN or inf)")


def depth_image_to_metres(msg: Any, max_side: int = MAX_IMAGE_SIDE) -> np.ndarray:
    """(H, W) float32 depth [m] of a sensor_msgs/Image: 16UC1 (or mono16) in mm, 32FC1 in m; endianness from
    `is_bigendian`. Non-finite or zero pixels are invalid and become 0 (REP 118). NodeInputError on another
    encoding, sizes that do not match the data, or a side above `max_side`."""
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    encoding = str(msg.encoding).upper()
    if encoding in ("16UC1", "MONO16"):
        kind, size = "u2", 2
    elif encoding == "32FC1":
        kind, size = "f4", 4
    else:
        raise NodeInputError(f"depth image: encoding {msg.encoding!r} is not 16UC1 (mm) or 32FC1 (m)")
    if not (0 < height <= max_side and 0 < width <= max_side):
        raise NodeInputError(f"depth image: {width}x{height} px is outside 1..{max_side}")
    if step < width * size:
        raise NodeInputError(f"depth image: step {step} is smaller than width x {size} = {width * size}")
    data = np.asarray(msg.data, dtype=np.uint8)
    if data.size != step * height:
        raise NodeInputError(f"depth image: {data.size} bytes of data, expected step x height = {step * height}")
    dtype = np.dtype((">" if msg.is_bigendian else "<") + kind)
    rows = data.reshape(height, step)[:, :width * size]
    image = np.ascontiguousarray(rows).view(dtype).reshape(height, width).astype(np.float32)
    if kind == "u2":
        image *= np.float32(1e-3)
    image[~np.isfinite(image)] = 0.0
    return image


def odometry_pose(msg: Any) -> tuple[float, float, float, float, float]:
    """(x [m], y [m], yaw [rad], forward speed v [m/s], yaw rate omega [rad/s]) of a nav_msgs/Odometry (pose
    in its header frame, twist in child_frame_id); NodeInputError on NaN or a zero quaternion."""
    p, q, tw = msg.pose.pose.position, msg.pose.pose.orientation, msg.twist.twist
    _finite("odometry", p.x, p.y, q.x, q.y, q.z, q.w, tw.linear.x, tw.linear.y, tw.angular.z)
    if q.x * q.x + q.y * q.y + q.z * q.z + q.w * q.w < 1e-12:
        raise NodeInputError("odometry: zero quaternion")
    return float(p.x), float(p.y), yaw_from_quaternion(q), float(tw.linear.x), float(tw.angular.z)


def odometry_lateral_speed(msg: Any) -> float:
    """Sideways speed [m/s] (twist.linear.y, child frame) of a nav_msgs/Odometry."""
    return float(msg.twist.twist.linear.y)


def pose_xy_yaw(msg: Any, name: str = "pose") -> tuple[float, float, float]:
    """(x [m], y [m], yaw [rad]) of a geometry_msgs/Pose; NodeInputError on NaN or a zero quaternion."""
    p, q = msg.position, msg.orientation
    _finite(name, p.x, p.y, q.x, q.y, q.z, q.w)
    if q.x * q.x + q.y * q.y + q.z * q.z + q.w * q.w < 1e-12:
        raise NodeInputError(f"{name}: zero quaternion")
    return float(p.x), float(p.y), yaw_from_quaternion(q)


def pose_stamped_xy_yaw(msg: Any) -> tuple[float, float, float]:
    """(x [m], y [m], yaw [rad]) of a geometry_msgs/PoseStamped, in its header's frame."""
    return pose_xy_yaw(msg.pose, "pose")


def camera_hfov_deg(msg: Any) -> float:
    """Horizontal field of view [deg] of a sensor_msgs/CameraInfo (from its k[0] = fx and width)."""
    fx, width = float(np.asarray(msg.k)[0]), int(msg.width)
    _finite("camera_info", fx)
    if fx <= 0 or width <= 0:
        raise NodeInputError(f"camera_info: fx {fx} and width {width} must be positive")
    return math.degrees(2.0 * math.atan(0.5 * width / fx))
