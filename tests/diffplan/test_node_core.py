"""The transport-free node cores, driven with rosbags messages and a fake clock."""

import time
from pathlib import Path

import numpy as np
import pytest
import torch

import planners
from diffplan.node import messages as m
from diffplan.node.core import NavNodeCore, NodeParams, NodeParamsError
from diffplan.node.interface import InputRole, OutputRole
from planners.control import clip_control, make_tracker, plan_to_world
from scenes.geometry import points_to_local, poses_to_global
from scenes.nav import WHEELED, CameraSpec, NavObservation

ROOT = Path(__file__).resolve().parents[2]
NAVDP = ROOT / "checkpoints" / "navdp-synth.safetensors"
POSE = np.array([1.0, -0.5, 0.4])
GOAL = np.array([4.0, 1.5])


def scene_depth() -> np.ndarray:
    """(120, 160) depth [m] of a wall 3 m ahead with a box on the left."""
    depth = np.full((120, 160), 3.0, np.float32)
    depth[40:120, 20:60] = 1.2
    depth[:10] = 0.0  # invalid rows
    return depth


def feed(core, now=0.0, depth=None, pose=POSE, goal=GOAL, velocity=(0.2, 0.05), encoding="32FC1"):
    depth = scene_depth() if depth is None else depth
    core.on_message(InputRole.DEPTH, m.depth_image(now, "camera", depth, encoding), now)
    core.on_message(InputRole.ODOMETRY, m.odometry(now, "odom", "base_link", *pose, *velocity), now)
    core.on_message(InputRole.GOAL, m.pose_stamped(now, "odom", goal[0], goal[1], 0.0), now)


def by_role(outputs):
    return {output.role: output.message for output in outputs}


def twist_of(outputs):
    (output,) = outputs
    assert output.role is OutputRole.CMD_VEL
    return np.array([output.message.linear.x, output.message.angular.z])


def path_poses(path_msg):
    return np.array([[p.pose.position.x, p.pose.position.y, m.yaw_from_quaternion(p.pose.orientation)]
                     for p in path_msg.poses])


def diag_values(outputs):
    status = by_role(outputs)[OutputRole.DIAGNOSTICS].status[0]
    return status, {kv.key: kv.value for kv in status.values}


@pytest.fixture(scope="module")
def navdp():
    return planners.load(str(NAVDP))


@pytest.mark.parametrize("name", ["go-to-goal", "dwa", "navdp"])
def test_nav_plan_equals_in_process_planner(name, navdp):
    planner = navdp if name == "navdp" else planners.load(name)
    core = NavNodeCore(planner, "wheeled", NodeParams(plan_timeout_s=30.0))
    feed(core)
    outputs = by_role(core.plan_tick(0.05))
    assert set(outputs) == {OutputRole.PLAN, OutputRole.CANDIDATES, OutputRole.DIAGNOSTICS}
    local = points_to_local(GOAL, POSE)
    observation = NavObservation(scene_depth(), np.array([local[0], local[1], 0.0], np.float32),
                                 np.array([0.2, 0.05], np.float32), CameraSpec(), time_s=0.05)
    planner.reset()
    expected = planner.plan(observation)
    path_msg = outputs[OutputRole.PLAN]
    assert path_msg.header.frame_id == "odom" and len(path_msg.poses) == 24
    np.testing.assert_allclose(path_poses(path_msg), poses_to_global(expected.trajectory.poses, POSE), atol=1e-9)
    markers = outputs[OutputRole.CANDIDATES].markers
    assert markers[0].action == markers[0].DELETEALL
    lines = markers[1:]
    if expected.candidates is None:
        assert len(lines) == 1
    else:
        assert len(lines) == len(expected.candidates) == (16 if name == "navdp" else len(expected.candidates))
        order = np.argsort(expected.scores, kind="stable")
        reds = np.array([marker.color.r for marker in lines])
        assert np.all(np.diff(reds[order]) >= -1e-12)  # redder with higher critic value
        assert reds[order[-1]] == 1.0 and lines[order[0]].color.b == 1.0
        first = np.array([[p.x, p.y] for p in lines[0].points])
        np.testing.assert_allclose(first, poses_to_global(expected.candidates[0], POSE)[:, :2], atol=1e-9)
    tracker = make_tracker("mpc", WHEELED)
    command = clip_control(tracker.control(POSE, plan_to_world(expected.trajectory.poses, POSE)), WHEELED)
    np.testing.assert_allclose(twist_of(core.control_tick(0.1)), command, atol=1e-9)


