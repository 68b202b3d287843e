"""Benchmarks as verifiable artifacts: shipped manifests, checks while building and evaluating, the identity
recorded in summary.json, and `eval table`'s refusal to mix sets."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from diffplan.jobs import run_job
from eval.pointnav import benchmark as pointnav_benchmark
from scenes import manifest as manifest_module
from scenes.digest import combined_digest, content_digest
from scenes.generate import (
    GenerateConfig,
    SceneGenerationJob,
    benchmark_config,
    checked_scene,
    dataset_identity,
)
from scenes.manifest import BenchmarkIdentity, BenchmarkManifest, ManifestError, load_manifest
from scenes.store import DriveDataset
from scenes.synthetic import GENERATOR_VERSION

NAVTEST_SET_HASH = "863d0b2b06c7da19"  # navtest-synth v3, synthetic-drive/3
POINTNAV_SET_HASHES = {"wheeled": "70f89d4177902de5", "quadruped": "7bb7369500753351"}  # pointnav-synth v2


def diffplan(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "diffplan"
    return subprocess.run([str(exe), *args], check=False, capture_output=True, text=True, timeout=600)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_shipped_manifests_are_whole_and_for_this_generator():
    navtest = load_manifest("navtest-synth", GENERATOR_VERSION)
    assert (len(navtest), navtest.version, navtest.set_hash[:16]) == (500, "3", NAVTEST_SET_HASH)
    assert navtest.item_ids[0] == "test-1100000000" and navtest.item_ids[-1] == "test-1100000499"
    for robot, set_hash in POINTNAV_SET_HASHES.items():
        manifest = pointnav_benchmark.shipped_manifest("pointnav-synth", robot)
        worlds = [i for i in manifest.item_ids if i.startswith("world:")]
        assert (len(manifest), len(worlds), manifest.set_hash[:16]) == (220, 20, set_hash)


def test_first_navtest_scenes_match_the_manifest():
    config, manifest = benchmark_config("navtest-synth"), load_manifest("navtest-synth", GENERATOR_VERSION)
    for index in range(12):  # every scenario type, and the start of the second round
        checked_scene(config, index, manifest)  # raises on a difference


def test_a_differing_scene_stops_the_build_at_that_scene(tmp_path, monkeypatch):
    shipped = load_manifest("navtest-synth", GENERATOR_VERSION)
    digests = list(shipped.digests)
    digests[1] = "0" * 64
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "navtest-synth.json").write_text(dataclasses.replace(shipped, digests=tuple(digests)).to_json())
    monkeypatch.setattr(manifest_module, "MANIFEST_DIR", folder)
    monkeypatch.setattr(manifest_module.load_manifest, "__defaults__", (folder,))
    config = dataclasses.replace(benchmark_config("navtest-synth"), n=4, shard_size=4)
    with pytest.raises(ManifestError, match=r"test-1100000001 \(item 1\) differs from the manifest"):
        run_job(SceneGenerationJob(config), tmp_path / "ds")
    assert not list((tmp_path / "ds").glob("shards/*.parquet"))  # nothing written for the shard


def test_manifest_file_edited_by_hand_is_refused(tmp_path):
    body = json.loads((manifest_module.MANIFEST_DIR / "navtest-synth.json").read_text())
    body["items"][3][1] = "f" * 64
    path = tmp_path / "navtest-synth.json"
    path.write_text(json.dumps(body))
    with pytest.raises(ManifestError, match="disagrees with its items"):
        BenchmarkManifest.read(path)


@pytest.fixture(scope="module")
def navtest_prefix(tmp_path_factory) -> Path:
    """The first 3 scenes of navtest-synth, built as the benchmark (checked against its manifest)."""
    root = tmp_path_factory.mktemp("navtest") / "navtest-3"
    run_job(SceneGenerationJob(GenerateConfig(n=3, split="test", seed=0, shard_size=3, balanced=True,
                                              benchmark="navtest-synth")), root)
    return root


def test_evaluation_records_benchmark_version_and_set_hash(navtest_prefix, tmp_path):
    result = diffplan("eval", "navsim", "--planner", "constant-velocity", "--scenes", str(navtest_prefix),
                      "--out", str(tmp_path / "cv"), "--worst", "0", "--workers", "1")
    assert result.returncode == 0, result.stderr
    recorded = json.loads((tmp_path / "cv" / "summary.json").read_text())["benchmark"]
    shipped = load_manifest("navtest-synth", GENERATOR_VERSION)
    assert recorded == {"name": "navtest-synth", "version": "3", "set_hash": shipped.set_hash,
                        "evaluated_hash": combined_digest(shipped.digests[:3]), "evaluated": 3, "total": 500,
                        "spread": False, "subset": "navtest-synth v3, first 3 of 500"}
    assert "navtest-synth v3, first 3 of 500" in result.stdout


def test_an_edited_benchmark_is_refused_before_evaluation(navtest_prefix, tmp_path):
    root = tmp_path / "edited"
    shutil.copytree(navtest_prefix, root)
    path = root / "privileged" / "00000.parquet"
    table = pq.read_table(path)
    column = table.column("ego.pose.future").to_pylist()
    column[2][30] += 0.01  # scene 2: x of its 11th future pose (flattened (50, 3)), by 1 cm
    field = table.schema.field("ego.pose.future")
    table = table.set_column(table.column_names.index(field.name), field, pa.array(column, type=field.type))
    pq.write_table(table, path)
    line = one_line_error(diffplan("eval", "navsim", "--planner", "constant-velocity", "--scenes", str(root)))
    assert "test-1100000002 (item 2) differs from the manifest" in line and str(root) in line


def test_dataset_that_is_no_benchmark_is_identified_by_its_scenes(tmp_path):
    config = GenerateConfig(n=2, split="val", seed=5, shard_size=2)
    run_job(SceneGenerationJob(config), tmp_path / "ds")
    identity = dataset_identity(DriveDataset.open(tmp_path / "ds"), 1)
    assert identity == BenchmarkIdentity(None, "", "", combined_digest([content_digest(config.scene(0))]), 1, 2)
    assert identity.subset == "a dataset that is no benchmark, first 1 of 2"


def test_pointnav_cache_is_checked_and_an_edited_file_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFPLAN_CACHE", str(tmp_path))
    episodes = pointnav_benchmark.load_benchmark("pointnav-synth", "wheeled")  # built and checked
    assert len(episodes) == 200 and episodes[0].episode_id == "cluttered-900000-00"
    assert episodes[100].world_id == "rooms-900000"
    path = pointnav_benchmark.benchmark_path("pointnav-synth", "wheeled")
    from eval.pointnav.episodes import write_episodes

    edited = list(episodes)
    edited[7] = dataclasses.replace(edited[7], goal=edited[7].goal + np.array([0.05, 0.0]))
    write_episodes(path, edited)
    with pytest.raises(ManifestError, match="episode cluttered-900000-07 differs"):
        pointnav_benchmark.load_benchmark("pointnav-synth", "wheeled")


def _summary(tmp_path: Path, name: str, identity: BenchmarkIdentity | None) -> Path:
    run = tmp_path / name
    run.mkdir()
    body = {"planner": name, "metric": "pdms-v1", "n_scenes": identity.evaluated if identity else 5,
            "n_failed": 0, "nc": 1.0, "dac": 1.0, "ddc": 1.0, "ttc": 1.0, "c": 1.0, "ep": 0.5, "pdms": 0.8}
    if identity is not None:
        body["benchmark"] = identity.as_json()
    (run / "summary.json").write_text(json.dumps(body))
    return run


def test_eval_table_refuses_runs_on_different_sets_unless_allowed(tmp_path):
    full = BenchmarkIdentity("navtest-synth", "2", "a" * 64, "b" * 64, 500, 500)
    first_100 = dataclasses.replace(full, evaluated_hash="c" * 64, evaluated=100)
    runs = [_summary(tmp_path, "pdm", full), _summary(tmp_path, "dd", full)]
    same = diffplan("eval", "table", *map(str, runs))
    assert same.returncode == 0 and same.stdout.startswith("navtest-synth v2, all 500 (pdms-v1)")
    assert "| pdm |" in same.stdout and "| dd |" in same.stdout
    mixed = [*runs, _summary(tmp_path, "cv", first_100)]
    line = one_line_error(diffplan("eval", "table", *map(str, mixed)))
    assert "evaluated different sets" in line and "first 100 of 500" in line and "--allow-mixed" in line
    allowed = diffplan("eval", "table", "--allow-mixed", *map(str, mixed))
    assert allowed.returncode == 0, allowed.stderr
    assert "MIXED SETS" in allowed.stdout and "| cv ** |" in allowed.stdout and "| pdm * |" in allowed.stdout
    old = _summary(tmp_path, "old", None)  # a run made before summaries recorded their benchmark
    assert "unknown set" in one_line_error(diffplan("eval", "table", str(runs[0]), str(old)))


def test_a_rerun_with_the_same_planner_scenes_and_options_does_no_evaluation_work(navtest_prefix, tmp_path,
                                                                                   monkeypatch):
    from typer.testing import CliRunner

    import diffplan.jobs
    from diffplan.commands.eval import app

    args = ["navsim", "--planner", "constant-velocity", "--scenes", str(navtest_prefix), "--out",
            str(tmp_path / "cv"), "--worst", "0", "--workers", "1", "--json"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output

    def no_work(*args, **kwargs):
        raise AssertionError("evaluated again")

    monkeypatch.setattr(diffplan.jobs, "run_job", no_work)
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert "finished before with the same planner, scenes, options and code" in again.output
    assert again.output.splitlines()[-1] == first.output.splitlines()[-1]  # the same --json summary
    other_seed = CliRunner().invoke(app, [*args, "--seed", "1"])  # another option: evaluated again
    assert isinstance(other_seed.exception, AssertionError) and "evaluated again" in str(other_seed.exception)
