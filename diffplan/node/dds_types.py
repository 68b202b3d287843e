"""cyclonedds-python IDL structs for the ROS 2 Jazzy messages a `diffplan node` publishes or subscribes to.

Each struct carries the ROS 2 wire name (`pkg::msg::dds_::Type_`) so that an rmw (Fast DDS, Cyclone) matches it,
and its fields follow the ROS 2 Jazzy message definitions in order (rosbags' `Stores.ROS2_JAZZY`), so that the
XCDR1 bytes cyclonedds writes equal `typestore.serialize_cdr`. vision_msgs follows vision_msgs 4.x (Jazzy).
`IDL_TYPES` maps each ROS type name ("nav_msgs/msg/Odometry") to its struct.

Importing this module imports cyclonedds (the `ros2` extra); `diffplan.node.dds` imports it lazily.
"""
# No `from __future__ import annotations`: cyclonedds resolves the field annotations at run time.
# mypy: disable-error-code="type-arg,valid-type"
# (cyclonedds' sequence[T] / array[T, n] are run-time annotations mypy cannot read)

from dataclasses import dataclass

from cyclonedds.idl import IdlStruct
from cyclonedds.idl.types import array, byte, float32, float64, int32, sequence, uint8, uint32

# builtin_interfaces, std_msgs


@dataclass
class Time_(IdlStruct, typename="builtin_interfaces::msg::dds_::Time_"):
    """builtin_interfaces/msg/Time."""

    sec: int32
    nanosec: uint32


@dataclass
class Duration_(IdlStruct, typename="builtin_interfaces::msg::dds_::Duration_"):
    """builtin_interfaces/msg/Duration."""

    sec: int32
    nanosec: uint32


@dataclass
class Header_(IdlStruct, typename="std_msgs::msg::dds_::Header_"):
    """std_msgs/msg/Header."""

    stamp: Time_
    frame_id: str


@dataclass
class ColorRGBA_(IdlStruct, typename="std_msgs::msg::dds_::ColorRGBA_"):
    """std_msgs/msg/ColorRGBA."""

    r: float32
    g: float32
    b: float32
    a: float32


# geometry_msgs


@dataclass
class Point_(IdlStruct, typename="geometry_msgs::msg::dds_::Point_"):
    """geometry_msgs/msg/Point."""

    x: float64
    y: float64
    z: float64


@dataclass
class Vector3_(IdlStruct, typename="geometry_msgs::msg::dds_::Vector3_"):
    """geometry_msgs/msg/Vector3."""

    x: float64
    y: float64
    z: float64


@dataclass
class Quaternion_(IdlStruct, typename="geometry_msgs::msg::dds_::Quaternion_"):
    """geometry_msgs/msg/Quaternion."""

    x: float64
    y: float64
    z: float64
    w: float64


@dataclass
class Pose_(IdlStruct, typename="geometry_msgs::msg::dds_::Pose_"):
    """geometry_msgs/msg/Pose."""

    position: Point_
    orientation: Quaternion_


@dataclass
class PoseStamped_(IdlStruct, typename="geometry_msgs::msg::dds_::PoseStamped_"):
    """geometry_msgs/msg/PoseStamped."""

    header: Header_
    pose: Pose_


@dataclass
class PoseWithCovariance_(IdlStruct, typename="geometry_msgs::msg::dds_::PoseWithCovariance_"):
    """geometry_msgs/msg/PoseWithCovariance."""

    pose: Pose_
    covariance: array[float64, 36]


@dataclass
class Twist_(IdlStruct, typename="geometry_msgs::msg::dds_::Twist_"):
    """geometry_msgs/msg/Twist."""

    linear: Vector3_
    angular: Vector3_


@dataclass
class TwistStamped_(IdlStruct, typename="geometry_msgs::msg::dds_::TwistStamped_"):
    """geometry_msgs/msg/TwistStamped."""

    header: Header_
    twist: Twist_


