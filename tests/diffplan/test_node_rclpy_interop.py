"""Wire interop with real ROS 2: a Jazzy rclpy (Fast DDS) process talks to our DdsTransport (cyclonedds).

rclpy runs in the separate venv `.venv-ros` (`make .venv-ros/.installed`; its wheels re-exec every Python of
their venv, so they stay out of the project venv) as a subprocess. Both sides run inside a loopback-only network
namespace (`unshare -n`), with ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST for rclpy and the CYCLONEDDS_URI of
docs (IgnoreTypeInformation 1.15, peer 127.0.0.1). Skipped only when `.venv-ros/bin/python` does not exist.
"""

from __future__ import annotations

import json
import sys

import pytest

from tests.diffplan.test_node_transports import REPO, EchoCore, _netns_available, _run_in_netns

ROS_PYTHON = REPO / ".venv-ros" / "bin" / "python"

RCLPY_SIDE = r'''
import json, sys, time
import numpy as np
import rclpy
from rclpy.qos import qos_profile_sensor_data
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, Twist
from nav_msgs.msg import Odometry, Path
from sensor_msgs.msg import Image

rclpy.init()
node = rclpy.create_node("fake_robot")
odom_pub = node.create_publisher(Odometry, "/odom", 10)
goal_pub = node.create_publisher(PoseStamped, "/goal_pose", 10)
depth_pub = node.create_publisher(Image, "/camera/depth/image_raw", qos_profile_sensor_data)
got = {}

def on_plan(msg):
    if len(msg.poses) == 2:
        got["plan"] = [[p.pose.position.x, p.pose.position.y, p.pose.orientation.z, p.header.frame_id]
                       for p in msg.poses] + [msg.header.frame_id, msg.header.stamp.sec]

def on_cmd(msg):
    if msg.angular.z > 0:
        got["cmd"] = [msg.linear.x, msg.angular.z]

def on_diag(msg):
    got["diag"] = {kv.key: kv.value for kv in msg.status[0].values}
    got["diag_level"] = int.from_bytes(msg.status[0].level, "little")

node.create_subscription(Path, "/plan", on_plan, 10)
node.create_subscription(Twist, "/cmd_vel", on_cmd, 10)
node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)

odom = Odometry()
odom.header.frame_id = "odom"
odom.header.stamp.sec = 1700000000
odom.child_frame_id = "base_link_x"
odom.pose.pose.position.x, odom.pose.pose.position.y = -3.25, 4.5
odom.pose.pose.orientation.z, odom.pose.pose.orientation.w = 0.6, 0.8
odom.pose.covariance = (np.arange(36) - 17.5).astype(float)
odom.twist.twist.linear.x = 0.6
goal = PoseStamped()
goal.header.frame_id = "map"
goal.pose.position.x, goal.pose.position.y = 10.0, -7.0
goal.pose.orientation.w = 1.0
image = Image()
image.header.frame_id = "cam"
image.height, image.width, image.encoding, image.step = 120, 160, "16UC1", 320
image.data = (np.arange(120 * 320) * 7 % 251).astype(np.uint8).tobytes()

deadline = time.monotonic() + float(sys.argv[1])
while time.monotonic() < deadline and not {"plan", "cmd", "diag"} <= got.keys():
    odom_pub.publish(odom)
    goal_pub.publish(goal)
    depth_pub.publish(image)
    end = time.monotonic() + 0.1
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.02)
got["rmw"] = rclpy.get_rmw_implementation_identifier()
print("RESULT " + json.dumps(got), flush=True)
node.destroy_node()
rclpy.shutdown()
'''


def run_beside_rclpy(tmp_path, ours: str, rclpy_script: str, rclpy_seconds: float, timeout: float) -> dict:
    """In a loopback-only namespace: our side (`python -c ours`, in the background) and a real rclpy process
    running `rclpy_script` for `rclpy_seconds`; the RESULT object the rclpy process prints."""
    pytest.importorskip("cyclonedds")
    reason = _netns_available()
    if reason:
        pytest.skip(reason)
    script = tmp_path / "rclpy_side.py"
    script.write_text(rclpy_script)
    command = (f"{sys.executable} -c '{ours}' & OURS=$!; ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST "
               f"{ROS_PYTHON} {script} {rclpy_seconds}; RC=$?; kill $OURS; exit $RC")
    return json.loads(_run_in_netns(tmp_path, command, timeout=timeout))


def dds_side(duration_s: float) -> None:
    """Our node: EchoCore on a DdsTransport (run in the project venv inside the namespace)."""
    from diffplan.node.dds import DdsTransport

    stats = DdsTransport(EchoCore(), domain_id=0).run(duration_s=duration_s)
    print("DDS " + json.dumps(stats), file=sys.stderr, flush=True)


