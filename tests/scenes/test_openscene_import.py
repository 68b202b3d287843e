"""Synthetic scenes -> OpenScene logs + nuPlan maps (export) -> our store (import): the same scenes at the
2 Hz frames, the same scores, and the import job's resume, reports and one-line errors."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
from pathlib import Path

import numpy as np
import pytest

from diffplan.jobs import RunOptions, run_job
from eval.runner import EvalConfig, evaluate_scenes
from scenes.adapters.errors import SourceError
from scenes.adapters.import_job import OpenSceneImportConfig, OpenSceneImportJob
from scenes.drive import CURRENT_INDEX, NUM_STEPS
from scenes.exporters.openscene_dataset import export_openscene, scene_offset, translate_scene
from scenes.store import DriveDataset, completed_shards, damaged_shard, finalize_dataset, write_shard
from scenes.synthetic import generate_scene

SEEDS = (1100000000, 1100000153, 1100000204)  # straight road, an intersection, a merge (test split)
FRAMES = np.arange(0, NUM_STEPS, 5)  # the 2 Hz steps an exported log holds


@pytest.fixture(scope="module")
def originals() -> list:
    return [translate_scene(generate_scene(seed, "test"), scene_offset(k)) for k, seed in enumerate(SEEDS)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export")
    export_openscene([generate_scene(seed, "test") for seed in SEEDS], out)
    return out


@pytest.fixture(scope="module")
def imported(exported, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("import") / "data"
    config = OpenSceneImportConfig(str(exported / "logs"), str(exported / "maps"),
                                   str(exported / "scene_filter.yaml"))
    info, reports = run_job(OpenSceneImportJob(config), out)
    assert info.num_episodes == len(SEEDS)
    assert [(r.windows, r.kept, r.dropped) for r in reports] == [(15, 1, {"not_in_filter": 1, "too_short": 13})] * 3
    return out


def test_imported_scenes_equal_the_exported_ones_at_the_log_frames(originals, imported):
    data = DriveDataset(imported)
    for k, original in enumerate(originals):
        scene = data[k]
        assert data.extras(k)["source.log_name"].endswith(original.metadata.scene_id)
        np.testing.assert_allclose(scene.ego.pose[FRAMES], original.ego.pose[FRAMES], rtol=0, atol=1e-9)
        row_of = {int(t): r for r, t in enumerate(original.agents.track_ids)}
        rows = np.array([row_of[int(t)] for t in scene.agents.track_ids], np.int64)  # KeyError: a new track
        seen = original.agents.valid[:, FRAMES].any(axis=1)
        assert set(scene.agents.track_ids.tolist()) == set(original.agents.track_ids[seen].tolist())
        valid = scene.agents.valid[:, FRAMES]
        assert np.array_equal(valid, original.agents.valid[rows][:, FRAMES])
        np.testing.assert_allclose(scene.agents.xy[:, FRAMES][valid], original.agents.xy[rows][:, FRAMES][valid],
                                   rtol=0, atol=1e-9)
        np.testing.assert_allclose(scene.agents.velocity[:, FRAMES][valid],
                                   original.agents.velocity[rows][:, FRAMES][valid], rtol=0, atol=1e-9)
        assert scene.command == original.command
        ahead = list(original.route.lane_ids)
        assert list(scene.route.lane_ids) == ahead[len(ahead) - len(scene.route.lane_ids):]
        assert set(scene.map.lane_ids) <= set(original.map.lane_ids)
        lights = dict(zip(original.traffic_lights.lane_ids.tolist(), original.traffic_lights.is_red[:, FRAMES]))
        for lane, red in zip(scene.traffic_lights.lane_ids.tolist(), scene.traffic_lights.is_red[:, FRAMES]):
            assert np.array_equal(red[1:], lights[lane][1:])
        assert scene.ego.pose.shape == (NUM_STEPS, 3) and np.isfinite(scene.ego.pose[CURRENT_INDEX]).all()


@pytest.mark.parametrize("planner", ["pdm-closed", "constant-velocity", "human"])
def test_imported_scenes_score_as_the_originals(originals, imported, tmp_path, planner):
    """Between the 2 Hz frames agents and ego are interpolated, so scores agree to 1e-6, not bit for bit."""
    source = tmp_path / "originals"
    write_shard(source, 0, originals)
    finalize_dataset(source, {"test": "translated originals"}, 1)
    indices = list(range(len(SEEDS)))
    want = [r.score for r in evaluate_scenes(source, EvalConfig(planner), indices)]
    got = [r.score for r in evaluate_scenes(imported, EvalConfig(planner), indices)]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_the_import_resumes_and_refuses_a_different_job(exported, imported, tmp_path):
    config = OpenSceneImportConfig(str(exported / "logs"), str(exported / "maps"),
                                   str(exported / "scene_filter.yaml"))
    before = {p: p.read_bytes() for p in imported.rglob("*.parquet")}
    info, reports = run_job(OpenSceneImportJob(config), imported, RunOptions(resume=True))
    assert all(r.resumed for r in reports) and info.num_episodes == len(SEEDS)
    assert {p: p.read_bytes() for p in imported.rglob("*.parquet")} == before
    other = OpenSceneImportConfig(str(exported / "logs"), str(exported / "maps"), None)
    with pytest.raises(Exception, match="resume"):
        run_job(OpenSceneImportJob(other), imported, RunOptions(resume=True))


def test_a_bad_log_stops_the_import_and_the_written_shards_stay_valid(exported, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    for path in sorted((exported / "logs").glob("*.pkl")):
        (logs / path.name).write_bytes(path.read_bytes())
    (logs / "zz-last.pkl").write_bytes(pickle.dumps([{"token": Path("x")}]))
    config = OpenSceneImportConfig(str(logs), str(exported / "maps"))
    with pytest.raises(SourceError, match=r"zz-last\.pkl.*pathlib"):
        run_job(OpenSceneImportJob(config), tmp_path / "out")
    assert completed_shards(tmp_path / "out") == {0, 1, 2}
    assert all(damaged_shard(tmp_path / "out", shard) is None for shard in range(3))


def _cli(diffplan_exe: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([diffplan_exe, "scenes", "import", "openscene", *args], capture_output=True, text=True,
                          timeout=300, check=False)


def test_cli_imports_and_reports_per_log(diffplan_exe, exported, tmp_path):
    done = _cli(diffplan_exe, "--logs", str(exported / "logs"), "--maps", str(exported / "maps"), "--filter",
                str(exported / "scene_filter.yaml"), "--out", str(tmp_path / "data"))
    assert done.returncode == 0, done.stderr
    assert "scenes written" in done.stdout and "dropped: not_in_filter" in done.stdout
    assert len(DriveDataset(tmp_path / "data")) == len(SEEDS)


@pytest.mark.parametrize(("change", "message"), [
    ("absent_log", "scene_filter.yaml: "),
    ("no_maps", "nuplan-maps-v1.0.json"),
    ("unknown_version", "unknown version"),
])
def test_cli_bad_input_is_one_line(diffplan_exe, exported, tmp_path, change, message):
    filter_path, maps = exported / "scene_filter.yaml", exported / "maps"
    if change == "absent_log":
        filter_path = tmp_path / "scene_filter.yaml"
        filter_path.write_text((exported / "scene_filter.yaml").read_text().replace("log_names:\n",
                                                                                     "log_names:\n- no-such-log\n"))
    elif change == "no_maps":
        maps = tmp_path / "empty-maps"
        maps.mkdir()
    else:
        maps = tmp_path / "maps"
        subprocess.run(["cp", "-r", str(exported / "maps"), str(maps)], check=True)
        (maps / "us-nv-las-vegas-strip" / "9.12.1883").rename(maps / "us-nv-las-vegas-strip" / "elsewhere")
    done = _cli(diffplan_exe, "--logs", str(exported / "logs"), "--maps", str(maps), "--filter", str(filter_path),
                "--out", str(tmp_path / "data"))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and message in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_cli_exports_a_dataset_that_imports_back(diffplan_exe, originals, tmp_path):
    source = tmp_path / "scenes"
    write_shard(source, 0, [generate_scene(seed, "test") for seed in SEEDS])
    finalize_dataset(source, {"test": "export"}, 1)
    export = [diffplan_exe, "scenes", "export", str(source), "--out", str(tmp_path / "export")]
    done = subprocess.run([*export, "--limit", "2"], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "export" / "maps").iterdir()) == [
        "nuplan-maps-v1.0.json", "sg-one-north", "us-ma-boston", "us-nv-las-vegas-strip",
        "us-pa-pittsburgh-hazelwood"]
    assert len(list((tmp_path / "export" / "logs").glob("*.pkl"))) == 2
    done = _cli(diffplan_exe, "--logs", str(tmp_path / "export" / "logs"), "--maps", str(tmp_path / "export" / "maps"),
                "--filter", str(tmp_path / "export" / "scene_filter.yaml"), "--out", str(tmp_path / "data"))
    assert done.returncode == 0, done.stderr
    data = DriveDataset(tmp_path / "data")
    np.testing.assert_allclose(data[1].ego.pose[FRAMES], originals[1].ego.pose[FRAMES], rtol=0, atol=1e-9)
    bad = subprocess.run([*export, "--format", "waymo"], capture_output=True, text=True, timeout=300, check=False)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--format" in bad.stderr, bad.stderr


def test_an_imported_scene_exported_and_imported_again_plans_and_scores_the_same(imported, tmp_path):
    """An imported scene lies on its 2 Hz frames, so a second round trip changes it only by rounding (the
    quaternion and ego-frame box conversions), and planners and the scorer give the same results on both."""
    first = DriveDataset(imported)
    scenes = [first[k] for k in range(len(first))]
    export_openscene(scenes, tmp_path / "again")
    config = OpenSceneImportConfig(str(tmp_path / "again" / "logs"), str(tmp_path / "again" / "maps"),
                                   str(tmp_path / "again" / "scene_filter.yaml"))
    run_job(OpenSceneImportJob(config), tmp_path / "data")
    second = DriveDataset(tmp_path / "data")
    for k, scene in enumerate(scenes):
        again = second[k]
        offset = np.r_[scene_offset(k), 0.0]
        np.testing.assert_allclose(again.ego.pose, scene.ego.pose + offset, rtol=0, atol=1e-9)
        assert np.array_equal(again.agents.valid, scene.agents.valid)
        np.testing.assert_allclose(again.agents.xy[again.agents.valid], (scene.agents.xy + offset[:2])[
            scene.agents.valid], rtol=0, atol=1e-9)
        assert again.route.lane_ids == scene.route.lane_ids and again.command == scene.command
        assert np.array_equal(again.traffic_lights.is_red, scene.traffic_lights.is_red)
    translated = tmp_path / "translated"
    write_shard(translated, 0, [translate_scene(s, scene_offset(k)) for k, s in enumerate(scenes)])
    finalize_dataset(translated, {"test": "first import, placed as exported"}, 1)
    for planner in ("pdm-closed", "constant-velocity", "human"):
        want = [r.score for r in evaluate_scenes(translated, EvalConfig(planner), list(range(len(scenes))))]
        got = [r.score for r in evaluate_scenes(tmp_path / "data", EvalConfig(planner), list(range(len(scenes))))]
        assert got == want, (planner, got, want)


@pytest.mark.slow
def test_every_dataset_command_runs_on_imported_scenes(diffplan_exe, exported, tmp_path):
    """Import as a training split, then calibrate STL rules, fit anchors, train DiffusionDrive for two steps,
    score the checkpoint and draw a scene, all on the imported dataset."""
    data = tmp_path / "data"
    assert _cli(diffplan_exe, "--logs", str(exported / "logs"), "--maps", str(exported / "maps"), "--filter",
                str(exported / "scene_filter.yaml"), "--split", "train", "--out", str(data)).returncode == 0
    steps = [
        ["stl", "calibrate", "--data", str(data), "--out", str(tmp_path / "params.json")],
        ["stl", "check", "--data", str(data), "--params", str(tmp_path / "params.json")],
        ["anchors", "--data", str(data), "--k", "2", "--out", str(tmp_path / "anchors.npy")],
        ["train", "diffusiondrive", "--data", str(data), "--out", str(tmp_path / "train"), "--epochs", "1",
         "--batch-size", "2", "--max-steps", "2", "--accelerator", "cpu", "--devices", "1", "--model",
         f"anchors={tmp_path / 'anchors.npy'}", "--model", "num_modes=2", "--export", str(tmp_path / "dd.safetensors")],
        ["eval", "navsim", "--planner", str(tmp_path / "dd.safetensors"), "--scenes", str(data), "--out",
         str(tmp_path / "run"), "--worst", "1"],
        ["scenes", "show", str(data), "--index", "1", "--out", str(tmp_path / "bev.png")],
    ]
    for args in steps:
        done = subprocess.run([diffplan_exe, *args], capture_output=True, text=True, timeout=600, check=False,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert done.returncode == 0, (args[:2], done.stderr[-2000:])
    assert (tmp_path / "bev.png").stat().st_size > 10_000
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert (summary["n_scenes"], summary["n_failed"]) == (len(SEEDS), 0)


def test_imported_logs_run_in_closed_loop(imported):
    """The closed loop on imported OpenScene logs: their 5 s of future bound it; the human log replays
    cleanly and PDM-Closed plans all the way, with IDM agents too."""
    from eval.closed_loop.job import ClosedLoopConfig, LogSource, evaluate_logs
    from eval.closed_loop.simulation import AgentMode, SimulationConfig

    source = LogSource(str(imported))
    human = evaluate_logs(source, range(len(SEEDS)), ClosedLoopConfig("human"))
    assert [(r.failed, r.duration) for r in human] == [(False, 5.0)] * len(SEEDS)
    assert [r.metrics.score for r in human] == pytest.approx([1.0] * len(SEEDS), abs=1e-3)  # EP of 2 Hz logs
    pdm = evaluate_logs(source, range(len(SEEDS)), ClosedLoopConfig("pdm-closed", SimulationConfig(
        agents=AgentMode.IDM)))
    assert all(not r.failed and r.latency_ms.size == 50 for r in pdm)
