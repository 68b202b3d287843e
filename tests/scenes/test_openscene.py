"""OpenScene / NAVSIM v1.1 log pickles <-> DriveScene: hand-built logs, awkward cases, bad input, round trips.

The hand-built logs are plain frame dicts written with pickle, field by field from the reference layout
(shared/reference/real_data_ros2.md §1.3), not through our exporter.
"""

import collections
import hashlib
import pickle
import pickletools
import re

import numpy as np
import pytest
import shapely

from scenes import CURRENT_INDEX, NUM_STEPS, AgentCategory, DrivableKind, DrivingCommand, MapLayers
from scenes.adapters.errors import SourceError
from scenes.adapters.openscene import (
    NUM_SLOTS,
    LogScene,
    build_scene,
    track_id,
    track_token,
)
from scenes.adapters.openscene_filter import (
    DropReason,
    SceneFilter,
    missing_logs,
    read_scene_filter,
    windows,
)
from scenes.adapters.openscene_frames import CAMERA_NAMES, parse_frame, quaternion_yaw, read_log
from scenes.adapters.pickles import restricted_load
from scenes.adapters.sensors import read_camera, read_pcd
from scenes.ego import PACIFICA
from scenes.exporters.openscene import scene_frames, write_jpeg, write_log, write_pcd
from scenes.geometry import wrap_angle
from scenes.maps import boundary_polygons
from scenes.synthetic import generate_scene

LOG1 = "2021.06.07.12.54.00_veh-35_01843_02314"
LOG2 = "2021.09.09.17.18.51_veh-45_00245_00765"
T0 = 1_623_070_440_000_000  # [µs]
L2E_YAW = np.pi / 2  # lidar x axis = ego y axis in the hand-built logs


# --- hand-built map: a junction (straight and left connectors) and a westbound road ---------------------

def _lane_row(centre):
    line = shapely.LineString(centre)
    return line, shapely.offset_curve(line, 1.75), shapely.offset_curve(line, -1.75)


def junction_map() -> MapLayers:
    arc = [(15 * np.sin(t), 15 - 15 * np.cos(t)) for t in np.linspace(0, np.pi / 2, 16)]
    lanes = {  # id: (centreline, roadblock, connector, successors)
        1: ([(-100, 0), (0, 0)], 100, False, (11, 12)),
        2: ([(-100, 3.5), (0, 3.5)], 100, False, ()),
        11: ([(0, 0), (20, 0)], 200, True, (21,)),
        12: (arc, 300, True, (31,)),
        21: ([(20, 0), (120, 0)], 400, False, ()),
        31: ([(15, 15), (15, 100)], 500, False, ()),
        41: ([(200, -10), (-200, -10)], 600, False, ()),
    }
    rows = [_lane_row(c) for c, _, _, _ in lanes.values()]
    centres, lefts, rights = (np.array([r[i] for r in rows], dtype=object) for i in range(3))
    none = np.array([], dtype=object)
    return MapLayers(
        lane_ids=np.array(list(lanes), np.int64),
        lane_centerlines=centres,
        lane_left_boundaries=lefts,
        lane_right_boundaries=rights,
        lane_polygons=boundary_polygons(lefts, rights),
        lane_successors=tuple(v[3] for v in lanes.values()),
        lane_speed_limits=np.full(len(lanes), 15.0),
        lane_roadblock_ids=np.array([v[1] for v in lanes.values()], np.int64),
        lane_is_connector=np.array([v[2] for v in lanes.values()]),
        drivable_polygons=np.array([shapely.box(-100, -2, 120, 5.5), shapely.box(-200, -12, 200, -8)], dtype=object),
        drivable_kinds=np.array([DrivableKind.ROADBLOCK, DrivableKind.ROADBLOCK], np.int8),
        drivable_ids=np.array([100, 600], np.int64),
        stop_lines=none, stop_line_lane_ids=np.zeros(0, np.int64), crosswalks=none,
    )


# --- hand-built frame dicts ------------------------------------------------------------------------------

def wxyz(yaw, scale=1.0):
    return scale * np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


def cams(log, token):
    return {name: {"data_path": f"{log}/{name}/{token}.jpg", "sensor2lidar_rotation": np.eye(3),
                   "sensor2lidar_translation": np.zeros(3), "cam_intrinsic": np.eye(3), "distortion": np.zeros(5)}
            for name in CAMERA_NAMES}


