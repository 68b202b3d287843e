"""The vehicle node core (driving planners): odometry + tracked detections + route + a map -> plan, candidates.

Observation (plan_tick), rebuilt as `DriveScene.observation()` builds it, at the latest odometry stamp t:
- ego history: OBSERVED_HISTORY_STEPS + 1 steps at SIM_DT ending at t, from the odometry buffer (a message
  within SNAP_S of a step is taken as is, otherwise x, y, unwrapped yaw, body velocity and yaw rate are linear
  interpolations; before the oldest message the oldest is held). Acceleration: central differences of the
  map-frame velocity (backward at t: Odometry has no acceleration, and the scene's uses the next step), in the
  body frame. Steering: atan(wheelbase * yaw rate / max(speed, 0.5)) (PACIFICA's wheelbase).
- agents: the tracks in the latest Detection3DArray (`Detection3D.id` is the track id: an integer string as
  is, any other string a stable CRC-32 id; `results[0].hypothesis.class_id` the category: "vehicle" or "car"
  -> VEHICLE, "pedestrian" -> PEDESTRIAN, "bicycle" -> BICYCLE, anything else -> STATIC_OBJECT), box centre
  and heading at the same steps (taken, interpolated over gaps up to MAX_GAP_S, or extrapolated up to
  max_input_age_s past the last box), valid only there; velocity by finite differences (central where both
  neighbours are valid); size from bbox.size x (length), y (width); those within OBSERVATION_RADIUS now.
- map: road.crop(pose, OBSERVATION_RADIUS).to_local(pose); route: the Path within OBSERVATION_RADIUS in the ego
  frame, its lanes those of the cropped map whose centreline (sampled every 0.5 m, where it projects inside the
  Path) lies within ROUTE_TOLERANCE_M of the Path, in driving order (found once per route message); command from params.command; no red lanes.
The plan (8 ego-frame poses) goes to the odom frame at the latest odometry pose.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import shapely

from diffplan.node import messages
from diffplan.node.interface import InputRole, InputSpec, Output, OutputRole, OutputSpec, Qos
from diffplan.node.messages import NodeInputError
from diffplan.node.params import NodeParams
from diffplan.node.safety import ERROR, OK, WARN, SafetyState
from planners.base import Domain, Planner, require_domain
from scenes import portable
from scenes.agents import AgentCategory, AgentTracks
from scenes.drive import (
    OBSERVATION_RADIUS,
    OBSERVED_HISTORY_STEPS,
    SIM_DT,
    DriveObservation,
    DrivingCommand,
    Route,
)
from scenes.ego import PACIFICA, EgoState
from scenes.geometry import points_to_local, poses_to_global, wrap_angle
from scenes.maps import MapLayers

SNAP_S = 1e-6  # [s] a message this close to a history step is that step
MAX_GAP_S = 0.35  # [s] a track is interpolated across gaps up to this long, invalid across longer ones
ROUTE_TOLERANCE_M = 0.5  # [m] a lane is on the route when its centreline lies this close to the Path
BUFFER_S = (OBSERVED_HISTORY_STEPS + 3) * SIM_DT  # [s] of odometry and detections kept
CATEGORIES = {"vehicle": AgentCategory.VEHICLE, "car": AgentCategory.VEHICLE,
              "pedestrian": AgentCategory.PEDESTRIAN, "bicycle": AgentCategory.BICYCLE}


def track_id(name: str) -> int:
    """int64 id of a Detection3D.id: the integer it spells, else a stable CRC-32 above 2**40."""
    try:
        return int(name)
    except ValueError:
        return (1 << 40) + zlib.crc32(name.encode())


def sample_series(stamps: np.ndarray, values: np.ndarray, times: np.ndarray, max_gap: float = math.inf,
                  extrapolate_s: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(values (len(times), C), valid) of a series (stamps ascending) at `times`: the sample within SNAP_S as
    is, linear interpolation across gaps up to `max_gap`, linear extrapolation up to `extrapolate_s` after the
    last sample (holding it when alone), invalid elsewhere (filled with the nearest sample)."""
    out = np.empty((len(times), values.shape[1]))
    valid = np.zeros(len(times), bool)
    for k, t in enumerate(times):
        j = int(np.argmin(np.abs(stamps - t)))
        if abs(stamps[j] - t) <= SNAP_S:
            out[k], valid[k] = values[j], True
            continue
        out[k] = values[j]
        i = int(np.searchsorted(stamps, t)) - 1
        if 0 <= i < len(stamps) - 1 and stamps[i + 1] - stamps[i] <= max_gap:
            w = (t - stamps[i]) / (stamps[i + 1] - stamps[i])
            out[k], valid[k] = values[i] + w * (values[i + 1] - values[i]), True
        elif i == len(stamps) - 1 and t - stamps[-1] <= extrapolate_s:
            if len(stamps) > 1 and stamps[-1] - stamps[-2] <= max_gap:
                rate = (values[-1] - values[-2]) / (stamps[-1] - stamps[-2])
                out[k] = values[-1] + (t - stamps[-1]) * rate
            valid[k] = True
    return out, valid


