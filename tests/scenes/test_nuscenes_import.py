"""nuScenes (through nuscenes-devkit) -> DriveScene: a hand-built v1.0-mini fixture
(tests/scenes/nuscenes_fixture.py) for exact values, a round trip through `scenes.exporters.nuscenes`, the
import job, and one-line errors."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import shapely

from diffplan.jobs import run_job
from scenes.adapters.errors import SourceError
from scenes.adapters.nuscenes import (
    CanSource,
    DropReason,
    NuScenesScene,
    build_scene,
    category_of,
    instance_token,
    lidar_offset_right,
    open_can_bus,
    open_nuscenes,
    scene_samples,
    scene_windows,
    vad_command,
)
from scenes.adapters.nuscenes_job import NuScenesImportConfig, NuScenesImportJob
from scenes.adapters.nuscenes_map import element_id, map_layers, open_map
from scenes.agents import AgentCategory
from scenes.drive import CURRENT_INDEX, DrivingCommand
from scenes.store import DriveDataset
from tests.scenes import nuscenes_fixture as fx

VERSION = "v1.0-mini"
KEPT = (3, 4, 5)  # 16 keyframes: 3 of history and 10 of future needed


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return fx.write_fixture(tmp_path_factory.mktemp("nuscenes"))


@pytest.fixture(scope="module")
def data(root):
    return open_nuscenes(root, VERSION), open_map(root, fx.MAP), open_can_bus(root)


def build(data, name: str, k: int) -> NuScenesScene:
    nusc, nusc_map, can = data
    sample = scene_samples(nusc, fx.tok(name))[k]
    out = build_scene(nusc, nusc_map, can, sample["token"], "val")
    assert isinstance(out, NuScenesScene), out
    return out


def test_windows_are_dropped_at_scene_ends(data):
    nusc, nusc_map, can = data
    for name in fx.SCENES:
        windows = scene_windows(nusc, fx.tok(name))
        assert [w.index for w in windows] == list(range(fx.N_KEYFRAMES))
        expected = [DropReason.TOO_LITTLE_HISTORY] * 3 + [None] * 3 + [DropReason.TOO_LITTLE_FUTURE] * 10
        assert [w.dropped for w in windows] == expected
        for w in (windows[2], windows[6], windows[-1]):
            assert build_scene(nusc, nusc_map, can, w.sample_token, "val") is w.dropped


def test_ego_pose_from_the_wxyz_quaternion_at_keyframes(data):
    for name in fx.SCENES:
        for k in KEPT:
            scene = build(data, name, k).scene
            first = max(k - 4, 0)
            for j in range(first, k + 11):
                step = CURRENT_INDEX + 5 * (j - k)
                np.testing.assert_allclose(scene.ego.pose[step], [*fx.ego_xy(name, j), fx.THETA], rtol=0,
                                           atol=1e-12)
            assert scene.metadata.scene_id == scene_samples(data[0], fx.tok(name))[k]["token"]
            assert scene.metadata.generator_version == "nuscenes/1"
            assert scene.traffic_lights.lane_ids.size == 0


def test_can_bus_speeds_and_blacklisted_scene_differences(data):
    can_scene = build(data, "scene-0103", 4)
    assert can_scene.source.can_source == CanSource.CAN_BUS.value
    ego = can_scene.scene.ego
    np.testing.assert_allclose(ego.velocity, np.tile([fx.CAN_SPEED, 0.1], (71, 1)), atol=1e-12)
    np.testing.assert_allclose(ego.acceleration, np.tile([0.2, 0.0], (71, 1)), atol=1e-12)
    np.testing.assert_allclose(ego.yaw_rate, 0.01, atol=1e-12)
    # window k = 3 has no keyframe at -2.0 s: back-filled from keyframe 0 at its CAN velocity
    early = build(data, "scene-0103", 3).scene
    c, s = np.cos(fx.THETA), np.sin(fx.THETA)
    velocity_map = np.array([c * fx.CAN_SPEED - s * 0.1, s * fx.CAN_SPEED + c * 0.1])
    start = np.array(fx.ego_xy("scene-0103", 0))
    np.testing.assert_allclose(early.ego.pose[0, :2], start - 0.5 * velocity_map, atol=1e-9)
    # scene-0161 is on the devkit's CAN blacklist (its CAN file is ignored): differences of keyframe poses
    black = build(data, "scene-0161", 4)
    assert black.source.can_source == CanSource.BLACKLISTED.value
    np.testing.assert_allclose(black.scene.ego.velocity[CURRENT_INDEX], [8.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(black.scene.ego.acceleration[CURRENT_INDEX], [0.0, 0.0], atol=1e-9)
    assert black.scene.ego.yaw_rate[CURRENT_INDEX] == pytest.approx(0.0, abs=1e-12)
    # scene-0916 has no CAN file
    none = build(data, "scene-0916", 3)
    assert none.source.can_source == CanSource.NO_CAN_DATA.value
    np.testing.assert_allclose(none.scene.ego.velocity[CURRENT_INDEX], [10.0, 0.0], atol=1e-9)


def test_agents_sizes_categories_ids_and_validity(data):
    out = build(data, "scene-0103", 4)
    agents = out.scene.agents
    expected = {fx.tok("scene-0103", a[0]): a for a in fx.AGENTS if a[1] != "animal"}  # the dog is skipped
    assert sorted(agents.track_ids.tolist()) == sorted(element_id(t) for t in expected)
    for row, track in enumerate(agents.track_ids.tolist()):
        token = instance_token(data[0], track)
        name, category, size, _, ahead, d, speed = expected[token]
        assert agents.size[row].tolist() == [size[1], size[0]]  # [w, l, h] -> (l, w)
        assert agents.category[row] == category_of(category)
        valid = np.flatnonzero(agents.valid[row])
        if name == "walker":  # keyframes 2, 3, 5, 6, 7 (keyframe j at step 5 j): never across the gap at 4
            assert valid.tolist() == [*range(10, 16), *range(25, 36)]
        else:
            assert valid.tolist() == list(range(71))
        x, y = fx.road_xy(40.0 + ahead + speed * 1.5, d)  # keyframe 3, step 15
        np.testing.assert_allclose(agents.xy[row, 15], [x, y], atol=1e-9)
        assert agents.heading[row, 15] == pytest.approx(fx.THETA, abs=1e-12)
        np.testing.assert_allclose(agents.velocity[row, 15],
                                   [speed * np.cos(fx.THETA), speed * np.sin(fx.THETA)], atol=1e-9)
    assert {AgentCategory(c) for c in agents.category} == {AgentCategory.VEHICLE, AgentCategory.PEDESTRIAN,
                                                          AgentCategory.BICYCLE, AgentCategory.STATIC_OBJECT}
    assert category_of("vehicle.motorcycle") is AgentCategory.BICYCLE and category_of("animal") is None


def test_command_by_the_two_metre_rule():
    assert vad_command(2.0) is DrivingCommand.RIGHT and vad_command(1.999) is DrivingCommand.STRAIGHT
    assert vad_command(-2.0) is DrivingCommand.LEFT and vad_command(-1.999) is DrivingCommand.STRAIGHT


@pytest.mark.parametrize(("name", "command"), [("scene-0103", DrivingCommand.STRAIGHT),
                                                ("scene-0916", DrivingCommand.LEFT),
                                                ("scene-0161", DrivingCommand.RIGHT)])
def test_command_on_hand_built_paths(data, name, command):
    nusc = data[0]
    samples = scene_samples(nusc, fx.tok(name))
    for k in KEPT:
        # lidar x points right: the offset to the right is minus the lateral (left) move over 3 s
        moved = fx.lateral(name, 0.5 * k + 3.0) - fx.lateral(name, 0.5 * k)
        assert lidar_offset_right(nusc, samples[k], samples[k + 6]) == pytest.approx(-moved, abs=1e-9)
        assert build(data, name, k).scene.command is command


def test_map_conversion_and_route(data):
    nusc_map = data[1]
    lane = {n: element_id(fx.tok(n)) for n in ("laneR0", "laneR1", "laneL0", "laneL1")}
    scene = build(data, "scene-0103", 5).scene
    m = scene.map
    assert sorted(m.lane_ids.tolist()) == sorted(lane.values())
    assert scene.route.lane_ids == (lane["laneR0"], lane["laneR1"])  # crosses s = 100 m through connectivity
    assert m.lane_successors[m.lane_index(lane["laneR0"])] == (lane["laneR1"],)
    blocks = {n: int(m.lane_roadblock_ids[m.lane_index(i)]) for n, i in lane.items()}
    assert blocks["laneR0"] == blocks["laneL0"] == element_id(fx.tok("block", 0))
    assert blocks["laneR1"] == blocks["laneL1"] == element_id(fx.tok("block", 1))
    row = m.lane_index(lane["laneR0"])
    left = shapely.get_coordinates(m.lane_left_boundaries[row])
    right = shapely.get_coordinates(m.lane_right_boundaries[row])
    c, s = np.cos(fx.THETA), np.sin(fx.THETA)
    np.testing.assert_allclose(-left[:, 0] * s + left[:, 1] * c, fx.HALF_WIDTH, atol=1e-9)  # lateral offsets
    np.testing.assert_allclose(-right[:, 0] * s + right[:, 1] * c, -fx.HALF_WIDTH, atol=1e-9)
    assert np.all(np.diff(left[:, 0] * c + left[:, 1] * s) > 0)  # in driving order
    assert m.stop_line_lane_ids.tolist() == [lane["laneR1"]] and len(m.crosswalks) == 1
    assert sorted(m.drivable_kinds.tolist()) == [0, 3] and np.isnan(m.lane_speed_limits).all()
    # a lane change inside one road block: the route follows the lane the ego ends in
    assert build(data, "scene-0916", 3).scene.route.lane_ids[0] == lane["laneL0"]
    layers = map_layers(nusc_map)
    for s_along, d in ((20.0, 0.2), (120.0, 3.0), (99.0, 1.0), (180.0, -1.0)):
        x, y = fx.road_xy(s_along, d)
        assert layers.closest_lane(x, y) == element_id(nusc_map.get_closest_lane(x, y))


def test_round_trip_through_the_exporter(tmp_path):
    from scenes.exporters.nuscenes import export_nuscenes
    from scenes.exporters.nuscenes_tables import token
    from scenes.exporters.openscene_dataset import translate_scene
    from scenes.synthetic import generate_scene

    originals = [generate_scene(seed, "test") for seed in (1100000000, 1100000153)]
    exported = export_nuscenes(originals, tmp_path, version=VERSION, map_name="boston-seaport")
    nusc, can = open_nuscenes(tmp_path, VERSION), open_can_bus(tmp_path)
    nusc_map = open_map(tmp_path, "boston-seaport")
    keyframes = np.arange(0, 71, 5)
    for e, original in zip(exported, originals, strict=True):
        out = build_scene(nusc, nusc_map, can, e.current_sample_token, "test")
        assert isinstance(out, NuScenesScene) and out.source.can_source == CanSource.CAN_BUS.value
        scene, want = out.scene, translate_scene(original, e.offset)
        np.testing.assert_allclose(scene.ego.pose[keyframes], want.ego.pose[keyframes], rtol=0, atol=1e-9)
        ids = {element_id(token("instance", e.name, int(t))): n for n, t in enumerate(want.agents.track_ids)}
        rows = np.array([ids[int(t)] for t in scene.agents.track_ids])  # KeyError: an agent not exported
        theirs = want.agents.select(rows)
        np.testing.assert_array_equal(scene.agents.valid[:, keyframes], theirs.valid[:, keyframes])
        both = theirs.valid[:, keyframes]
        np.testing.assert_allclose(scene.agents.xy[:, keyframes][both], theirs.xy[:, keyframes][both],
                                   atol=1e-9)
        np.testing.assert_allclose(scene.agents.size, theirs.size, atol=1e-12)
        np.testing.assert_array_equal(scene.agents.category, theirs.category)
        assert scene.route.lane_ids == tuple(element_id(token("boston-seaport", "lane", lane))
                                             for lane in want.route.lane_ids)


def test_import_job_reports_windows_and_can_source(root, tmp_path):
    job = NuScenesImportJob(NuScenesImportConfig(str(root), VERSION, "mini_val"))
    info, reports = run_job(job, tmp_path / "d")
    assert [(r.scene_name, r.windows, r.kept, r.dropped, r.can_source) for r in reports] == [
        ("scene-0103", 16, 3, {"too_little_future": 10, "too_little_history": 3}, "can_bus"),
        ("scene-0916", 16, 3, {"too_little_future": 10, "too_little_history": 3},
         "pose_differences_no_can_data")]
    data = DriveDataset(tmp_path / "d")
    assert info.num_episodes == len(data) == 6
    assert data[0].metadata.split == "val" and data.extras(0)["source.scene_name"] == "scene-0103"


def test_time_to_build_one_scene(data):
    nusc, nusc_map, can = data
    sample = scene_samples(nusc, fx.tok("scene-0103"))[4]
    start = time.perf_counter()
    build_scene(nusc, nusc_map, can, sample["token"], "val")
    assert time.perf_counter() - start < 1.0


def one_line(error: pytest.ExceptionInfo) -> str:
    text = str(error.value)
    assert "\n" not in text
    return text


def test_bad_input_gives_one_line_source_errors(root, tmp_path):
    def copy(name: str) -> Path:
        return Path(shutil.copytree(root, tmp_path / name))

    missing = copy("missing")
    (missing / VERSION / "sample_annotation.json").unlink()
    with pytest.raises(SourceError) as error:
        open_nuscenes(missing, VERSION)
    assert "sample_annotation" in one_line(error)
    with pytest.raises(SourceError) as error:
        open_nuscenes(root, "v1.0-trainval")
    assert "v1.0-trainval" in one_line(error) and "v1.0-mini" in str(error.value)
    town = fx.write_fixture(tmp_path / "town", location="my-town")
    with pytest.raises(SourceError) as error:
        open_nuscenes(town, VERSION)
    assert "unknown map name 'my-town'" in one_line(error)
    with pytest.raises(SourceError) as error:
        open_map(root, "my-town")
    assert "my-town" in one_line(error)
    no_map = copy("no_map")
    (no_map / "maps" / "expansion" / f"{fx.MAP}.json").unlink()
    with pytest.raises(SourceError) as error:
        open_nuscenes(no_map, VERSION)
    assert "map expansion is missing" in one_line(error)
    old = copy("old_map")
    fx.write_map(old, version="1.2")
    with pytest.raises(SourceError) as error:
        open_map(old, fx.MAP)
    assert "outdated map version" in one_line(error)
    with pytest.raises(SourceError) as error:
        NuScenesImportConfig(str(root), VERSION, "val").validate()
    assert "mini_train, mini_val" in one_line(error)
    bad_can = copy("bad_can")
    path = bad_can / "can_bus" / "scene-0103_pose.json"
    messages = json.loads(path.read_text())
    del messages[3]["vel"]
    path.write_text(json.dumps(messages))
    nusc = open_nuscenes(bad_can, VERSION)
    sample = scene_samples(nusc, fx.tok("scene-0103"))[4]
    with pytest.raises(SourceError) as error:
        build_scene(nusc, open_map(bad_can, fx.MAP), open_can_bus(bad_can), sample["token"], "val")
    assert "message 3" in one_line(error) and "vel" in str(error.value)
