"""The one sharded-job runner: same bytes in-process, in a pool and after an interruption; Ctrl-C; damage."""

from __future__ import annotations

import builtins
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from diffplan.jobs import JOB_FILE, JobError, RunOptions, run_job
from scenes.errors import ConfigError
from scenes.store import DatasetError, DriveDataset
from scenes.store.units import Shards
from tests.diffplan.job_fixtures import DrawsJob

ROOT = Path(__file__).resolve().parents[2]
SHARDS = Shards(n=10, seed=3, shard_size=4)


def folder_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


class Recorder:
    def __init__(self):
        self.before, self.advanced, self.units, self.warnings = 0, 0, [], []

    def done_before(self, amount):
        self.before += amount

    def advance(self, amount):
        self.advanced += amount

    def unit_report(self, report):
        self.units.append(report)

    def warn(self, message):
        self.warnings.append(message)


def test_same_bytes_in_this_process_in_a_pool_and_when_resumed(tmp_path):
    clean = tmp_path / "clean"
    progress = Recorder()
    assert run_job(DrawsJob(SHARDS), clean, progress=progress) == {0: 4, 1: 4, 2: 2}
    assert (progress.before, progress.advanced, len(progress.units)) == (0, 10, 3)
    run_job(DrawsJob(SHARDS), tmp_path / "pool", RunOptions(workers=2))
    assert folder_bytes(tmp_path / "pool") == folder_bytes(clean)
    # an existing folder needs resume; resuming a finished job runs nothing and counts it as done before
    with pytest.raises(ConfigError, match="already exists and is not empty") as error:
        run_job(DrawsJob(SHARDS), clean)
    assert "pass --resume to continue it" in error.value.as_option()
    again = Recorder()
    run_job(DrawsJob(SHARDS), clean, RunOptions(resume=True), again)
    assert (again.before, again.advanced) == (10, 0)
    with pytest.raises(JobError, match="started with seed=3, not 4"):
        run_job(DrawsJob(Shards(10, 4, 4)), clean, RunOptions(resume=True))


def test_an_interrupt_a_solver_swallows_still_stops_the_unit_before_it_commits(tmp_path):
    root = tmp_path / "job"
    with pytest.raises(KeyboardInterrupt):
        run_job(DrawsJob(SHARDS, swallowed_interrupt=(1, 2)), root)
    assert (root / "data/0.txt").is_file() and not (root / "data/1.txt").exists()
    assert not (root / "meta/units/unit-00001.json").exists()  # the interrupted unit left nothing
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back
    run_job(DrawsJob(SHARDS), root, RunOptions(resume=True))
    run_job(DrawsJob(SHARDS), tmp_path / "clean")
    assert folder_bytes(root) == folder_bytes(tmp_path / "clean")


CTRL_C_SCRIPT = """
import sys, time
from pathlib import Path
from diffplan.jobs import RunOptions, run_job
from scenes.store.units import Shards
from tests.diffplan.job_fixtures import DrawsJob
print("started", flush=True)
try:
    run_job(DrawsJob(Shards(8, 0, 2), item_seconds=30.0), Path(sys.argv[1]), RunOptions(workers=2))
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
"""


def test_ctrl_c_stops_a_pool_within_seconds_and_commits_nothing_unfinished(tmp_path):
    root = tmp_path / "job"
    process = subprocess.Popen([sys.executable, "-c", CTRL_C_SCRIPT, str(root)], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert process.stdout.readline().strip() == "started"
    time.sleep(4.0)  # the workers are spawned and busy with their first (30 s) items
    start = time.monotonic()
    os.killpg(process.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
    out, err = process.communicate(timeout=60)
    assert time.monotonic() - start < 10.0, err
    assert process.returncode == 130 and "interrupted" in out, err
    assert not list(root.glob("data/*")) and not list(root.glob("meta/units/*"))


def test_a_damaged_shard_found_on_resume_is_named_and_generated_again(tmp_path):
    from scenes.generate import GenerateConfig, SceneGenerationJob

    config = GenerateConfig(n=4, split="val", seed=9, shard_size=2)
    run_job(SceneGenerationJob(config), tmp_path / "clean")
    root = tmp_path / "damaged"
    run_job(SceneGenerationJob(config), root)
    shard = root / "shards/00001.parquet"
    shard.write_bytes(shard.read_bytes()[:100])
    progress = Recorder()
    run_job(SceneGenerationJob(config), root, RunOptions(resume=True), progress)
    assert len(progress.warnings) == 1 and str(shard) in progress.warnings[0]
    assert "unreadable" in progress.warnings[0] and "running it again" in progress.warnings[0]
    assert (progress.before, progress.advanced) == (2, 2)
    assert folder_bytes(root) == folder_bytes(tmp_path / "clean")


def test_an_interrupted_dataset_says_it_is_incomplete(tmp_path):
    from diffplan.cli import app

    root = tmp_path / "job"
    with pytest.raises(KeyboardInterrupt):
        from scenes.generate import GenerateConfig, SceneGenerationJob

        job = SceneGenerationJob(GenerateConfig(n=2, split="val", seed=1, shard_size=1))
        run_job(job, root, progress=_InterruptAfterFirstUnit())
    with pytest.raises(DatasetError, match="incomplete dataset, its job stopped before the end"):
        DriveDataset(root)
    result = CliRunner().invoke(app, ["scenes", "stats", str(root)])
    assert result.exit_code == 2
    assert result.output.strip().endswith("rerun the job with --resume to finish it")


class _InterruptAfterFirstUnit(Recorder):
    def unit_report(self, report):
        raise KeyboardInterrupt


def test_ray_without_ray_installed_is_one_line_and_leaves_no_job_file(tmp_path, monkeypatch):
    from diffplan.cli import app

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    out = tmp_path / "ds"
    result = CliRunner().invoke(app, ["scenes", "generate", "--n", "2", "--ray", "local", "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "--ray needs Ray, which is not installed: pip install" in lines[0]
    assert not (out / JOB_FILE).exists()