def frame_dict(log, i, x, y, yaw, v=(10.0, 0.0, 0.0, 0.0), wz=0.0, roadblocks=("100", "300", "500"),
               lights=(), command=(0, 1, 0, 0), anns=None, quat_scale=1.0):
    token = f"{log[-5:]}tok{i:02d}"
    q = wxyz(yaw, quat_scale)
    can_bus = np.zeros(18)
    can_bus[:3], can_bus[3:7], can_bus[7:9], can_bus[10:12], can_bus[15] = (x, y, 0), q, v[2:], v[:2], wz
    frame = {
        "token": token, "frame_idx": i, "timestamp": T0 + 500_000 * i, "log_name": log, "log_token": "ab" * 8,
        "scene_name": f"log-0001-{log}", "scene_token": "cd" * 8, "map_location": "us-ma-boston",
        "roadblock_ids": list(roadblocks), "vehicle_name": "35", "can_bus": can_bus,
        "lidar_path": f"{log}/MergedPointCloud/{token}.pcd",
        "lidar2ego_translation": np.array([1.5, 0.0, 1.8]), "lidar2ego_rotation": wxyz(L2E_YAW),
        "ego2global_translation": np.array([x, y, 0.0]), "ego2global_rotation": q,
        "ego_dynamic_state": np.array(v, np.float64), "traffic_lights": list(lights),
        "driving_command": np.array(command), "cams": cams(log, token),
        "sample_prev": None, "sample_next": None, "ego2global": np.eye(4), "lidar2ego": np.eye(4),
        "lidar2global": np.eye(4),
    }
    if anns is not None:
        frame["anns"] = anns
    return frame


def anns_dict(boxes):
    """boxes: (track token, name, (x, y, z, l, w, h, yaw) ego frame, lidar-frame velocity (3,))."""
    return {
        "gt_boxes": np.array([b[2] for b in boxes], np.float64).reshape(-1, 7),
        "gt_names": np.array([b[1] for b in boxes], dtype=str),
        "gt_velocity_3d": np.array([b[3] for b in boxes], np.float64).reshape(-1, 3),
        "instance_tokens": [f"inst{k}{b[0]}" for k, b in enumerate(boxes)],
        "track_tokens": [b[0] for b in boxes],
    }


CAR, PED, CONE = "00000000000000a1", "ped-track-x", "f000000000000001"
CAR_BOX = (10.0, 3.5, 0.8, 4.5, 1.9, 1.6, 0.1)


def log1_pose(i):
    return -35.0 + 5.0 * i, 0.05 * i, 0.02 * i


def log1_dicts():
    """16 frames eastbound on lane 1 towards the junction; route: left turn; a car beside, a pedestrian from
    frame 6, a cone in frames 4-5 only; lane 12 red until frame 5; frame 7's quaternion off unit by 1e-6."""
    out = []
    for i in range(16):
        x, y, yaw = log1_pose(i)
        boxes = [(CAR, "vehicle", CAR_BOX, (0.0, -5.0, 0.0))]
        if i >= 6:
            boxes.append((PED, "pedestrian", (20.0, -4.0, 0.9, 0.6, 0.6, 1.8, 1.5), (0.0, 0.0, 0.0)))
        if i in (4, 5):
            boxes.append((CONE, "traffic_cone", (30.0, 0.0, 0.3, 0.4, 0.4, 0.6, 0.0), (0.0, 0.0, 0.0)))
        lights = [(11, True), (12, i < 6)] + ([(999, False)] if i == 10 else [])
        out.append(frame_dict(LOG1, i, x, y, yaw, v=(10.0 + 0.1 * i, 0.1, 0.5, 0.0), wz=0.01 * i, lights=lights,
                              command=(1, 0, 0, 0) if i == 4 else (0, 1, 0, 0), anns=anns_dict(boxes),
                              quat_scale=1.0 + 1e-6 if i == 7 else 1.0))
    return out


def log2_heading(i):
    return wrap_angle(np.pi - 0.035 + 0.01 * i)  # crosses +-pi between frames 3 and 4


def log2_dicts(roadblocks=("600",)):
    """20 test-log frames (no anns) westbound on lane 41; frames 5 and 16 have no route."""
    return [frame_dict(LOG2, i, 100.0 - 5.0 * i, -10.0, float(log2_heading(i)),
                       roadblocks=() if i in (5, 16) else roadblocks)
            for i in range(20)]