@pytest.mark.skipif(not ROS_PYTHON.exists(), reason=".venv-ros/bin/python does not exist (make .venv-ros/.installed)")
def test_rclpy_talks_to_dds_transport(tmp_path):
    result = run_beside_rclpy(tmp_path, "from tests.diffplan.test_node_rclpy_interop import dds_side; dds_side(25.0)",
                              RCLPY_SIDE, 20, timeout=45)
    assert result["rmw"] == "rmw_fastrtps_cpp"
    odom_pose, goal_pose, frame, stamp_sec = result["plan"]
    assert odom_pose == [-3.25, 4.5, 0.6, "odom"]
    assert goal_pose == [10.0, -7.0, 0.0, "map"]
    assert (frame, stamp_sec) == ("odom", 1700000000)
    assert result["cmd"][0] == pytest.approx(0.6) and result["cmd"][1] >= 1.0
    assert result["diag"]["encoding"] == "16UC1"
    assert (result["diag"]["width"], result["diag"]["height"]) == ("160", "120")
    expected_sum = sum((i * 7) % 251 for i in range(120 * 320))
    assert result["diag"]["sum"] == str(expected_sum)
    assert result["diag_level"] == 1


ROS_CONVERT_SIDE = r'''
import json, sys, types, pathlib
repo = pathlib.Path(sys.argv[1])
sys.path.insert(0, str(repo))
stub = types.ModuleType("scenes")  # scenes/__init__ needs packages .venv-ros lacks; only scenes.errors is used
stub.__path__ = [str(repo / "scenes")]
sys.modules["scenes"] = stub
from rclpy.serialization import serialize_message
from diffplan.node.dds import TransportError
from diffplan.node.interface import Output, OutputRole, OutputSpec
from diffplan.node.messages import TYPESTORE, T
from diffplan.node.rclpy_transport import RclpyTransport, available_transport, from_ros, to_ros

report = {"auto": available_transport("auto"), "same": [], "missing": []}
for name, (msgtype, hexdata) in json.loads(pathlib.Path(sys.argv[2]).read_text()).items():
    raw = bytes.fromhex(hexdata)
    message = TYPESTORE.deserialize_cdr(raw, msgtype)
    try:
        ros = to_ros(message, msgtype)
    except TransportError as error:
        report["missing"].append(name)
        continue
    # rclpy leaves padding uninitialised: decode its bytes and re-encode them with rosbags before comparing
    via_rclpy = bytes(TYPESTORE.serialize_cdr(TYPESTORE.deserialize_cdr(serialize_message(ros), msgtype), msgtype))
    back = bytes(TYPESTORE.serialize_cdr(from_ros(ros, msgtype), msgtype))
    if via_rclpy == raw and back == raw:
        report["same"].append(name)

class Core:
    inputs = []
    outputs = [OutputSpec(OutputRole.CMD_VEL, "/cmd_vel", "geometry_msgs/msg/Twist")]
    plan_rate_hz, control_rate_hz = 0.0, 20.0
    def on_message(self, role, message, now): pass
    def plan_tick(self, now): return []
    def control_tick(self, now):
        vec = T["geometry_msgs/msg/Vector3"]
        return [Output(OutputRole.CMD_VEL, T["geometry_msgs/msg/Twist"](linear=vec(x=0.5, y=0.0, z=0.0),
                                                                         angular=vec(x=0.0, y=0.0, z=0.0)))]
transport = RclpyTransport(Core())
report["stats"] = transport.run(duration_s=0.5)
transport.close()
print("RESULT " + json.dumps(report), flush=True)
'''


@pytest.mark.skipif(not ROS_PYTHON.exists(), reason=".venv-ros/bin/python does not exist (make .venv-ros/.installed)")
def test_rclpy_transport_converters_match_rosbags(tmp_path):
    from diffplan.node.messages import TYPESTORE
    from tests.diffplan.test_node_transports import SAMPLES

    reason = _netns_available()
    if reason:
        pytest.skip(reason)
    samples = {name: (msgtype, bytes(TYPESTORE.serialize_cdr(build(), msgtype)).hex())
               for name, (msgtype, build) in SAMPLES.items()}
    (tmp_path / "samples.json").write_text(json.dumps(samples))
    (tmp_path / "side.py").write_text(ROS_CONVERT_SIDE)
    command = f"exec {ROS_PYTHON} {tmp_path / 'side.py'} {REPO} {tmp_path / 'samples.json'}"
    result = json.loads(_run_in_netns(tmp_path, command, timeout=40))
    assert result["auto"] == "rclpy"
    assert result["missing"] == ["detections"]  # no vision_msgs wheel for Jazzy
    assert sorted(result["same"]) == sorted(set(SAMPLES) - {"detections"})
    assert 8 <= result["stats"]["published"]["cmd_vel"] <= 12  # 20 Hz for 0.5 s
