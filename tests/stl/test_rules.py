"""Driving signals, rule templates, calibration and the `stl` CLI on hand-built and synthetic scenes."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import shapely
from typer.testing import CliRunner

from diffplan.commands.stl import app
from scenes import NUM_STEPS, AgentCategory, AgentTracks, Route
from scenes.ego import PACIFICA, Frame, Trajectory
from scenes.geometry import box_corners
from scenes.store import finalize_dataset, write_shard
from scenes.synthetic import generate_scene
from stl.calibrate import CalibratedParams, calibrate, satisfaction, tightest, verify_tightest
from stl.robustness import Signals, robustness
from stl.rules import RULES, rule_set
from stl.signals import ABSENT, FAR, SIGNAL_NAMES, batch_signals, drive_signals
from tests.factories import constant_speed_ego, straight_scene

T = 40  # poses after now at 0.1 s -> 41 states, horizon 40


def empty_scene(**changes):
    return replace(straight_scene(), agents=AgentTracks.empty(NUM_STEPS), **changes)


def traj(x: np.ndarray, y: np.ndarray) -> Trajectory:
    """Ego-frame trajectory through (x, y) at times 0.1 .. 4.0 s, heading along the path."""
    xs, ys = np.concatenate([[0.0], x]), np.concatenate([[0.0], y])
    heading = np.arctan2(np.gradient(ys), np.gradient(xs))[1:]
    return Trajectory(np.stack([x, y, heading], -1), 0.1, Frame.EGO)


TIMES = 0.1 * np.arange(1, T + 1)
STAY = traj(10.0 * TIMES, 0.0 * TIMES)
RAMP = np.clip(TIMES / 2.5, 0.0, 1.0)
CHANGE = traj(10.0 * TIMES, 3.5 * RAMP * RAMP * (3 - 2 * RAMP))  # smoothstep into y=3.5 by 2.5 s
ACCEL = traj(8.0 * TIMES + 0.5 * TIMES**2, 0.0 * TIMES)  # v from 8 to 12 m/s, a = 1 m/s^2


def rho(rule: str, signals: Signals, **params: float) -> float:
    return float(robustness(RULES[rule].formula(signals.values.shape[1] - 1), signals, params=params)[0])


def col(signals: Signals, name: str) -> np.ndarray:
    return signals.values[0, :, SIGNAL_NAMES.index(name)]


def test_lane_change_and_keeping_signs():
    scene = empty_scene()
    change, stay = drive_signals(scene, CHANGE), drive_signals(scene, STAY)
    assert change.values.shape == (1, 41, len(SIGNAL_NAMES))
    assert rho("lane_change_left", change, d_band=0.5, h_max=0.2) == pytest.approx(0.2)
    assert rho("lane_change_left", stay, d_band=0.5, h_max=0.2) == pytest.approx(-3.0)
    assert rho("lane_change_right", change, d_band=0.5, h_max=0.2) == pytest.approx(0.5 - ABSENT)
    assert rho("lane_keeping", stay, d_max=0.5, h_max=0.3) == pytest.approx(0.3)
    assert rho("lane_keeping", change, d_max=0.5, h_max=0.3) == pytest.approx(-3.0)


def test_speed_band_and_comfort_exact_values():
    signals = drive_signals(empty_scene(), ACCEL)
    np.testing.assert_allclose(col(signals, "v"), 8.0 + np.arange(41) * 0.1, atol=1e-9)
    assert rho("speed_band", signals, v_min=5.0, v_max=15.0) == pytest.approx(3.0)
    assert rho("speed_band", signals, v_min=9.0, v_max=15.0) == pytest.approx(-1.0)
    assert rho("comfort", signals, a_max=2.0, j_max=1.0, w_max=0.1) == pytest.approx(0.1)
    assert rho("comfort", signals, a_max=0.5, j_max=1.0, w_max=0.1) == pytest.approx(-0.5)


def one_agent(x: float, y: float, heading: float, size=(4.5, 1.9)) -> AgentTracks:
    return AgentTracks(np.array([3], np.int64), np.array([AgentCategory.VEHICLE], np.int8), np.array([size]),
                       np.tile([x, y], (1, NUM_STEPS, 1)).astype(float), np.full((1, NUM_STEPS), heading),
                       np.zeros((1, NUM_STEPS, 2)), np.ones((1, NUM_STEPS), bool))


def test_safe_distance_matches_shapely_and_rule_value():
    scene = replace(straight_scene(), agents=one_agent(60.0, 0.0, 0.0))
    signals = drive_signals(scene, STAY)
    assert col(signals, "s").min() == pytest.approx(57.75 - (40.0 + PACIFICA.rear_axle_to_front))
    assert rho("safe_distance", signals, d_safe=10.0) == pytest.approx(3.701)
    # a rotated agent beside a curving path, checked against shapely at every step
    scene = replace(straight_scene(), agents=one_agent(25.0, 4.0, 0.7))
    path = traj(10.0 * TIMES, 0.02 * (10.0 * TIMES) ** 1.5)
    signals = drive_signals(scene, path)
    poses = np.concatenate([[[0.0, 0.0, 0.0]], path.poses])
    forward = np.stack([np.cos(poses[:, 2]), np.sin(poses[:, 2])], -1)
    centre = poses[:, :2] + PACIFICA.rear_axle_to_center * forward
    ego = box_corners(centre, poses[:, 2], PACIFICA.length, PACIFICA.width)
    agent = shapely.Polygon(box_corners(np.array([25.0, 4.0]), np.array(0.7), 4.5, 1.9))
    expected = [shapely.Polygon(c).distance(agent) for c in ego]
    s = col(signals, "s")
    disjoint = np.array(expected) > 0
    assert disjoint.any() and (~disjoint).any()
    np.testing.assert_allclose(s[disjoint], np.array(expected)[disjoint], atol=1e-9)
    assert (s[~disjoint] < 0).all()  # overlap: minus the penetration depth


def test_lateral_offsets_speed_and_goal_are_analytic():
    scene = empty_scene()
    signals = drive_signals(scene, traj(12.0 * TIMES, np.full(T, 1.2)))
    np.testing.assert_allclose(col(signals, "d_c")[1:], 1.2)
    np.testing.assert_allclose(col(signals, "d_l")[1:], 1.2 - 3.5)
    np.testing.assert_allclose(col(signals, "d_r"), ABSENT)
    np.testing.assert_allclose(col(signals, "v")[2:-2], 12.0)
    # goal: the route point nearest the expert (10 m/s) at 4 s, (40, 0)
    assert col(signals, "goal_dist")[-1] == pytest.approx(np.hypot(48.0 - 40.0, 1.2))
    # global frame input gives the same signals
    glob = drive_signals(scene, Trajectory(STAY.poses, 0.1, Frame.GLOBAL))
    np.testing.assert_allclose(glob.values, drive_signals(scene, STAY).values)
    assert batch_signals(scene, [STAY, CHANGE, ACCEL]).values.shape == (3, 41, len(SIGNAL_NAMES))
    assert drive_signals(scene, STAY, dt=0.2).values.shape == (1, 21, len(SIGNAL_NAMES))


def test_stop_before_red_line_and_reach_goal():
    scene = straight_scene()  # lane 1 red from now on; its stop line at x = 100
    slow = drive_signals(replace(scene, agents=AgentTracks.empty(NUM_STEPS)), STAY)
    assert col(slow, "red").min() == 1.0
    assert col(slow, "stop_dist")[-1] == pytest.approx(100.0 - 40.0 - PACIFICA.rear_axle_to_front)
    assert rho("stop_before_line", slow, d_stop=50.0) == pytest.approx(100.0 - 44.049 - 50.0)
    fast = drive_signals(scene, traj(30.0 * TIMES, 0.0 * TIMES))
    assert rho("stop_before_line", fast, d_stop=2.0) == pytest.approx(100.0 - 124.049 - 2.0)
    lights = replace(scene.traffic_lights, is_red=np.zeros((1, NUM_STEPS), bool))
    green = drive_signals(replace(scene, traffic_lights=lights), STAY)
    assert col(green, "stop_dist").min() == FAR and rho("stop_before_line", green, d_stop=2.0) > 0
    assert rho("reach_goal", slow, r_goal=0.5) == pytest.approx(0.5)
    short = drive_signals(scene, traj(7.5 * TIMES, 0.0 * TIMES))
    assert rho("reach_goal", short, r_goal=2.0) == pytest.approx(2.0 - 10.0)


def lane_two_scene():
    """The empty straight scene driven in lane 2 (y = 3.5) with lane 2 as the route."""
    scene = empty_scene()
    return replace(scene, ego=constant_speed_ego(y=3.5), route=Route((2,), scene.map.lane_centerlines[1]))


@pytest.fixture(scope="module")
def synthetic():
    """30 synthetic expert windows, a hand-built left and right lane change: types, Signals (32, 41, D)."""
    scenes = [generate_scene(seed, "train") for seed in range(30)]
    values = [drive_signals(s).values for s in scenes]
    values += [drive_signals(empty_scene(), CHANGE).values,
               drive_signals(lane_two_scene(), Trajectory(CHANGE.poses * [1, -1, -1], 0.1)).values]
    types = [s.metadata.scenario_type.value for s in scenes] + ["hand", "hand"]
    return types, Signals(SIGNAL_NAMES, np.concatenate(values))


def test_per_window_tightest_params_are_satisfied(synthetic):
    _, signals = synthetic
    rules = rule_set("all")
    tight = tightest(rules, signals)
    for name, rho_i in verify_tightest(rules, signals, tight).items():
        done = rho_i[~np.isnan(rho_i)]
        assert done.size and (done >= 0).all(), name


@pytest.mark.parametrize("q", [0.8, 0.95])
def test_dataset_quantile_gives_rate_at_least_q(synthetic, q):
    types, signals = synthetic
    rules = rule_set("all")
    params = calibrate(rules, signals, q)
    assert params.rules.speed_band.v_min < params.rules.speed_band.v_max
    assert params.applicable["lane_change_left"] >= 1 and params.applicable["lane_change_right"] >= 1
    rates = satisfaction(rules, signals, params, types)
    assert rates["hand"]["lane_change_right"] == {"rate": 1.0, "n": 1}
    for name, rate in rates["all"].items():
        if params.applicable[name]:
            assert rate["rate"] >= q, (name, rate)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("stl") / "data"
    write_shard(root, 0, [generate_scene(seed, "train") for seed in range(6)])
    finalize_dataset(root, {"test": True}, 1)
    return root


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_cli_calibrate_then_check(dataset, tmp_path):
    out = tmp_path / "params.json"
    result = invoke("calibrate", "--data", str(dataset), "--rules", "speed_band,comfort", "--q", "0.9",
                    "--out", str(out))
    assert result.exit_code == 0, result.output
    params = CalibratedParams.load(out)
    assert params.rules.names == ("speed_band", "comfort") and params.count == 6 and params.q == 0.9
    result = invoke("check", "--data", str(dataset), "--params", str(out), "--json")
    assert result.exit_code == 0, result.output
    rates = json.loads(result.stdout.strip().splitlines()[-1])
    assert rates["all"]["speed_band"]["n"] == 6 and rates["all"]["comfort"]["rate"] >= 0.9


def assert_one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_cli_bad_input(dataset, tmp_path):
    out = str(tmp_path / "p.json")
    root = str(dataset)
    assert_one_line_error(invoke("calibrate", "--data", str(tmp_path / "nope"), "--out", out), "nope")
    result = invoke("calibrate", "--data", root, "--rules", "speed,comfort", "--out", out)
    assert_one_line_error(result, "'speed'")
    assert_one_line_error(invoke("calibrate", "--data", root, "--q", "1.5", "--out", out), "--q", "1.5")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert_one_line_error(invoke("check", "--data", str(dataset), "--params", str(bad)), "bad.json")
    bad.write_text(json.dumps({"version": 1, "rules": {"speed_band": {"v_min": "x"}}}))
    assert_one_line_error(invoke("check", "--data", str(dataset), "--params", str(bad)), "'q'")
    good = tmp_path / "good.json"
    assert invoke("calibrate", "--data", root, "--rules", "speed_band", "--out", str(good)).exit_code == 0
    data = json.loads(good.read_text())
    data["rules"]["speed_band"]["v_max"] = "fast"
    bad.write_text(json.dumps(data))
    assert_one_line_error(invoke("check", "--data", root, "--params", str(bad)), "rules.speed_band.v_max")
    data["rules"] = {"flying": {"z": 1.0}}
    bad.write_text(json.dumps(data))
    assert_one_line_error(invoke("check", "--data", str(dataset), "--params", str(bad)), "'flying'")
    assert_one_line_error(invoke("check", "--data", str(dataset), "--params", str(tmp_path / "none.json")),
                          "none.json")