def write_dicts(path, dicts):
    with open(path, "wb") as f:
        pickle.dump(dicts, f, protocol=pickle.HIGHEST_PROTOCOL)
    return path


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("navsim_logs")
    return {LOG1: read_log(write_dicts(folder / f"{LOG1}.pkl", log1_dicts())),
            LOG2: read_log(write_dicts(folder / f"{LOG2}.pkl", log2_dicts()))}


@pytest.fixture(scope="module")
def road():
    return junction_map().validate()


@pytest.fixture(scope="module")
def scene1(logs, road):
    built = build_scene(logs[LOG1], 1, road, "train")
    assert isinstance(built, LogScene)
    return built


# --- the hand-built logs ----------------------------------------------------------------------------------

def test_ego_pose_from_wxyz_quaternion_at_the_frames(scene1):
    ego = scene1.scene.ego
    for i in range(NUM_SLOTS):  # start 1: frame i is at step 5 i
        np.testing.assert_allclose(ego.pose[5 * i], log1_pose(i), atol=1e-9)
    assert quaternion_yaw(wxyz(0.3)) == pytest.approx(0.3, abs=1e-12)
    np.testing.assert_allclose(ego.velocity[CURRENT_INDEX], (10.4, 0.1), atol=1e-12)
    np.testing.assert_allclose(ego.acceleration[CURRENT_INDEX], (0.5, 0.0), atol=1e-12)
    assert ego.yaw_rate[CURRENT_INDEX] == pytest.approx(0.04)
    assert ego.steering[CURRENT_INDEX] == pytest.approx(np.arctan(PACIFICA.wheelbase * 0.04 / 10.4))


def test_ego_interpolated_at_10_hz(scene1):
    ego = scene1.scene.ego
    np.testing.assert_allclose(ego.pose[CURRENT_INDEX + 2], (-13.0, 0.22, 0.088), atol=1e-12)
    assert ego.velocity[CURRENT_INDEX + 2, 0] == pytest.approx(10.44)
    assert ego.yaw_rate[CURRENT_INDEX + 2] == pytest.approx(0.044)


def test_quaternion_off_unit_by_1e6_is_normalised(logs):
    frame = logs[LOG1][7]
    assert np.linalg.norm(frame.ego_rotation) == pytest.approx(1.0, abs=1e-15)
    assert frame.ego_pose[2] == pytest.approx(0.14, abs=1e-12)


def map_point(i, local):
    x, y, yaw = log1_pose(i)
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([x + c * local[0] - s * local[1], y + s * local[0] + c * local[1]])


def test_agents_from_ego_frame_boxes(scene1):
    agents = scene1.scene.agents
    row = {int(t): k for k, t in enumerate(agents.track_ids)}
    car, ped, cone = row[track_id(CAR)], row[track_id(PED)], row[track_id(CONE)]
    assert track_id(CAR) == 0xA1 and track_id(CONE) == 0xF000000000000001 - (1 << 64)
    assert track_token(track_id(CONE)) == CONE
    sha = int.from_bytes(hashlib.sha256(PED.encode()).digest()[:8], "big", signed=True)
    assert track_id(PED) == sha and track_id(CONE.upper()) != track_id(CONE)  # only lowercase hex is reversible
    np.testing.assert_allclose(agents.xy[car, CURRENT_INDEX], map_point(4, CAR_BOX[:2]), atol=1e-9)
    assert agents.heading[car, CURRENT_INDEX] == pytest.approx(0.08 + 0.1)
    # lidar (0, -5) -> ego (5, 0) through the 90 degree lidar2ego rotation -> map by the ego yaw
    np.testing.assert_allclose(agents.velocity[car, CURRENT_INDEX], 5 * np.array([np.cos(0.08), np.sin(0.08)]),
                               atol=1e-9)
    expected = 0.6 * map_point(4, CAR_BOX[:2]) + 0.4 * map_point(5, CAR_BOX[:2])
    np.testing.assert_allclose(agents.xy[car, CURRENT_INDEX + 2], expected, atol=1e-9)
    assert agents.category[car] == AgentCategory.VEHICLE and agents.category[ped] == AgentCategory.PEDESTRIAN
    assert agents.category[cone] == AgentCategory.STATIC_OBJECT
    np.testing.assert_allclose(agents.size[car], (4.5, 1.9))
    assert agents.valid[car].all()
    assert not agents.valid[ped, :30].any() and agents.valid[ped, 30:].all()  # appears at frame 6 = step 30
    assert np.flatnonzero(agents.valid[cone]).tolist() == list(range(20, 26))  # frames 4-5 only
    np.testing.assert_allclose(agents.xy[ped, 30], map_point(6, (20.0, -4.0)), atol=1e-9)
    assert agents.xy[ped, 29].tolist() == [0.0, 0.0]


