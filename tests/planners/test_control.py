"""Unicycle model and path trackers (planners.control): exact arcs, limits, convergence onto paths."""

import math

import numpy as np
import pytest

from planners.control import (
    MPCTracker,
    PurePursuit,
    clip_control,
    make_tracker,
    plan_to_world,
    point_at,
    project_onto_path,
    resample_path,
    rollout,
    unicycle_step,
)
from scenes.nav import WHEELED
from scenes.nav.types import RobotKind, RobotProfile


def test_unicycle_step_is_the_analytic_arc():
    x, y, yaw, v, omega, dt = 1.0, 2.0, 0.5, 0.4, 0.3, 2.0
    radius = v / omega
    centre = np.array([x - radius * math.sin(yaw), y + radius * math.cos(yaw)])
    end_yaw = yaw + omega * dt
    expected = [centre[0] + radius * math.sin(end_yaw), centre[1] - radius * math.cos(end_yaw), end_yaw]
    np.testing.assert_allclose(unicycle_step(np.array([x, y, yaw]), np.array([v, omega]), dt), expected,
                               atol=1e-12)


def test_unicycle_step_straight_turn_in_place_and_composition():
    np.testing.assert_allclose(unicycle_step(np.array([0.0, 0.0, math.pi / 2]), np.array([0.5, 0.0]), 2.0),
                               [0.0, 1.0, math.pi / 2], atol=1e-12)
    np.testing.assert_allclose(unicycle_step(np.array([3.0, -1.0, 0.0]), np.array([0.0, -0.5]), 1.0),
                               [3.0, -1.0, -0.5], atol=1e-12)
    # exact integration: ten steps of dt/10 land where one step of dt does
    pose = np.array([0.2, 0.1, -1.0])
    for _ in range(10):
        pose = unicycle_step(pose, np.array([0.5, 0.45]), 0.3)
    np.testing.assert_allclose(pose, unicycle_step(np.array([0.2, 0.1, -1.0]), np.array([0.5, 0.45]), 3.0),
                               atol=1e-12)
    # broadcasting over a batch of poses and controls
    batch = unicycle_step(np.zeros((4, 3)), np.array([[0.1, 0.0]] * 4), 1.0)
    np.testing.assert_allclose(batch, [[0.1, 0.0, 0.0]] * 4)


def test_clip_control_uses_the_robot_limits():
    slow = RobotProfile("slow", RobotKind.WHEELED, 0.4, 0.4, 1.0, v_max=0.3, omega_max=0.2)
    np.testing.assert_allclose(clip_control(np.array([[1.0, -1.0], [-0.5, 0.1]]), slow),
                               [[0.3, -0.2], [0.0, 0.1]])


def test_plan_to_world_and_path_helpers():
    pose = np.array([1.0, 2.0, math.pi / 2])
    world = plan_to_world(np.array([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]]), pose)
    np.testing.assert_allclose(world, [[1.0, 2.0], [1.0, 3.0], [0.0, 3.0]], atol=1e-12)
    path = np.array([[0.0, 0.0], [2.0, 0.0], [2.0, 1.0]])
    station, total = project_onto_path(np.array([1.5, 0.4]), path)
    assert (station, total) == pytest.approx((1.5, 3.0))
    np.testing.assert_allclose(point_at(path, np.array([-1.0, 2.5, 9.0])), [[0, 0], [2, 0.5], [2, 1]])
    resampled = resample_path(path, 0.25)
    assert len(resampled) == 13
    np.testing.assert_allclose(np.linalg.norm(np.diff(resampled, axis=0), axis=1), 0.25, atol=1e-12)


STRAIGHT = np.stack([np.linspace(0.0, 5.0, 51), np.zeros(51)], axis=1)
ARC = np.stack([2.0 * np.sin(np.linspace(0, math.pi, 200)), 2.0 - 2.0 * np.cos(np.linspace(0, math.pi, 200))],
               axis=1)


def _distance_to(path: np.ndarray, xy: np.ndarray) -> np.ndarray:
    dense = resample_path(path, 0.005)
    return np.linalg.norm(xy[:, None, :] - dense[None], axis=2).min(axis=1)


@pytest.mark.parametrize("tracker", [PurePursuit(WHEELED), MPCTracker(WHEELED)], ids=["pure-pursuit", "mpc"])
def test_trackers_converge_onto_a_straight_path(tracker):
    result = rollout(np.array([0.0, 0.5, 0.3]), STRAIGHT, tracker, steps=300)
    assert np.linalg.norm(result.poses[-1, :2] - STRAIGHT[-1]) < 0.1
    late = result.poses[len(result.poses) // 2:]
    assert np.abs(late[:, 1]).max() < 0.03  # converged onto y = 0
    assert result.controls[:, 0].min() >= 0.0 and result.controls[:, 0].max() <= WHEELED.v_max + 1e-9
    assert np.abs(result.controls[:, 1]).max() <= WHEELED.omega_max + 1e-9
    assert result.controls[:, 0].max() > 0.45  # cruises near v_max on a straight line


@pytest.mark.parametrize("tracker", [PurePursuit(WHEELED), MPCTracker(WHEELED)], ids=["pure-pursuit", "mpc"])
def test_trackers_follow_a_curved_path(tracker):
    # radius 2 m at 0.5 m/s needs 0.25 rad/s, within the 0.5 rad/s limit
    result = rollout(np.array([0.0, 0.0, 0.0]), ARC, tracker, steps=400)
    assert np.linalg.norm(result.poses[-1, :2] - ARC[-1]) < 0.1
    assert _distance_to(ARC, result.poses[:, :2]).max() < 0.08
    assert np.abs(result.controls[:, 1]).max() <= WHEELED.omega_max + 1e-9


def test_mpc_turns_around_for_a_path_behind_and_stops_at_its_end():
    result = rollout(np.zeros(3), np.array([[0.0, 0.0], [-2.0, 0.0]]), make_tracker("mpc", WHEELED), steps=300)
    assert np.linalg.norm(result.poses[-1, :2] - [-2.0, 0.0]) < 0.06
    assert len(result.controls) < 150  # turned (~6.3 s) and drove (~4 s), then stopped early


def test_make_tracker_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown tracker 'lqr'"):
        make_tracker("lqr", WHEELED)
