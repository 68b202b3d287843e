"""datagen: demos from expert solves, privileged extras in the store, the resumable job, its CLI."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from datagen.demos import build_demo, future_states
from datagen.expert import FollowExpert, follow_targets
from datagen.job import DriveDatagenConfig, DriveDatagenJob
from diffplan.commands.datagen import app
from diffplan.jobs import RunOptions, run_job
from scenes.drive import CURRENT_INDEX, NUM_FUTURE_STEPS, SIM_DT
from scenes.store import DatasetError, DriveDataset, finalize_dataset, write_shard
from scenes.synthetic import generate_scene, scene_seed
from stl.rules import DEFAULT_PARAMS, SpeedBandParams
from trajopt.expert import ExpertResult, ExpertStatus

ROOT = Path(__file__).resolve().parents[2]
SMALL = DriveDatagenConfig(n=4, demos_per_scene=2, shard_size=2)


def dataset_hash(root: Path) -> str:
    """sha256 over every file's relative path and bytes, sorted by path, excluding nothing."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("dg") / "one"
    run_job(DriveDatagenJob(SMALL), root)
    return root, dataset_hash(root)


def test_two_workers_write_the_same_bytes(small, tmp_path):
    _, expected = small
    summary = run_job(DriveDatagenJob(SMALL), tmp_path / "two", RunOptions(workers=2))
    assert dataset_hash(tmp_path / "two") == expected
    assert summary.attempts == SMALL.n * SMALL.demos_per_scene
    assert summary.demos + sum(summary.failures.values()) == summary.attempts


def test_fatrop_datasets_do_not_depend_on_the_worker_count(tmp_path):
    # fatrop keeps state between calls: without DriveExpert.reset() per shard, shard 1's iterations depended
    # on whether the process had solved shard 0 first (its fatrop failures)
    config = DriveDatagenConfig(n=8, demos_per_scene=2, shard_size=2, solver="fatrop")
    run_job(DriveDatagenJob(config), tmp_path / "one")
    run_job(DriveDatagenJob(config), tmp_path / "two", RunOptions(workers=2))
    assert dataset_hash(tmp_path / "one") == dataset_hash(tmp_path / "two")


def test_ray_local_backend_writes_the_same_bytes(small, tmp_path):
    ray = pytest.importorskip("ray")
    _, expected = small
    run_job(DriveDatagenJob(SMALL), tmp_path / "ray", RunOptions(ray="local"))
    assert not ray.is_initialized()
    assert dataset_hash(tmp_path / "ray") == expected


def test_demos_round_trip_with_extras(small):
    root, _ = small
    data = DriveDataset.open(root)
    assert len(data) > 0 and data.info.extras["extra.solver.status"] == "string"
    for i in range(len(data)):
        scene, extras = data[i], data.extras(i)
        source_id, k = scene.metadata.scene_id.rsplit("-demo", 1)
        assert int(k) < SMALL.demos_per_scene
        rules = {key.split(".")[1] for key in extras if key.startswith("stl.")}
        assert rules and all(extras[f"robustness.{rule}"] >= 0 for rule in rules)
        assert extras["solver.status"] == "success" and extras["target.lane"] in (-1, 0, 1)
        source = generate_scene(scene.metadata.seed, "train")
        assert source.metadata.scene_id == source_id
        np.testing.assert_array_equal(scene.ego.pose[: CURRENT_INDEX + 1],
                                      source.ego.pose[: CURRENT_INDEX + 1])
        step = np.linalg.norm(np.diff(scene.ego.pose[CURRENT_INDEX:, :2], axis=0), axis=1) / SIM_DT
        assert np.allclose(step, scene.ego.velocity[CURRENT_INDEX + 1:, 0], atol=0.5)


def _result(states: np.ndarray, status: ExpertStatus = ExpertStatus.SUCCESS) -> ExpertResult:
    """A solve of 3 s at 0.1 s."""
    return ExpertResult(status, states, np.zeros((30, 2)), SIM_DT, 17, 3.0, {"speed_band": 1.5},
                        DEFAULT_PARAMS.only(["speed_band"]))


