"""The node's transports: cyclonedds wire bytes against rosbags' CDR, a DDS loopback and bag replay."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from diffplan.node.interface import InputRole, InputSpec, Output, OutputRole, OutputSpec, Qos

pytest.importorskip("rosbags")
from diffplan.node.messages import TYPESTORE, T

REPO = Path(__file__).resolve().parents[2]
CYCLONE_XML = """<CycloneDDS xmlns="https://cdds.io/config"><Domain id="any">
  <General><Interfaces><NetworkInterface name="lo"/></Interfaces><AllowMulticast>false</AllowMulticast></General>
  <Compatibility><IgnoreTypeInformation>1.15</IgnoreTypeInformation></Compatibility>
  <Discovery><ParticipantIndex>auto</ParticipantIndex><MaxAutoParticipantIndex>20</MaxAutoParticipantIndex>
    <Peers><Peer address="127.0.0.1"/></Peers></Discovery>
</Domain></CycloneDDS>
"""


# ---------------------------------------------------------------------------------------------------------------
# A stub core: echoes its inputs so that a test can check what went through the transport.


class EchoCore:
    """On ODOMETRY remembers the pose, on GOAL the goal, on DEPTH the image; plans a Path odom -> goal, commands
    a Twist whose fields encode what it received, and reports the depth image in a DiagnosticArray."""

    plan_rate_hz = 2.0
    control_rate_hz = 10.0

    def __init__(self, twist_stamped: bool = False):
        cmd_type = "geometry_msgs/msg/TwistStamped" if twist_stamped else "geometry_msgs/msg/Twist"
        self.inputs = [
            InputSpec(InputRole.DEPTH, "/camera/depth/image_raw", "sensor_msgs/msg/Image", Qos.SENSOR_DATA),
            InputSpec(InputRole.ODOMETRY, "/odom", "nav_msgs/msg/Odometry", Qos.SENSOR_DATA),
            InputSpec(InputRole.GOAL, "/goal_pose", "geometry_msgs/msg/PoseStamped", Qos.STANDARD),
        ]
        self.outputs = [
            OutputSpec(OutputRole.PLAN, "/plan", "nav_msgs/msg/Path"),
            OutputSpec(OutputRole.CMD_VEL, "/cmd_vel", cmd_type),
            OutputSpec(OutputRole.DIAGNOSTICS, "/diagnostics", "diagnostic_msgs/msg/DiagnosticArray"),
        ]
        self.twist_stamped = twist_stamped
        self.odom: Any = None
        self.goal: Any = None
        self.depth: Any = None
        self.n_odom = 0
        self.nows: list[float] = []

    def on_message(self, role: InputRole, message: Any, now: float) -> None:
        self.nows.append(now)
        if role is InputRole.ODOMETRY:
            self.odom, self.n_odom = message, self.n_odom + 1
        elif role is InputRole.GOAL:
            self.goal = message
        elif role is InputRole.DEPTH:
            self.depth = message

    def plan_tick(self, now: float) -> list[Output]:
        if self.odom is None:
            return []
        header = T["std_msgs/msg/Header"](stamp=self.odom.header.stamp, frame_id=self.odom.header.frame_id)
        poses = [T["geometry_msgs/msg/PoseStamped"](header=header, pose=self.odom.pose.pose)]
        if self.goal is not None:
            poses.append(self.goal)
        outputs = [Output(OutputRole.PLAN, T["nav_msgs/msg/Path"](header=header, poses=poses))]
        if self.depth is not None:
            values = [T["diagnostic_msgs/msg/KeyValue"](key=k, value=str(v)) for k, v in
                      (("encoding", self.depth.encoding), ("width", self.depth.width),
                       ("height", self.depth.height), ("sum", int(np.sum(self.depth.data))))]
            status = T["diagnostic_msgs/msg/DiagnosticStatus"](level=1, name="depth", message="ok", hardware_id="",
                                                                values=values)
            outputs.append(Output(OutputRole.DIAGNOSTICS,
                                  T["diagnostic_msgs/msg/DiagnosticArray"](header=header, status=[status])))
        return outputs

    def control_tick(self, now: float) -> list[Output]:
        v = self.odom.twist.twist.linear.x if self.odom is not None else 0.0
        vec = T["geometry_msgs/msg/Vector3"]
        twist = T["geometry_msgs/msg/Twist"](linear=vec(x=v, y=0.0, z=0.0),
                                             angular=vec(x=0.0, y=0.0, z=float(self.n_odom)))
        if self.twist_stamped:
            header = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=int(now), nanosec=0),
                                              frame_id="base_link")
            twist = T["geometry_msgs/msg/TwistStamped"](header=header, twist=twist)
        return [Output(OutputRole.CMD_VEL, twist)]


# ---------------------------------------------------------------------------------------------------------------
# Sample messages with non-trivial values: odd-length strings (padding), arrays, negative floats.


def _header(sec: int, frame: str) -> Any:
    return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=sec, nanosec=123_456_789),
                                    frame_id=frame)


def _pose(x: float, y: float, z: float = -0.5) -> Any:
    return T["geometry_msgs/msg/Pose"](position=T["geometry_msgs/msg/Point"](x=x, y=y, z=z),
                                       orientation=T["geometry_msgs/msg/Quaternion"](x=0.0, y=-0.1, z=0.3, w=0.9))


def _vec(x: float, y: float, z: float) -> Any:
    return T["geometry_msgs/msg/Vector3"](x=x, y=y, z=z)


def _twist() -> Any:
    return T["geometry_msgs/msg/Twist"](linear=_vec(0.7, -0.2, 0.0), angular=_vec(0.0, 0.0, -1.25))


def _odometry(x: float = -3.25, v: float = 0.6) -> Any:
    cov = np.arange(36, dtype=np.float64) - 17.5
    return T["nav_msgs/msg/Odometry"](
        header=_header(1_700_000_000, "odom"), child_frame_id="base_link_x",
        pose=T["geometry_msgs/msg/PoseWithCovariance"](pose=_pose(x, 4.5), covariance=cov),
        twist=T["geometry_msgs/msg/TwistWithCovariance"](
            twist=T["geometry_msgs/msg/Twist"](linear=_vec(v, 0.0, 0.0), angular=_vec(0.0, 0.0, -0.3)),
            covariance=-cov))


def _image(encoding: str = "16UC1", width: int = 5, height: int = 3) -> Any:
    bpp = 2 if encoding == "16UC1" else 4
    data = (np.arange(width * height * bpp) * 7 % 251).astype(np.uint8)
    return T["sensor_msgs/msg/Image"](header=_header(12, "cam"), height=height, width=width, encoding=encoding,
                                      is_bigendian=0, step=width * bpp, data=data)


def _marker(marker_id: int) -> Any:
    color = T["std_msgs/msg/ColorRGBA"]
    return T["visualization_msgs/msg/Marker"](
        header=_header(5, "map"), ns="cand", id=marker_id, type=4, action=0, pose=_pose(1.0, -2.0),
        scale=_vec(0.05, 0.0, 0.0), color=color(r=0.25, g=-0.5, b=1.0, a=0.75),
        lifetime=T["builtin_interfaces/msg/Duration"](sec=-1, nanosec=5), frame_locked=True,
        points=[T["geometry_msgs/msg/Point"](x=float(i), y=-float(i), z=0.5) for i in range(3)],
        colors=[color(r=0.5, g=0.25, b=0.0, a=1.0)], texture_resource="tex://a.png",
        texture=T["sensor_msgs/msg/CompressedImage"](header=_header(1, "t"), format="png",
                                                     data=np.array([1, 2, 3], np.uint8)),
        uv_coordinates=[T["visualization_msgs/msg/UVCoordinate"](u=0.5, v=-0.25)], text="héllo",
        mesh_resource="", mesh_file=T["visualization_msgs/msg/MeshFile"](filename="m.stl",
                                                                          data=np.arange(5, dtype=np.uint8)),
        mesh_use_embedded_materials=False)


def _detections() -> Any:
    hyp = T["vision_msgs/msg/ObjectHypothesisWithPose"](
        hypothesis=T["vision_msgs/msg/ObjectHypothesis"](class_id="person", score=0.875),
        pose=T["geometry_msgs/msg/PoseWithCovariance"](pose=_pose(2.0, 1.0), covariance=np.ones(36) * -0.5))
    det = T["vision_msgs/msg/Detection3D"](
        header=_header(3, "base"), results=[hyp, hyp],
        bbox=T["vision_msgs/msg/BoundingBox3D"](center=_pose(2.0, 1.0), size=_vec(0.5, 0.6, 1.7)), id="obj-7")
    return T["vision_msgs/msg/Detection3DArray"](header=_header(3, "base"), detections=[det, det])


def _camera_info() -> Any:
    return T["sensor_msgs/msg/CameraInfo"](
        header=_header(9, "camera_optical"), height=480, width=640, distortion_model="plumb_bob",
        d=np.array([-0.25, 0.125, 0.0, -0.001, 0.5]), k=np.linspace(-4, 4, 9), r=np.eye(3).ravel(),
        p=np.linspace(-1, 10, 12), binning_x=1, binning_y=2,
        roi=T["sensor_msgs/msg/RegionOfInterest"](x_offset=1, y_offset=2, height=3, width=4, do_rectify=True))


def _path() -> Any:
    poses = [T["geometry_msgs/msg/PoseStamped"](header=_header(i, "m" * (i + 1)), pose=_pose(-float(i), 0.5 * i))
             for i in range(3)]
    return T["nav_msgs/msg/Path"](header=_header(7, "map"), poses=poses)


def _diagnostics() -> Any:
    kv = T["diagnostic_msgs/msg/KeyValue"]
    status = T["diagnostic_msgs/msg/DiagnosticStatus"](
        level=2, name="diffplan/planner", message="stale odometry", hardware_id="x",
        values=[kv(key="age_s", value="1.5"), kv(key="k", value="")])
    return T["diagnostic_msgs/msg/DiagnosticArray"](header=_header(8, "diag"), status=[status, status])


SAMPLES = {  # every type in interface.py's roles
    "depth 16UC1": ("sensor_msgs/msg/Image", _image),
    "depth 32FC1": ("sensor_msgs/msg/Image", lambda: _image("32FC1", 4, 2)),
    "camera_info": ("sensor_msgs/msg/CameraInfo", _camera_info),
    "odometry": ("nav_msgs/msg/Odometry", _odometry),
    "goal": ("geometry_msgs/msg/PoseStamped", lambda: T["geometry_msgs/msg/PoseStamped"](
        header=_header(2, "map"), pose=_pose(10.0, -7.0))),
    "detections": ("vision_msgs/msg/Detection3DArray", _detections),
    "route/plan": ("nav_msgs/msg/Path", _path),
    "candidates": ("visualization_msgs/msg/MarkerArray", lambda: T["visualization_msgs/msg/MarkerArray"](
        markers=[_marker(0), _marker(1)])),
    "cmd_vel": ("geometry_msgs/msg/Twist", _twist),
    "cmd_vel stamped": ("geometry_msgs/msg/TwistStamped", lambda: T["geometry_msgs/msg/TwistStamped"](
        header=_header(4, "base_link"), twist=_twist())),
    "diagnostics": ("diagnostic_msgs/msg/DiagnosticArray", _diagnostics),
}


def assert_same(a: Any, b: Any, where: str = "msg") -> None:
    """Field-by-field equality of rosbags messages (numpy arrays compared by value and dtype)."""
    if hasattr(a, "__dataclass_fields__"):
        assert type(a).__msgtype__ == type(b).__msgtype__, where
        for name in a.__dataclass_fields__:
            assert_same(getattr(a, name), getattr(b, name), f"{where}.{name}")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b), where
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b and type(a) is type(b), f"{where}: {a!r} != {b!r}"


def test_every_role_type_has_a_sample():
    from diffplan.node import interface

    source = Path(interface.__file__).read_text()
    role_types = {line.split("#")[1].split()[0].rstrip(",") for line in source.splitlines()
                  if "msg/" in line and "=" in line and "#" in line}
    role_types |= {"geometry_msgs/msg/TwistStamped"}
    assert len(role_types) >= 9
    assert role_types <= {m for m, _ in SAMPLES.values()}


@pytest.mark.parametrize("name", list(SAMPLES))
def test_cyclonedds_bytes_equal_rosbags_cdr(name):
    pytest.importorskip("cyclonedds")
    from diffplan.node.dds import from_idl, idl_type, to_idl

    msgtype, build = SAMPLES[name]
    message = build()
    wire = bytes(to_idl(message, msgtype).serialize())
    oracle = bytes(TYPESTORE.serialize_cdr(message, msgtype))
    assert wire[:4] == b"\x00\x01\x00\x00"  # CDR_LE, XCDR1
    assert wire == oracle
    back = from_idl(idl_type(msgtype).deserialize(oracle), msgtype)
    assert_same(message, back)
    assert_same(message, TYPESTORE.deserialize_cdr(wire, msgtype))


def test_idl_type_names_follow_ros2():
    pytest.importorskip("cyclonedds")
    from diffplan.node.dds import dds_topic, idl_type
    from diffplan.node.dds_types import IDL_TYPES

    assert idl_type("nav_msgs/msg/Odometry").__idl_typename__ == "nav_msgs::msg::dds_::Odometry_"
    for msgtype, cls in IDL_TYPES.items():
        pkg, _, name = msgtype.split("/")
        assert cls.__idl_typename__ == f"{pkg}::msg::dds_::{name}_"
        assert [n for n, _ in TYPESTORE.fielddefs[msgtype][1]] == list(cls.__dataclass_fields__), msgtype
    assert dds_topic("/odom") == dds_topic("odom") == "rt/odom"


def test_unknown_type_and_transport_choice_are_one_line_errors():
    pytest.importorskip("cyclonedds")
    from diffplan.node.dds import TransportError, idl_type
    from diffplan.node.rclpy_transport import available_transport, rclpy_available

    with pytest.raises(TransportError, match="no DDS wire definition"):
        idl_type("foo_msgs/msg/Bar")
    assert available_transport("dds") == "dds"
    assert available_transport("auto") == ("rclpy" if rclpy_available() else "dds")
    with pytest.raises(TransportError, match="transport must be one of"):
        available_transport("zenoh")
    if not rclpy_available():
        with pytest.raises(TransportError) as error:
            available_transport("rclpy")
        assert "\n" not in str(error.value)


# ---------------------------------------------------------------------------------------------------------------
# DdsTransport loopback inside a loopback-only network namespace.


def loopback_main() -> None:
    """Run in a subprocess (inside `unshare -n`): a robot participant talks to a DdsTransport with EchoCore."""
    from cyclonedds.domain import DomainParticipant
    from cyclonedds.pub import DataWriter
    from cyclonedds.sub import DataReader
    from cyclonedds.topic import Topic

    from diffplan.node.dds import DdsTransport, dds_qos, from_idl, idl_type, to_idl

    core = EchoCore()
    transport = DdsTransport(core, domain_id=7)
    runner = threading.Thread(target=transport.run, kwargs={"duration_s": 20.0}, daemon=True)
    runner.start()
    robot = DomainParticipant(7)

    def endpoint(kind: Any, topic: str, msgtype: str, qos: Qos) -> Any:
        return kind(robot, Topic(robot, topic, idl_type(msgtype)), qos=dds_qos(qos))

    odom_w = endpoint(DataWriter, "rt/odom", "nav_msgs/msg/Odometry", Qos.STANDARD)
    depth_w = endpoint(DataWriter, "rt/camera/depth/image_raw", "sensor_msgs/msg/Image", Qos.SENSOR_DATA)
    goal_w = endpoint(DataWriter, "rt/goal_pose", "geometry_msgs/msg/PoseStamped", Qos.STANDARD)
    plan_r = endpoint(DataReader, "rt/plan", "nav_msgs/msg/Path", Qos.STANDARD)
    cmd_r = endpoint(DataReader, "rt/cmd_vel", "geometry_msgs/msg/Twist", Qos.STANDARD)
    diag_r = endpoint(DataReader, "rt/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", Qos.STANDARD)
    goal = T["geometry_msgs/msg/PoseStamped"](header=_header(2, "odom"), pose=_pose(10.0, -7.0))
    result: dict[str, Any] = {}
    deadline = time.monotonic() + 15.0
    while time.monotonic() < deadline and not {"plan", "cmd", "diag"} <= result.keys():
        odom_w.write(to_idl(_odometry()))
        depth_w.write(to_idl(_image("16UC1", 640, 480)))
        goal_w.write(to_idl(goal))
        time.sleep(0.05)
        for sample in plan_r.take(N=16):
            path = from_idl(sample, "nav_msgs/msg/Path")
            if len(path.poses) == 2:
                result["plan"] = [[p.pose.position.x, p.pose.position.y] for p in path.poses] + \
                    [path.header.frame_id]
        for sample in cmd_r.take(N=16):
            twist = from_idl(sample, "geometry_msgs/msg/Twist")
            if twist.angular.z > 0:
                result["cmd"] = [twist.linear.x, twist.angular.z]
        for sample in diag_r.take(N=16):
            diag = from_idl(sample, "diagnostic_msgs/msg/DiagnosticArray")
            result["diag"] = {kv.key: kv.value for kv in diag.status[0].values}
    transport.stop()
    runner.join(2.0)
    result["stopped"] = not runner.is_alive()
    result["stats"] = transport.stats()
    print("RESULT " + json.dumps(result), flush=True)


def _netns_available() -> str | None:
    if not shutil.which("unshare") or not shutil.which("ip"):
        return "unshare or ip is not installed"
    probe = subprocess.run(["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True, timeout=10,
                           check=False)
    return None if probe.returncode == 0 else f"unshare -n is not permitted here: {probe.stderr.decode()[:200]}"


def _run_in_netns(tmp_path: Path, command: str, timeout: float, env: dict[str, str] | None = None) -> str:
    xml = tmp_path / "cyclonedds.xml"
    xml.write_text(CYCLONE_XML)
    environment = {**os.environ, "CYCLONEDDS_URI": f"file://{xml}", **(env or {})}
    proc = subprocess.run(["unshare", "-n", "sh", "-c", f"ip link set lo up; {command}"], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO, env=environment, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    return lines[-1][len("RESULT "):]


def test_dds_transport_loopback(tmp_path):
    pytest.importorskip("cyclonedds")
    reason = _netns_available()
    if reason:
        pytest.skip(reason)
    code = "from tests.diffplan.test_node_transports import loopback_main; loopback_main()"
    result = json.loads(_run_in_netns(tmp_path, f"exec {sys.executable} -c '{code}'", timeout=40))
    assert result["plan"] == [[-3.25, 4.5], [10.0, -7.0], "odom"]
    assert result["cmd"][0] == pytest.approx(0.6) and result["cmd"][1] >= 1
    assert result["diag"]["encoding"] == "16UC1"
    assert (result["diag"]["width"], result["diag"]["height"]) == ("640", "480")
    assert result["diag"]["sum"] == str(int(np.sum(_image("16UC1", 640, 480).data)))
    assert result["stopped"]
    assert result["stats"]["received"]["odometry"] >= 1 and not result["stats"]["errors"]


def test_dds_transport_run_returns_after_duration_and_stop():
    pytest.importorskip("cyclonedds")
    from diffplan.node.dds import DdsTransport

    transport = DdsTransport(EchoCore(), domain_id=113)
    start = time.monotonic()
    stats = transport.run(duration_s=0.3)
    assert 0.3 <= time.monotonic() - start < 1.0
    assert stats["published"]["cmd_vel"] >= 2  # control ticks at 10 Hz from t = 0
    timer = threading.Timer(0.2, transport.stop)
    timer.start()
    start = time.monotonic()
    transport.run()
    assert time.monotonic() - start < 1.0
    transport.close()


# ---------------------------------------------------------------------------------------------------------------
# Bag replay.


def _write_input_bag(path: Path, storage: str) -> None:
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    other = get_typestore(Stores.ROS2_JAZZY)  # knows a type the node's typestore does not
    other.register(get_types_from_msg("int32 x\n", "foo_msgs/msg/Bar"))
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        odom = writer.add_connection("/odom", "nav_msgs/msg/Odometry", typestore=TYPESTORE)
        depth = writer.add_connection("/camera/depth/image_raw", "sensor_msgs/msg/Image", typestore=TYPESTORE)
        goal = writer.add_connection("/goal_pose", "geometry_msgs/msg/PoseStamped", typestore=TYPESTORE)
        odd = writer.add_connection("/odd", "foo_msgs/msg/Bar", typestore=other)
        t0 = 1_000_000_000
        for i in range(21):  # odometry at 10 Hz over [1.0, 3.0] s
            writer.write(odom, t0 + i * 100_000_000,
                         bytes(TYPESTORE.serialize_cdr(_odometry(x=float(i), v=0.1 * i), "nav_msgs/msg/Odometry")))
        for i in range(4):
            writer.write(depth, t0 + 50_000_000 + i * 500_000_000,
                         bytes(TYPESTORE.serialize_cdr(_image(), "sensor_msgs/msg/Image")))
        goal_msg = T["geometry_msgs/msg/PoseStamped"](header=_header(2, "odom"), pose=_pose(10.0, -7.0))
        writer.write(goal, t0 + 1_250_000_000, bytes(TYPESTORE.serialize_cdr(goal_msg,
                                                                             "geometry_msgs/msg/PoseStamped")))
        writer.write(odd, t0 + 5, b"\x00\x01\x00\x00\x07\x00\x00\x00")


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_replay_bag_round_trip(tmp_path, storage):
    from rosbags.highlevel import AnyReader

    from diffplan.node.bag import replay_bag

    _write_input_bag(tmp_path / "in", storage)
    core = EchoCore(twist_stamped=True)
    counts = replay_bag(tmp_path / "in", core, tmp_path / "out", storage=storage)
    assert counts.messages == 27 and counts.skipped_unknown_type == 1
    assert counts.fed == {"odometry": 21, "depth": 4, "goal": 1}
    assert (counts.plan_ticks, counts.control_ticks) == (5, 21)  # 2 Hz and 10 Hz over [1.0, 3.0] s inclusive
    assert counts.outputs == {"plan": 5, "diagnostics": 4, "cmd_vel": 21}  # depth from 1.05 s
    assert counts.written == 26 + 30
    assert core.nows[0] == pytest.approx(1.0) and core.nows == sorted(core.nows)
    suffix = ".mcap" if storage == "mcap" else ".db3"
    assert any(p.suffix == suffix for p in (tmp_path / "out").iterdir())
    got: dict[str, list[tuple[int, Any]]] = {}
    with AnyReader([tmp_path / "out"], default_typestore=TYPESTORE) as reader:
        for connection, t_ns, raw in reader.messages():
            got.setdefault(connection.topic, []).append((t_ns, TYPESTORE.deserialize_cdr(raw, connection.msgtype)))
    assert sorted(got) == ["/camera/depth/image_raw", "/cmd_vel", "/diagnostics", "/goal_pose", "/odom", "/plan"]
    plans = got["/plan"]
    assert [t for t, _ in plans] == [1_000_000_000 + k * 500_000_000 for k in range(5)]
    assert [p.poses[0].pose.position.x for _, p in plans] == [0.0, 5.0, 10.0, 15.0, 20.0]
    assert [len(p.poses) for _, p in plans] == [1, 1, 1, 2, 2]  # the goal arrives at 2.25 s
    assert_same(plans[-1][1].poses[1].pose, _pose(10.0, -7.0))
    cmds = got["/cmd_vel"]
    assert all(type(c).__msgtype__ == "geometry_msgs/msg/TwistStamped" for _, c in cmds)
    assert [c.twist.angular.z for _, c in cmds] == [float(i + 1) for i in range(21)]
    assert math.isclose(cmds[-1][1].twist.linear.x, 2.0)
    assert got["/diagnostics"][0][1].status[0].values[0].value == "16UC1"


def test_replay_corrupt_bag_is_one_line_error(tmp_path):
    from diffplan.node.bag import BagError, replay_bag

    bad_mcap = tmp_path / "bad.mcap"
    bad_mcap.write_bytes(b"\x89MCAP0\r\n" + b"\x00garbage" * 10)
    bad_folder = tmp_path / "bad_folder"
    bad_folder.mkdir()
    (bad_folder / "metadata.yaml").write_text("rosbag2_bagfile_information: [unclosed\n")
    for bad in (bad_mcap, bad_folder, tmp_path / "missing"):
        with pytest.raises(BagError) as error:
            replay_bag(bad, EchoCore(), tmp_path / f"out-{bad.name}")
        assert "\n" not in str(error.value) and str(bad) in str(error.value)
    with pytest.raises(BagError, match="storage must be one of"):
        replay_bag(bad_mcap, EchoCore(), tmp_path / "x", storage="parquet")
