"""A hand-built nuScenes v1.0-mini dataroot: the 13 tables, a map expansion of a straight two-lane road and a
CAN bus `pose` file, field by field as the devkit reads them (deps_feasibility section 7).

The road runs along direction THETA from s = -50 m to s = 250 m: the right lane's centreline at lateral
offset 0, the left lane's at +3.5 m, each cut at s = 100 m into two lanes (two road blocks). Three scenes of
N_KEYFRAMES keyframes exactly 0.5 s apart, the ego heading always THETA:
- scene-0103 (mini_val): right lane, 10 m/s; CAN pose at 50 Hz says 10.5 m/s forward (not the poses' 10).
- scene-0916 (mini_val): starts in the right lane at 10 m/s, moves to the left lane between t = 3 s and 5 s;
  no CAN file.
- scene-0161 (on the devkit's CAN blacklist): starts in the left lane at 8 m/s, moves right between 3 s and
  5 s; it has a CAN file, which must not be read.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from PIL import Image

THETA = 0.4  # [rad] road direction
LANE_OFFSET = 3.5  # [m] left lane centre
HALF_WIDTH = 1.75
N_KEYFRAMES = 16
T0 = 1_533_151_603_547_590  # [µs]
MAP = "singapore-onenorth"
LIDAR_TRANSLATION = [0.943713, 0.0, 1.84023]
CAN_SPEED = 10.5
SCENES = {  # name: (speed [m/s], start s [m], lateral from, lateral to, CAN file)
    "scene-0103": (10.0, 40.0, 0.0, 0.0, True),
    "scene-0916": (10.0, 0.0, 0.0, LANE_OFFSET, False),
    "scene-0161": (8.0, 5.0, LANE_OFFSET, 0.0, True),
}
# instances of every scene: (name, category, size [w, l, h], keyframes annotated, s ahead, lateral, speed)
AGENTS = (
    ("car", "vehicle.car", [1.9, 4.6, 1.7], range(N_KEYFRAMES), 20.0, 0.0, 8.0),
    ("walker", "human.pedestrian.adult", [0.6, 0.7, 1.8], (2, 3, 5, 6, 7), 30.0, -3.0, 0.0),
    ("bike", "vehicle.bicycle", [0.7, 1.8, 1.3], range(N_KEYFRAMES), 40.0, 3.5, 5.0),
    ("cone", "movable_object.trafficcone", [0.4, 0.4, 0.9], range(N_KEYFRAMES), 60.0, -2.2, 0.0),
    ("dog", "animal", [0.3, 0.8, 0.5], range(N_KEYFRAMES), 25.0, -2.5, 0.0),
)


def tok(*parts: object) -> str:
    """Deterministic 32-hex token."""
    return hashlib.md5("/".join(map(str, parts)).encode()).hexdigest()


def quat(yaw: float) -> list[float]:
    """wxyz of a yaw."""
    return [float(np.cos(yaw / 2)), 0.0, 0.0, float(np.sin(yaw / 2))]


def road_xy(s: float, d: float) -> tuple[float, float]:
    """Map point at distance s along the road and lateral offset d (left positive)."""
    c, n = np.cos(THETA), np.sin(THETA)
    return float(s * c - d * n), float(s * n + d * c)


def lateral(name: str, t: float) -> float:
    """The ego's lateral offset [m] at time t [s] after the scene's first keyframe."""
    _, _, d0, d1, _ = SCENES[name]
    u = min(max((t - 3.0) / 2.0, 0.0), 1.0)
    return d0 + (d1 - d0) * u * u * (3 - 2 * u)


def ego_xy(name: str, k: int) -> tuple[float, float]:
    """The ego's map position at keyframe k."""
    speed, s0, _, _, _ = SCENES[name]
    t = 0.5 * k
    return road_xy(s0 + speed * t, lateral(name, t))