def test_short_horizon_is_extended_at_constant_speed_and_yaw_rate():
    scene = generate_scene(scene_seed("train", 0, 1), "train")
    now = scene.current_pose
    t = SIM_DT * np.arange(31)
    states = np.column_stack([now[0] + 5 * t * np.cos(now[2]), now[1] + 5 * t * np.sin(now[2]),
                              np.full_like(t, now[2]), np.full_like(t, 5.0)])
    future, extra = future_states(states)
    assert future.shape == (NUM_FUTURE_STEPS, 4) and extra == 20
    np.testing.assert_allclose(np.linalg.norm(np.diff(future[:, :2], axis=0), axis=1), 0.5, atol=1e-9)
    target = follow_targets(scene, DEFAULT_PARAMS, np.random.default_rng(0), 1)[0]
    demo, extras = build_demo(scene, _result(states), target, 3)
    assert demo.metadata.scene_id.endswith("-demo3") and demo.validate() is demo
    np.testing.assert_allclose(demo.ego.velocity[CURRENT_INDEX + 1:, 0], 5.0)
    assert extras["solver.iterations"] == 17 and extras["horizon.steps"] == 30
    assert extras["solver.status"] == "success" and extras["stl.speed_band.v_max"] == 15.0
    with pytest.raises(ValueError, match="failed solve"):
        build_demo(scene, _result(states, status=ExpertStatus.INFEASIBLE), target, 0)


def test_follow_expert_warm_start_and_robustness():
    scene = generate_scene(scene_seed("train", 0, 10), "train")  # braking now: logged a = -1.55 m/s^2
    logged = float(scene.ego.acceleration[CURRENT_INDEX, 0])
    assert logged < -1.5
    expert = FollowExpert(horizon=40)
    target = dataclasses.replace(follow_targets(scene, DEFAULT_PARAMS, np.random.default_rng(1), 1)[0],
                                 reference_speed=float(scene.ego.speed[CURRENT_INDEX]))  # hold the speed
    first = expert.solve(scene, target)
    assert first.states.shape == (41, 4) and first.controls.shape == (40, 2)
    assert set(first.robustness) == set(target.rule_params.names) and first.params == target.rule_params
    # A cold solve starts from the logged deceleration and eases it off at the jerk limit (0.8 j_max);
    # a solve warm-started from an earlier plan starts at a = 0 and so holds the speed from the first step.
    j_step = 0.8 * target.rule_params.comfort.j_max * expert.dt
    assert first.controls[0, 0] == pytest.approx(logged + j_step)
    warm = expert.solve(scene, target, warm_start=first.warm_start)
    assert warm.controls[0, 0] == 0.0 and np.all(warm.states[:, 3] == warm.states[0, 3])
    assert first.states[1, 3] == pytest.approx(warm.states[1, 3] + (logged + j_step) * expert.dt)
    assert warm.iterations < first.iterations  # no jerk-limited steps


def test_store_extras_are_optional_nullable_and_checked(tmp_path):
    scenes = [generate_scene(scene_seed("train", 0, i), "train") for i in range(2)]
    write_shard(tmp_path / "a", 0, scenes)
    write_shard(tmp_path / "b", 0, scenes, extras=None)
    finalize_dataset(tmp_path / "a", {}, 1)
    finalize_dataset(tmp_path / "b", {}, 1)
    assert dataset_hash(tmp_path / "a") == dataset_hash(tmp_path / "b")
    assert "extras" not in json.loads((tmp_path / "a" / "info.json").read_text())
    assert DriveDataset.open(tmp_path / "a").extras(1) == {}

    write_shard(tmp_path / "c", 0, scenes, extras=[{"x": 1, "s": "a"}, {"x": 2.5, "y": 3}])
    write_shard(tmp_path / "c", 1, [], extras=[], allow_empty=True)
    info = finalize_dataset(tmp_path / "c", {}, 2)
    assert info.extras == {"extra.s": "string", "extra.x": "float64", "extra.y": "int64"}
    data = DriveDataset.open(tmp_path / "c")
    assert len(data) == 2 and data.info.shard_sizes == (2, 0)
    assert data.extras(0) == {"x": 1.0, "s": "a"} and data.extras(1) == {"x": 2.5, "y": 3}
    for bad, match in (([{"x": True}, {}], "bool"), ([{"x": float("nan")}, {}], "finite"),
                       ([{"x": 1}, {"x": "a"}], "mixes"), ([{}], "2 scenes")):
        with pytest.raises(DatasetError, match=match):
            write_shard(tmp_path / "d", 0, scenes, extras=bad)
    with pytest.raises(DatasetError, match="no scenes"):
        write_shard(tmp_path / "d", 0, [])


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "diffplan.commands.datagen", "drive", *args]


