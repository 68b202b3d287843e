"""The Parquet dataset store: exact round trip, deterministic bytes, atomic shards, errors, torch Dataset."""

from __future__ import annotations

import dataclasses
import json
import pickle
import shutil
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely
import torch
from torch.utils.data import DataLoader

from planners.learned.features import (
    ObservationFeatureBuilder,
    ObservationFeatures,
    SceneTargetBuilder,
    SceneTargets,
    SceneWindowDataset,
)
from scenes import CURRENT_INDEX, NUM_STEPS, AgentTracks, DriveScene, TrafficLights
from scenes.store import (
    STORE_SCHEMA_VERSION,
    DatasetError,
    DriveDataset,
    completed_shards,
    finalize_dataset,
    layout,
    write_shard,
)
from tests.factories import straight_scene

CONFIG = {"generator": "hand", "n": 7, "nested": {"radius": 80.0}}


def varied_scene(seed: int) -> DriveScene:
    """straight_scene with noisy floats, successors, a holed polygon; odd seeds: no agents, lights, stops."""
    base = straight_scene(seed, split=("train", "val")[seed % 2])
    rng = np.random.default_rng(seed)
    ego = dataclasses.replace(
        base.ego,
        pose=base.ego.pose + rng.normal(0, 0.1, base.ego.pose.shape),
        steering=rng.normal(0, 0.05, NUM_STEPS),
    )
    agents = dataclasses.replace(base.agents, xy=base.agents.xy + rng.normal(0, 1e-3, base.agents.xy.shape))
    holed = shapely.Polygon([(0, 0), (9, 0), (9, 9), (0, 9)], holes=[[(1, 1), (2, 1), (2, 2)]])
    road_map = dataclasses.replace(
        base.map,
        lane_successors=((2,), (1, 2)),
        crosswalks=np.array([base.map.crosswalks[0], holed], dtype=object),
    )
    lights = base.traffic_lights
    if seed % 2:
        agents = AgentTracks.empty(NUM_STEPS)
        lights = TrafficLights(np.zeros(0, np.int64), np.zeros((0, NUM_STEPS), bool))
        road_map = dataclasses.replace(
            road_map, stop_lines=np.array([], dtype=object), stop_line_lane_ids=np.zeros(0, np.int64)
        )
    return dataclasses.replace(base, ego=ego, agents=agents, map=road_map, traffic_lights=lights).validate()


def write_dataset(root: Path, scenes: list[DriveScene], shard_size: int = 3) -> None:
    shards = [scenes[k : k + shard_size] for k in range(0, len(scenes), shard_size)]
    for k, shard in enumerate(shards):
        write_shard(root, k, shard)
    finalize_dataset(root, CONFIG, len(shards))


def assert_same(a: object, b: object, where: str) -> None:
    """Field-by-field exact equality of scene parts; geometry by identical WKB and equals_exact(0)."""
    if dataclasses.is_dataclass(a):
        assert type(a) is type(b), where
        for field in dataclasses.fields(a):
            assert_same(getattr(a, field.name), getattr(b, field.name), f"{where}.{field.name}")
    elif isinstance(a, np.ndarray) and a.dtype == object:
        assert isinstance(b, np.ndarray) and b.dtype == object and a.shape == b.shape, where
        assert shapely.to_wkb(a).tolist() == shapely.to_wkb(b).tolist(), where
        assert shapely.equals_exact(a, b, tolerance=0).all(), where
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape, where
        assert np.array_equal(a, b), where
    elif isinstance(a, shapely.Geometry):
        assert shapely.to_wkb(a) == shapely.to_wkb(b) and shapely.equals_exact(a, b, tolerance=0), where
    else:
        assert type(a) is type(b) and a == b, where


@pytest.fixture(scope="module")
def scenes() -> list[DriveScene]:
    return [varied_scene(seed) for seed in range(7)]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, scenes) -> Path:
    root = tmp_path_factory.mktemp("store") / "ds"
    write_dataset(root, scenes)
    return root


def test_round_trip_is_exact_field_by_field(dataset, scenes):
    data = DriveDataset.open(dataset)
    assert len(data) == 7 and data.info.num_shards == 3 and data.info.shard_sizes == (3, 3, 1)
    assert data.info.splits == {"train": 4, "val": 3} and data.info.generator_config == CONFIG
    assert data.info.schema_version == STORE_SCHEMA_VERSION
    for i, scene in enumerate(scenes):
        loaded = data[i]
        assert_same(scene, loaded, f"scene {i}")
    assert data[1].map.lane_successors == ((2,), (1, 2)) and data[1].agents.num_agents == 0
    assert data[0].agents.category.dtype == np.int8 and data[0].traffic_lights.is_red.dtype == bool
    assert data[-1].metadata.scene_id == scenes[-1].metadata.scene_id
    with pytest.raises(IndexError):
        data[7]


