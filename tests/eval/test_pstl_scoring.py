"""Exact pSTL scoring: hand-computed robustness on a hand-built two-lane road, and stlpy as the oracle."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from eval.pstl import ModeRobustness, ScoringInputError, mode_robustness, plan_states
from planners.pstl.condition import DrivingMode, STLCondition, mode_rules
from planners.pstl.model import headings_from_xy
from scenes.ego import Frame, Trajectory
from scenes.geometry import poses_to_local
from scenes.synthetic import generate_scene, scene_seed
from stl.rules import DEFAULT_PARAMS, RULES
from stl.signals import batch_signals
from stl.stlpy_bridge import stlpy_robustness, to_stlpy
from tests.factories import straight_scene

TIMES = 0.5 * np.arange(1, 9)  # [s] of the 8 plan poses
STEPS = np.arange(1, 9)


def open_road():
    """`straight_scene` (ego at the map origin heading east in lane 1 at y = 0, lane 2 at y = 3.5 to its left)
    with only the pedestrian 300 m away: safe_distance never binds."""
    scene = straight_scene()
    return dataclasses.replace(scene, agents=scene.agents.select(np.array([2])))


def plan_of(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(1, 8, 3) plan with the model's headings (`headings_from_xy`)."""
    xy = torch.tensor(np.stack([x, y], -1)[None])
    return torch.cat([xy, headings_from_xy(xy)[..., None]], -1).numpy()


def keep(v_min: float, v_max: float, d_lat: float = 0.5, h_max: float = 0.2) -> STLCondition:
    return STLCondition(DrivingMode.KEEP, np.array([v_min, v_max, d_lat, h_max, 0.5]))


@pytest.mark.parametrize("v", [3.0, 8.0, 9.5])
def test_constant_speed_along_the_lane_scores_its_speed_margin(v):
    # x = v t is linear, so every finite-difference speed (state 0 included) is exactly v; the plan is on the
    # centreline (d_c = 0) heading along it (h_c = 0): lane_keeping = min(d_lat, h_max) = 0.2
    result = mode_robustness(open_road(), keep(2.0, 10.0), plan_of(v * TIMES, 0 * TIMES))
    assert result.rules == mode_rules(DrivingMode.KEEP)
    assert result.of("speed_band")[0] == pytest.approx(min(v - 2.0, 10.0 - v), abs=1e-9)
    assert result.of("lane_keeping")[0] == pytest.approx(0.2, abs=1e-12)
    assert result.rho[0] == pytest.approx(min(v - 2.0, 10.0 - v, 0.2), abs=1e-9)


def test_lowering_v_max_below_the_plan_speed_goes_negative_by_the_excess():
    plan = plan_of(8.0 * TIMES, 0 * TIMES)
    for v_max, expected in ((7.0, -1.0), (5.5, -2.5)):
        result = mode_robustness(open_road(), keep(2.0, v_max), plan)
        assert result.of("speed_band")[0] == pytest.approx(expected, abs=1e-9)
        assert result.rho[0] == pytest.approx(expected, abs=1e-9)


def test_accelerating_plan_binds_at_the_last_state():
    # x = 4 t + t^2 / 2: second-order differences are exact for quadratics, v = 4 + t: v(0) = 4, v(4 s) = 8
    result = mode_robustness(open_road(), keep(3.0, 7.5), plan_of(4.0 * TIMES + 0.5 * TIMES ** 2, 0 * TIMES))
    assert result.of("speed_band")[0] == pytest.approx(min(4.0 - 3.0, 7.5 - 8.0), abs=1e-9)


def test_lateral_offset_and_heading_error_are_scored_against_d_lat_and_h_max():
    # 0.25 m further left each 0.5 s step at 8 m/s: d_c(8) = 2 m, heading atan2(0.25, 4) at every pose
    condition = keep(2.0, 10.0, d_lat=0.5, h_max=0.2)
    result = mode_robustness(open_road(), condition, plan_of(8.0 * TIMES, 0.25 * STEPS))
    heading = math.atan2(0.25, 4.0)
    assert result.of("lane_keeping")[0] == pytest.approx(min(0.5 - 2.0, 0.2 - heading), abs=1e-9)