def test_resume_after_kill_gives_the_same_bytes(tmp_path):
    args = ["--n", "16", "--demos-per-scene", "2", "--shard-size", "2"]
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    job = subprocess.Popen(_cli(*args, "--out", str(out)), cwd=ROOT, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not (out / "meta" / "datagen" / "unit-00000.json").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # somewhere inside a later shard
    job.send_signal(signal.SIGKILL)
    job.wait()
    assert not (out / "info.json").exists(), "the job finished before it could be killed"
    again = subprocess.run(_cli(*args, "--out", str(out), "--resume"), cwd=ROOT, env=env,
                           capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr
    config = DriveDatagenConfig(n=16, demos_per_scene=2, shard_size=2)
    run_job(DriveDatagenJob(config), tmp_path / "whole")
    assert dataset_hash(out) == dataset_hash(tmp_path / "whole")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_ctrl_c_stops_within_seconds_and_resume_gives_the_bytes_of_a_clean_run(tmp_path, workers):
    """A real Ctrl-C (SIGINT to the process group) in the middle of IPOPT solves: IPOPT swallows the interrupt
    inside a solve, which used to end that solve as a failure and commit the shard anyway."""
    args = ["--n", "12", "--demos-per-scene", "2", "--shard-size", "2", "--workers", workers]
    out = tmp_path / "interrupted"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    job = subprocess.Popen(_cli(*args, "--out", str(out)), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 120
    while not (out / "meta" / "datagen" / "unit-00000.json").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # somewhere inside a later shard's solves
    os.killpg(job.pid, signal.SIGINT)
    start = time.monotonic()
    _, err = job.communicate(timeout=60)
    assert time.monotonic() - start < 10.0 and job.returncode == 130, err
    assert "interrupted" in err and not (out / "info.json").exists()
    again = subprocess.run(_cli(*args, "--out", str(out), "--resume"), cwd=ROOT, env=env, capture_output=True,
                           text=True, check=False)
    assert again.returncode == 0, again.stderr
    run_job(DriveDatagenJob(DriveDatagenConfig(n=12, demos_per_scene=2, shard_size=2)), tmp_path / "whole")
    assert dataset_hash(out) == dataset_hash(tmp_path / "whole")


def test_gap_scenes_only_solves_just_the_scenes_with_a_controllable_gap(tmp_path):
    from datagen.expert import HORIZON_STEP
    from stl.signals import controllable_gap

    config = DriveDatagenConfig(n=8, demos_per_scene=2, shard_size=4, gap_fraction=1.0, gap_scenes_only=True,
                                horizon=40)
    scenes = [generate_scene(scene_seed("train", 0, i), "train") for i in range(config.n)]
    chosen = [i for i, scene in enumerate(scenes) if controllable_gap(scene, HORIZON_STEP * 40) is not None]
    assert chosen == [4, 6]  # scenes 4 and 6 close in on an agent; the rest have none near ahead
    summary = run_job(DriveDatagenJob(config), tmp_path / "gaps")
    assert summary.skipped == 6 and summary.attempts == 4
    ids = {DriveDataset.open(tmp_path / "gaps")[i].metadata.scene_id.rsplit("-demo", 1)[0]
           for i in range(summary.demos)}
    assert ids <= {scenes[i].metadata.scene_id for i in chosen} and summary.demos >= 1
    records = sorted((tmp_path / "gaps" / "meta" / "datagen").glob("unit-*.json"))
    assert [json.loads(r.read_text()).get("skipped") for r in records] == [4, 2]  # scenes 0-3, 4-7
    done, _ = DriveDatagenJob(config).finished(tmp_path / "gaps")  # a resumed job counts them again
    assert sum(report.skipped for report in done.values()) == 6
    assert DriveDatagenJob(config).amount(done[1]) == 2 * 2 + 4  # the bar counts a skipped scene as its 2


@pytest.mark.parametrize(("args", "message"), [
    (["--n", "0"], "--n must be a positive"),
    (["--demos-per-scene", "0"], "--demos-per-scene must be positive"),
    (["--params", "/no/such/params.json"], "params file not found"),
    (["--workers", "0"], "--workers must be positive"),
    (["--expert", "oracle"], "unknown expert"),
    (["--solver", "snopt"], "unknown --solver 'snopt'"),
    (["--split", "dev"], "unknown split"),
    (["--gap-fraction", "1.5"], "--gap-fraction must be in [0, 1], got 1.5"),
    (["--gap-fraction", "0.5", "--expert", "follow"], "--gap-fraction needs the trajopt expert"),
    (["--gap-scenes-only"], "--gap-scenes-only needs gap targets: set --gap-fraction above 0"),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path, args, message):
    result = CliRunner().invoke(app, ["drive", "--out", str(tmp_path / "x"), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_cli_compiled_without_a_compiler_is_one_line_exit_2(tmp_path, monkeypatch):
    from trajopt import compiled

    monkeypatch.setattr(compiled, "COMPILER", "no-such-cc")
    result = CliRunner().invoke(app, ["drive", "--out", str(tmp_path / "x"), "--compiled"])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == "error: --compiled needs a C compiler: no-such-cc is not on PATH"


def test_cli_refuses_existing_out_and_changed_resume(small, tmp_path):
    root, _ = small
    runner = CliRunner()
    result = runner.invoke(app, ["drive", "--out", str(root), "--n", "4"])
    assert result.exit_code == 2 and "--resume" in result.output
    result = runner.invoke(app, ["drive", "--out", str(root), "--n", "5", "--demos-per-scene", "2",
                                 "--shard-size", "2", "--resume"])
    assert result.exit_code == 2 and "n=4" in result.output
    result = runner.invoke(app, ["drive", "--out", str(root), "--n", "4", "--demos-per-scene", "2",
                                 "--shard-size", "2", "--resume"])
    assert result.exit_code == 0, result.output
    assert "demos written" in result.output


def test_cli_with_a_params_file(tmp_path):
    from stl.calibrate import CalibratedParams

    rules = DEFAULT_PARAMS.with_rule("speed_band", SpeedBandParams(v_min=0.0, v_max=12.0))
    CalibratedParams(rules, 0.9, {}, {}, "x", 0, {}, 40, 0.1).save(tmp_path / "params.json")
    out = tmp_path / "p"
    result = CliRunner().invoke(app, ["drive", "--out", str(out), "--n", "2", "--params",
                                      str(tmp_path / "params.json")])
    assert result.exit_code == 0, result.output
    data = DriveDataset.open(out)
    assert data.info.generator_config["params"]["speed_band"]["v_max"] == 12.0
    # Each scene's first demo uses the calibrated parameters, with v_max raised to at least the current
    # speed + 1 m/s where needed (the ego cannot shed speed at once); the others are pSTL-perturbed.
    first = [i for i in range(len(data)) if data[i].metadata.scene_id.endswith("-demo0")]
    for i in first:
        v_now = float(data[i].ego.speed[CURRENT_INDEX])
        assert data.extras(i)["stl.speed_band.v_max"] == max(12.0, v_now + 1.0)
    assert first