def test_command_lights_route_metadata(scene1, logs):
    scene, source = scene1.scene, scene1.source
    assert scene.command is DrivingCommand.LEFT  # one-hot (1, 0, 0, 0) at the current frame (4)
    assert scene.route.lane_ids == (1, 12, 31)
    start, end = shapely.get_coordinates(scene.route.centerline)[[0, -1]]
    assert start.tolist() == [-100.0, 0.0] and end.tolist() == [15.0, 100.0]
    lights = scene.traffic_lights
    assert lights.lane_ids.tolist() == [11, 12, 999]  # 999 is not in the map: kept
    assert lights.is_red[0].all()
    assert np.flatnonzero(lights.is_red[1]).tolist() == list(range(30))  # red frames 0-5 -> steps 0-29
    assert not lights.is_red[2].any()
    assert scene.metadata.scene_id == logs[LOG1][4].token and scene.metadata.generator_version == "openscene/1"
    assert source.token == logs[LOG1][4].token and source.timestamp == T0 + 2_000_000
    assert source.camera_paths[0] == f"{LOG1}/CAM_F0/{source.token}.jpg" and len(source.camera_paths) == 8
    assert source.lidar_path.endswith(".pcd") and source.map_location == "us-ma-boston"


@pytest.mark.parametrize(("one_hot", "command"), [((1, 0, 0, 0), DrivingCommand.LEFT),
                                                  ((0, 1, 0, 0), DrivingCommand.STRAIGHT),
                                                  ((0, 0, 1, 0), DrivingCommand.RIGHT),
                                                  ((0, 0, 0, 1), DrivingCommand.UNKNOWN)])
def test_command_one_hot_order(road, one_hot, command):
    dicts = log1_dicts()
    dicts[4]["driving_command"] = np.array(one_hot)
    frames = [parse_frame(d, "mem.pkl", i) for i, d in enumerate(dicts)]
    built = build_scene(frames, 1, road, "val")
    assert isinstance(built, LogScene) and built.scene.command is command


def test_missing_anns_heading_wrap_and_back_fill(logs, road):
    built = build_scene(logs[LOG2], 0, road, "test")  # no frame before the window: back-filled
    assert isinstance(built, LogScene)
    scene = built.scene
    assert scene.agents.num_agents == 0 and scene.route.lane_ids == (41,)
    heading = scene.ego.pose[:, 2]
    h3 = np.pi - 0.005  # frames 3 and 4 (pi + 0.005) are at steps 20 and 25 (start 0: frame i at 5 i + 5)
    for step, a in ((CURRENT_INDEX + 2, 0.4), (CURRENT_INDEX + 3, 0.6)):
        assert wrap_angle(heading[step] - (h3 + a * 0.01)) == pytest.approx(0.0, abs=1e-9)
    assert abs(heading[CURRENT_INDEX + 3]) > 3.1  # interpolated across the wrap, not through 0
    first = logs[LOG2][0].ego_pose
    v_map = 10.0 * np.array([np.cos(first[2]), np.sin(first[2])])
    np.testing.assert_allclose(scene.ego.pose[0, :2], first[:2] - 0.5 * v_map, atol=1e-9)
    assert scene.ego.pose[0, 2] == pytest.approx(first[2]) and scene.ego.velocity[0, 0] == 10.0


def test_drop_reasons_from_build_scene(logs, road):
    assert build_scene(logs[LOG2], 2, road, "test") is DropReason.NO_ROUTE  # frame 5 has no route
    assert build_scene(logs[LOG2], 10, road, "test") is DropReason.TOO_SHORT
    off_map = [parse_frame(d, "mem.pkl", i) for i, d in enumerate(log2_dicts(roadblocks=("100",)))]
    assert build_scene(off_map, 0, road, "test") is DropReason.ROUTE_NOT_ON_MAP
    gap = log2_dicts()
    for d in gap[8:]:
        d["timestamp"] += 1_000_000
    gapped = [parse_frame(d, "mem.pkl", i) for i, d in enumerate(gap)]
    assert build_scene(gapped, 0, road, "test") is DropReason.TIME_GAP