def test_episode_table_and_info(dataset, scenes):
    data = DriveDataset.open(dataset)
    rows = list(data.iter_episodes())
    assert [r["episode_index"] for r in rows] == list(range(7))
    assert [(r["shard"], r["row"]) for r in rows] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (2, 0)]
    assert [r["scene_id"] for r in rows] == [s.metadata.scene_id for s in scenes]
    assert rows[1]["num_agents"] == 0 and rows[0]["num_agents"] == 3
    speed = np.linalg.norm(scenes[2].ego.velocity[CURRENT_INDEX])
    assert rows[2]["ego_speed_now"] == pytest.approx(speed)
    assert rows[2]["ego_future_distance"] == pytest.approx(50.0, abs=3.0)
    assert data.indices(split="val").tolist() == [1, 3, 5]
    info = json.loads((dataset / "info.json").read_text())
    assert info["fields"]["privileged/agents.xy.future"]["shape"] == ["N", 50, 2]
    assert info["fields"]["privileged/agents.xy.future"]["privileged"] is True
    assert info["fields"]["shards/ego.pose.history"] == {
        "part": "shards",
        "kind": "tensor",
        "dtype": "float64",
        "shape": [CURRENT_INDEX + 1, 3],
        "unit": "m, m, rad",
        "privileged": False,
        "doc": "rear axle, map frame",
    }
    for file in (
        "shards/00000.parquet",
        "privileged/00001.parquet",
        "meta/episodes-00002.parquet",
        "episodes.parquet",
    ):
        meta = pq.read_metadata(dataset / file).metadata
        assert meta[b"diffplan.store.schema_version"] == STORE_SCHEMA_VERSION.encode()
    assert pq.read_schema(dataset / "shards/00000.parquet").field("agents.xy.history").type == pa.list_(
        pa.list_(pa.float64(), (CURRENT_INDEX + 1) * 2)
    )
    assert pq.read_schema(dataset / "shards/00000.parquet").field("map.crosswalks").type == pa.list_(
        pa.binary()
    )


def test_same_scenes_give_identical_bytes(tmp_path, dataset, scenes):
    write_dataset(tmp_path / "again", scenes)
    files = sorted(p.relative_to(dataset) for p in dataset.rglob("*") if p.is_file())
    assert files == sorted(
        p.relative_to(tmp_path / "again") for p in (tmp_path / "again").rglob("*") if p.is_file()
    )
    assert len(files) == 11
    for file in files:
        assert (dataset / file).read_bytes() == (tmp_path / "again" / file).read_bytes(), file


def _write_varied_shard(root: Path, shard: int) -> None:
    write_shard(root, shard, [varied_scene(seed) for seed in range(3 * shard, min(7, 3 * shard + 3))])


def test_parallel_shard_writes_match_sequential(tmp_path, dataset):
    root = tmp_path / "ds"
    with ProcessPoolExecutor(max_workers=3, mp_context=get_context("fork")) as pool:
        list(pool.map(_write_varied_shard, [root] * 3, [2, 0, 1]))
    assert completed_shards(root) == {0, 1, 2}
    assert not list(root.rglob("*.tmp*"))
    finalize_dataset(root, CONFIG, 3)
    for file in sorted(p.relative_to(dataset) for p in dataset.rglob("*") if p.is_file()):
        assert (root / file).read_bytes() == (dataset / file).read_bytes(), file


def test_killed_write_leaves_nothing_readable(tmp_path, monkeypatch, scenes):
    root = tmp_path / "ds"
    write_shard(root, 0, scenes[:2])
    real_replace = layout.os.replace

    def crash_on_privileged(src, dst):
        if "privileged" in str(dst):
            raise OSError("disk on fire")
        real_replace(src, dst)

    monkeypatch.setattr(layout.os, "replace", crash_on_privileged)
    with pytest.raises(OSError, match="disk on fire"):
        write_shard(root, 1, scenes[2:4])
    monkeypatch.undo()
    assert (root / "shards/00001.parquet").exists() and not (root / "meta/episodes-00001.parquet").exists()
    # a hard kill can also leave temp files behind: they never count as data
    (root / "meta/episodes-00002.parquet.tmp-999-1").write_bytes(b"half")
    (root / "shards/00002.parquet.tmp-999-1").write_bytes(b"half")
    assert completed_shards(root) == {0}
    with pytest.raises(DatasetError, match=r"2 shard\(s\) incomplete or missing: 1, 2"):
        finalize_dataset(root, CONFIG, 3)
    with pytest.raises(DatasetError, match="not a diffplan dataset"):
        DriveDataset.open(root)
    # resume: rewrite the broken shards, then finalize
    write_shard(root, 1, scenes[2:4])
    write_shard(root, 2, scenes[4:5])
    assert completed_shards(root) == {0, 1, 2}
    assert finalize_dataset(root, CONFIG, 3).num_episodes == 5
    assert DriveDataset.open(root)[4].metadata.scene_id == scenes[4].metadata.scene_id
    # rewriting a shard un-finalizes the dataset until finalize runs again
    write_shard(root, 2, scenes[4:6])
    assert not (root / "info.json").exists()