def test_stamped_cmd_vel_and_remaps():
    params = NodeParams(stamped_cmd_vel=True, remap={"depth": "/camera/camera/aligned_depth_to_color/image_raw"})
    core = NavNodeCore(planners.load("go-to-goal"), "quadruped", params)
    topics = {spec.role: spec.topic for spec in core.inputs}
    assert topics[InputRole.DEPTH] == "/camera/camera/aligned_depth_to_color/image_raw"
    assert topics[InputRole.ODOMETRY] == "/odom"
    assert {spec.role: spec.msgtype for spec in core.outputs}[OutputRole.CMD_VEL] == "geometry_msgs/msg/TwistStamped"
    feed(core, encoding="16UC1")
    core.plan_tick(0.05)
    (output,) = core.control_tick(0.1)
    assert output.message.header.frame_id == "base_link" and output.message.twist.linear.x > 0


def moving_core(planner_name="go-to-goal", **params):
    core = NavNodeCore(planners.load(planner_name), "wheeled", NodeParams(**params))
    feed(core)
    core.plan_tick(0.05)
    assert twist_of(core.control_tick(0.1))[0] > 0
    return core


def test_stale_odometry_and_depth_stop():
    core = moving_core()
    assert not twist_of(core.control_tick(0.7)).any()  # odometry and depth 0.7 s old
    core = moving_core()
    core.on_message(InputRole.ODOMETRY, m.odometry(0.6, "odom", "base_link", *POSE), 0.6)
    assert not twist_of(core.control_tick(0.6)).any()  # depth stale
    assert core.safety.counters["stops"] >= 1


def test_goal_reached_stops():
    core = NavNodeCore(planners.load("go-to-goal"), "wheeled", NodeParams())
    feed(core, goal=POSE[:2] + [0.3, 0.2])
    outputs = core.plan_tick(0.05)
    assert OutputRole.PLAN not in by_role(outputs)
    status, _ = diag_values(outputs)
    assert status.message == "goal reached" and status.level == 0
    assert not twist_of(core.control_tick(0.1)).any()


def nan_odometry(now):
    return m.odometry(now, "odom", "base_link", float("nan"), 0.0, 0.0)


def rgb_image(now):
    msg = m.depth_image(now, "camera", scene_depth())
    return m.T["sensor_msgs/msg/Image"](header=msg.header, height=120, width=160, encoding="8UC3",
                                        is_bigendian=0, step=480, data=np.zeros(120 * 480, np.uint8))


def wrong_step(now):
    msg = m.depth_image(now, "camera", scene_depth(), "16UC1")
    msg.step = 100
    return msg


def short_data(now):
    msg = m.depth_image(now, "camera", scene_depth(), "16UC1")
    msg.data = msg.data[:-2]
    return msg


def huge_header(now):
    return m.T["sensor_msgs/msg/Image"](header=m.header(now, "camera"), height=10000, width=10000,
                                        encoding="16UC1", is_bigendian=0, step=20000, data=np.zeros(64, np.uint8))


def nan_goal(now):
    return m.pose_stamped(now, "odom", float("nan"), 1.0, 0.0)


@pytest.mark.parametrize("role, make", [(InputRole.ODOMETRY, nan_odometry), (InputRole.DEPTH, rgb_image),
                                        (InputRole.DEPTH, wrong_step), (InputRole.DEPTH, short_data),
                                        (InputRole.DEPTH, huge_header), (InputRole.GOAL, nan_goal),
                                        (InputRole.ODOMETRY, lambda now: "not a message")])
def test_bad_messages_stop_and_count(role, make):
    core = moving_core()
    core.on_message(role, make(0.15), 0.15)
    assert core.safety.counters["bad_inputs"] == 1 and len(core.safety.lines) == 1
    assert "\n" not in core.safety.lines[0]
    assert not twist_of(core.control_tick(0.2)).any()
    outputs = core.plan_tick(0.25)  # still never raises
    _status, values = diag_values(outputs)
    assert values["bad_inputs"] == "1"


