"""The expert contract (trajopt.expert): both experts implement it, statuses keep their stored strings,
targets are typed and sampled as before, and a solve's warm start carries its typed NLP multipliers."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from datagen.expert import FollowExpert, follow_targets, load_expert
from scenes import ScenarioType
from scenes.synthetic import generate_scene
from stl.rules import DEFAULT_PARAMS, ComfortParams, RuleParams, SpeedBandParams
from tests.factories import straight_scene
from trajopt.drive import DriveExpert, DriveExpertConfig, sample_targets
from trajopt.expert import (
    DEFAULT_RULES,
    DriveTarget,
    Expert,
    ExpertError,
    ExpertResult,
    ExpertStatus,
    Multipliers,
    WarmStart,
)
from trajopt.nlp import Shape

HERE = Path(__file__).resolve().parent


def test_both_experts_implement_the_protocol():
    assert isinstance(FollowExpert(), Expert)
    assert isinstance(load_expert("follow", 50), Expert)
    assert isinstance(DriveExpert(DriveExpertConfig(shape=Shape(horizon=10))), Expert)


def test_status_values_are_the_strings_datasets_store():
    assert {s.name: s.value for s in ExpertStatus} == {
        "SUCCESS": "success", "OK": "ok", "INFEASIBLE": "infeasible", "STL_VIOLATED": "stl_violated",
        "SOLVER_FAILED": "solver_failed"}
    assert [s for s in ExpertStatus if s.ok] == [ExpertStatus.SUCCESS, ExpertStatus.OK]


def test_targets_are_typed_and_checked():
    target = DriveTarget(10.0)
    assert target.target_lane == 0 and target.rule_params.names == DEFAULT_RULES
    assert target.rule_params == DEFAULT_PARAMS.only(DEFAULT_RULES)
    with pytest.raises(ExpertError, match="target_lane must be -1, 0 or \\+1, got 2"):
        DriveTarget(10.0, 2).validate()
    with pytest.raises(ExpertError, match="reference_speed"):
        DriveTarget(float("nan")).validate()


def test_sampled_targets_are_those_of_the_dict_based_code():
    """sample_targets gives the targets (speeds, lanes and parameters, bit for bit) that it gave when rule
    parameters were dicts (recorded then, in sample_targets_before_typed_rules.json)."""
    recorded = json.loads((HERE / "sample_targets_before_typed_rules.json").read_text())
    calibrated = RuleParams(speed_band=SpeedBandParams(1.0, 14.0), comfort=ComfortParams(3.0, 5.0, 0.4))
    targets = []
    for scene, seed in ((straight_scene(), 3), (generate_scene(1_100_000_001, "test", ScenarioType.SLOW_VEHICLE), 5)):
        targets += sample_targets(scene, calibrated, np.random.default_rng(seed), 4)
    assert [{"reference_speed": t.reference_speed, "target_lane": t.target_lane,
             "rule_params": t.rule_params.to_json()} for t in targets] == recorded
    assert {t.target_lane for t in targets} == {-1, 0, 1}


def test_follow_targets_keep_the_follow_rules_that_the_params_have():
    scene = straight_scene()
    full = follow_targets(scene, DEFAULT_PARAMS, np.random.default_rng(0), 3)
    assert all(t.rule_params.names == ("speed_band", "lane_keeping", "safe_distance", "stop_before_line",
                                       "comfort") and t.target_lane == 0 for t in full)
    only_comfort = follow_targets(scene, DEFAULT_PARAMS.only(["comfort"]), np.random.default_rng(0), 3)
    assert [t.reference_speed for t in only_comfort] == [t.reference_speed for t in full]  # default band
    assert all(t.rule_params.names == ("comfort",) for t in only_comfort)


def test_follow_results_check_the_target_rules_and_warm_start_from_any_result():
    scene = generate_scene(1_100_000_001, "test", ScenarioType.STRAIGHT_ROAD)
    expert = FollowExpert(horizon=30)
    target = expert.sample_targets(scene, DEFAULT_PARAMS, np.random.default_rng(0), 1)[0]
    result = expert.solve(scene, target)
    assert isinstance(result, ExpertResult) and result.params == target.rule_params
    assert result.dt == expert.dt and result.multipliers is None
    assert result.warm_start.states is result.states and result.warm_start.multipliers is None
    assert result.status in (ExpertStatus.OK, ExpertStatus.STL_VIOLATED)


def test_a_trajopt_warm_start_carries_the_multipliers_of_its_nlp():
    scene = straight_scene()
    expert = DriveExpert(DriveExpertConfig(shape=Shape(horizon=12)))
    target = DriveTarget(10.0, 0, DEFAULT_PARAMS.only(DEFAULT_RULES))
    cold = expert.solve(scene, target)
    assert cold.ok and cold.status is ExpertStatus.SUCCESS and cold.passes >= 1 and cold.fallback_from == ""
    warm = cold.warm_start
    assert isinstance(warm, WarmStart) and isinstance(warm.multipliers, Multipliers)
    assert warm.multipliers.lam_x.shape == (warm.multipliers.problem.num_w,)
    assert warm.multipliers.lam_g.shape == (warm.multipliers.problem.num_g,)
    again = expert.solve(scene, target, warm_start=warm)
    assert again.ok and again.multipliers.problem is cold.multipliers.problem
    assert again.iterations <= cold.iterations
    primal_only = expert.solve(scene, target, warm_start=replace(warm, multipliers=None))
    np.testing.assert_allclose(primal_only.states, again.states, atol=1e-4)
