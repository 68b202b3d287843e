"""`diffplan eval closed-loop` end to end: the run folder, the --json object, resume, one-line errors."""

import csv
import json

import pytest
from PIL import Image

from tests.diffplan.test_cli import assert_one_line_error, run

JSON_KEYS = {"metric", "cls", "n_scenes", "n_failed", "latency_ms_p95", "ec", "no_ego_at_fault_collisions",
             "drivable_area_compliance", "driving_direction_compliance", "ego_is_making_progress",
             "ego_progress_along_expert_route", "time_to_collision_within_bound", "speed_limit_compliance",
             "ego_is_comfortable", "version"}


def test_a_run_writes_its_folder_and_ends_with_one_json_object(diffplan_exe, tmp_path):
    out = tmp_path / "run"
    args = ["eval", "closed-loop", "--planner", "constant-velocity", "--limit", "3", "--duration", "4",
            "--agents", "idm", "--workers", "1", "--worst", "1", "--out", str(out), "--json"]
    result = run(diffplan_exe, *args)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert JSON_KEYS <= set(summary) and summary["metric"] == "cls-r" and summary["n_scenes"] == 3
    assert summary["network_steps"] is None  # not a diffusion planner
    rows = list(csv.DictReader((out / "scenes.csv").open()))
    assert [row["scene_id"] for row in rows] == ["test-1100000000", "test-1100000001", "test-1100000002"]
    mean = sum(float(row["score"]) for row in rows) / 3
    assert summary["cls"] == pytest.approx(100 * mean, abs=1e-3)
    written = json.loads((out / "summary.json").read_text())
    assert written["agents"] == "idm" and written["subset"] == "navtest-synth-4s v1, first 3 of 500"
    assert "CLS-R" in (out / "table.md").read_text()
    gifs = sorted((out / "worst").glob("*.gif"))
    assert len(gifs) == 1 and Image.open(gifs[0]).n_frames == 21  # 40 steps, every 2nd, and the last
    table = run(diffplan_exe, "eval", "table", str(out), str(out))
    assert table.returncode == 0 and "navtest-synth-4s v1, first 3 of 500" in table.stdout
    assert f"| {summary['cls']:.2f} |" in table.stdout and "CLS-R" in table.stdout
    again = run(diffplan_exe, *args, "--resume")  # every unit committed: nothing is simulated again
    assert (again.returncode == 0
            and json.loads(again.stdout.strip().splitlines()[-1])["cls"] == summary["cls"])


@pytest.mark.parametrize(("args", "needles"), [
    (["--agents", "bots"], ["--agents", "bots"]),
    (["--replan-every", "0"], ["--replan-every", "1 to 20"]),
    (["--warm-start", "4"], ["--warm-start", "START_T:STEPS"]),
    (["--warm-start", "4:1"], ["--warm-start", "no warm start"]),
    (["--scenes", "/nonexistent"], ["--scenes", "/nonexistent"]),
])
def test_bad_options_are_one_line_errors(diffplan_exe, args, needles):
    result = run(diffplan_exe, "eval", "closed-loop", "--planner", "constant-velocity", "--limit", "1", *args)
    assert_one_line_error(result, *needles)


def test_a_dataset_of_scenes_runs_for_as_long_as_its_logs(diffplan_exe, tmp_path):
    data = tmp_path / "ds"
    assert run(diffplan_exe, "scenes", "generate", "--n", "2", "--split", "test", "--out",
               str(data)).returncode == 0
    result = run(diffplan_exe, "eval", "closed-loop", "--planner", "human", "--scenes", str(data),
                 "--workers", "1", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["n_scenes"] == 2 and summary["n_failed"] == 0
    assert summary["duration_s"] == pytest.approx(5.0)  # a DriveScene's future
