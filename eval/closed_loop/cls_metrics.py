"""nuPlan closed-loop metrics (reference closed_loop_driving.md §1.5), one function per metric, numpy + shapely.

Geometry (box corners, separating-axis overlap, front-bumper test, relative angles, strict point-in-polygon) is
reused from `planners.pdm.scoring`; thresholds, windows and counting follow nuPlan, not NAVSIM's PDMS.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from scipy.signal import savgol_filter

from planners.pdm.scoring.areas import CENTER, FRONT_LEFT, FRONT_RIGHT, ego_coords, points_in_polygons
from planners.pdm.scoring.collisions import (
    agent_corners,
    boxes_intersect,
    relative_angle,
    segment_intersects_box,
)
from planners.pdm.states import NUM_STATE_FIELDS, StateIndex
from scenes.agents import AgentCategory
from scenes.maps import DrivableKind, MapLayers

STOPPED_SPEED = 5e-2  # [m/s] ego / track stopped for the collision type (<=)
BEHIND_ANGLE = np.deg2rad(150.0)  # track behind: relative angle > this
AHEAD_ANGLE = np.deg2rad(30.0)  # TTC: track ahead: relative angle < this
COLLISION_THRESHOLDS = {"vru": 0, "vehicle": 0, "object": 1}  # max_violation_threshold per group
DRIVABLE_TOLERANCE = 0.3  # [m] corner farther than this (>=) from the drivable area fails DAC
DIRECTION_HORIZON = 1.0  # [s] window of driving direction compliance
DIRECTION_COMPLIANT, DIRECTION_VIOLATION = 2.0, 6.0  # [m] strict <
MIN_PROGRESS_RATIO = 0.2  # ego_is_making_progress: ratio >= this
PROGRESS_THRESHOLD = 2.0  # [m] score_progress_threshold
TTC_STEP, TTC_HORIZON, TTC_BOUND = 0.1, 3.0, 0.95  # [s]; TTC must be > TTC_BOUND
TTC_STOPPED_SPEED = 5e-3  # [m/s] no TTC at ego speed <= this
MAX_OVERSPEED = 2.23  # [m/s] speed_limit_compliance max_overspeed_value_threshold
# ego_is_comfortable bounds, strict: lon accel in (min, max), |.| < bound for the others
MIN_LON_ACCEL, MAX_LON_ACCEL = -4.05, 2.40
MAX_LAT_ACCEL, MAX_YAW_RATE, MAX_YAW_ACCEL, MAX_LON_JERK, MAX_JERK = 4.89, 0.95, 1.93, 4.13, 8.37


@dataclass(frozen=True, eq=False)
class MapIndex:
    """Prepared map layers for point queries.

    Attributes:
        lanes: (L,) prepared, repaired lane / connector polygons; lane_bounds (L, 4).
        drivable: the union of every drivable polygon, prepared.
        intersections: (I,) prepared INTERSECTION polygons; intersection_bounds (I, 4).
        connected: (L, L) bool, lane j is a successor or predecessor of lane i (or i itself).
    """

    lanes: np.ndarray
    lane_bounds: np.ndarray
    drivable: shapely.Geometry
    intersections: np.ndarray
    intersection_bounds: np.ndarray
    connected: np.ndarray

    @classmethod
    def build(cls, road: MapLayers) -> MapIndex:
        """Index `road`."""
        lanes = np.asarray(shapely.make_valid(np.asarray(road.lane_polygons, dtype=object)), dtype=object)
        kinds = np.asarray(road.drivable_kinds)
        inter = np.asarray(road.drivable_polygons, dtype=object)[kinds == DrivableKind.INTERSECTION]
        drivable = shapely.union_all(np.asarray(road.drivable_polygons, dtype=object))
        for geoms in (lanes, inter):
            if geoms.size:
                shapely.prepare(geoms)
        shapely.prepare(drivable)
        num = road.num_lanes
        connected = np.eye(num, dtype=bool)
        rows = {int(lane_id): i for i, lane_id in enumerate(road.lane_ids)}
        for i, successors in enumerate(road.lane_successors):
            for successor in successors:
                if int(successor) in rows:
                    connected[i, rows[int(successor)]] = connected[rows[int(successor)], i] = True
        bounds = shapely.bounds(lanes) if lanes.size else np.zeros((0, 4))
        ibounds = shapely.bounds(inter) if inter.size else np.zeros((0, 4))
        return cls(lanes, bounds, drivable, inter, ibounds, connected)


def ego_states(pose: np.ndarray, velocity: np.ndarray, acceleration: np.ndarray, yaw_rate: np.ndarray) -> np.ndarray:
    """(T, 11) rear-axle states in `planners.pdm.states.StateIndex` layout (steering left at 0)."""
    out = np.zeros((pose.shape[0], NUM_STATE_FIELDS))
    out[:, StateIndex.X : StateIndex.HEADING + 1] = pose
    out[:, StateIndex.VELOCITY_X : StateIndex.VELOCITY_Y + 1] = velocity
    out[:, StateIndex.ACCELERATION_X : StateIndex.ACCELERATION_Y + 1] = acceleration
    out[:, StateIndex.ANGULAR_VELOCITY] = yaw_rate
    return out


def driven_lanes(index: MapIndex, center: np.ndarray) -> np.ndarray:
    """(T,) row of the lane / connector holding the box centre (T, 2) per step, -1 where none. With several,
    the previous step's lane is kept while it still holds the centre, else the first row."""
    inside = points_in_polygons(index.lanes, index.lane_bounds, center)  # (L, T)
    out = np.full(center.shape[0], -1, dtype=np.int64)
    for t in range(center.shape[0]):
        rows = np.flatnonzero(inside[:, t])
        if rows.size:
            out[t] = out[t - 1] if t and out[t - 1] in rows else rows[0]
    return out