def test_lane_change_deadline_is_state_6_of_9():
    left = STLCondition(DrivingMode.LEFT, np.array([2.0, 10.0, 0.5, 0.2, 0.5]))
    # in lane 2 (y = 3.5) from state 4 on, straight after it: states 5 .. 8 have d_l = 0, h_l = 0
    early = mode_robustness(open_road(), left, plan_of(8.0 * TIMES, np.minimum(0.875 * STEPS, 3.5)))
    assert early.of("lane_change_left")[0] == pytest.approx(min(0.5, 0.2), abs=1e-9)
    # reaching y = 3.5 only at state 8 (4 s): F[0, 6] G[0, 2] is best at t = 6, whose first state (y = 2.625,
    # d_l = -0.875) is outside the band by 0.375 m
    late = mode_robustness(open_road(), left, plan_of(8.0 * TIMES, 3.5 * STEPS / 8.0))
    assert late.of("lane_change_left")[0] == pytest.approx(0.5 - 0.875, abs=1e-9)
    assert late.rho[0] == pytest.approx(-0.375, abs=1e-9)


def test_plan_states_put_the_plan_on_the_map_after_the_ego_now():
    scene = generate_scene(scene_seed("val", 0, 3), "val")
    plans = np.stack([scene.expert_plan().poses, scene.expert_plan().poses + [0.0, 1.0, 0.1]])
    states = plan_states(scene, plans)
    assert states.shape == (2, 9, 3)
    np.testing.assert_array_equal(states[:, 0], np.stack([scene.current_pose] * 2))
    np.testing.assert_allclose(poses_to_local(states[:, 1:], scene.current_pose), plans, atol=1e-9)


def oracle(scene, condition: STLCondition, plans: np.ndarray) -> tuple[np.ndarray, dict]:
    """min over the mode's rules and per rule, by stlpy on stl.signals.batch_signals (an independent path)."""
    params = condition.to_rule_params(DEFAULT_PARAMS)
    signals = batch_signals(scene, [Trajectory(p, 0.5, Frame.EGO) for p in plans])
    per_rule = {}
    for rule in mode_rules(condition.mode):
        record = params.of(rule)
        assert record is not None
        formula = RULES[rule].formula(8).bind(record.bindings())
        per_rule[rule] = stlpy_robustness(to_stlpy(formula, signals.names), signals.values)
    return np.min(np.stack(list(per_rule.values())), axis=0), per_rule


@pytest.mark.parametrize("index", [3, 5])  # a right neighbour lane; a left one
def test_mode_robustness_equals_stlpy_on_synthetic_scenes(index):
    scene = generate_scene(scene_seed("val", 0, index), "val")
    rng = np.random.default_rng(index)
    expert = scene.expert_plan().poses
    plans = [expert]
    for _ in range(5):  # faster / slower, shifted sideways and turned
        scale, shift, turn = rng.uniform(0.7, 1.3), rng.uniform(-3.5, 3.5), rng.uniform(-0.2, 0.2)
        plans.append(np.column_stack([expert[:, 0] * scale, expert[:, 1] + shift * TIMES / 4.0,
                                      expert[:, 2] + turn]))
    plans = np.stack(plans)
    for mode in DrivingMode:
        condition = STLCondition(mode, np.array([1.0, 9.0, 1.0, 0.3, 0.5]))
        result = mode_robustness(scene, condition, plans)
        expected, per_rule = oracle(scene, condition, plans)
        assert isinstance(result, ModeRobustness) and result.rho.shape == (6,)
        np.testing.assert_allclose(result.rho, expected, rtol=0, atol=1e-9)
        for item in result.per_rule:
            np.testing.assert_allclose(item.rho, per_rule[item.rule], rtol=0, atol=1e-9)
        assert sum(np.ptp(item.rho) > 0.01 for item in result.per_rule) >= 2  # not constants (an absent
        # neighbour lane makes its lane change a constant -ABSENT + d_band)


@pytest.mark.parametrize("plans, words", [
    (np.zeros((8, 3)), "(8, 3)"),
    (np.zeros((2, 7, 3)), "(2, 7, 3)"),
    (np.zeros((2, 8, 2)), "(2, 8, 2)"),
    (np.zeros((0, 8, 3)), "(0, 8, 3)"),
    (np.full((1, 8, 3), np.nan), "non-finite"),
    ([["a"]], "numeric"),
])
def test_bad_plans_are_one_line_errors(plans, words):
    with pytest.raises(ScoringInputError) as error:
        mode_robustness(open_road(), keep(0.0, 10.0), plans)
    assert words in str(error.value) and "\n" not in str(error.value)


def test_unknown_rule_lookup_names_the_rules():
    result = mode_robustness(open_road(), keep(0.0, 10.0), plan_of(5.0 * TIMES, 0 * TIMES))
    with pytest.raises(KeyError, match="speed_band, lane_keeping, safe_distance"):
        result.of("comfort")