@dataclass
class TwistWithCovariance_(IdlStruct, typename="geometry_msgs::msg::dds_::TwistWithCovariance_"):
    """geometry_msgs/msg/TwistWithCovariance."""

    twist: Twist_
    covariance: array[float64, 36]


# nav_msgs


@dataclass
class Odometry_(IdlStruct, typename="nav_msgs::msg::dds_::Odometry_"):
    """nav_msgs/msg/Odometry."""

    header: Header_
    child_frame_id: str
    pose: PoseWithCovariance_
    twist: TwistWithCovariance_


@dataclass
class Path_(IdlStruct, typename="nav_msgs::msg::dds_::Path_"):
    """nav_msgs/msg/Path."""

    header: Header_
    poses: sequence[PoseStamped_]


# sensor_msgs


@dataclass
class Image_(IdlStruct, typename="sensor_msgs::msg::dds_::Image_"):
    """sensor_msgs/msg/Image."""

    header: Header_
    height: uint32
    width: uint32
    encoding: str
    is_bigendian: uint8
    step: uint32
    data: sequence[uint8]


@dataclass
class CompressedImage_(IdlStruct, typename="sensor_msgs::msg::dds_::CompressedImage_"):
    """sensor_msgs/msg/CompressedImage (Marker.texture)."""

    header: Header_
    format: str
    data: sequence[uint8]


@dataclass
class RegionOfInterest_(IdlStruct, typename="sensor_msgs::msg::dds_::RegionOfInterest_"):
    """sensor_msgs/msg/RegionOfInterest."""

    x_offset: uint32
    y_offset: uint32
    height: uint32
    width: uint32
    do_rectify: bool


@dataclass
class CameraInfo_(IdlStruct, typename="sensor_msgs::msg::dds_::CameraInfo_"):
    """sensor_msgs/msg/CameraInfo."""

    header: Header_
    height: uint32
    width: uint32
    distortion_model: str
    d: sequence[float64]
    k: array[float64, 9]
    r: array[float64, 9]
    p: array[float64, 12]
    binning_x: uint32
    binning_y: uint32
    roi: RegionOfInterest_


# visualization_msgs (Jazzy: texture, uv_coordinates and mesh_file included)


@dataclass
class UVCoordinate_(IdlStruct, typename="visualization_msgs::msg::dds_::UVCoordinate_"):
    """visualization_msgs/msg/UVCoordinate."""

    u: float32
    v: float32


@dataclass
class MeshFile_(IdlStruct, typename="visualization_msgs::msg::dds_::MeshFile_"):
    """visualization_msgs/msg/MeshFile."""

    filename: str
    data: sequence[uint8]


@dataclass
class Marker_(IdlStruct, typename="visualization_msgs::msg::dds_::Marker_"):
    """visualization_msgs/msg/Marker (ROS 2 Jazzy field list)."""

    header: Header_
    ns: str
    id: int32
    type: int32
    action: int32
    pose: Pose_
    scale: Vector3_
    color: ColorRGBA_
    lifetime: Duration_
    frame_locked: bool
    points: sequence[Point_]
    colors: sequence[ColorRGBA_]
    texture_resource: str
    texture: CompressedImage_
    uv_coordinates: sequence[UVCoordinate_]
    text: str
    mesh_resource: str
    mesh_file: MeshFile_
    mesh_use_embedded_materials: bool


@dataclass
class MarkerArray_(IdlStruct, typename="visualization_msgs::msg::dds_::MarkerArray_"):
    """visualization_msgs/msg/MarkerArray."""

    markers: sequence[Marker_]


# diagnostic_msgs


@dataclass
class KeyValue_(IdlStruct, typename="diagnostic_msgs::msg::dds_::KeyValue_"):
    """diagnostic_msgs/msg/KeyValue."""

    key: str
    value: str


@dataclass
class DiagnosticStatus_(IdlStruct, typename="diagnostic_msgs::msg::dds_::DiagnosticStatus_"):
    """diagnostic_msgs/msg/DiagnosticStatus (`level` is an IDL octet)."""

    level: byte
    name: str
    message: str
    hardware_id: str
    values: sequence[KeyValue_]


