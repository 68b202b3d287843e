"""The nuScenes commands end to end on our scenes: scenes export --format nuscenes, scenes import nuscenes
(through nuscenes-devkit), eval nuscenes under every preset, eval navsim reported as nuscenes-pdms, and
training on the imported store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scenes.store import DriveDataset, finalize_dataset, write_shard
from scenes.synthetic import generate_scene

SEEDS = (1100000204, 1100000004, 1100000153)  # a straight road, an intersection, a merge (test split)
PRESETS = ("stp3", "vad", "uniad", "sparsedrive")


def _run(diffplan_exe: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([diffplan_exe, *args], capture_output=True, text=True, timeout=600, check=False,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    """Three synthetic scenes exported with `scenes export --format nuscenes` (v1.0-mini names, mini_train)
    and imported back with `scenes import nuscenes`."""
    root = tmp_path_factory.mktemp("nuscenes")
    write_shard(root / "source", 0, [generate_scene(seed, "test") for seed in SEEDS])
    finalize_dataset(root / "source", {"test": "nuscenes"}, 1)
    exe = str(Path(sys.executable).parent / "diffplan")
    done = _run(exe, "scenes", "export", str(root / "source"), "--format", "nuscenes", "--out",
                str(root / "nuscenes"))
    assert done.returncode == 0, done.stderr
    done = _run(exe, "scenes", "import", "nuscenes", "--dataroot", str(root / "nuscenes"), "--version",
                "v1.0-synth", "--split", "mini_train", "--out", str(root / "data"))
    assert done.returncode == 0, done.stderr
    assert "ego speed from: can_bus" in done.stdout and "scenes written" in done.stdout
    return root / "data"


def test_the_logged_plan_scores_zero_l2_and_no_collision_under_every_preset(diffplan_exe, imported):
    done = _run(diffplan_exe, "eval", "nuscenes", "--planner", "human", "--scenes", str(imported), "--preset",
                "all", "--json")
    assert done.returncode == 0, done.stderr
    records = json.loads(done.stdout.strip().splitlines()[-1])
    assert sorted(records) == sorted(PRESETS)
    count = len(DriveDataset(imported))
    for name, record in records.items():
        assert record["preset"] == name and record["n_scenes"] == count
        assert [record[k] for k in ("l2_1s", "l2_2s", "l2_3s", "collision_1s", "collision_2s",
                                    "collision_3s")] == [0.0] * 6
    assert "the nuScenes metrics use the first 6 (3 s)" in done.stdout
    for name in PRESETS:
        assert f"| {name} |" in done.stdout


def test_presets_differ_as_defined_and_the_run_folder_names_them(diffplan_exe, imported, tmp_path):
    done = _run(diffplan_exe, "eval", "nuscenes", "--planner", "constant-velocity", "--scenes", str(imported),
                "--preset", "all", "--out", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    presets = summary["presets"]
    assert sorted(presets) == sorted(PRESETS) and summary["note"].startswith("plans are 8 poses")
    # ST-P3, VAD and SparseDrive average the steps up to t (all futures here are complete, so they agree);
    # UniAD takes step t alone, which is larger for a plan that drifts away from the log
    for seconds in (1, 2, 3):
        key = f"l2_{seconds}s"
        assert presets["stp3"][key] == presets["vad"][key] == presets["sparsedrive"][key]
    assert presets["uniad"]["l2_3s"] > presets["stp3"]["l2_3s"] > 0
    single = _run(diffplan_exe, "eval", "nuscenes", "--planner", "constant-velocity", "--scenes", str(imported),
                  "--preset", "uniad", "--json")
    record = json.loads(single.stdout.strip().splitlines()[-1])
    assert record == presets["uniad"]


@pytest.mark.parametrize(("args", "message"), [
    (["--planner", "constant-velocity", "--preset", "nuplan"], "unknown --preset 'nuplan'"),
    (["--planner", "go-to-goal"], "navigation"),
])
def test_eval_nuscenes_bad_input_is_one_line(diffplan_exe, imported, args, message):
    done = _run(diffplan_exe, "eval", "nuscenes", "--scenes", str(imported), *args)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and message in done.stderr, done.stderr


def test_import_refuses_a_split_the_version_lacks(diffplan_exe, imported, tmp_path):
    done = _run(diffplan_exe, "scenes", "import", "nuscenes", "--dataroot", str(imported.parent / "nuscenes"),
                "--version", "v1.0-synth", "--split", "nightly", "--out", str(tmp_path / "data"))
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "'nightly'" in done.stderr, done.stderr


def test_the_pseudo_simulation_on_nuscenes_scenes_is_named_as_ours(diffplan_exe, imported, tmp_path):
    done = _run(diffplan_exe, "eval", "navsim", "--planner", "pdm-closed", "--scenes", str(imported), "--out",
                str(tmp_path / "run"), "--worst", "0", "--workers", "1")
    assert done.returncode == 0, done.stderr
    assert "nuscenes-pdms-v1" in done.stdout
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["metric_label"] == "nuscenes-pdms-v1" and summary["metric"] == "pdms-v1"
    assert 0.0 < summary["pdms"] <= 1.0 and np.isfinite(summary["pdms"])


@pytest.mark.slow
def test_diffusiondrive_trains_on_imported_nuscenes_with_anchors_from_its_futures(diffplan_exe, imported,
                                                                                    tmp_path):
    assert set(DriveDataset(imported).episodes.column("split").to_pylist()) == {"train"}
    for args in (
        ["anchors", "--data", str(imported), "--k", "2", "--out", str(tmp_path / "anchors.npy")],
        ["train", "diffusiondrive", "--data", str(imported), "--out", str(tmp_path / "train"), "--epochs", "1",
         "--batch-size", "2", "--max-steps", "2", "--accelerator", "cpu", "--devices", "1", "--model",
         f"anchors={tmp_path / 'anchors.npy'}", "--model", "num_modes=2", "--export", str(tmp_path / "dd.safetensors")],
        ["eval", "nuscenes", "--planner", str(tmp_path / "dd.safetensors"), "--scenes", str(imported), "--preset",
         "sparsedrive"],
    ):
        done = _run(diffplan_exe, *args)
        assert done.returncode == 0, (args[:2], done.stderr[-2000:])
    assert np.load(tmp_path / "anchors.npy").shape == (2, 8, 2)
