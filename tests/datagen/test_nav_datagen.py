"""`diffplan datagen nav`: deterministic bytes across workers and Ray, resume, the nav store and reader."""

import hashlib
import json
import os
import shutil
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import pytest
from typer.testing import CliRunner

from datagen.nav import NavDatagenConfig, NavDatagenJob
from diffplan.commands.datagen import app
from diffplan.commands.scenes import app as scenes_app
from diffplan.jobs import RunOptions, run_job
from scenes.nav import NAV_PLAN_POSES, NavTrainingSample, world_from_id
from scenes.nav.generator import HELD_OUT_WORLD_SEED
from scenes.store import DatasetError
from scenes.store.nav import NAV_SCHEMA_VERSION, NavDataset

SMALL = NavDatagenConfig(n=4, seed=3, camera="64x64", shard_size=2, episodes_per_world=2)


def dataset_hash(root) -> str:
    """sha256 over every file's relative path and bytes, sorted by path."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("nav") / "one"
    summary = run_job(NavDatagenJob(SMALL), root)
    assert summary.trajectories == SMALL.n and not summary.failures
    return root, dataset_hash(root)


def test_two_workers_write_the_same_bytes(small, tmp_path):
    _, expected = small
    run_job(NavDatagenJob(SMALL), tmp_path / "two", RunOptions(workers=2))
    assert dataset_hash(tmp_path / "two") == expected


def test_resume_after_deleted_and_partial_shards(small, tmp_path):
    root, expected = small
    copy = tmp_path / "resumed"
    shutil.copytree(root, copy)
    (copy / "info.json").unlink()
    (copy / "shards" / "00001.parquet").unlink()  # shard 1 incomplete: redone
    (copy / "meta" / "datagen" / "unit-00000.json").unlink()  # shard 0 not marked done: redone
    (copy / "privileged" / "00000.parquet.tmp-1-2").write_bytes(b"half a write")  # a killed write's leftover
    summary = run_job(NavDatagenJob(SMALL), copy, RunOptions(resume=True))
    assert dataset_hash(copy) == expected
    assert not summary.reports[0].resumed and summary.trajectories == SMALL.n


def test_resume_refuses_another_config(small):
    root, _ = small
    result = CliRunner().invoke(app, ["nav", "--out", str(root), "--n", "5", "--seed", "3", "--camera", "64x64",
                                      "--shard-size", "2", "--episodes-per-world", "2", "--resume"])
    assert result.exit_code == 2 and "n=4" in result.output
    result = CliRunner().invoke(app, ["nav", "--out", str(root), "--n", "4"])
    assert result.exit_code == 2 and "--resume" in result.output


@pytest.mark.slow
def test_ray_local_backend_writes_the_same_bytes(small, tmp_path):
    ray = pytest.importorskip("ray")
    _, expected = small
    try:
        run_job(NavDatagenJob(SMALL), tmp_path / "ray", RunOptions(ray="local"))
        assert not ray.is_initialized()
    finally:
        ray.shutdown()
    assert dataset_hash(tmp_path / "ray") == expected


def test_reader_gives_training_samples(small):
    root, _ = small
    data = NavDataset.open(root)
    info = json.loads((root / "info.json").read_text())
    assert info["schema_version"] == NAV_SCHEMA_VERSION and info["camera"]["width"] == 64
    assert info["fields"]["shards/depth"]["unit"] == "0.1 mm" and info["fields"]["shards/depth"]["shape"] == [64, 64]
    assert len(data) == info["num_frames"] == sum(len(data.frames(e)) for e in range(SMALL.n))
    episodes = data.episodes()
    assert [e.episode_id for e in episodes] == [f"3-{i:07d}" for i in range(SMALL.n)]
    for e, episode in enumerate(episodes):
        frames = data.frames(e)
        first, last = data[frames[0]], data[frames[-1]]
        assert isinstance(first, NavTrainingSample) and first.validate() is first
        assert first.future.shape == (NAV_PLAN_POSES, 3) and first.observation.depth.shape == (64, 64)
        assert first.observation.depth.dtype == np.float32 and first.observation.depth.max() <= 5.0
        assert first.observation.time_s == 0.0 and np.allclose(first.observation.velocity, 0.0)
        np.testing.assert_allclose(data.privileged_frame(frames[0])["pose"], episode.start)
        assert np.linalg.norm(last.observation.goal[:2]) < 0.2
        assert world_from_id(episode.world_id).world_id == episode.world_id
        assert int(episode.world_id.rsplit("-", 1)[1]) < HELD_OUT_WORLD_SEED  # never an evaluation world
        poses = data.episode_poses(e)
        assert poses.shape == (len(frames), 3)
    # Depth is stored to 0.1 mm: the rendered frame at the start comes back within 0.05 mm.
    from scenes.nav.mujoco_world import MujocoNavWorld

    with MujocoNavWorld(world_from_id(episodes[0].world_id)) as sim:
        rendered = sim.render_depth(episodes[0].start, data.camera)
    assert np.abs(data[0].observation.depth - rendered).max() <= 0.5e-4 + 1e-6
    with pytest.raises(IndexError):
        data[len(data)]
    blind = NavDataset.open(root, privileged=False)
    assert blind.observation(3).depth.shape == (64, 64)
    with pytest.raises(DatasetError, match="privileged"):
        blind[3]


def test_reader_follows_each_files_row_groups(small, tmp_path):
    """Shards rewritten with another row-group size (an older writer's 64, or 5) read the same frames."""
    import pyarrow.parquet as pq

    root, _ = small
    expected = NavDataset.open(root)
    for size in (64, 5):
        copy = tmp_path / f"groups-{size}"
        shutil.copytree(root, copy)
        for path in [*copy.glob("shards/*.parquet"), *copy.glob("privileged/*.parquet")]:
            table = pq.read_table(path)
            pq.write_table(table, path, row_group_size=size)
            assert pq.ParquetFile(path).metadata.num_row_groups == -(-table.num_rows // size)
        data = NavDataset.open(copy)
        for i in range(len(data)):
            got, want = data[i], expected[i]
            assert np.array_equal(got.observation.depth, want.observation.depth)
            assert np.array_equal(got.future, want.future) and got.critic_target == want.critic_target


def test_reader_refuses_foreign_or_incomplete_folders(small, tmp_path):
    root, _ = small
    with pytest.raises(DatasetError, match="no such"):
        NavDataset.open(tmp_path / "missing")
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    info = json.loads((copy / "info.json").read_text())
    (copy / "info.json").write_text(json.dumps({**info, "schema_version": "diffplan-nav-store/0"}))
    with pytest.raises(DatasetError, match="schema version"):
        NavDataset.open(copy)
    (copy / "info.json").write_text(json.dumps(info))
    (copy / "privileged" / "00001.parquet").unlink()
    with pytest.raises(DatasetError, match="missing"):
        NavDataset.open(copy)
    assert len(NavDataset.open(copy, privileged=False)) == info["num_frames"]


@pytest.mark.parametrize(("args", "message"), [
    (["--n", "0"], "--n must be a positive"),
    (["--robot", "tall"], "unknown robot"),
    (["--world-kind", "forest"], "unknown world kind"),
    (["--camera", "32x32"], "64..640"),
    (["--camera", "big"], "WIDTHxHEIGHT"),
    (["--critic-label", "lidar"], "--critic-label 'lidar': expected one of points, esdf"),
    (["--workers", "0"], "--workers must be positive"),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path, args, message):
    result = CliRunner().invoke(app, ["nav", "--out", str(tmp_path / "x"), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_cli_writes_a_quadruped_dataset_and_a_picture(tmp_path):
    out = tmp_path / "quad"
    result = CliRunner().invoke(app, ["nav", "--out", str(out), "--n", "2", "--robot", "quadruped",
                                      "--world-kind", "cluttered", "--camera", "64x64"])
    assert result.exit_code == 0, result.output
    assert "trajectories" in result.output and "trajectories/s" in result.output
    data = NavDataset.open(out)
    assert {e.robot for e in data.episodes()} == {"quadruped"}
    assert all(e.world_id.startswith("cluttered-") for e in data.episodes())
    picture = tmp_path / "nav.png"
    result = CliRunner().invoke(scenes_app, ["show-nav", str(out), "--out", str(picture), "--episode", "1"])
    assert result.exit_code == 0, result.output
    assert picture.stat().st_size > 10_000
    result = CliRunner().invoke(scenes_app, ["show-nav", "rooms-3", "--out", str(tmp_path / "w.png"), "--depth"])
    assert result.exit_code == 0 and (tmp_path / "w.png").stat().st_size > 10_000
    result = CliRunner().invoke(scenes_app, ["show-nav", "nowhere-3", "--out", str(tmp_path / "n.png")])
    assert result.exit_code == 2 and "world id" in result.output


def test_bench_navgen_reports_its_figures():
    from datagen.bench import bench_navgen

    start = time.perf_counter()
    figures = bench_navgen(seconds=0.01, camera="64x64")
    assert figures["trajectories_per_s_per_core"] > 0 and figures["frames_per_s_per_core"] > 0
    assert time.perf_counter() - start < 120


def test_nav_dataset_opens_from_a_path_as_documented(small):
    root, _ = small
    data, opened = NavDataset(root), NavDataset.open(root)
    assert len(data) == len(opened) > 0 and repr(data) == repr(opened)


def test_a_dataset_of_the_other_kind_says_what_it_is(small, tmp_path):
    from scenes.generate import GenerateConfig, SceneGenerationJob
    from scenes.store import DriveDataset

    root, _ = small
    with pytest.raises(DatasetError, match="this is a navigation dataset"):
        DriveDataset(root)
    run_job(SceneGenerationJob(GenerateConfig(n=1, shard_size=1)), tmp_path / "drive")
    with pytest.raises(DatasetError, match="this is a driving dataset"):
        NavDataset(tmp_path / "drive")
