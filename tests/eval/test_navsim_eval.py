"""Closed-loop evaluation: the plan-scoring API, PDM-Closed, failures, the reference cache, the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import planners
from diffplan.jobs import RunOptions, run_job
from eval import reference as reference_module
from eval.reference import ReferenceCache, scene_hash
from eval.results import summarize
from eval.runner import EvalConfig, NavsimEvaluation, evaluate_chunk, evaluate_scene, evaluate_scenes
from eval.scoring import reference_states, score_plans, simulate_plans
from planners import DRIVE_PLAN, DrivePlanner, Plan, register_planner
from planners.pdm.closed import PDMClosed
from planners.pdm.scoring import MetricVersion
from scenes import PLAN_DT, Frame, ScenarioType, Trajectory
from scenes.store import DriveDataset, finalize_dataset, write_shard
from scenes.synthetic import generate_scene, scene_seed
from tests.factories import straight_scene


@register_planner("test-nan")
class NaNPlanner(DrivePlanner):
    """Returns NaN on every second scene (by seed parity), and raises on seeds divisible by 3."""

    def plan(self, observation):
        raise AssertionError("unused")

    privileged = True

    def plan_privileged(self, observation, context):
        scene = context.scene
        if scene.metadata.seed % 3 == 0:
            raise RuntimeError("planner crashed")
        poses = planners.load("constant-velocity").plan(scene.observation()).trajectory.poses.copy()
        if scene.metadata.seed % 2 == 0:
            poses[3, 0] = np.nan
        return Plan(Trajectory(poses, PLAN_DT, Frame.EGO), spec=DRIVE_PLAN)


def scene_seed_id(index: int) -> str:
    return f"test-{scene_seed('test', 0, index):010d}"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("eval") / "ds"
    kinds = [ScenarioType.STRAIGHT_ROAD, ScenarioType.INTERSECTION_LEFT, ScenarioType.PARKED_VEHICLE,
             ScenarioType.CURVED_ROAD, ScenarioType.PEDESTRIAN_CROSSING, ScenarioType.SLOW_VEHICLE]
    scenes = [generate_scene(scene_seed("test", 0, i), "test", kind) for i, kind in enumerate(kinds)]
    write_shard(root, 0, scenes)
    finalize_dataset(root, {"test": True}, 1)
    return root


def test_score_plans_batch_equals_single_and_returns_states():
    scene = straight_scene()
    reference = reference_states(scene)
    plans = np.stack([scene.expert_plan().poses, planners.load("constant-velocity").plan(
        scene.observation()).trajectory.poses, np.zeros((8, 3))])
    batch = score_plans(scene, plans, reference)
    assert batch.states.shape == (3, 41, 4)
    np.testing.assert_allclose(batch.states[:, 0, :2], 0.0)  # everyone starts at the logged rear axle
    for k in range(3):
        single = score_plans(scene, plans[k:k + 1], reference)
        for key, values in single.scores.as_dict().items():
            np.testing.assert_allclose(getattr(batch.scores, key)[k], values[0], atol=1e-9, err_msg=key)
    # The hand scene's lead car (30 m ahead at 5 m/s) would be hit by a 10 m/s plan at 4.7 s, after the
    # 4 s horizon: no collision, but the time-to-collision check fails.
    assert batch.scores.nc[1] == 1.0 and batch.scores.ttc[1] == 0.0
    assert batch.scores.score[1] == pytest.approx((5 * batch.scores.ep[1] + 2 * batch.scores.comfort[1]) / 12)
    # A plan that stays put from 10 m/s: the tracker brakes, progress is well below the others'.
    assert batch.scores.raw_progress[2] < 0.5 * batch.scores.raw_progress[1]
    assert batch.scores.dac[2] == 1.0 and batch.scores.nc[2] == 1.0


def test_pdm_closed_stops_behind_a_slow_lead_and_ranks_15_proposals():
    scene = straight_scene()
    dense, proposals, scores = PDMClosed().trajectory(scene.observation())
    assert dense.shape == (51, 3) and proposals.shape == (15, 41, 3) and scores.shape == (15,)
    # The -1 m offset (to the right) puts the ego's right corners off the road: DAC 0, score 0.
    assert np.all(scores[5:10] == 0.0)
    # Never closer than the IDM minimum gap to the lead's forecast rear bumper (30 m + 5 m/s t - 2.25 m).
    t = 0.1 * np.arange(51)
    gap = 30.0 + 5.0 * t - 2.25 - (dense[:, 0] + 4.049)
    assert gap.min() > 1.0
    plan = planners.load("pdm-closed").plan(scene.observation()).validate()
    np.testing.assert_allclose(plan.trajectory.poses, dense[5::5][:8])


def test_failed_plans_score_zero_and_are_listed(dataset):
    results = evaluate_chunk(str(dataset), list(range(6)), EvalConfig("test-nan")).results
    seeds = [scene_seed("test", 0, i) for i in range(6)]
    for result, seed in zip(results, seeds):
        if seed % 3 == 0:
            assert result.error == "RuntimeError: planner crashed" and result.score == 0.0
        elif seed % 2 == 0:
            assert "non-finite" in result.error and result.score == 0.0
        else:
            assert not result.failed
    failed = sum(r.failed for r in results)
    assert failed == sum(1 for s in seeds if s % 3 == 0 or s % 2 == 0)
    kept = [r.score for r in results if not r.failed]
    assert summarize(results, MetricVersion.PDMS_V1).score == pytest.approx(sum(kept) / 6)
    dropped = summarize(results, MetricVersion.PDMS_V1, drop_failed=True)
    assert dropped.n_scenes == 6 - failed and dropped.score == pytest.approx(np.mean(kept))


def test_human_beats_constant_velocity_and_epdms_is_labelled(dataset):
    human = summarize(evaluate_scenes(dataset, EvalConfig("human"), list(range(6))), MetricVersion.PDMS_V1)
    cv = summarize(evaluate_scenes(dataset, EvalConfig("constant-velocity"), list(range(6))),
                   MetricVersion.PDMS_V1)
    assert human.score > cv.score and human.nc == 1.0
    v2 = summarize(evaluate_scenes(dataset, EvalConfig("human", MetricVersion.EPDMS_V2), list(range(6))),
                   MetricVersion.EPDMS_V2)
    assert v2.as_json()["metric"] == "epdms-v2" and "epdms" in v2.as_json()
    # NAVSIM v2's human filter: every sub-metric the human fails is set to 1, so scored against itself only
    # progress (relative to PDM-Closed) can stay below 1.
    assert (v2.nc, v2.dac, v2.ddc, v2.tlc, v2.ttc, v2.lk, v2.hc, v2.ec) == (1, 1, 1, 1, 1, 1, 1, 1)
    assert v2.score == pytest.approx((5 * v2.ep + 5 + 2 + 2 + 2) / 16)


def test_reference_cache_is_reused_and_invalidated(dataset, tmp_path, monkeypatch):
    dataset = Path(shutil.copytree(dataset, tmp_path / "ds", ignore=shutil.ignore_patterns("cache")))
    assert ReferenceCache.load(dataset).entries == {}
    evaluate_scenes(dataset, EvalConfig("constant-velocity"), [0, 2, 4])
    cache = ReferenceCache.load(dataset)
    assert sorted(cache.entries) == [scene_seed_id(i) for i in (0, 2, 4)]  # written by that evaluation
    scene = DriveDataset.open(dataset)[2]
    cached = cache.get(scene.metadata.scene_id, scene_hash(scene))
    np.testing.assert_array_equal(cached, reference_states(scene))
    monkeypatch.setattr("eval.runner.reference_states", lambda scene: (_ for _ in ()).throw(AssertionError))
    assert len(evaluate_chunk(str(dataset), [2], EvalConfig("constant-velocity")).results) == 1  # from the cache
    other = generate_scene(scene_seed("test", 0, 99), "test", ScenarioType.STRAIGHT_ROAD)
    assert cache.get(scene.metadata.scene_id, scene_hash(other)) is None  # another scene: a miss
    monkeypatch.setattr(reference_module, "code_hash", lambda: "changed")
    assert ReferenceCache.load(dataset).entries == {}  # another code version: everything recomputed


def test_evaluate_scene_records_latency_and_simulated_path():
    scene = straight_scene()
    result = evaluate_scene(scene, 0, planners.load("constant-velocity"), EvalConfig("constant-velocity"),
                            reference_states(scene))
    assert result.latency_ms >= 0 and result.plan.shape == (8, 3)
    np.testing.assert_allclose(result.simulated_xy, simulate_plans(scene, result.plan[None])[0, :, :2])


def run(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "diffplan"
    return subprocess.run([str(exe), *args], check=False, capture_output=True, text=True, timeout=600)


def test_cli_eval_navsim_writes_the_run_folder(dataset, tmp_path):
    out = tmp_path / "run"
    result = run("eval", "navsim", "--planner", "constant-velocity", "--scenes", str(dataset), "--limit", "4",
                 "--workers", "2", "--out", str(out), "--worst", "2", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(summary) == {"metric", "n_scenes", "n_failed", "nc", "dac", "ddc", "ttc", "c", "ep", "pdms"}
    assert summary["metric"] == "pdms-v1" and summary["n_scenes"] == 4
    assert all(0.0 <= summary[k] <= 1.0 for k in ("nc", "dac", "ddc", "ttc", "c", "ep", "pdms"))
    assert "| run |" in (out / "table.md").read_text()  # rows are named after the run folder
    assert len((out / "scenes.csv").read_text().splitlines()) == 5
    assert len(list((out / "worst").glob("*.png"))) == 2
    assert json.loads((out / "summary.json").read_text())["pdms"] == summary["pdms"]


@pytest.mark.parametrize(("args", "needle"), [
    (["--planner", "nope"], "unknown planner 'nope'"),
    (["--planner", "human", "--metric", "pdms2"], "unknown metric 'pdms2'"),
    (["--planner", "human", "--limit", "0"], "--limit must be positive"),
])
def test_cli_eval_bad_input(dataset, args, needle):
    result = run("eval", "navsim", "--scenes", str(dataset), *args)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert needle in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_ray_backend_matches_local_processes(dataset, tmp_path):
    ray = pytest.importorskip("ray")
    config = EvalConfig("constant-velocity")
    local = run_job(NavsimEvaluation(str(dataset), config, (0, 1, 2, 3), config.planner), tmp_path / "local",
                    RunOptions(workers=2))
    remote = run_job(NavsimEvaluation(str(dataset), config, (0, 1, 2, 3), config.planner, chunk_size=2),
                     tmp_path / "ray", RunOptions(ray="local"))
    assert not ray.is_initialized()
    # Ray workers run BLAS single-threaded: sums may round differently in the last bits.
    assert [r.score for r in remote] == pytest.approx([r.score for r in local], abs=1e-12)
    assert [r.scene_id for r in remote] == [r.scene_id for r in local]


def test_sub_metric_names_and_orders_of_every_output(tmp_path):
    from eval.report import markdown_table, write_run
    from eval.results import SceneResult, Summary
    from planners.pdm.scoring import ProposalScores, SubMetrics

    values = dict(zip(SubMetrics.NAMES, (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1), strict=True))
    result = SceneResult(index=0, scene_id="a", scenario_type="x", score=0.5, **values)
    assert list(result.csv_row()) == [
        "index", "scene_id", "scenario_type", "error", "nc", "dac", "ddc", "tlc", "ttc", "ep", "comfort", "lk",
        "hc", "ec", "score", "raw_progress", "reference_progress", "latency_ms"]
    assert SubMetrics.NAMES == tuple(name for name in ProposalScores.NAMES)
    for version, score_key, extra in ((MetricVersion.PDMS_V1, "pdms", []),
                                      (MetricVersion.EPDMS_V2, "epdms", ["tlc", "lk", "hc", "ec"])):
        summary = summarize([result], version)
        body = summary.as_json()
        assert list(body) == ["metric", "n_scenes", "n_failed", "nc", "dac", "ddc", "ttc", "c", "ep", *extra,
                              score_key]
        assert body["c"] == 0.4 and body[score_key] == 0.5
        assert Summary.from_json(body).as_json() == body
        write_run(tmp_path / version.value, "p", [result], summary, {})
        header = (tmp_path / version.value / "scenes.csv").read_text().splitlines()[0]
        assert header.split(",") == list(result.csv_row())
        assert list(json.loads((tmp_path / version.value / "summary.json").read_text()))[:len(body) + 1] == [
            "planner", *body]
    v1 = markdown_table([("m", summarize([result], MetricVersion.PDMS_V1))]).splitlines()
    assert v1[0] == "| Method | NC | DAC | TTC | Comf | EP | PDMS |"
    assert v1[2] == "| m | 100.0 | 90.0 | 60.0 | 40.0 | 50.0 | 50.0 |"
    v2 = markdown_table([("m", summarize([result], MetricVersion.EPDMS_V2))]).splitlines()
    assert v2[0] == "| Method | NC | DAC | DDC | TLC | EP | TTC | LK | HC | EC | EPDMS |"
    old = {"metric": "pdms-v1", "n_scenes": 3, "n_failed": 0, "nc": 1.0, "dac": 1.0, "ddc": 1.0, "ttc": 1.0,
           "c": 0.5, "ep": 0.9, "pdms": 0.8}  # a v1 summary: no v2-only sub-metrics
    read = Summary.from_json(old)
    assert read.comfort == 0.5 and (read.tlc, read.lk, read.hc, read.ec) == (1.0, 1.0, 1.0, 1.0)


def test_reactive_agents_simulate_the_plan_once(monkeypatch):
    import eval.scoring

    scene = straight_scene()
    calls = []
    simulate = eval.scoring.simulate_plans

    def counted(*args, **kwargs):
        calls.append(args[1].shape)
        return simulate(*args, **kwargs)

    monkeypatch.setattr(eval.scoring, "simulate_plans", counted)
    config = EvalConfig("constant-velocity", reactive_agents=True)
    result = evaluate_scene(scene, 0, planners.load("constant-velocity"), config, reference_states(scene))
    assert not result.failed and calls == [(1, 8, 3)]  # the reactive agents and the scorer share one simulation


def test_out_naming_a_file_or_another_planners_run_is_refused_before_any_work(dataset, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import eval.runner
    from diffplan.commands.eval import app

    def run(planner: str, out: Path, *extra: str):
        return CliRunner().invoke(app, ["navsim", "--planner", planner, "--scenes", str(dataset), "--limit", "2",
                                        "--workers", "1", "--worst", "0", "--out", str(out), *extra])

    assert run("constant-velocity", tmp_path / "cv").exit_code == 0
    monkeypatch.setattr(eval.runner, "evaluate_chunk", lambda *a, **k: (_ for _ in ()).throw(AssertionError))
    (tmp_path / "file").write_text("not a run folder")
    for planner, out, extra, needle in (
            ("human", tmp_path / "file", (), "exists and is not a directory"),
            ("human", tmp_path / "cv", (), "already exists and is not empty; pass --resume to continue it"),
            ("human", tmp_path / "cv", ("--resume",), "cannot resume, it was started with planner='constant-velocity'")):
        result = run(planner, out, *extra)
        assert result.exit_code == 2, result.output
        assert needle in result.output and len(result.output.strip().splitlines()) == 1
    assert "human" not in (tmp_path / "cv" / "summary.json").read_text()  # nothing of the human's run written