def test_finalized_dataset_with_incomplete_shard_is_refused(tmp_path, dataset):
    root = tmp_path / "ds"
    shutil.copytree(dataset, root)
    (root / "meta/episodes-00001.parquet").unlink()
    with pytest.raises(DatasetError) as error:
        DriveDataset.open(root)
    assert str(error.value) == f"{root}/meta/episodes-00001.parquet: missing (shard 1 is incomplete)"


def test_write_shard_refuses_invalid_scene(tmp_path):
    bad = dataclasses.replace(straight_scene(3), command=1)
    with pytest.raises(DatasetError, match=r"shard 4, scene 1 \(hand-train-3\): DriveScene.command"):
        write_shard(tmp_path / "ds", 4, [straight_scene(0), bad])
    with pytest.raises(DatasetError, match="duplicate scene_id"):
        write_shard(tmp_path / "ds", 0, [straight_scene(0), straight_scene(0)])
    assert completed_shards(tmp_path / "ds") == set()


def _corrupt_info(root: Path) -> None:
    (root / "info.json").write_text('{"schema_version": ')


def _corrupt_shard(root: Path) -> None:
    (root / "shards/00001.parquet").write_bytes(b"PAR1 this is not parquet")


def _other_version(root: Path) -> None:
    info = json.loads((root / "info.json").read_text())
    info["schema_version"] = "diffplan-store/0"
    (root / "info.json").write_text(json.dumps(info))


def _other_file_version(root: Path) -> None:
    path = root / "privileged/00002.parquet"
    table = pq.read_table(path)
    pq.write_table(
        table.replace_schema_metadata({b"diffplan.store.schema_version": b"diffplan-store/9"}), path
    )


@pytest.mark.parametrize(
    ("damage", "target", "message"),
    [
        (lambda root: shutil.rmtree(root), "", ": no such dataset directory"),
        (lambda root: (root / "info.json").unlink(), "", ": not a diffplan dataset (no info.json)"),
        (
            _corrupt_info,
            "/info.json",
            "/info.json: corrupt info.json (Expecting value: line 1 column 20 (char 19))",
        ),
        (_corrupt_shard, "/shards/00001.parquet", "/shards/00001.parquet: unreadable parquet ("),
        (_other_version, "", ": schema version diffplan-store/0, this diffplan reads diffplan-store/3; regenerate the dataset with this version"),
        (
            _other_file_version,
            "/privileged/00002.parquet",
            "/privileged/00002.parquet: schema version diffplan-store/9, this diffplan reads diffplan-s",
        ),
        (
            lambda root: (root / "shards/00000.parquet").unlink(),
            "",
            "/shards/00000.parquet: missing (shard 0",
        ),
        (
            lambda root: shutil.copy(root / "shards/00001.parquet", root / "shards/00002.parquet"),
            "/shards/00002.parquet",
            "/shards/00002.parquet: 3 rows, but info.json lists 1 for shard 2",
        ),
    ],
)
def test_open_errors_are_one_line_and_name_the_path(tmp_path, dataset, damage, target, message):
    root = tmp_path / "ds"
    shutil.copytree(dataset, root)
    damage(root)
    with pytest.raises(DatasetError) as error:
        DriveDataset.open(root)
    text = str(error.value)
    assert "\n" not in text and text.startswith(f"{root}{target}") and f"{root}{message}" in text, text


def test_observation_reads_shards_only(tmp_path, dataset, scenes):
    root = tmp_path / "ds"
    shutil.copytree(dataset, root)
    data = DriveDataset.open(root)
    shutil.rmtree(root / "privileged")
    for i, scene in enumerate(scenes):
        assert_same(scene.observation(), data.observation(i), f"observation {i}")
    with pytest.raises(DatasetError, match=r"privileged/00000.parquet: missing"):
        data[0]
    shards_only = DriveDataset.open(root, privileged=False)
    assert_same(scenes[4].observation(), shards_only.observation(4), "observation 4")
    with pytest.raises(DatasetError, match="privileged=False"):
        shards_only[4]
    with pytest.raises(DatasetError, match="privileged/00000.parquet: missing"):
        DriveDataset.open(root)


def test_reader_pickles_without_cache(dataset):
    data = DriveDataset.open(dataset)
    data[0]
    assert len(data._cache["shards"]) == 1
    clone = pickle.loads(pickle.dumps(data))
    assert len(clone._cache["shards"]) == 0
    assert_same(data[5], clone[5], "scene 5")