@dataclass
class DiagnosticArray_(IdlStruct, typename="diagnostic_msgs::msg::dds_::DiagnosticArray_"):
    """diagnostic_msgs/msg/DiagnosticArray."""

    header: Header_
    status: sequence[DiagnosticStatus_]


# vision_msgs (4.x, as shipped for Jazzy)


@dataclass
class ObjectHypothesis_(IdlStruct, typename="vision_msgs::msg::dds_::ObjectHypothesis_"):
    """vision_msgs/msg/ObjectHypothesis."""

    class_id: str
    score: float64


@dataclass
class ObjectHypothesisWithPose_(IdlStruct, typename="vision_msgs::msg::dds_::ObjectHypothesisWithPose_"):
    """vision_msgs/msg/ObjectHypothesisWithPose."""

    hypothesis: ObjectHypothesis_
    pose: PoseWithCovariance_


@dataclass
class BoundingBox3D_(IdlStruct, typename="vision_msgs::msg::dds_::BoundingBox3D_"):
    """vision_msgs/msg/BoundingBox3D."""

    center: Pose_
    size: Vector3_


@dataclass
class Detection3D_(IdlStruct, typename="vision_msgs::msg::dds_::Detection3D_"):
    """vision_msgs/msg/Detection3D."""

    header: Header_
    results: sequence[ObjectHypothesisWithPose_]
    bbox: BoundingBox3D_
    id: str


@dataclass
class Detection3DArray_(IdlStruct, typename="vision_msgs::msg::dds_::Detection3DArray_"):
    """vision_msgs/msg/Detection3DArray."""

    header: Header_
    detections: sequence[Detection3D_]


IDL_TYPES: dict[str, type[IdlStruct]] = {
    "builtin_interfaces/msg/Time": Time_,
    "builtin_interfaces/msg/Duration": Duration_,
    "std_msgs/msg/Header": Header_,
    "std_msgs/msg/ColorRGBA": ColorRGBA_,
    "geometry_msgs/msg/Point": Point_,
    "geometry_msgs/msg/Vector3": Vector3_,
    "geometry_msgs/msg/Quaternion": Quaternion_,
    "geometry_msgs/msg/Pose": Pose_,
    "geometry_msgs/msg/PoseStamped": PoseStamped_,
    "geometry_msgs/msg/PoseWithCovariance": PoseWithCovariance_,
    "geometry_msgs/msg/Twist": Twist_,
    "geometry_msgs/msg/TwistStamped": TwistStamped_,
    "geometry_msgs/msg/TwistWithCovariance": TwistWithCovariance_,
    "nav_msgs/msg/Odometry": Odometry_,
    "nav_msgs/msg/Path": Path_,
    "sensor_msgs/msg/Image": Image_,
    "sensor_msgs/msg/CompressedImage": CompressedImage_,
    "sensor_msgs/msg/RegionOfInterest": RegionOfInterest_,
    "sensor_msgs/msg/CameraInfo": CameraInfo_,
    "visualization_msgs/msg/UVCoordinate": UVCoordinate_,
    "visualization_msgs/msg/MeshFile": MeshFile_,
    "visualization_msgs/msg/Marker": Marker_,
    "visualization_msgs/msg/MarkerArray": MarkerArray_,
    "diagnostic_msgs/msg/KeyValue": KeyValue_,
    "diagnostic_msgs/msg/DiagnosticStatus": DiagnosticStatus_,
    "diagnostic_msgs/msg/DiagnosticArray": DiagnosticArray_,
    "vision_msgs/msg/ObjectHypothesis": ObjectHypothesis_,
    "vision_msgs/msg/ObjectHypothesisWithPose": ObjectHypothesisWithPose_,
    "vision_msgs/msg/BoundingBox3D": BoundingBox3D_,
    "vision_msgs/msg/Detection3D": Detection3D_,
    "vision_msgs/msg/Detection3DArray": Detection3DArray_,
}
