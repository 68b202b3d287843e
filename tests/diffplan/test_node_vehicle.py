"""VehicleNodeCore fed a synthetic scene as ROS messages: its plans equal the planner's on scene.observation().

Three fields cannot travel in these messages: Odometry has no acceleration (the scene's current one is a
central difference that uses the next, privileged, step), Detection3D has no velocity, and no topic carries
traffic lights (the node sees no red lanes). The node estimates the first two by finite differences; the
reference observation is scene.observation() with exactly those estimates (built here from the scene's arrays)
and no red lanes, everything else untouched. Plans then agree to 1e-6 m (float64 round trips
of yaw through quaternions, ~1e-15).
"""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import shapely
import torch

import planners
from diffplan.node import messages as m
from diffplan.node.core import NodeParams, VehicleNodeCore
from diffplan.node.interface import InputRole, OutputRole
from scenes.agents import AgentTracks
from scenes.drive import CURRENT_INDEX, OBSERVATION_RADIUS, OBSERVED_HISTORY_STEPS, SIM_DT, Route
from scenes.ego import EgoState
from scenes.geometry import poses_to_global, vectors_to_local
from scenes.synthetic import generate_scene

ROOT = Path(__file__).resolve().parents[2]
DIFFUSIONDRIVE = ROOT / "checkpoints" / "diffusiondrive-synth.safetensors"
T0 = 1000.0  # [s] stamp of the scene's step 0
NOW = T0 + CURRENT_INDEX * SIM_DT
CLASS = {0: "vehicle", 1: "pedestrian", 2: "bicycle", 3: "static_object"}


@pytest.fixture(scope="module")
def scene():
    return generate_scene(1100000004, "test")


def publish(core, scene, route=True, steps=range(CURRENT_INDEX + 1)):
    """The scene's history as 10 Hz odometry and detections (stamps = scene times), and its route as a Path."""
    ego, agents = scene.ego, scene.agents
    for i in steps:
        t = T0 + i * SIM_DT
        x, y, yaw = ego.pose[i]
        core.on_message(InputRole.ODOMETRY, m.odometry(t, "odom", "base_link", x, y, yaw, ego.velocity[i, 0],
                                                       ego.yaw_rate[i], ego.velocity[i, 1]), t)
        boxes = [m.detection(t, "odom", int(agents.track_ids[a]), CLASS[int(agents.category[a])],
                             *agents.xy[a, i], agents.heading[a, i], *agents.size[a])
                 for a in np.flatnonzero(agents.valid[:, i])]
        core.on_message(InputRole.DETECTIONS, m.detection_array(t, "odom", boxes), t)
        if route and i == 0:
            xy = shapely.get_coordinates(scene.route.centerline)
            step = np.diff(xy, axis=0)
            yaw = np.arctan2(step[:, 1], step[:, 0])
            core.on_message(InputRole.ROUTE, m.path(t, "map", np.column_stack([xy, np.append(yaw, yaw[-1])])), t)


def reference_observation(scene):
    """scene.observation() with the two estimates the messages force (module docstring); route lane ids those
    of the observed map."""
    obs = scene.observation()
    origin = scene.current_pose
    # ego: the current acceleration by a backward difference of the map-frame velocity
    ego = scene.ego
    c, s = np.cos(ego.pose[:, 2]), np.sin(ego.pose[:, 2])
    world = np.stack([ego.velocity[:, 0] * c - ego.velocity[:, 1] * s,
                      ego.velocity[:, 0] * s + ego.velocity[:, 1] * c], -1)
    back = (world[CURRENT_INDEX] - world[CURRENT_INDEX - 1]) / SIM_DT
    k = CURRENT_INDEX
    acc = obs.ego_history.acceleration.copy()
    acc[-1] = [back[0] * c[k] + back[1] * s[k], back[1] * c[k] - back[0] * s[k]]
    history = EgoState(obs.ego_history.pose, obs.ego_history.velocity, acc, obs.ego_history.yaw_rate,
                       obs.ego_history.steering)
    # agents: finite-difference velocities over the observed steps plus one before
    rows = np.flatnonzero(np.isin(scene.agents.track_ids, obs.agents.track_ids))
    steps = np.arange(CURRENT_INDEX - OBSERVED_HISTORY_STEPS - 1, CURRENT_INDEX + 1)
    xy, valid = scene.agents.xy[rows][:, steps], scene.agents.valid[rows][:, steps]
    velocity = np.zeros_like(xy)
    for a in range(len(rows)):
        for j in range(1, len(steps)):
            if not valid[a, j]:
                continue
            prev, nxt = valid[a, j - 1], j + 1 < len(steps) and valid[a, j + 1]
            if prev and nxt:
                velocity[a, j] = (xy[a, j + 1] - xy[a, j - 1]) / (2 * SIM_DT)
            elif prev:
                velocity[a, j] = (xy[a, j] - xy[a, j - 1]) / SIM_DT
            elif nxt:
                velocity[a, j] = (xy[a, j + 1] - xy[a, j]) / SIM_DT
    velocity = np.where(valid[:, 1:, None], vectors_to_local(velocity[:, 1:], origin), 0.0)
    agents = replace(obs.agents, velocity=velocity)
    lanes = tuple(lane for lane in obs.route.lane_ids if lane in set(obs.map.lane_ids.tolist()))
    return replace(obs, ego_history=history, agents=agents, route=Route(lanes, obs.route.centerline),
                   red_lane_ids=np.zeros(0, np.int64))