def test_out_of_order_stamps_dropped():
    core = moving_core()
    core.on_message(InputRole.ODOMETRY, m.odometry(0.2, "odom", "base_link", 2.0, 0.0, 0.0), 0.2)
    core.on_message(InputRole.ODOMETRY, m.odometry(0.1, "odom", "base_link", 9.0, 9.0, 0.0), 0.21)
    assert core.safety.counters["out_of_order"] == 1
    assert core.odometry[:2] == (2.0, 0.0)


def test_time_jump_resets():
    core = moving_core()
    assert not twist_of(core.control_tick(0.0 - 1.0)).any()  # clock went backwards
    assert core.path is None and core.goal is None and core.safety.counters["resets"] == 1
    core = moving_core()
    core.control_tick(5.0)  # forward by more than time_jump_s
    assert core.safety.counters["resets"] == 1 and core.depth is None


class Exploding(planners.Planner):
    domain = planners.Domain.NAVIGATION
    plan_spec = planners.load("go-to-goal").plan_spec
    name = "exploding"

    def plan(self, observation):
        raise RuntimeError("boom\nsecond line")


def test_planner_exception_and_timeout_stop():
    core = NavNodeCore(Exploding(), "wheeled", NodeParams())
    feed(core)
    outputs = core.plan_tick(0.05)
    assert OutputRole.PLAN not in by_role(outputs) and core.safety.counters["planner_errors"] == 1
    assert core.safety.lines == ["planner: RuntimeError: boom"]
    assert not twist_of(core.control_tick(0.1)).any()
    clock = iter([0.0, 2.0])
    core = NavNodeCore(planners.load("go-to-goal"), "wheeled", NodeParams(plan_timeout_s=1.0),
                       timer=lambda: next(clock))
    feed(core)
    assert OutputRole.PLAN not in by_role(core.plan_tick(0.05)) and core.safety.counters["timeouts"] == 1
    assert not twist_of(core.control_tick(0.1)).any()


def test_params_yaml(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("diffplan_node:\n  ros__parameters:\n    plan_rate_hz: 3\n    stamped_cmd_vel: true\n"
                    "    remap:\n      odometry: /robot/odom\n")
    params = NodeParams.from_yaml(good)
    assert params.plan_rate_hz == 3.0 and params.stamped_cmd_vel
    assert params.topic(InputRole.ODOMETRY, "/odom") == "/robot/odom"
    bad = tmp_path / "bad.yaml"
    for body, key in [("plan_rat_hz: 3", "plan_rat_hz"), ("plan_rate_hz: 9", "plan_rate_hz"),
                      ("stamped_cmd_vel: 1", "stamped_cmd_vel"), ("remap: {depht: /x}", "remap.depht")]:
        bad.write_text(f"diffplan_node:\n  ros__parameters:\n    {body}\n")
        with pytest.raises(NodeParamsError) as error:
            NodeParams.from_yaml(bad)
        assert f"diffplan_node.{key}" in str(error.value) and "\n" not in str(error.value)


def test_navdp_plan_tick_latency(navdp):
    core = NavNodeCore(navdp, "wheeled", NodeParams(plan_timeout_s=30.0))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        core.warm_up()
        latencies = []
        for k in range(50):
            now = 0.25 * k
            feed(core, now=now)
            started = time.perf_counter()
            assert OutputRole.PLAN in by_role(core.plan_tick(now + 0.01))
            latencies.append(1e3 * (time.perf_counter() - started))
    finally:
        torch.set_num_threads(threads)
    p50, p95 = np.percentile(latencies, [50, 95])
    print(f"navdp-synth plan_tick latency p50 {p50:.1f} ms p95 {p95:.1f} ms")
    assert p95 < 2000.0  # a loose bound: shared CI machines; the closing note reports the measured numbers


@pytest.mark.parametrize("encoding, tolerance", [("16UC1", 5e-4), ("32FC1", 0.0)])
@pytest.mark.parametrize("big_endian", [False, True])
def test_depth_image_round_trip(encoding, tolerance, big_endian):
    depth = scene_depth()
    msg = m.depth_image(1.0, "camera", depth, encoding, big_endian)
    m.TYPESTORE.serialize_cdr(msg, msg.__msgtype__)
    np.testing.assert_allclose(m.depth_image_to_metres(msg), depth, atol=tolerance)
    with pytest.raises(m.NodeInputError, match="encoding"):
        m.depth_image_to_metres(rgb_image(1.0))