def test_dataloader_batches(tmp_path):
    root = tmp_path / "ds"
    write_dataset(root, [straight_scene(seed) for seed in range(6)])
    windows = SceneWindowDataset(root)
    loader = DataLoader(windows, batch_size=4, num_workers=2)
    batches = list(loader)
    assert [b[0].ego_history.shape[0] for b in batches] == [4, 2]
    features, targets = batches[0]
    assert isinstance(features, ObservationFeatures) and isinstance(targets, SceneTargets)
    shapes = {name: tuple(value.shape) for name, value in features._asdict().items()}
    assert shapes == {
        "ego_history": (4, 16, 7),
        "agents": (4, 32, 16, 8),
        "agents_mask": (4, 32, 16),
        "agents_category": (4, 32),
        "route": (4, 32, 2),
        "route_mask": (4, 32),
        "command": (4, 4),
    }
    assert {n: tuple(v.shape) for n, v in targets._asdict().items()} == {
        "plan": (4, 8, 3),
        "agents_future": (4, 32, 50, 2),
        "agents_future_mask": (4, 32, 50),
    }
    scene = straight_scene(0)
    obs = scene.observation()
    direct_f, direct_t = ObservationFeatureBuilder()(obs), SceneTargetBuilder()(scene, obs)
    for name, value in features._asdict().items():
        assert torch.equal(value[0], getattr(direct_f, name)), name
    for name, value in targets._asdict().items():
        assert torch.equal(value[0], getattr(direct_t, name)), name
    # known values of the hand-built scene: 10 m/s east, agent 8 parked 20 m ahead in lane 2 (nearest),
    # agent 7 30 m ahead at 5 m/s, agent 9 300 m away (not observed)
    assert features.ego_history[0, -1].tolist() == [0, 0, 0, 10, 0, 0, 0]
    assert features.ego_history[0, 0, 0].item() == pytest.approx(-15.0)
    assert features.agents_category[0, :3].tolist() == [0, 0, -1]
    assert features.agents[0, 0, -1].tolist() == pytest.approx([20, 3.5, 1, 0, 0, 0, 4.8, 2.0])
    assert features.agents_mask[0, 0].sum().item() == 1 and features.agents_mask[0, 1].all()
    assert features.route[0, :3].tolist() == [[0, 0], [2, 0], [4, 0]] and features.route_mask[0].all()
    assert features.command[0].tolist() == [0, 1, 0, 0]
    assert targets.plan[0, :, 0].tolist() == pytest.approx([5, 10, 15, 20, 25, 30, 35, 40])
    assert targets.agents_future[0, 1, -1].tolist() == pytest.approx([55, 0])  # agent 7 after 5 s
    assert targets.agents_future_mask[0, :2].all() and not targets.agents_future_mask[0, 2:].any()


def test_features_only_dataset_needs_no_privileged(tmp_path):
    root = tmp_path / "ds"
    write_dataset(root, [straight_scene(seed) for seed in range(2)])
    shutil.rmtree(root / "privileged")
    features = SceneWindowDataset(root, target_builder=None)[1]
    assert isinstance(features, ObservationFeatures) and features.agents.shape == (32, 16, 8)


def test_nan_in_a_shard_is_named(tmp_path, dataset):
    root = tmp_path / "ds"
    shutil.copytree(dataset, root)
    path = root / "shards/00001.parquet"
    table = pq.read_table(path)
    column = table.column("ego.pose.history").combine_chunks()
    values = column.flatten().to_numpy().copy()
    per_row = (CURRENT_INDEX + 1) * 3
    values[per_row + 3 * CURRENT_INDEX - 1] = np.nan  # row 1, heading one step before now
    rebuilt = pa.FixedSizeListArray.from_arrays(pa.array(values), per_row)
    table = table.set_column(table.column_names.index("ego.pose.history"), "ego.pose.history", rebuilt)
    pq.write_table(table.replace_schema_metadata(pq.read_schema(path).metadata), path)
    data = DriveDataset.open(root)
    with pytest.raises(DatasetError) as error:
        data[4]
    assert str(error.value) == f"{path} row 1: EgoState.pose: 1 non-finite value(s) (NaN or inf)"
    with pytest.raises(DatasetError, match="row 1: EgoState.pose: 1 non-finite"):
        data.observation(4)
    assert data[3].metadata.scene_id == "hand-val-3"


def test_dataset_opens_from_a_path_as_documented(dataset, scenes):
    data = DriveDataset(dataset)  # README: `DriveDataset(path)`; `.open(path)` is the same
    assert len(data) == len(scenes) and data[1].metadata.scene_id == scenes[1].metadata.scene_id
    assert repr(data) == repr(DriveDataset.open(dataset))
    with pytest.raises(DatasetError, match="info.json"):
        DriveDataset(dataset / "shards")