def hand_count(n, interval, no_route, history=4, frames=14):
    kept, reasons = [], {}
    for start in range(0, n, interval):
        if n - start < frames:
            reasons[start] = DropReason.TOO_SHORT
        elif start + history - 1 in no_route:
            reasons[start] = DropReason.NO_ROUTE
        else:
            kept.append(start)
    return kept, reasons


@pytest.mark.parametrize("interval", [1, 2, None])
def test_windows_match_a_hand_count(logs, interval):
    result = windows(logs[LOG2], SceneFilter(frame_interval=interval))
    kept, reasons = hand_count(20, interval or 14, {5, 16})
    assert [w.start for w in result if w.dropped is None] == kept
    assert {w.start: w.dropped for w in result if w.dropped is not None} == reasons
    if interval == 1:
        assert kept == [0, 1, 3, 4, 5, 6] and len(reasons) == 14
    if interval == 2:
        assert kept == [0, 4, 6] and reasons[2] is DropReason.NO_ROUTE and len(reasons) == 7
    assert all(w.token == logs[LOG2][w.current].token for w in result if w.current < 20)


def test_windows_without_route_filter_and_with_tokens(logs):
    assert 2 in [w.start for w in windows(logs[LOG2], SceneFilter(frame_interval=1, has_route=False))
                 if w.dropped is None]
    wanted = frozenset({logs[LOG2][6].token})
    result = windows(logs[LOG2], SceneFilter(frame_interval=1, tokens=wanted))
    assert [w.start for w in result if w.dropped is None] == [3]
    assert result[0].dropped is DropReason.NOT_IN_FILTER


def test_scene_filter_yaml_navtest_like(tmp_path, logs):
    path = tmp_path / "navtest.yaml"
    path.write_text(f"""_target_: navsim.common.dataclasses.SceneFilter
_convert_: 'all'
num_history_frames: 4
num_future_frames: 10
frame_interval: 1
has_route: true
max_scenes: null
log_names:
  - {LOG1}
  - {LOG2}
tokens:
  - {logs[LOG1][4].token}
  - {logs[LOG2][7].token}
""")
    scene_filter = read_scene_filter(path)
    assert scene_filter.log_names == (LOG1, LOG2) and scene_filter.step == 1 and scene_filter.has_route
    assert scene_filter.tokens == {logs[LOG1][4].token, logs[LOG2][7].token}
    assert [w.start for w in windows(logs[LOG1], scene_filter) if w.dropped is None] == [1]
    assert [w.start for w in windows(logs[LOG2], scene_filter) if w.dropped is None] == [4]
    missing_logs(scene_filter, [LOG1, LOG2, "other"])
    (tmp_path / "default.yaml").write_text("_target_: navsim.common.dataclasses.SceneFilter\n")
    default = read_scene_filter(tmp_path / "default.yaml")
    assert (default.num_history_frames, default.num_future_frames, default.step) == (4, 10, 14)


# --- bad input: one line naming the file and the field / class ------------------------------------------

class Smuggled:
    """A class that a log must never be allowed to instantiate."""


