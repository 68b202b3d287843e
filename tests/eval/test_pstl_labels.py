"""pSTL on imported logs: the heuristic mode label and pSTL's flex calibration of θ on the hand-built nuScenes
fixture (tests/scenes/nuscenes_fixture.py), whose three scenes keep the lane, change left and change right."""

from __future__ import annotations

import numpy as np
import pytest

from eval.pstl.labels import STOP_SPEED, heuristic_condition, heuristic_mode
from eval.pstl.scoring import mode_robustness
from planners.pstl.condition import DrivingMode
from scenes.adapters.nuscenes import build_scene, open_can_bus, open_nuscenes, scene_samples
from scenes.adapters.nuscenes_map import open_map
from tests.scenes import nuscenes_fixture as fx


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = fx.write_fixture(tmp_path_factory.mktemp("nuscenes"))
    return open_nuscenes(root, "v1.0-mini"), open_map(root, fx.MAP), open_can_bus(root)


def scene(data, name: str, k: int):
    nusc, nusc_map, can = data
    return build_scene(nusc, nusc_map, can, scene_samples(nusc, fx.tok(name))[k]["token"], "val").scene


@pytest.mark.parametrize(("name", "d_lat"), [("scene-0103", 0.3), ("scene-0916", 3.8), ("scene-0161", 3.8)])
def test_fixture_windows_are_labelled_and_meet_their_own_spec(data, name, d_lat):
    """The fixture's routes follow the logged lane change (the route is the lane the ego ends in), so the
    changes are KEEP with a band as wide as the 3.5 m change plus pSTL's 0.3 m margin."""
    window = scene(data, name, 5)  # now at 2.5 s: the 4 s plan ends after the change (3 s to 5 s)
    condition = heuristic_condition(window)
    assert condition.mode is DrivingMode.KEEP
    assert condition.d_lat == pytest.approx(d_lat, abs=1e-6)
    plan = window.expert_plan(8, 0.5).poses
    steps = np.linalg.norm(np.diff(np.vstack([[0.0, 0.0], plan[:, :2]]), axis=0), axis=1) / 0.5  # [m/s]
    assert condition.v_min + 1.0 <= steps.min() + 0.05 and condition.v_max - 1.0 >= steps.max() - 0.05
    if name == "scene-0103":  # constant 10 m/s straight: the band is exactly 10 -+ 1
        assert (condition.v_min, condition.v_max) == pytest.approx((9.0, 11.0), abs=1e-6)
    assert condition.h_max == pytest.approx(0.1, abs=1e-6) if name == "scene-0103" else condition.h_max > 0.1
    rho = mode_robustness(window, condition, window.expert_plan(8, 0.5).poses[None]).rho
    assert rho[0] > 0.0  # calibrated with margins, the log meets its own spec (pSTL's --check_stl_params)


def test_heuristic_mode_on_hand_built_speeds():
    assert heuristic_mode(1, np.array([5.0, 0.0])) is DrivingMode.LEFT
    assert heuristic_mode(-1, np.array([5.0, 5.0])) is DrivingMode.RIGHT
    assert heuristic_mode(0, np.array([5.0, 2.0, STOP_SPEED - 0.01])) is DrivingMode.STOP
    assert heuristic_mode(0, np.array([0.0, 0.0])) is DrivingMode.KEEP  # standing still is not stopping
    assert heuristic_mode(0, np.array([5.0, 6.0])) is DrivingMode.KEEP