def finite_differences(xy: np.ndarray, valid: np.ndarray, dt: float) -> np.ndarray:
    """(..., T, 2) velocities of positions `xy` (..., T, 2) [m]: central differences where both neighbours are
    valid, one-sided where one is, zero where neither (or the step itself) is."""
    out = np.zeros_like(xy)
    prev_ok = np.zeros_like(valid)
    next_ok = np.zeros_like(valid)
    prev_ok[..., 1:], next_ok[..., :-1] = valid[..., :-1], valid[..., 1:]
    prev_ok, next_ok = prev_ok & valid, next_ok & valid
    back = np.zeros_like(xy)
    ahead = np.zeros_like(xy)
    back[..., 1:, :] = (xy[..., 1:, :] - xy[..., :-1, :]) / dt
    ahead[..., :-1, :] = (xy[..., 1:, :] - xy[..., :-1, :]) / dt
    central = np.zeros_like(xy)
    central[..., 1:-1, :] = (xy[..., 2:, :] - xy[..., :-2, :]) / (2 * dt)
    out = np.where((prev_ok & next_ok)[..., None], central,
                   np.where(prev_ok[..., None], back, np.where(next_ok[..., None], ahead, 0.0)))
    return out


def route_lanes(road: MapLayers, route: shapely.LineString, step: float = 0.5) -> dict[int, float]:
    """{lane id: where it starts along `route` [m]} of the lanes of `road` whose centreline, where it projects
    inside `route`, lies within ROUTE_TOLERANCE_M of it."""
    road = road.select(shapely.intersects(road.lane_centerlines, shapely.buffer(route, ROUTE_TOLERANCE_M)),
                       np.zeros(0, int), np.zeros(0, int), np.zeros(0, int))
    if road.num_lanes == 0:
        return {}
    coords, owner = shapely.get_coordinates(shapely.segmentize(road.lane_centerlines, step), return_index=True)
    points = shapely.points(coords)
    s = shapely.line_locate_point(route, points)
    inside = (s > 1e-6) & (s < route.length - 1e-6)
    near = shapely.distance(points, route) <= ROUTE_TOLERANCE_M
    found: list[tuple[float, int]] = []
    for row, lane_id in enumerate(road.lane_ids.tolist()):
        mine = inside & (owner == row)
        if mine.any() and near[mine].all():
            found.append((float(s[mine].min()), int(lane_id)))
    return {lane_id: start for start, lane_id in found}