def in_common_or_connected_lanes(index: MapIndex, corners: np.ndarray) -> np.ndarray:
    """(T,) bool: every corner (T, 4, 2) lies in a lane, and the corners share one lane or lie in a pair of
    connected lanes (nuPlan's `timestamps_in_common_or_connected_route_objs`)."""
    inside = points_in_polygons(index.lanes, index.lane_bounds, corners)  # (L, T, 4)
    out = np.zeros(corners.shape[0], dtype=bool)
    for t in range(corners.shape[0]):
        member = inside[:, t, :]  # (L, 4)
        if not member.any(axis=0).all():
            continue
        if member.all(axis=1).any():
            out[t] = True
            continue
        # a connected pair (a, b) covering every corner
        cover = member[:, None, :] | member[None, :, :]  # (L, L, 4)
        out[t] = bool((cover.all(axis=-1) & index.connected).any())
    return out


def collisions(
    states: np.ndarray, corners: np.ndarray, agents: AgentView, common_lanes: np.ndarray
) -> tuple[dict[str, int], np.ndarray, np.ndarray]:
    """At-fault collisions (nuPlan `no_ego_at_fault_collisions`): each track counts once, at its first contact.

    Returns (at-fault counts per group 'vru' / 'vehicle' / 'object', (T,) bool step has an at-fault
    collision, (N,) first contact step per track or -1)."""
    steps, num = states.shape[0], agents.num
    counts = dict.fromkeys(COLLISION_THRESHOLDS, 0)
    at_fault_steps = np.zeros(steps, dtype=bool)
    first_contact = np.full(num, -1, dtype=np.int64)
    speed = np.hypot(states[:, StateIndex.VELOCITY_X], states[:, StateIndex.VELOCITY_Y])
    for t in range(steps):
        candidates = np.flatnonzero(agents.valid[:, t] & (first_contact < 0))
        if candidates.size == 0:
            continue
        boxes = agent_corners(agents.xy[candidates, t], agents.heading[candidates, t], agents.half[candidates])
        hit = boxes_intersect(np.broadcast_to(corners[t], boxes.shape), boxes)
        for n, box in zip(candidates[hit], boxes[hit]):
            first_contact[n] = t
            if speed[t] <= STOPPED_SPEED:
                continue  # STOPPED_EGO: not at fault
            if agents.is_static[n] or agents.speed[n, t] <= STOPPED_SPEED:
                at_fault = True  # STOPPED_TRACK
            elif relative_angle(states[t : t + 1, :3], agents.xy[n : n + 1, t])[0] > BEHIND_ANGLE:
                at_fault = False  # ACTIVE_REAR
            elif segment_intersects_box(corners[t : t + 1, FRONT_LEFT], corners[t : t + 1, FRONT_RIGHT],
                                        box[None])[0]:
                at_fault = True  # ACTIVE_FRONT
            else:
                at_fault = not common_lanes[t]  # ACTIVE_LATERAL
            if at_fault:
                at_fault_steps[t] = True
                counts[agents.group[n]] += 1
    return counts, at_fault_steps, first_contact


