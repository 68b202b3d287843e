"""pSTL end to end on a small `datagen drive` dataset: (mode, θ) from the extras, training, `eval pstl`; the
open-loop bookkeeping (cases, controls, summaries) on hand-built values."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import planners
from datagen.job import DriveDatagenConfig, DriveDatagenJob
from diffplan.cli import app
from diffplan.jobs import run_job
from eval.pstl.open_loop import CaseResult, PstlCase, plan_controls, pstl_cases, summarize, window_of
from eval.pstl.scoring import mode_robustness
from planners.pstl.condition import ConditionError, DrivingMode, STLCondition, condition_tensor
from planners.pstl.data import PstlDemoDataset, condition_of_extras
from planners.pstl.planner import PstlPlanner
from scenes.drive import CURRENT_INDEX
from scenes.store import DriveDataset

TINY = ["--model", "d_model=32", "--model", "depth=1", "--model", "heads=2", "--model", "ffn_dim=64",
        "--model", "hidden_dim=64"]


@pytest.fixture(scope="module")
def demos(tmp_path_factory) -> Path:
    """3 windows x 3 demonstrations of the follow expert: the first keeps the lane, the others stop."""
    root = tmp_path_factory.mktemp("pstl") / "demos"
    run_job(DriveDatagenJob(DriveDatagenConfig(n=3, demos_per_scene=3, stop_fraction=1.0, expert="follow",
                                               split="test")), root)
    return root


def test_the_condition_is_read_from_the_demonstration_extras(demos):
    data = DriveDataset.open(demos)
    dataset = PstlDemoDataset(demos, PstlPlanner(d_model=32, depth=1, heads=2, ffn_dim=64).model.feature_builder())
    modes = []
    for i in range(len(data)):
        extras = data.extras(i)
        condition = dataset.condition(i)
        modes.append(condition.mode)
        assert condition.mode.name.lower() == extras["target.mode"]
        assert condition.v_max == extras["flex.speed_band.v_max"]  # the tight θ of the demo's plan
        assert condition.d_lat == extras["flex.lane_keeping.d_max"]
        assert condition.d_safe == extras["flex.safe_distance.d_safe"]
        solved = condition_of_extras(extras, "stl")  # the θ the solve was asked to meet
        assert solved.v_max == extras["stl.speed_band.v_max"] and solved.mode is condition.mode
        plan = data[i].expert_plan(8, 0.5).poses[None]
        speeds = np.linalg.norm(np.diff(np.vstack([[0.0, 0.0], plan[0, :, :2]]), axis=0), axis=1) / 0.5
        fastest = max(speeds.max(), float(data[i].ego.speed[CURRENT_INDEX]))  # now, or along the plan
        assert fastest + 0.7 <= condition.v_max <= fastest + 1.5  # pSTL: max v + 1 (v: 2nd-order differences)
        rules = mode_robustness(data[i], condition, plan)
        assert rules.rho[0] >= 0.1 - 1e-9  # the demo meets its flex θ by at least the margins (0.1 the least)
        _, target = dataset[i]
        assert torch.equal(target.condition, condition_tensor([condition])[0])
        expected = data[i].expert_plan(8, 0.5).poses
        np.testing.assert_array_equal(target.plan.numpy(), expected.astype(np.float32))
    assert DrivingMode.STOP in modes and DrivingMode.KEEP in modes
    stops = [i for i, m in enumerate(modes) if m is DrivingMode.STOP]
    assert all(data[i].ego.speed[-1] < 0.5 for i in stops)  # a stop demonstration ends standing


@pytest.mark.parametrize(("extras", "message"), [
    ({}, "target.mode and target.lane are missing: not a `datagen drive` demonstration"),
    ({"target.mode": "reverse"}, "target.mode = 'reverse' is not a driving mode; expected keep, left, right, stop"),
    ({"target.lane": 1, "stl.speed_band.v_min": 0.0, "stl.speed_band.v_max": 9.0},
     "stl.lane_change_left.d_band is missing: mode LEFT needs it"),
])
def test_bad_extras_are_one_line_errors(extras, message):
    with pytest.raises(ConditionError) as error:
        condition_of_extras(extras)
    assert str(error.value) == message


def test_cases_take_each_windows_first_demonstration_of_a_mode(demos):
    data = DriveDataset.open(demos)
    ids = data.episodes.column("scene_id").to_pylist()
    first: dict[tuple[str, DrivingMode], int] = {}
    for i in range(len(data)):
        first.setdefault((window_of(ids[i]), condition_of_extras(data.extras(i)).mode), i)
    cases = pstl_cases(data, range(len(data)))
    assert [(c.window, c.condition.mode, c.index) for c in cases] == [(*key, i) for key, i in first.items()]
    assert all(np.array_equal(c.condition.theta, condition_of_extras(data.extras(c.index)).theta) for c in cases)
    assert window_of("test-17-demo12") == "test-17" and window_of("log-abc") == "log-abc"
    fixed = pstl_cases(data, range(len(data)), (DrivingMode.KEEP,), STLCondition(0, [0, 5, 1, 0.3, 1]))
    assert [c.index for c in fixed] == [i for (_, mode), i in first.items() if mode is DrivingMode.KEEP]
    assert all(c.condition.v_max == 5 and c.condition.d_safe == 1 for c in fixed)


def test_plan_controls_of_hand_built_plans():
    t = np.arange(1, 9) * 0.5
    straight = np.stack([10.0 * t, 0 * t, 0 * t], -1)  # 10 m/s, straight
    accelerating = np.stack([t + 0.5 * t ** 2, 0 * t, 0 * t], -1)  # v = 1 + t: mean speeds over the steps
    turning = np.stack([np.zeros(8), np.zeros(8), 0.2 * t], -1)  # yaw 0.2 rad/s in place
    controls = plan_controls(np.stack([straight, accelerating, turning]))
    assert controls.shape == (3, 7, 2)
    np.testing.assert_allclose(controls[0], 0.0, atol=1e-12)
    np.testing.assert_allclose(controls[1, :, 1], 1.0, atol=1e-12)  # a = 1 m/s^2
    np.testing.assert_allclose(controls[2, :, 0], 0.2, atol=1e-12)


def test_summary_of_hand_built_sample_sets():
    keep, left = STLCondition(0, [0, 9, 1, 0.2, 1]), STLCondition(1, [0, 9, 1, 0.2, 1])
    xy = np.zeros((4, 8, 3))
    xy[:, :, 0] = np.arange(1, 9)[None] * np.array([1.0, 2.0, 3.0, 4.0])[:, None]
    results = [CaseResult(PstlCase("w0", 0, keep), np.array([1.0, -1.0, 0.5, -0.2]), xy, np.zeros((4, 7, 2)), 0.4),
               CaseResult(PstlCase("w0", 1, left), np.array([-1.0, -1.0, -1.0, -1.0]), xy, np.zeros((4, 7, 2)), 0.4),
               CaseResult(PstlCase("w1", 2, keep), np.array([1.0, 1.0, 1.0, 1.0]), xy, np.zeros((4, 7, 2)), 0.4)]
    summary = summarize(results)
    assert summary.metrics.compliance == pytest.approx(6 / 12)
    assert summary.metrics.success == pytest.approx(2 / 3)
    assert summary.time_per_sample_s == pytest.approx(0.1)
    assert (summary.n_windows, summary.n_cases, summary.samples) == (2, 3, 4)
    assert set(summary.as_json()) >= {"compliance", "success", "valid_area", "entropy", "time_per_sample_s",
                                      "n_windows"}


def test_train_then_eval_pstl_end_to_end(demos, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["train", "pstl", "--data", str(demos), "--out", str(tmp_path / "run"),
                                 "--split", "all", "--epochs", "1", "--batch-size", "4", *TINY])
    assert result.exit_code == 0, result.output
    checkpoint = tmp_path / "run" / "checkpoint"
    assert isinstance(planners.load(checkpoint), PstlPlanner)
    result = runner.invoke(app, ["eval", "pstl", "--planner", str(checkpoint), "--scenes", str(demos),
                                 "--samples", "4", "--json", "--out", str(tmp_path / "eval")])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output.strip().splitlines()[-1])
    assert body["n_windows"] == 3 and body["samples"] == 4 and 0.0 <= body["compliance"] <= 1.0
    assert json.loads((tmp_path / "eval" / "summary.json").read_text())["n_cases"] == body["n_cases"]
    rows = (tmp_path / "eval" / "cases.csv").read_text().splitlines()
    assert len(rows) == body["n_cases"] + 1 and rows[0].startswith("window,index,mode,v_min,v_max")
    # RefineNet on the trained checkpoint, then sampling with it
    refined = tmp_path / "refined.safetensors"
    result = runner.invoke(app, ["train-refinenet", "--planner", str(checkpoint), "--data", str(demos),
                                 "--split", "all", "--samples", "4", "--epochs", "2", "--hidden", "16",
                                 "--export", str(refined)])
    assert result.exit_code == 0, result.output
    assert "epoch 2:" in result.output and "RefineNet trained on" in result.output
    loaded = planners.load(refined)
    assert loaded.model.refiner is not None and loaded.model.config.refine_hidden == 16
    plain, trained = planners.load(checkpoint).model.state_dict(), loaded.model.state_dict()
    assert all(torch.equal(plain[key], trained[key]) for key in plain)  # the DDPM stays frozen
    result = runner.invoke(app, ["eval", "pstl", "--planner", str(refined), "--scenes", str(demos),
                                 "--samples", "4", "--refine", "2", "--json"])
    assert result.exit_code == 0, result.output
    assert "refine x2" in result.output
    result = runner.invoke(app, ["eval", "pstl", "--planner", str(checkpoint), "--scenes", str(demos),
                                 "--refine", "1"])
    assert result.exit_code != 0 and "has no RefineNet (train one with `diffplan train-refinenet`)" in result.output
    result = runner.invoke(app, ["train-refinenet", "--planner", str(refined), "--data", str(demos), "--hidden", "32",
                                 "--export", str(tmp_path / "again.safetensors")])
    assert result.exit_code != 0 and "has a RefineNet of width 16; pass --hidden 16" in result.output


@pytest.mark.parametrize(("arguments", "message"), [
    (["--stl-params", "1,2,3"], "theta has 3 values, expected 5: v_min, v_max, d_lat, h_max, d_safe"),
    (["--stl-params", "1,nan,1,0.2,1"], "theta.v_max = nan is not a finite number"),
    (["--stl-params", "0,50,1,0.2,1"], "theta.v_max = 50 is outside the calibrated range [0.5, 30] m/s"),
    (["--mode", "reverse"], "unknown --mode 'reverse'; expected one of keep, left, right, stop"),
    (["--guidance", "sometimes"], "unknown --guidance 'sometimes'; expected one of none, last, every"),
])
def test_bad_eval_options_are_one_line_errors(demos, arguments, message):
    result = CliRunner().invoke(app, ["eval", "pstl", "--planner", "pstl", "--scenes", str(demos), *arguments])
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1


def test_eval_pstl_closed_loop_through_the_cli(tmp_path):
    result = CliRunner().invoke(app, ["eval", "pstl", "--planner", "pstl", "--scenes", "navtest-synth",
                                      "--closed-loop", "--limit", "1", "--duration", "2", "--samples", "4",
                                      "--json", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output.strip().splitlines()[-1])
    assert body["n_scenarios"] == 1 and 0.0 <= body["compliance"] <= 1.0 and body["progress_m"] > 0.0
    assert json.loads((tmp_path / "summary.json").read_text()) == body


@pytest.mark.slow
def test_bench_pstl_reports_sampling_and_plan_times_and_speedups():
    result = CliRunner().invoke(app, ["bench", "pstl", "--json", "--seconds", "0.1"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output.strip().splitlines()[-1])
    for name in ("ddim10", "ddim5", "ddpm99", "ddim10_guided", "ddim10_guided3", "ours", "ours_guided",
                 "ours_guided3", "ctg"):
        assert body[f"sampling_time_per_sample_s_{name}"] > 0.0 and body[f"time_per_sample_s_{name}"] > 0.0
    for name in ("ddim10_over_ddpm99", "ddim5_over_ddpm99", "guided_over_ctg", "guided3_over_ctg",
                 "ours_guided_over_ctg", "ours_guided3_over_ctg"):
        assert body[f"speedup_{name}"] > 0.0 and body[f"speedup_{name}_plan"] > 0.0
    for name in ("ddim10", "ddim5", "ddpm99"):  # pSTL's per-window batch: the encoder weighs less per sample
        assert 0.0 < body[f"sampling_time_per_sample_s_{name}_192"]
    for name in ("ddim10", "ddim5"):
        assert body[f"speedup_{name}_over_ddpm99_192"] == pytest.approx(
            body["sampling_time_per_sample_s_ddpm99_192"] / body[f"sampling_time_per_sample_s_{name}_192"],
            rel=1e-3)