class VehicleNodeCore:
    """`diffplan node --robot vehicle`: a driving planner behind ROS 2 topics (NodeCore).

    Publishes the plan (8 poses, odom frame), every candidate (mode) coloured by its score and diagnostics; no
    cmd_vel: a vehicle's own controller tracks the plan, so `control_tick` returns []. A stale or missing
    input (odometry, detections older than max_input_age_s; no route), or a bad last message of a topic until a
    good one arrives, publishes no plan and says why in diagnostics.

    Args:
        planner: a driving planner (DriveObservation in, 8 ego-frame poses out); oracles are refused.
        road: the map (map/odom frame), e.g. an imported dataset's map.
        params: rates, limits, frames, remaps, the driving command, the seed.
        log: one line per event (default: SafetyState.lines).
        timer: wall clock [s] that times plans (default time.perf_counter).
    """

    def __init__(self, planner: Planner, road: MapLayers, params: NodeParams | None = None,
                 log: Callable[[str], None] | None = None, timer: Callable[[], float] = time.perf_counter):
        self.params = (params or NodeParams()).validate()
        require_domain(planner, Domain.DRIVING, "diffplan node --robot vehicle")
        if planner.privileged:
            raise ValueError(f"planner {planner.name!r} is a privileged oracle; a node has no privileged scene")
        self.planner, self.road, self.timer = planner, road, timer
        self.planner.seed = self.params.seed
        self.command = DrivingCommand[self.params.command.upper()]
        self.safety = SafetyState(self.params, log)
        p = self.params
        self.inputs = [
            InputSpec(InputRole.ODOMETRY, p.topic(InputRole.ODOMETRY, "/odom"), "nav_msgs/msg/Odometry",
                      Qos.SENSOR_DATA),
            InputSpec(InputRole.DETECTIONS, p.topic(InputRole.DETECTIONS, "/detections"),
                      "vision_msgs/msg/Detection3DArray", Qos.STANDARD),
            InputSpec(InputRole.ROUTE, p.topic(InputRole.ROUTE, "/route"), "nav_msgs/msg/Path", Qos.STANDARD)]
        self.outputs = [
            OutputSpec(OutputRole.PLAN, p.topic(OutputRole.PLAN, "/diffplan/plan"), "nav_msgs/msg/Path"),
            OutputSpec(OutputRole.CANDIDATES, p.topic(OutputRole.CANDIDATES, "/diffplan/candidates"),
                       "visualization_msgs/msg/MarkerArray"),
            OutputSpec(OutputRole.DIAGNOSTICS, p.topic(OutputRole.DIAGNOSTICS, "/diffplan/diagnostics"),
                       "diagnostic_msgs/msg/DiagnosticArray")]
        self.plan_rate_hz, self.control_rate_hz = p.plan_rate_hz, p.control_rate_hz
        self.reset()

    def reset(self) -> None:
        """Drop the plan and every buffered input (a time jump)."""
        self.odometry: list[tuple[float, ...]] = []  # (stamp, x, y, yaw, v, v_left, omega)
        self.detections: list[tuple[float, list[tuple[int, int, float, float, float, float, float]]]] = []
        self.route: np.ndarray | None = None  # (N, 2) map-frame points
        self.route_lanes: dict[int, float] = {}  # route_lanes(road, route), once per route message
        self.last_observation: DriveObservation | None = None
        self.last_plan: Any = None
        self.bad: set[InputRole] = set()  # roles whose last message was bad: no plan until a good one

    # --- NodeCore ---

    def on_message(self, role: InputRole, message: Any, now: float) -> None:
        """Take one message; a bad one is counted and logged (never raises)."""
        try:
            if self.safety.clock(now):
                self.reset()
            stamp = messages.header_stamp(message)
            if role is InputRole.ODOMETRY:
                x, y, yaw, v, omega = messages.odometry_pose(message)
                v_left = messages.odometry_lateral_speed(message)
                if self.safety.accept(role, stamp, now):
                    if self.odometry and self.odometry[-1][0] == stamp:
                        self.odometry.pop()
                    self.odometry.append((stamp, x, y, yaw, v, v_left, omega))
                    self.odometry = [row for row in self.odometry if row[0] >= stamp - BUFFER_S]
            elif role is InputRole.DETECTIONS:
                boxes = self._read_detections(message)
                if self.safety.accept(role, stamp, now):
                    if self.detections and self.detections[-1][0] == stamp:
                        self.detections.pop()
                    self.detections.append((stamp, boxes))
                    self.detections = [row for row in self.detections if row[0] >= stamp - BUFFER_S]
            elif role is InputRole.ROUTE:
                messages.check_frame("route", message.header.frame_id, self.params.odom_frame)
                points = np.array([messages.pose_xy_yaw(p.pose, "route pose")[:2] for p in message.poses])
                if len(points) == 1:
                    raise NodeInputError("route: a Path of one pose is not a route")
                if self.safety.accept(role, stamp, now):
                    keep = np.ones(len(points), bool)
                    keep[1:] = np.any(np.diff(points, axis=0) != 0.0, axis=1)
                    self.route = points[keep] if len(points) and keep.sum() >= 2 else None
                    self.route_lanes = {} if self.route is None else \
                        route_lanes(self.road, shapely.LineString(self.route))
            else:
                raise NodeInputError(f"this node does not subscribe to {role.value}")
            self.bad.discard(role)
        except Exception as error:  # noqa: BLE001 - bad input must never take the node down
            self.bad.add(role)
            self.safety.bad_input(role, error)

    def plan_tick(self, now: float) -> list[Output]:
        """Plan from the latest inputs: PLAN and CANDIDATES when a plan was made, always DIAGNOSTICS."""
        outputs: list[Output] = []
        try:
            if self.safety.clock(now):
                self.reset()
            outputs = self._plan(now)
        except Exception as error:  # noqa: BLE001 - never raise into the transport
            self.safety.planner_error("plan_tick", error, "planner error")
        ages = {role: self.safety.age(role, now) for role in (InputRole.ODOMETRY, InputRole.DETECTIONS,
                                                              InputRole.ROUTE)}
        return outputs + [self.safety.diagnostics(now, "diffplan_node", ages)]

    def control_tick(self, now: float) -> list[Output]:
        """Nothing: a vehicle's controller tracks the published plan."""
        return []

    # --- observation ---

    def _read_detections(self, message: Any) -> list[tuple[int, int, float, float, float, float, float]]:
        """(track id, category, x, y, yaw, length, width) per box; NodeInputError on a bad box (the whole array
        goes: a partial array would hide an obstacle)."""
        messages.check_frame("detections", message.header.frame_id, self.params.odom_frame)
        boxes, seen = [], set()
        for d in message.detections:
            x, y, yaw = messages.pose_xy_yaw(d.bbox.center, f"detection {d.id!r}")
            length, width = float(d.bbox.size.x), float(d.bbox.size.y)
            if not (math.isfinite(length) and math.isfinite(width) and length > 0 and width > 0):
                raise NodeInputError(f"detection {d.id!r}: size {length} x {width} m is not positive and finite")
            ident = track_id(str(d.id))
            if ident in seen:
                raise NodeInputError(f"detection {d.id!r}: track id appears twice")
            seen.add(ident)
            name = str(d.results[0].hypothesis.class_id).lower() if len(d.results) else ""
            category = int(CATEGORIES.get(name, AgentCategory.STATIC_OBJECT))
            boxes.append((ident, category, x, y, yaw, length, width))
        return boxes

    def _ego(self, times: np.ndarray) -> EgoState:
        """Map-frame EgoState at `times` (oldest first) from the odometry buffer."""
        rows = np.array(self.odometry)
        series = np.column_stack([rows[:, 1:3], np.unwrap(rows[:, 3]), rows[:, 4:7]])
        values, _ = sample_series(rows[:, 0], series, times)
        heading = wrap_angle(values[:, 2])
        heading[-1] = rows[-1, 3]
        s, c = portable.sincos(heading)
        body = values[:, 3:5]
        world = np.stack([body[:, 0] * c - body[:, 1] * s, body[:, 0] * s + body[:, 1] * c], -1)
        acc_world = np.gradient(world, SIM_DT, axis=0)
        acc = np.stack([acc_world[:, 0] * c + acc_world[:, 1] * s, acc_world[:, 1] * c - acc_world[:, 0] * s], -1)
        speed = portable.norm(world)
        steering = portable.arctan(PACIFICA.wheelbase * (values[:, 5] / np.maximum(speed, 0.5)))
        pose = np.column_stack([values[:, :2], heading])
        return EgoState(pose, body.copy(), acc, values[:, 5].copy(), np.asarray(steering, np.float64))

    def _agents(self, times: np.ndarray, origin: np.ndarray) -> AgentTracks:
        """Map-frame AgentTracks at `times` of the tracks in the latest array within OBSERVATION_RADIUS."""
        latest = self.detections[-1][1]
        n, steps = len(latest), len(times)
        xy, heading = np.zeros((n, steps, 2)), np.zeros((n, steps))
        valid = np.zeros((n, steps), bool)
        tracks_of: dict[int, list[tuple[float, tuple]]] = {}
        for stamp, boxes in self.detections:
            for b in boxes:
                tracks_of.setdefault(b[0], []).append((stamp, b))
        for a, box in enumerate(latest):
            track = tracks_of[box[0]]
            stamps = np.array([stamp for stamp, _ in track])
            series = np.array([[b[2], b[3], b[4]] for _, b in track])
            series[:, 2] = np.unwrap(series[:, 2])
            values, ok = sample_series(stamps, series, times, MAX_GAP_S, self.params.max_input_age_s)
            xy[a], heading[a], valid[a] = values[:, :2], wrap_angle(values[:, 2]), ok
        velocity = finite_differences(xy, valid, SIM_DT)
        keep = valid[:, -1] & (np.linalg.norm(xy[:, -1] - origin[:2], axis=-1) <= OBSERVATION_RADIUS)
        mask = valid[..., None]
        tracks = AgentTracks(
            track_ids=np.array([b[0] for b in latest], np.int64).reshape(-1),
            category=np.array([b[1] for b in latest], np.int8).reshape(-1),
            size=np.array([[b[5], b[6]] for b in latest], np.float64).reshape(-1, 2),
            xy=np.where(mask, xy, 0.0), heading=np.where(valid, heading, 0.0),
            velocity=np.where(mask, velocity, 0.0), valid=valid)
        return tracks.select(keep, slice(1, None))

    def observe(self) -> DriveObservation:
        """The DriveObservation at the latest odometry stamp (module docstring); ValueError when the route
        has no lane of the map near the ego."""
        assert self.route is not None and self.odometry and self.detections
        latest = self.odometry[-1]
        origin = np.array([latest[1], latest[2], latest[3]])
        times = latest[0] - SIM_DT * np.arange(OBSERVED_HISTORY_STEPS + 1, -1, -1)  # one extra step first
        ego = self._ego(times).slice(slice(1, None)).to_local(origin)
        agents = self._agents(times, origin).to_local(origin)
        road = self.road.crop(origin[:2], OBSERVATION_RADIUS)
        line = shapely.LineString(self.route)
        near = shapely.intersection(line, shapely.Point(*origin[:2]).buffer(OBSERVATION_RADIUS))
        if not isinstance(near, shapely.LineString) or near.is_empty:
            near = line  # multi-part or far route: keep it whole (as DriveScene.observation)
        lanes = tuple(sorted((lane for lane in road.lane_ids.tolist() if lane in self.route_lanes),
                             key=self.route_lanes.__getitem__))
        if not lanes:
            raise ValueError("no lane of the map lies along the route near the ego")
        route = Route(lanes, shapely.transform(near, lambda xy: points_to_local(xy, origin)))
        return DriveObservation(ego_history=ego, ego_pose_global=origin, agents=agents,
                                map=road.to_local(origin), route=route, command=self.command,
                                red_lane_ids=np.zeros(0, np.int64))

    # --- planning ---

    def _stop_reason(self, now: float) -> str | None:
        if not self.odometry or self.safety.age(InputRole.ODOMETRY, now) > self.params.max_input_age_s:
            return "stale odometry"
        if not self.detections or self.safety.age(InputRole.DETECTIONS, now) > self.params.max_input_age_s:
            return "stale detections"
        if self.route is None:
            return "no route"
        if self.bad:
            return f"bad {min(role.value for role in self.bad)} message"
        return None

    def _plan(self, now: float) -> list[Output]:
        reason = self._stop_reason(now)
        if reason is not None:
            self.safety.set_state(f"no plan: {reason}", ERROR if reason.startswith("bad") else WARN)
            return []
        try:
            observation = self.observe()
        except ValueError as error:
            self.safety.set_state(f"no plan: {error}".splitlines()[0], WARN)
            return []
        self.last_observation = observation
        started = self.timer()
        try:
            plan = self.planner.plan(observation)
            plan.validate(self.planner.plan_spec)
            if not np.isfinite(plan.trajectory.poses).all():
                raise ValueError("the plan has non-finite poses")
        except Exception as error:  # noqa: BLE001 - a planner failure is no plan, counted
            self.safety.planner_error("planner", error, "no plan: planner error")
            return []
        elapsed = self.timer() - started
        self.safety.latencies_ms.append(1e3 * elapsed)
        if elapsed > self.params.plan_timeout_s:
            self.safety.counters["timeouts"] += 1
            self.safety.log(f"planner: {elapsed:.3f} s exceeds plan_timeout_s {self.params.plan_timeout_s} s")
            self.safety.set_state("no plan: planner timeout", ERROR)
            return []
        self.safety.counters["plans"] += 1
        self.last_plan = plan
        short = self.odometry[-1][0] - self.odometry[0][0] < OBSERVED_HISTORY_STEPS * SIM_DT - SNAP_S
        self.safety.set_state("planning (short odometry history)" if short else "planning", OK)
        origin, frame = observation.ego_pose_global, self.params.odom_frame
        poses = poses_to_global(np.asarray(plan.trajectory.poses, np.float64), origin)
        candidates = [poses] if plan.candidates is None else \
            [poses_to_global(np.asarray(c, np.float64), origin) for c in plan.candidates]
        scores = None if plan.candidates is None or plan.scores is None else np.asarray(plan.scores)
        return [Output(OutputRole.PLAN, messages.path(now, frame, poses)),
                Output(OutputRole.CANDIDATES, messages.marker_array(now, frame, candidates, scores))]