def collision_score(counts: dict[str, int]) -> float:
    """Product over groups of max(0, 1 - n / (threshold + 1))."""
    score = 1.0
    for group, n in counts.items():
        score *= max(0.0, 1.0 - n / (COLLISION_THRESHOLDS[group] + 1))
    return score


def time_to_collision(
    states: np.ndarray, centers: np.ndarray, agents: AgentView, at_fault_steps: np.ndarray,
    first_contact: np.ndarray, common_lanes: np.ndarray, rear_in_intersection: np.ndarray,
) -> np.ndarray:
    """(T,) TTC [s] per step (inf: none within the horizon): 0 at at-fault collision steps; otherwise ego
    (speed > 5e-3 m/s) and the tracks ahead (or not behind, when ego straddles lanes / is off-lane or its rear
    axle is in an intersection) move at constant speed along their headings in 0.1 s steps below 3 s. Tracks
    drop out from their first contact step on."""
    steps = states.shape[0]
    ttc = np.full(steps, np.inf)
    speed = np.hypot(states[:, StateIndex.VELOCITY_X], states[:, StateIndex.VELOCITY_Y])
    offsets = np.arange(TTC_STEP, TTC_HORIZON, TTC_STEP)
    for t in range(steps):
        if at_fault_steps[t]:
            ttc[t] = 0.0
            continue
        live = agents.valid[:, t] & ~((first_contact >= 0) & (first_contact <= t))
        rows = np.flatnonzero(live)
        if rows.size == 0 or speed[t] <= TTC_STOPPED_SPEED:
            continue
        pose = np.broadcast_to(states[t, :3], (rows.size, 3))
        angle = relative_angle(pose, agents.xy[rows, t])
        lax = not common_lanes[t] or rear_in_intersection[t]
        rows = rows[(angle < AHEAD_ANGLE) | (lax & ~(angle > BEHIND_ANGLE))]
        if rows.size == 0:
            continue
        heading = states[t, StateIndex.HEADING]
        ego_step = speed[t] * np.array([np.cos(heading), np.sin(heading)])
        track_speed = np.where(agents.is_static[rows], 0.0, agents.speed[rows, t])
        track_heading = agents.heading[rows, t]
        track_step = track_speed[:, None] * np.stack([np.cos(track_heading), np.sin(track_heading)], -1)
        for tau in offsets:
            ego_center = centers[t] + tau * ego_step
            ego_box = agent_corners(ego_center[None], np.array([heading]), agents.ego_half[None])
            boxes = agent_corners(agents.xy[rows, t] + tau * track_step, track_heading, agents.half[rows])
            if boxes_intersect(np.broadcast_to(ego_box, boxes.shape), boxes).any():
                ttc[t] = float(tau)
                break
    return ttc


def drivable_area_compliance(index: MapIndex, corners: np.ndarray, center_lane: np.ndarray) -> float:
    """1 unless a corner outside every lane and the drivable area is >= 0.3 m from the drivable area (and
    not within 0.3 m of the centre's lane / connector)."""
    in_lane = points_in_polygons(index.lanes, index.lane_bounds, corners).any(axis=0)  # (T, 4)
    in_area = shapely.contains_xy(index.drivable, corners[..., 0], corners[..., 1])
    t_out, c_out = np.nonzero(~in_lane & ~in_area)
    for t, c in zip(t_out, c_out):
        point = shapely.Point(*corners[t, c])
        if center_lane[t] >= 0 and shapely.distance(index.lanes[center_lane[t]], point) < DRIVABLE_TOLERANCE:
            continue
        if index.drivable.is_empty or shapely.distance(index.drivable, point) >= DRIVABLE_TOLERANCE:
            return 0.0
    return 1.0