def one_line_error(call, *args):
    with pytest.raises(SourceError) as error:
        call(*args)
    message = str(error.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("payload", ["class", "ordered_dict", "os_system", "eval"])
def test_forbidden_classes_are_refused(tmp_path, payload):
    marker = tmp_path / "pwned"
    data, name = {
        "class": (pickle.dumps([{"token": "t", "x": Smuggled()}]), f"{Smuggled.__module__}.Smuggled"),
        "ordered_dict": (pickle.dumps([collections.OrderedDict(a=1)]), "collections.OrderedDict"),
        "os_system": (f"cos\nsystem\n(S'touch {marker}'\ntR.".encode(), "os.system"),
        "eval": (b"c__builtin__\neval\n(S'1+1'\ntR.", "__builtin__.eval"),
    }[payload]
    path = tmp_path / "log.pkl"
    path.write_bytes(data)
    message = one_line_error(read_log, path)
    assert message == f"{path}: refuses to unpickle {name} (only builtins and numpy arrays are allowed)"
    assert not marker.exists()


def test_numpy2_spelling_loads(tmp_path):
    arrays: list = [np.arange(6.0).reshape(2, 3), np.array(["vehicle"]), np.int64(7), {1, 2}]
    for protocol in (2, 5):
        data = pickle.dumps(arrays, protocol=protocol)
        if protocol == 2:  # GLOBAL "module\nname\n"
            data = data.replace(b"numpy.core.", b"numpy._core.")
        else:  # SHORT_BINUNICODE names carry a length byte; pickletools.optimize re-frames the result
            data = re.sub(rb"\x8c(.)numpy\.core\.", lambda m: b"\x8c" + bytes([m.group(1)[0] + 1]) + b"numpy._core.",
                          data, flags=re.DOTALL)
            data = pickletools.optimize(data)
        assert b"numpy._core" in data and b"numpy.core" not in data
        path = tmp_path / f"np2_{protocol}.pkl"
        path.write_bytes(data)
        loaded = restricted_load(path)
        assert isinstance(loaded, list)
        np.testing.assert_array_equal(loaded[0], arrays[0])
        assert loaded[1][0] == "vehicle" and loaded[2] == 7 and loaded[3] == {1, 2}


def test_truncated_pickle(tmp_path):
    data = pickle.dumps(log1_dicts(), protocol=pickle.HIGHEST_PROTOCOL)
    path = tmp_path / "cut.pkl"
    path.write_bytes(data[: len(data) // 2])
    message = one_line_error(read_log, path)
    assert message.startswith(f"{path}: is not a readable pickle (truncated or corrupt")


def test_nan_boxes_name_frame_token_and_field(tmp_path):
    dicts = log1_dicts()
    dicts[12]["anns"]["gt_boxes"][0, 1] = np.nan
    path = write_dicts(tmp_path / "nan.pkl", dicts)
    assert one_line_error(read_log, path) == f"{path}: frame 12 (token {dicts[12]['token']}): anns.gt_boxes has NaN"


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda d: d.pop("ego2global_rotation"), "missing key 'ego2global_rotation'"),
    (lambda d: d.update(ego2global_rotation=np.zeros(4)), "ego2global_rotation is a zero quaternion (wxyz)"),
    (lambda d: d.update(ego_dynamic_state=np.zeros(3)), "ego_dynamic_state has shape (3,), expected (4)"),
    (lambda d: d["cams"].pop("CAM_B0"), "cams lacks camera(s) CAM_B0"),
    (lambda d: d.update(driving_command=np.array([1, 1, 0, 0])), "driving_command must be a one-hot"),
    (lambda d: d["anns"].update(gt_names=np.array(["vehicle", "unicorn"])[:1].repeat(0)),
     "anns.gt_names has 0 entries for 1 boxes"),
    (lambda d: d["anns"].update(gt_names=np.array(["unicorn"])), "anns.gt_names has unknown class 'unicorn'"),
    (lambda d: d.update(traffic_lights=[(11, "red")]), "traffic_lights entry (11, 'red') is not a"),
    (lambda d: d.update(map_location="mars"), "map_location 'mars' is not a nuPlan map location"),
])
def test_bad_fields_name_the_field(tmp_path, edit, expected):
    dicts = log1_dicts()
    edit(dicts[3])
    path = write_dicts(tmp_path / "bad.pkl", dicts)
    assert one_line_error(read_log, path).startswith(f"{path}: frame 3 (token {dicts[3]['token']}): {expected}")


def test_filter_naming_absent_logs_and_bad_yaml(tmp_path):
    names = tuple(f"log-{k}" for k in range(8))
    message = one_line_error(missing_logs, SceneFilter(log_names=names), ["log-0"], "navtest.yaml")
    assert message == "navtest.yaml: names 7 log(s) absent from the logs folder: log-1, log-2, log-3, log-4, log-5, ..."
    path = tmp_path / "bad.yaml"
    path.write_text("num_history_frames: 4\nnum_futur_frames: 10\n")
    assert one_line_error(read_scene_filter, path).startswith(f"{path}: unknown scene-filter key 'num_futur_frames'")
    path.write_text("frame_interval: 0\n")
    assert one_line_error(read_scene_filter, path) == f"{path}: frame_interval must be an integer >= 1, got 0"


def test_non_integer_roadblock_id(road):
    dicts = log1_dicts()
    dicts[4]["roadblock_ids"] = ["100", "lane-x"]
    frames = [parse_frame(d, "mem.pkl", i) for i, d in enumerate(dicts)]
    message = one_line_error(build_scene, frames, 1, road, "train")
    assert message == f"mem.pkl: frame 4 (token {dicts[4]['token']}): roadblock_ids has a non-integer id 'lane-x'"


