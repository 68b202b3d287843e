"""A real planner behind the node, over the wire: a Jazzy rclpy process (Fast DDS, `.venv-ros`) publishes
depth, odometry and a goal; our `diffplan node` core with go-to-goal answers over the dds transport; the
rclpy process receives the Path, the candidate MarkerArray and the Twist. The values equal the same core fed
the same messages in process. Runs in a loopback-only network namespace, as test_node_rclpy_interop."""

from __future__ import annotations

import numpy as np
import pytest

from diffplan.node import messages
from diffplan.node.interface import InputRole, OutputRole
from diffplan.node.nav_core import NavNodeCore
from diffplan.node.params import NodeParams
from tests.diffplan.test_node_rclpy_interop import ROS_PYTHON, run_beside_rclpy

DEPTH_MM = 4000  # an open room: every pixel 4 m away
GOAL = (3.0, 1.0)

RCLPY_ROBOT = r'''
import json, sys, time
import numpy as np
import rclpy
from rclpy.qos import qos_profile_sensor_data
from geometry_msgs.msg import PoseStamped, Twist
from nav_msgs.msg import Odometry, Path
from sensor_msgs.msg import Image
from visualization_msgs.msg import MarkerArray

rclpy.init()
node = rclpy.create_node("robot")
odom_pub = node.create_publisher(Odometry, "/odom", qos_profile_sensor_data)
goal_pub = node.create_publisher(PoseStamped, "/goal_pose", 10)
depth_pub = node.create_publisher(Image, "/camera/depth/image_raw", qos_profile_sensor_data)
got = {}

def on_plan(msg):
    got["plan"] = [[p.pose.position.x, p.pose.position.y] for p in msg.poses] + [msg.header.frame_id]

def on_candidates(msg):
    got["candidates"] = [len(msg.markers), [m.action for m in msg.markers]]

def on_cmd(msg):
    if msg.linear.x > 0:
        got["cmd"] = [msg.linear.x, msg.angular.z]

node.create_subscription(Path, "/diffplan/plan", on_plan, 10)
node.create_subscription(MarkerArray, "/diffplan/candidates", on_candidates, 10)
node.create_subscription(Twist, "/cmd_vel", on_cmd, 10)
odom = Odometry()
odom.header.frame_id, odom.child_frame_id = "odom", "base_link"
odom.pose.pose.orientation.w = 1.0
goal = PoseStamped()
goal.header.frame_id = "odom"
goal.pose.position.x, goal.pose.position.y = GOAL_X, GOAL_Y
goal.pose.orientation.w = 1.0
image = Image()
image.header.frame_id = "camera"
image.height, image.width, image.encoding, image.step = 120, 160, "16UC1", 320
image.data = np.full((120, 160), DEPTH_MM, dtype="<u2").tobytes()
deadline = time.monotonic() + float(sys.argv[1])
while time.monotonic() < deadline and not {"plan", "candidates", "cmd"} <= got.keys():
    stamp = node.get_clock().now().to_msg()
    odom.header.stamp = goal.header.stamp = image.header.stamp = stamp
    odom_pub.publish(odom)
    goal_pub.publish(goal)
    depth_pub.publish(image)
    end = time.monotonic() + 0.1
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.02)
print("RESULT " + json.dumps(got), flush=True)
node.destroy_node()
rclpy.shutdown()
'''.replace("GOAL_X", repr(GOAL[0])).replace("GOAL_Y", repr(GOAL[1])).replace("DEPTH_MM", str(DEPTH_MM))


def node_side(duration_s: float) -> None:
    """Our node: go-to-goal behind the navigation core, on the dds transport."""
    import planners
    from diffplan.node.dds import DdsTransport

    core = NavNodeCore(planners.load("go-to-goal"), "wheeled", NodeParams())
    DdsTransport(core).run(duration_s=duration_s)


def in_process() -> tuple[list[list[float]], int, list[float]]:
    """The same core fed the same messages directly: Path xy, number of markers, (v, omega)."""
    import planners

    core = NavNodeCore(planners.load("go-to-goal"), "wheeled", NodeParams())
    core.on_message(InputRole.ODOMETRY, messages.odometry(10.0, "odom", "base_link", 0.0, 0.0, 0.0), 10.0)
    core.on_message(InputRole.GOAL, messages.pose_stamped(10.0, "odom", GOAL[0], GOAL[1], 0.0), 10.0)
    core.on_message(InputRole.DEPTH, messages.depth_image(10.0, "camera", np.full((120, 160), DEPTH_MM / 1e3)), 10.0)
    outputs = {o.role: o.message for o in core.plan_tick(10.0)}
    twist = next(o.message for o in core.control_tick(10.0) if o.role is OutputRole.CMD_VEL)
    plan = [[p.pose.position.x, p.pose.position.y] for p in outputs[OutputRole.PLAN].poses]
    return plan, len(outputs[OutputRole.CANDIDATES].markers), [twist.linear.x, twist.angular.z]


@pytest.mark.skipif(not ROS_PYTHON.exists(), reason=".venv-ros/bin/python does not exist (make .venv-ros/.installed)")
def test_a_real_rclpy_robot_gets_the_planners_path_markers_and_twist(tmp_path):
    result = run_beside_rclpy(tmp_path, "from tests.diffplan.test_node_rclpy_planner import node_side; node_side(30.0)",
                              RCLPY_ROBOT, 25, timeout=60)
    plan, markers, command_ = in_process()
    assert result["plan"][-1] == "odom" and len(result["plan"]) == 25  # 24 waypoints and the frame
    np.testing.assert_allclose(result["plan"][:-1], plan, rtol=0, atol=1e-9)
    assert result["candidates"][0] == markers and result["candidates"][1][0] == 3  # DELETEALL first
    # the twist is the MPC tracker's IPOPT solve (tol 1e-6), warm-started from the previous control tick: the
    # node has run a varying number of ticks by then, in-process one, so they agree to the solver's tolerance
    np.testing.assert_allclose(result["cmd"], command_, rtol=0, atol=1e-5)