def driving_direction(road: MapLayers, centers: np.ndarray, center_lane: np.ndarray, dt: float) -> tuple[float, float]:
    """(score, worst movement [m] against the lane baselines in any 1 s window). Progress per step is the
    change of the centre's projection on its lane's centreline; 0 off-lane, on entering a lane and on the step
    after (nuPlan resets there). A "1 s" window sums samples t-10..t (11 steps, as nuPlan slices it).
    Worst < 2 m -> 1, < 6 m -> 0.5, else 0."""
    steps = centers.shape[0]
    progress = np.zeros(steps)
    previous: float | None = None
    lane_id = int(center_lane[0]) if steps and center_lane[0] >= 0 else -1
    for t in range(steps):
        lane = int(center_lane[t])
        if lane < 0:
            continue  # off-lane: no direction, the last lane and distance are kept
        if lane != lane_id:
            previous, lane_id = None, lane
            continue
        distance = float(shapely.line_locate_point(road.lane_centerlines[lane], shapely.Point(*centers[t])))
        progress[t] = distance - previous if previous is not None else 0.0
        previous = distance
    horizon = int(DIRECTION_HORIZON / dt)
    window = np.array([progress[max(0, t - horizon) : t + 1].sum() for t in range(steps)])
    worst = max(0.0, -float(window.min())) if steps else 0.0
    score = 1.0 if worst < DIRECTION_COMPLIANT else 0.5 if worst < DIRECTION_VIOLATION else 0.0
    return score, worst


def route_line(road: MapLayers, route_lane_ids: np.ndarray) -> shapely.LineString | None:
    """The route lanes' centrelines joined in order (None without a route)."""
    rows = [road.lane_index(int(i)) for i in route_lane_ids if int(i) in set(road.lane_ids.tolist())]
    if not rows:
        return None
    points = [shapely.get_coordinates(road.lane_centerlines[r]) for r in rows]
    coords = np.concatenate(points)
    keep = np.ones(len(coords), dtype=bool)
    keep[1:] = np.linalg.norm(np.diff(coords, axis=0), axis=1) > 1e-9
    line = shapely.LineString(coords[keep])
    shapely.prepare(line)
    return line


def route_progress(line: shapely.LineString, centers: np.ndarray) -> float:
    """[m] sum of per-step changes of the centre's projection on the route line."""
    s = shapely.line_locate_point(line, shapely.points(centers))
    return float(np.sum(np.diff(s)))


def progress_ratio(ego_progress: float, expert_progress: float) -> float:
    """nuPlan's ego-to-expert progress ratio: 0 below -2 m, else min(1, max(P_ego, 2) / max(P_exp, 2))."""
    if ego_progress < -PROGRESS_THRESHOLD:
        return 0.0
    return min(1.0, max(ego_progress, PROGRESS_THRESHOLD) / max(expert_progress, PROGRESS_THRESHOLD))


def speed_limit_compliance(road: MapLayers, limits: np.ndarray, speed: np.ndarray, center_lane: np.ndarray,
                           dt: float) -> tuple[float, np.ndarray]:
    """(score, (T,) overspeed [m/s]). The limit is the centre lane's, or for a connector the largest of its
    incoming and outgoing lanes'; no lane or a missing (NaN) limit: no violation. Score
    max(0, 1 - sum(overspeed) dt / (2.23 m/s x duration))."""
    over = np.zeros(speed.shape[0])
    successors = [[road.lane_index(int(s)) for s in succ if int(s) in set(road.lane_ids.tolist())]
                  for succ in road.lane_successors]
    for t, lane in enumerate(center_lane):
        if lane < 0:
            continue
        if road.lane_is_connector[lane]:
            edges = successors[lane] + [i for i, succ in enumerate(successors) if lane in succ]
            candidates = limits[edges] if edges else np.array([np.nan])
        else:
            candidates = limits[[lane]]
        if np.isnan(candidates).any():
            continue
        over[t] = max(0.0, speed[t] - float(candidates.max()))
    duration = (speed.shape[0] - 1) * dt
    if not over.any() or duration <= 0:
        return 1.0, over
    return max(0.0, 1.0 - over.sum() * dt / (MAX_OVERSPEED * duration)), over