def path_poses(msg):
    return np.array([[p.pose.position.x, p.pose.position.y, m.yaw_from_quaternion(p.pose.orientation)]
                     for p in msg.poses])


def by_role(outputs):
    return {output.role: output.message for output in outputs}


def diag(outputs):
    status = by_role(outputs)[OutputRole.DIAGNOSTICS].status[0]
    return status, {kv.key: kv.value for kv in status.values}


def node_for(name, scene, seed=0):
    params = NodeParams(command=scene.command.name.lower(), seed=seed, plan_timeout_s=60.0)
    return VehicleNodeCore(planners.load(name), scene.map, params)


def test_observation_matches_scene(scene):
    core = node_for("constant-velocity", scene)
    publish(core, scene)
    outputs = core.plan_tick(NOW)
    assert OutputRole.PLAN in by_role(outputs), core.safety.lines
    got, want, raw = core.last_observation, reference_observation(scene), scene.observation()
    tol = 1e-9
    np.testing.assert_allclose(got.ego_pose_global, want.ego_pose_global, atol=tol)
    for field in ("pose", "velocity", "acceleration", "yaw_rate", "steering"):
        np.testing.assert_allclose(getattr(got.ego_history, field), getattr(want.ego_history, field), atol=tol)
    np.testing.assert_allclose(got.ego_history.acceleration[:-1], raw.ego_history.acceleration[:-1], atol=tol)
    np.testing.assert_array_equal(got.agents.track_ids, want.agents.track_ids)
    np.testing.assert_array_equal(got.agents.category, want.agents.category)
    np.testing.assert_array_equal(got.agents.valid, want.agents.valid)
    for field in ("size", "xy", "heading", "velocity"):
        np.testing.assert_allclose(getattr(got.agents, field), getattr(want.agents, field), atol=tol)
    # the velocities the messages cannot carry stay close to the scene's
    assert np.abs(got.agents.velocity - raw.agents.velocity).max() < 0.5
    np.testing.assert_array_equal(got.map.lane_ids, want.map.lane_ids)
    assert got.route.lane_ids == want.route.lane_ids and len(got.route.lane_ids) >= 2
    np.testing.assert_allclose(shapely.get_coordinates(got.route.centerline),
                               shapely.get_coordinates(want.route.centerline), atol=tol)
    assert got.command is scene.command and got.red_lane_ids.size == 0
    assert core.control_tick(NOW) == []


@pytest.mark.parametrize("name", ["constant-velocity", "pdm-closed", str(DIFFUSIONDRIVE)])
def test_plan_equals_in_process(scene, name):
    torch.set_num_threads(1)
    seed = 7
    core = node_for(name, scene, seed)
    publish(core, scene)
    outputs = by_role(core.plan_tick(NOW))
    assert OutputRole.PLAN in outputs, core.safety.lines
    reference = planners.load(name)
    reference.seed = seed
    observation = reference_observation(scene)
    plan = reference.plan(observation)
    want = poses_to_global(plan.trajectory.poses, observation.ego_pose_global)
    got = path_poses(outputs[OutputRole.PLAN])
    assert got.shape == (8, 3) and outputs[OutputRole.PLAN].header.frame_id == "odom"
    np.testing.assert_allclose(got[:, :2], want[:, :2], atol=1e-6)
    np.testing.assert_allclose(np.angle(np.exp(1j * (got[:, 2] - want[:, 2]))), 0.0, atol=1e-6)
    markers = outputs[OutputRole.CANDIDATES].markers
    modes = 1 if plan.candidates is None else len(plan.candidates)
    assert len(markers) == modes + 1  # DELETEALL, then one LINE_STRIP per mode
    if name == str(DIFFUSIONDRIVE):
        assert modes == 20 and plan.scores is not None
        colours = {(mk.color.r, mk.color.b) for mk in markers[1:]}
        assert len(colours) > 1  # coloured by score