# --- our exporter: format and round trip ------------------------------------------------------------------

REFERENCE_KEYS = {"token", "frame_idx", "timestamp", "log_name", "log_token", "scene_name", "scene_token",
                  "map_location", "roadblock_ids", "vehicle_name", "can_bus", "lidar_path", "lidar2ego_translation",
                  "lidar2ego_rotation", "ego2global_translation", "ego2global_rotation", "ego_dynamic_state",
                  "traffic_lights", "driving_command", "cams", "sample_prev", "sample_next", "ego2global",
                  "lidar2ego", "lidar2global", "anns"}


def test_exported_frames_are_format_exact():
    scene = generate_scene(1_100_000_004, "test")  # an intersection with lights
    frames = scene_frames(scene, LOG1, "us-pa-pittsburgh-hazelwood")
    assert len(frames) == 15
    for k, frame in enumerate(frames):
        assert set(frame) == REFERENCE_KEYS
        assert isinstance(frame["timestamp"], int) and frame["frame_idx"] == k
        assert frame["can_bus"].shape == (18,) and frame["can_bus"].dtype == np.float64
        q = frame["ego2global_rotation"]
        assert q.shape == (4,) and q[1] == q[2] == 0.0  # wxyz, yaw only
        assert quaternion_yaw(q) == pytest.approx(scene.ego.pose[5 * k, 2], abs=1e-12)
        np.testing.assert_array_equal(frame["can_bus"][3:7], q)
        assert all(frame[m].shape == (4, 4) for m in ("ego2global", "lidar2ego", "lidar2global"))
        assert set(frame["cams"]) == set(CAMERA_NAMES)
        cam = frame["cams"]["CAM_F0"]
        assert cam["sensor2lidar_rotation"].shape == (3, 3) and cam["cam_intrinsic"].shape == (3, 3)
        assert cam["data_path"].startswith(LOG1)
        assert all(isinstance(a, int) and isinstance(b, bool) for a, b in frame["traffic_lights"])
        assert frame["driving_command"].dtype.kind == "i" and frame["driving_command"].sum() == 1
        assert all(isinstance(r, str) for r in frame["roadblock_ids"]) and frame["roadblock_ids"]
        anns = frame["anns"]
        n = anns["gt_boxes"].shape[0]
        assert anns["gt_boxes"].shape == (n, 7) and anns["gt_velocity_3d"].shape == (n, 3)
        assert anns["gt_names"].dtype.kind == "U" and len(anns["track_tokens"]) == len(anns["instance_tokens"]) == n
        assert all(re.fullmatch("[0-9a-f]{16}", t) for t in anns["track_tokens"] + anns["instance_tokens"])
    assert frames[0]["sample_prev"] is None and frames[1]["sample_prev"] == frames[0]["token"]
    assert frames[-1]["sample_next"] is None


def _round_trip(tmp_path, seed, **kwargs):
    scene = generate_scene(seed, "test")
    path = tmp_path / f"{seed}.pkl"
    write_log(path, scene_frames(scene, LOG1, "sg-one-north", **kwargs))
    built = build_scene(read_log(path), 1, scene.map, "test")
    assert isinstance(built, LogScene)
    return scene, built.scene


# measured over seeds 1_100_000_000 .. +59: ego xy 0.097 m, heading 0.027 rad, velocity 0.22 m/s;
# agents xy 0.27 m (vehicles' 99th percentile 0.05 m); see the module report.
TOL_10HZ = {"ego_xy": 0.15, "ego_heading": 0.05, "ego_velocity": 0.3, "agent_xy": 0.4}