def _savgol(values: np.ndarray, window: int, order: int, deriv: int = 0, delta: float = 1.0) -> np.ndarray:
    window = min(window, values.shape[-1])
    if window <= order:
        return np.zeros_like(values) if deriv else values
    return np.round(savgol_filter(values, window, order, deriv=deriv, delta=delta), 8)


def comfort_signals(states: np.ndarray, rear_to_center: float, dt: float) -> dict[str, np.ndarray]:
    """nuPlan's smoothed comfort signals of the driven trajectory: box-centre accelerations (window 8, order 2;
    x shifted by d w^2 + d dw/dt as NAVSIM reproduces nuPlan), jerks (derivative window 15, order 2), yaw rate
    (window 15, order 2) and yaw acceleration (window 15, order 3) of the unwrapped heading."""
    omega = states[:, StateIndex.ANGULAR_VELOCITY]
    alpha = np.gradient(omega, dt) if len(omega) > 1 else np.zeros_like(omega)
    ax = states[:, StateIndex.ACCELERATION_X] + rear_to_center * (omega**2 + alpha)
    ay = states[:, StateIndex.ACCELERATION_Y]
    lon, lat, mag = _savgol(ax, 8, 2), _savgol(ay, 8, 2), _savgol(np.hypot(ax, ay), 8, 2)
    heading = np.unwrap(states[:, StateIndex.HEADING])
    return {
        "lon_accel": lon,
        "lat_accel": lat,
        "lon_jerk": _savgol(lon, 15, 2, 1, dt),
        "jerk": _savgol(mag, 15, 2, 1, dt),
        "yaw_rate": _savgol(heading, 15, 2, 1, dt),
        "yaw_accel": _savgol(heading, 15, 3, 2, dt),
    }


def is_comfortable(signals: dict[str, np.ndarray]) -> float:
    """1 iff all six strict bounds hold at every step."""
    ok = bool(np.all((signals["lon_accel"] > MIN_LON_ACCEL) & (signals["lon_accel"] < MAX_LON_ACCEL)))
    for name, bound in (("lat_accel", MAX_LAT_ACCEL), ("yaw_rate", MAX_YAW_RATE), ("yaw_accel", MAX_YAW_ACCEL),
                        ("lon_jerk", MAX_LON_JERK), ("jerk", MAX_JERK)):
        ok &= bool(np.all(np.abs(signals[name]) < bound))
    return float(ok)


@dataclass(frozen=True, eq=False)
class AgentView:
    """Agent arrays as the metrics read them (N agents, T steps).

    Attributes:
        xy: (N, T, 2) box centres [m]; heading (N, T) [rad]; speed (N, T) [m/s]; valid (N, T) bool.
        half: (N, 2) half length, half width [m]; ego_half: (2,) the ego's [m].
        is_static: (N,) bool, STATIC_OBJECT; group: N names 'vru' / 'vehicle' / 'object'.
    """

    xy: np.ndarray
    heading: np.ndarray
    speed: np.ndarray
    valid: np.ndarray
    half: np.ndarray
    ego_half: np.ndarray
    is_static: np.ndarray
    group: tuple[str, ...]

    @property
    def num(self) -> int:
        """Agents N."""
        return int(self.xy.shape[0])


def collision_group(category: int) -> str:
    """nuPlan's collision group of an `AgentCategory`."""
    if category == AgentCategory.VEHICLE:
        return "vehicle"
    if category in (AgentCategory.PEDESTRIAN, AgentCategory.BICYCLE):
        return "vru"
    return "object"


def ego_corners(states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """((T, 4, 2) corners FL, RL, RR, FR, (T, 2) box centres) of the Pacifica from states (T, 11)."""
    coords = ego_coords(states[None])[0]
    return coords[:, :CENTER], coords[:, CENTER]