def test_missing_route_gives_no_plan(scene):
    core = node_for("constant-velocity", scene)
    publish(core, scene, route=False)
    outputs = core.plan_tick(NOW)
    assert [o.role for o in outputs] == [OutputRole.DIAGNOSTICS]
    status, values = diag(outputs)
    assert status.message == "no plan: no route" and status.level == 1 and values["plans"] == "0"


def test_stale_odometry_gives_no_plan(scene):
    core = node_for("constant-velocity", scene)
    publish(core, scene)
    outputs = core.plan_tick(NOW + 1.0)
    assert [o.role for o in outputs] == [OutputRole.DIAGNOSTICS]
    assert diag(outputs)[0].message == "no plan: stale odometry"


def test_bad_detection_is_counted_and_node_keeps_running(scene):
    core = node_for("constant-velocity", scene)
    publish(core, scene, steps=range(CURRENT_INDEX))
    t = NOW - 0.05
    bad = m.detection(t, "odom", 1, "car", np.nan, 0.0, 0.0, 4.5, 2.0)
    bad.bbox.size.x = float("nan")
    core.on_message(InputRole.DETECTIONS, m.detection_array(t, "odom", [bad]), t)
    outputs = core.plan_tick(t)
    status, values = diag(outputs)
    assert values["bad_inputs"] == "1" and status.level == 2 and OutputRole.PLAN not in by_role(outputs)
    assert status.message == "no plan: bad detections message"
    publish(core, scene, steps=[CURRENT_INDEX])
    outputs = core.plan_tick(NOW)
    assert OutputRole.PLAN in by_role(outputs)
    assert diag(outputs)[1]["bad_inputs"] == "1"


def test_oracle_refused(scene):
    with pytest.raises(ValueError, match="privileged oracle"):
        VehicleNodeCore(planners.load("human"), scene.map, NodeParams())


def test_agents_within_radius(scene):
    core = node_for("constant-velocity", scene)
    publish(core, scene)
    core.plan_tick(NOW)
    agents: AgentTracks = core.last_observation.agents
    assert agents.num_agents > 0
    assert (np.linalg.norm(agents.xy[:, -1], axis=-1) <= OBSERVATION_RADIUS + 5).all()


def test_pstl_as_deployed_plans_as_in_process(scene):
    """The pSTL checkpoint as `diffplan node --robot vehicle` sets it up (`with_stl_feedback`: STL objective,
    one RefineNet round, candidates ranked by observation-only robustness) gives the same plan in the node as
    in process: the best-ranked of its 16 candidates."""
    from eval.pstl.closed_loop import with_stl_feedback

    torch.set_num_threads(1)
    checkpoint = str(ROOT / "checkpoints" / "pstl-synth.safetensors")
    node_planner = with_stl_feedback(planners.load(checkpoint))
    assert node_planner.guidance.refine_rounds == 1 and node_planner.objective_builder is not None
    params = NodeParams(command=scene.command.name.lower(), seed=3, plan_timeout_s=60.0)
    core = VehicleNodeCore(node_planner, scene.map, params)
    publish(core, scene)
    outputs = by_role(core.plan_tick(NOW))
    assert OutputRole.PLAN in outputs, core.safety.lines
    reference = with_stl_feedback(planners.load(checkpoint))
    reference.seed = 3
    observation = reference_observation(scene)
    plan = reference.plan(observation)
    assert plan.candidates is not None and len(plan.candidates) == 16
    assert plan.scores is not None and float(np.ptp(plan.scores)) > 0.0  # ranked, not all 0
    np.testing.assert_allclose(plan.trajectory.poses, plan.candidates[int(np.argmax(plan.scores))], atol=1e-9)
    want = poses_to_global(plan.trajectory.poses, observation.ego_pose_global)
    np.testing.assert_allclose(path_poses(outputs[OutputRole.PLAN])[:, :2], want[:, :2], atol=1e-5)
