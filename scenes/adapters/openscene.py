"""OpenScene / NAVSIM v1.1 log windows turned into our `DriveScene`.

Reading is in `openscene_frames` (records), `openscene_filter` (scene filters and windows) and
`openscene_route` (route lanes); this module builds one scene per window. Choices, each also in the code:

- **Timeline.** A NAVSIM scene is 4 history frames and 10 future frames at 2 Hz (-1.5 s .. 5.0 s about the
  current frame, `num_history_frames - 1`). Frames are taken as exactly 0.5 s apart, as NAVSIM does (its
  trajectories are frame poses at 0.5 s); a window whose frames are more than 0.1 s off that spacing is
  dropped (TIME_GAP). Our timeline starts at -2.0 s: the log frame before the window fills it when there is
  one (and it is 0.5 s before); otherwise the ego is extrapolated backwards from the first frame at constant
  map-frame velocity with its heading, body velocity, acceleration and yaw rate held, and agents are invalid
  there (no extrapolation of agents).
- **Ego.** `ego2global_translation[:2]` and the yaw of the wxyz `ego2global_rotation` are nuPlan's ego pose,
  which is the rear axle, like `EgoState.pose` (no offset applied). Poses are interpolated to 10 Hz linearly
  in x, y and in the unwrapped heading. Velocity and acceleration come from `ego_dynamic_state` (ego frame,
  like our body frame) and the yaw rate from `can_bus[15]`, all interpolated linearly component by component.
  Steering is the kinematic bicycle's atan(wheelbase * yaw_rate / v_forward) with PACIFICA's wheelbase, 0
  below 0.5 m/s; it is not in the log.
- **Agents.** `gt_boxes` are in the ego frame of their frame with yaw relative to the ego: they are moved to
  the map frame with that frame's ego pose (planar: z, pitch and roll are dropped). `gt_velocity_3d` is in the
  lidar frame: it is rotated by `lidar2ego_rotation` (3-D), then by the ego yaw. Size is (l, w) and category
  the frame's, both from the observation nearest the current frame. A track is interpolated (linear x, y,
  velocity; linear shortest-way heading) only between consecutive frames that both hold it; elsewhere it is
  invalid. Track ids: a 16-character lowercase hex token maps reversibly to int(token, 16) read as a signed
  int64 (`track_token` inverts it); any other token maps to the first 8 bytes of its sha256 as a signed int64.
- **Traffic lights.** `lane_ids` are every lane connector mentioned by a frame of the scene, kept even when
  the map lacks them (MapLayers does not require them; a lookup simply finds nothing). Each 2 Hz frame's
  state holds over its 5 steps (steps 5k .. 5k + 4); a lane a frame does not mention is not red then; steps
  before the first frame take the first frame's state.
- **Command** is the argmax of the current frame's one-hot (left, forward, right, unknown = DrivingCommand).
- **Route** is built by `openscene_route` from the current frame's roadblock ids; no route lane near the ego
  gives DropReason.ROUTE_NOT_ON_MAP.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from scenes.adapters.errors import SourceError
from scenes.adapters.openscene_filter import DropReason
from scenes.adapters.openscene_frames import LogFrame, quaternion_matrix
from scenes.adapters.openscene_route import route_centerline, route_lanes
from scenes.agents import AgentTracks
from scenes.drive import (
    CURRENT_INDEX,
    NUM_STEPS,
    SIM_DT,
    DriveScene,
    DrivingCommand,
    Route,
    ScenarioType,
    SceneMetadata,
    TrafficLights,
)
from scenes.ego import PACIFICA, EgoState
from scenes.geometry import points_to_global, wrap_angle
from scenes.maps import MapLayers

GENERATOR_VERSION = "openscene/1"
FRAME_INTERVAL_US = 500_000  # 2 Hz
FRAME_GAP_TOLERANCE_US = 100_000  # a frame this far off 0.5 s after the previous one ends the scene
STEPS_PER_FRAME = 5  # SIM_DT steps per 2 Hz frame
NUM_SLOTS = (NUM_STEPS - 1) // STEPS_PER_FRAME + 1  # 15 frames: -2.0 s .. 5.0 s
CURRENT_SLOT = CURRENT_INDEX // STEPS_PER_FRAME  # 4
MIN_STEERING_SPEED = 0.5  # [m/s] below which steering is reported as 0
_HEX_TOKEN = re.compile(r"[0-9a-f]{16}")


@dataclass(frozen=True)
class LogSceneSource:
    """Where a log scene comes from; cameras and LiDAR are referenced by path only.

    Attributes:
        log_name, map_location: the log and its nuPlan map.
        token: the current frame's token (= the scene id).
        timestamp: the current frame's time [µs].
        lidar_path: relative path of the current frame's point cloud.
        camera_paths: relative paths of the current frame's images, in CAMERA_NAMES order.
    """

    log_name: str
    map_location: str
    token: str
    timestamp: int
    lidar_path: str
    camera_paths: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class LogScene:
    """A scene built from a log window and its provenance."""

    scene: DriveScene
    source: LogSceneSource


def track_id(token: str) -> int:
    """Stable int64 id of track token `token`: reversible for 16-char lowercase hex tokens, else sha256-based."""
    if _HEX_TOKEN.fullmatch(token):
        value = int(token, 16)
        return value - (1 << 64) if value >= 1 << 63 else value
    return int.from_bytes(hashlib.sha256(token.encode()).digest()[:8], "big", signed=True)


def track_token(track_id: int) -> str:
    """The 16-char hex token whose `track_id` is `track_id` (int64)."""
    return format(int(track_id) & ((1 << 64) - 1), "016x")


def build_scene(frames: Sequence[LogFrame], start: int, road: MapLayers, split: str,
                num_history_frames: int = 4) -> LogScene | DropReason:
    """The validated scene of the window of `frames` (one log) starting at frame `start`.

    The current frame is `start + num_history_frames - 1`; the scene needs the log's frames from 3 before to
    10 after it (and uses the one 4 before when there is one).

    Args:
        frames: every frame of one log, in order.
        start: index of the window's first frame.
        road: the log's map, in the same frame as the log's poses.
        split: "train", "val" or "test", for the metadata.
        num_history_frames: the scene filter's; only locates the current frame.

    Returns:
        The LogScene, or why the window yields none: TOO_SHORT (the log lacks frames), TIME_GAP, NO_ROUTE (no
        roadblock ids) or ROUTE_NOT_ON_MAP.

    Raises:
        SourceError: naming the file and frame, for a roadblock id that is not an integer or two track
            tokens that map to one id.
    """
    current = start + num_history_frames - 1
    first = current - CURRENT_SLOT + 1
    if first < 0 or current + NUM_SLOTS - CURRENT_SLOT - 1 >= len(frames):
        return DropReason.TOO_SHORT
    slots: list[LogFrame | None] = [frames[first - 1] if first > 0 else None]
    slots += list(frames[first:current + NUM_SLOTS - CURRENT_SLOT])
    if any(not _half_second_apart(a, b) for a, b in itertools.pairwise(slots[1:])):
        return DropReason.TIME_GAP
    if not _half_second_apart(slots[0], slots[1]):
        slots[0] = None
    now = frames[current]
    if not now.roadblock_ids:
        return DropReason.NO_ROUTE
    ego = _ego_state(slots)
    lanes = route_lanes(road, _roadblocks(now), ego.pose[CURRENT_INDEX])
    if lanes is None:
        return DropReason.ROUTE_NOT_ON_MAP
    scene = DriveScene(
        metadata=SceneMetadata(now.token, 0, split, ScenarioType.LOG, GENERATOR_VERSION),
        ego=ego,
        agents=_agents(slots, now),
        map=road,
        route=Route(lanes, route_centerline(road, lanes)),
        command=DrivingCommand(int(np.argmax(now.driving_command))),
        traffic_lights=_traffic_lights(slots),
    ).validate()
    source = LogSceneSource(now.log_name, now.map_location, now.token, now.timestamp, now.lidar_path,
                            now.camera_paths)
    return LogScene(scene, source)


def _half_second_apart(before: LogFrame | None, after: LogFrame | None) -> bool:
    if before is None or after is None:
        return False
    return abs(after.timestamp - before.timestamp - FRAME_INTERVAL_US) <= FRAME_GAP_TOLERANCE_US


def _roadblocks(frame: LogFrame) -> list[int]:
    try:
        return [int(block) for block in frame.roadblock_ids]
    except ValueError:
        bad = next(b for b in frame.roadblock_ids if not b.strip().lstrip("-").isdigit())
        raise SourceError(f"{frame.where}: roadblock_ids has a non-integer id {bad!r}") from None


def _ego_state(slots: list[LogFrame | None]) -> EgoState:
    """EgoState (NUM_STEPS,) from the 2 Hz slots; slot 0 may be missing (extrapolated, see module doc)."""
    present = [(s, frame) for s, frame in enumerate(slots) if frame is not None]
    knots = np.array([s for s, _ in present], dtype=np.float64) * STEPS_PER_FRAME
    pose = np.array([frame.ego_pose for _, frame in present])
    pose[:, 2] = np.unwrap(pose[:, 2])
    dynamic = np.array([frame.ego_dynamic_state for _, frame in present])
    rate = np.array([frame.yaw_rate for _, frame in present])
    grid = np.arange(NUM_STEPS, dtype=np.float64)

    def interp(values: np.ndarray) -> np.ndarray:  # np.interp holds the first value before the first knot
        return np.interp(grid, knots, values)

    out_pose = np.stack([interp(pose[:, i]) for i in range(3)], axis=-1)
    if slots[0] is None:  # back-fill -2.0 s .. -1.6 s at constant map-frame velocity
        back = grid < knots[0]
        velocity_map = points_to_global(dynamic[0, :2], np.array([0.0, 0.0, pose[0, 2]]))
        out_pose[back, :2] = pose[0, :2] + ((grid[back] - knots[0]) * SIM_DT)[:, None] * velocity_map
    out_pose[:, 2] = wrap_angle(out_pose[:, 2])
    velocity = np.stack([interp(dynamic[:, 0]), interp(dynamic[:, 1])], axis=-1)
    acceleration = np.stack([interp(dynamic[:, 2]), interp(dynamic[:, 3])], axis=-1)
    yaw_rate = interp(rate)
    forward = velocity[:, 0]
    moving = np.abs(forward) >= MIN_STEERING_SPEED
    steering = np.where(moving, np.arctan(PACIFICA.wheelbase * yaw_rate / np.where(moving, forward, 1.0)), 0.0)
    return EgoState(out_pose, velocity, acceleration, yaw_rate, steering)


def _agents(slots: list[LogFrame | None], now: LogFrame) -> AgentTracks:
    """AgentTracks (N, NUM_STEPS) in the map frame from the 2 Hz slots' annotations (see module doc)."""
    rows: dict[str, int] = {}
    for frame in slots:
        if frame is not None and frame.annotations is not None:
            for token in frame.annotations.track_tokens:
                rows.setdefault(token, len(rows))
    count = len(rows)
    if count == 0:
        return AgentTracks.empty(NUM_STEPS)
    xy = np.zeros((count, NUM_SLOTS, 2))
    heading = np.zeros((count, NUM_SLOTS))
    velocity = np.zeros((count, NUM_SLOTS, 2))
    size = np.zeros((count, NUM_SLOTS, 2))
    category = np.zeros((count, NUM_SLOTS), np.int8)
    present = np.zeros((count, NUM_SLOTS), bool)
    for s, frame in enumerate(slots):
        if frame is None or frame.annotations is None or frame.annotations.num_boxes == 0:
            continue
        anns = frame.annotations
        idx = np.array([rows[t] for t in anns.track_tokens])
        ego = frame.ego_pose
        xy[idx, s] = points_to_global(anns.boxes[:, :2], ego)
        heading[idx, s] = wrap_angle(anns.boxes[:, 6] + ego[2])
        ego_velocity = anns.velocity @ quaternion_matrix(frame.lidar2ego_rotation).T  # lidar -> ego frame
        velocity[idx, s] = points_to_global(ego_velocity[:, :2], np.array([0.0, 0.0, ego[2]]))
        size[idx, s] = anns.boxes[:, 3:5]
        category[idx, s] = anns.categories
        present[idx, s] = True
    ids = np.array([track_id(token) for token in rows], np.int64)
    owner: dict[int, str] = {}
    for token, value in zip(rows, ids.tolist()):
        if owner.setdefault(value, token) != token:
            raise SourceError(f"{now.where}: track tokens {owner[value]!r} and {token!r} map to the same track id")
    nearest = np.argmin(np.where(present, np.abs(np.arange(NUM_SLOTS) - CURRENT_SLOT), NUM_SLOTS), axis=1)
    pick = np.arange(count)
    grid = np.arange(NUM_STEPS)
    s0 = grid // STEPS_PER_FRAME
    s1 = np.minimum(s0 + 1, NUM_SLOTS - 1)
    a = (grid % STEPS_PER_FRAME) / STEPS_PER_FRAME  # (T,); 0 on a frame
    valid = present[:, s0] & ((a == 0) | present[:, s1])
    out_xy = (1.0 - a)[None, :, None] * xy[:, s0] + a[None, :, None] * xy[:, s1]
    turn = wrap_angle(heading[:, s1] - heading[:, s0])
    out_heading = wrap_angle(heading[:, s0] + a[None] * turn)
    out_velocity = (1.0 - a)[None, :, None] * velocity[:, s0] + a[None, :, None] * velocity[:, s1]
    return AgentTracks(
        track_ids=ids,
        category=category[pick, nearest],
        size=size[pick, nearest],
        xy=np.where(valid[..., None], out_xy, 0.0),
        heading=np.where(valid, out_heading, 0.0),
        velocity=np.where(valid[..., None], out_velocity, 0.0),
        valid=valid,
    )


def _traffic_lights(slots: list[LogFrame | None]) -> TrafficLights:
    """TrafficLights (K, NUM_STEPS): each frame's state held over its 5 steps (see module doc)."""
    lanes = sorted({lane for frame in slots if frame is not None for lane, _ in frame.traffic_lights})
    row = {lane: k for k, lane in enumerate(lanes)}
    red = np.zeros((len(lanes), NUM_SLOTS), bool)
    for s, frame in enumerate(slots):
        for lane, red_now in frame.traffic_lights if frame is not None else ():
            red[row[lane], s] |= red_now
    if slots[0] is None:
        red[:, 0] = red[:, 1]
    is_red = np.repeat(red, STEPS_PER_FRAME, axis=1)[:, :NUM_STEPS]
    return TrafficLights(np.array(lanes, np.int64), is_red)