@pytest.mark.parametrize("index", range(6))
def test_round_trip_synthetic_scenes(tmp_path, index):
    scene, back = _round_trip(tmp_path, 1_100_000_000 + index,
                              lidar2ego_rotation=tuple(wxyz(0.7)))  # a turned lidar exercises the velocity path
    frames = np.arange(0, NUM_STEPS, 5)
    np.testing.assert_allclose(back.ego.pose[frames, :2], scene.ego.pose[frames, :2], rtol=0, atol=1e-9)
    assert np.abs(wrap_angle(back.ego.pose[frames, 2] - scene.ego.pose[frames, 2])).max() < 1e-9
    np.testing.assert_allclose(back.ego.velocity[frames], scene.ego.velocity[frames], atol=1e-9)
    order = np.array([np.flatnonzero(back.agents.track_ids == t)[0] for t in scene.agents.track_ids])
    agents = back.agents.select(order)
    np.testing.assert_array_equal(agents.track_ids, scene.agents.track_ids)
    np.testing.assert_array_equal(agents.category, scene.agents.category)
    np.testing.assert_allclose(agents.size, scene.agents.size, atol=1e-12)
    seen = scene.agents.valid[:, frames]
    np.testing.assert_array_equal(agents.valid[:, frames], seen)
    for field in ("xy", "velocity"):
        np.testing.assert_allclose(getattr(agents, field)[:, frames][seen],
                                   getattr(scene.agents, field)[:, frames][seen], atol=1e-9)
    assert np.abs(wrap_angle(agents.heading[:, frames][seen] - scene.agents.heading[:, frames][seen])).max(
        initial=0) < 1e-9
    np.testing.assert_array_equal(back.traffic_lights.lane_ids, scene.traffic_lights.lane_ids)
    np.testing.assert_array_equal(back.traffic_lights.is_red[:, frames], scene.traffic_lights.is_red[:, frames])
    assert back.command is scene.command
    assert back.route.lane_ids == scene.route.lane_ids  # the ego drives on its route lanes from step 0
    assert not (agents.valid & ~scene.agents.valid).any()  # interpolation never invents presence
    both = agents.valid & scene.agents.valid
    assert np.abs(back.ego.pose[:, :2] - scene.ego.pose[:, :2]).max() < TOL_10HZ["ego_xy"]
    assert np.abs(wrap_angle(back.ego.pose[:, 2] - scene.ego.pose[:, 2])).max() < TOL_10HZ["ego_heading"]
    assert np.abs(back.ego.velocity - scene.ego.velocity).max() < TOL_10HZ["ego_velocity"]
    assert np.abs(agents.xy[both] - scene.agents.xy[both]).max(initial=0) < TOL_10HZ["agent_xy"]


def test_round_trip_test_log_has_no_agents(tmp_path):
    _, back = _round_trip(tmp_path, 1_100_000_001, with_annotations=False)
    assert back.agents.num_agents == 0 and back.validate() is back


def test_sensor_blobs(tmp_path):
    points = np.random.default_rng(0).normal(size=(6, 50)).astype(np.float32)
    write_pcd(tmp_path / "a.pcd", points)
    np.testing.assert_array_equal(read_pcd(tmp_path / "a.pcd"), points)
    # mixed TYPE / SIZE per field, as nuPlan's reader allows
    record = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "u1"), ("ring", "<u2"),
                       ("lidar_info", "u1")])
    data = np.zeros(3, record)
    data["x"], data["intensity"], data["ring"], data["lidar_info"] = (1.5, 2.5, 3.5), (7, 8, 9), (1, 2, 300), 4
    header = ("VERSION 0.7\nFIELDS x y z intensity ring lidar_info\nSIZE 4 4 4 1 2 1\nTYPE F F F U U U\n"
              "COUNT 1 1 1 1 1 1\nWIDTH 3\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS 3\nDATA binary\n")
    (tmp_path / "b.pcd").write_bytes(header.encode() + data.tobytes())
    cloud = read_pcd(tmp_path / "b.pcd")
    assert cloud.dtype == np.float32 and cloud.shape == (6, 3)
    assert cloud[0].tolist() == [1.5, 2.5, 3.5] and cloud[4].tolist() == [1, 2, 300] and cloud[5].tolist() == [4] * 3
    (tmp_path / "c.pcd").write_bytes(header.replace("VIEWPOINT 0 0 0 1", "VIEWPOINT 0.0 0 0 1").encode())
    assert "VIEWPOINT" in one_line_error(read_pcd, tmp_path / "c.pcd")
    (tmp_path / "d.pcd").write_bytes(header.encode() + data.tobytes()[:-3])
    assert "truncated" in one_line_error(read_pcd, tmp_path / "d.pcd")
    image = np.zeros((8, 16, 3), np.uint8)
    image[:, :8] = 200
    write_jpeg(tmp_path / "cam.jpg", image)
    assert read_camera(tmp_path / "cam.jpg").shape == (8, 16, 3)
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    assert one_line_error(read_camera, tmp_path / "bad.jpg").startswith(f"{tmp_path / 'bad.jpg'}: is not a readable")