def write_map(root: Path, version: str = "1.3") -> Path:
    """The map expansion JSON of the straight two-lane road."""
    nodes: list[dict] = []
    polygons: list[dict] = []

    def polygon(name: str, corners: list[tuple[float, float]]) -> str:
        tokens = []
        for i, (x, y) in enumerate(corners):
            tokens.append(tok("node", name, i))
            nodes.append({"token": tokens[-1], "x": x, "y": y})
        polygons.append({"token": tok("polygon", name), "exterior_node_tokens": tokens, "holes": []})
        return tok("polygon", name)

    def rect(name: str, s0: float, s1: float, d0: float, d1: float) -> str:
        return polygon(name, [road_xy(s0, d0), road_xy(s1, d0), road_xy(s1, d1), road_xy(s0, d1)])

    lanes, arclines, connectivity = [], {}, {}
    for side, d in (("R", 0.0), ("L", LANE_OFFSET)):
        for part, (s0, s1) in enumerate(((-50.0, 100.0), (100.0, 250.0))):
            name = f"lane{side}{part}"
            shape = rect(name, s0, s1, d - HALF_WIDTH, d + HALF_WIDTH)
            lanes.append({"token": tok(name), "polygon_token": shape,
                          "lane_type": "CAR", "from_edge_line_token": "", "to_edge_line_token": "",
                          "left_lane_divider_segments": [], "right_lane_divider_segments": []})
            arclines[tok(name)] = [{"start_pose": [*road_xy(s0, d), THETA],
                                    "end_pose": [*road_xy(s1, d), THETA],
                                    "shape": "LSL", "radius": 999.0, "segment_length": [0.0, s1 - s0, 0.0]}]
            outgoing = [tok(f"lane{side}1")] if part == 0 else []
            incoming = [tok(f"lane{side}0")] if part == 1 else []
            connectivity[tok(name)] = {"incoming": incoming, "outgoing": outgoing}
    road = rect("road", -50.0, 250.0, -HALF_WIDTH, LANE_OFFSET + HALF_WIDTH)
    blocks = [{"token": tok("block", i),
               "polygon_token": rect(f"block{i}", s0, s1, -HALF_WIDTH, LANE_OFFSET + HALF_WIDTH),
               "from_edge_line_token": "", "to_edge_line_token": "", "road_segment_token": tok("segment")}
              for i, (s0, s1) in enumerate(((-50.0, 100.0), (100.0, 250.0)))]
    doc = {
        "version": version, "canvas_edge": [1000.0, 1000.0],
        "polygon": polygons, "line": [], "node": nodes,
        "drivable_area": [{"token": tok("drivable"), "polygon_tokens": [road]}],
        "road_segment": [{"token": tok("segment"), "polygon_token": road, "is_intersection": False,
                          "drivable_area_token": tok("drivable")}],
        "road_block": blocks, "lane": lanes,
        "ped_crossing": [{"token": tok("crossing"),
                          "polygon_token": rect("crossing", 200.0, 204.0, -2.0, 5.5),
                          "road_segment_token": tok("segment")}],
        "walkway": [],
        "stop_line": [{"token": tok("stop"),
                       "polygon_token": rect("stop", 195.0, 196.0, -HALF_WIDTH, HALF_WIDTH),
                       "stop_line_type": "STOP_SIGN", "ped_crossing_tokens": [], "traffic_light_tokens": [],
                       "road_block_token": tok("block", 1)}],
        "carpark_area": [], "road_divider": [], "lane_divider": [], "traffic_light": [], "lane_connector": [],
        "arcline_path_3": arclines, "connectivity": connectivity,
    }
    path = root / "maps" / "expansion" / f"{MAP}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def write_fixture(root: Path, version: str = "v1.0-mini", location: str = MAP) -> Path:
    """Write the dataroot under `root` and return it."""
    root.mkdir(parents=True, exist_ok=True)
    tables: dict[str, list[dict]] = {name: [] for name in (
        "category", "attribute", "visibility", "instance", "sensor", "calibrated_sensor", "ego_pose", "log",
        "scene", "sample", "sample_data", "sample_annotation", "map")}
    categories = sorted({a[1] for a in AGENTS})
    tables["category"] = [{"token": tok("cat", c), "name": c, "description": c} for c in categories]
    tables["attribute"] = [{"token": tok("attr"), "name": "vehicle.moving", "description": ""}]
    tables["visibility"] = [{"token": "4", "level": "v80-100", "description": ""}]
    tables["sensor"] = [{"token": tok("sensor"), "channel": "LIDAR_TOP", "modality": "lidar"}]
    tables["calibrated_sensor"] = [{"token": tok("cs"), "sensor_token": tok("sensor"),
                                    "translation": LIDAR_TRANSLATION, "rotation": quat(-np.pi / 2),
                                    "camera_intrinsic": []}]
    tables["log"] = [{"token": tok("log"), "logfile": "n015-2018-fixture", "vehicle": "n015",
                      "date_captured": "2018-08-02", "location": location}]
    Image.new("L", (20, 20)).save(root / "mask.png")
    tables["map"] = [{"token": tok("map"), "log_tokens": [tok("log")], "category": "semantic_prior",
                      "filename": "mask.png"}]
    for name, (speed, s0, _, _, has_can) in SCENES.items():
        samples = [tok(name, "sample", k) for k in range(N_KEYFRAMES)]
        tables["scene"].append({"token": tok(name), "name": name, "description": "fixture",
                                "log_token": tok("log"),
                                "nbr_samples": N_KEYFRAMES, "first_sample_token": samples[0],
                                "last_sample_token": samples[-1]})
        for k, sample in enumerate(samples):
            stamp = T0 + k * 500_000
            prev, nxt = (samples[k - 1] if k else ""), (samples[k + 1] if k + 1 < N_KEYFRAMES else "")
            tables["sample"].append({"token": sample, "timestamp": stamp, "scene_token": tok(name),
                                     "prev": prev, "next": nxt})
            tables["ego_pose"].append({"token": tok(name, "pose", k), "translation": [*ego_xy(name, k), 0.0],
                                       "rotation": quat(THETA), "timestamp": stamp})
            tables["sample_data"].append({
                "token": tok(name, "sd", k), "sample_token": sample, "ego_pose_token": tok(name, "pose", k),
                "calibrated_sensor_token": tok("cs"), "timestamp": stamp, "fileformat": "pcd",
                "is_key_frame": True, "height": 0, "width": 0,
                "filename": f"samples/LIDAR_TOP/{name}_{k}.pcd.bin",
                "prev": tok(name, "sd", k - 1) if k else "",
                "next": tok(name, "sd", k + 1) if k + 1 < N_KEYFRAMES else ""})
        for agent, category, size, keys, ahead, d, agent_speed in AGENTS:
            keys = list(keys)
            anns = [tok(name, agent, k) for k in keys]
            tables["instance"].append({"token": tok(name, agent), "category_token": tok("cat", category),
                                       "nbr_annotations": len(keys), "first_annotation_token": anns[0],
                                       "last_annotation_token": anns[-1]})
            for i, k in enumerate(keys):
                x, y = road_xy(s0 + ahead + agent_speed * 0.5 * k, d)
                tables["sample_annotation"].append({
                    "token": anns[i], "sample_token": samples[k], "instance_token": tok(name, agent),
                    "visibility_token": "4", "attribute_tokens": [], "translation": [x, y, size[2] / 2],
                    "size": size, "rotation": quat(THETA), "prev": anns[i - 1] if i else "",
                    "next": anns[i + 1] if i + 1 < len(anns) else "", "num_lidar_pts": 10,
                    "num_radar_pts": 0})
        if has_can:
            write_can(root, name)
    folder = root / version
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        (folder / f"{name}.json").write_text(json.dumps(rows))
    write_map(root)
    return root


def write_can(root: Path, name: str) -> None:
    """A 50 Hz CAN `pose` file over the scene and 1 s either side: vel CAN_SPEED, accel 0.2, yaw rate 0.01."""
    folder = root / "can_bus"
    folder.mkdir(parents=True, exist_ok=True)
    stamps = range(T0 - 1_000_000, T0 + N_KEYFRAMES * 500_000 + 1_000_000, 20_000)
    messages = [{"utime": u, "pos": [0.0, 0.0, 0.0], "orientation": quat(THETA), "vel": [CAN_SPEED, 0.1, 0.0],
                 "accel": [0.2, 0.0, 9.8], "rotation_rate": [0.0, 0.0, 0.01]} for u in stamps]
    (folder / f"{name}_pose.json").write_text(json.dumps(messages))
