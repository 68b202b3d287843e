"""Named STL signals of an ego trajectory in a DriveScene, vectorised over (trajectory B, state T).

A trajectory of T states starts at the current time (state 0 = the ego now) and is spaced `dt` [s]. Signals
(all float64; `SIGNAL_NAMES` order is the last axis of `Signals.values`):

- v [m/s] speed (finite differences of the rear-axle positions, negative when reversing); a [m/s^2] its
  derivative, j [m/s^3] the jerk; w [rad/s] yaw rate. Second-order differences, exact for quadratics.
- d_c [m] signed lateral offset of the rear axle to the nearest route lane's centreline (left positive);
  h_c [rad] heading error to that lane, wrapped to [-pi, pi).
- d_l, h_l / d_r, h_r: the same for the left / right neighbour of that lane (a non-connector lane of the same
  roadblock); `ABSENT` [m] and 0 rad where there is none.
- s [m] smallest distance between the ego box (PACIFICA, centre 1.461 m ahead of the rear axle) and any
  valid agent box at the same time (agents' logged future, nearest 0.1 s step, held after the log ends);
  negative = penetration depth when boxes overlap; `FAR` with no agent.
- stop_dist [m] route arc length from the ego's front bumper to the nearest stop point that is red at that
  time and lies ahead of the front bumper now (less `STOP_SLACK`); `FAR` when none is red. A stop point is a
  stop line guarding a route lane whose light (or the next route lane's) is red, else the start of a red
  route lane. red [0/1] 1 while such a point exists.
- goal_dist [m] distance from the rear axle to the goal: the route centreline point nearest the expert's
  position at the trajectory's final time.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely

from scenes.drive import CURRENT_INDEX, NUM_STEPS, SIM_DT, DriveScene
from scenes.ego import PACIFICA, Frame, Trajectory
from scenes.geometry import box_corners, poses_to_global, wrap_angle
from stl.robustness import Signals

SIGNAL_NAMES = ("v", "a", "j", "w", "d_c", "h_c", "d_l", "h_l", "d_r", "h_r", "s", "stop_dist", "red",
                "goal_dist")
ABSENT = 100.0  # [m] lateral offset to a neighbour lane that does not exist
FAR = 1000.0  # [m] stop distance with no red stop point; agent distance with no agent
STOP_SLACK = 1.0  # [m] a stop point up to this far behind the front bumper now still counts
HORIZON_S = 4.0  # [s] default window: the expert's future, 41 states at 0.1 s


def expert_trajectory(scene: DriveScene, horizon_s: float = HORIZON_S) -> Trajectory:
    """The expert's future after now at SIM_DT over `horizon_s` [s], map frame."""
    steps = round(horizon_s / SIM_DT)
    rows = slice(CURRENT_INDEX + 1, CURRENT_INDEX + 1 + steps)
    return Trajectory(scene.ego.pose[rows].copy(), SIM_DT, Frame.GLOBAL)


def _global_states(scene: DriveScene, trajectory: Trajectory, dt: float | None) -> tuple[np.ndarray, float]:
    """(T, 3) map-frame poses incl. now, resampled to `dt` [s] if given."""
    now = scene.current_pose
    poses = trajectory.poses if trajectory.frame is Frame.GLOBAL else poses_to_global(trajectory.poses, now)
    states = np.concatenate([now[None], poses], axis=0)
    if dt is None or np.isclose(dt, trajectory.dt):
        return states, float(trajectory.dt)
    times = trajectory.dt * np.arange(len(states))
    new = np.arange(0.0, times[-1] + 1e-9, dt)
    heading = np.unwrap(states[:, 2])
    out = np.stack([np.interp(new, times, states[:, 0]), np.interp(new, times, states[:, 1]),
                    np.interp(new, times, heading)], -1)
    return out, float(dt)


def _frenet(line: shapely.LineString, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Arc length s [m], signed lateral offset [m] (left +) and lane heading [rad] of points (..., 2)."""
    flat = xy.reshape(-1, 2)
    s = shapely.line_locate_point(line, shapely.points(flat))
    ahead = shapely.get_coordinates(shapely.line_interpolate_point(line, np.minimum(s + 0.5, line.length)))
    behind = shapely.get_coordinates(shapely.line_interpolate_point(line, np.maximum(s - 0.5, 0.0)))
    foot = shapely.get_coordinates(shapely.line_interpolate_point(line, s))
    tangent = ahead - behind
    tangent /= np.maximum(np.linalg.norm(tangent, axis=-1, keepdims=True), 1e-9)
    rel = flat - foot
    offset = tangent[:, 0] * rel[:, 1] - tangent[:, 1] * rel[:, 0]
    heading = np.arctan2(tangent[:, 1], tangent[:, 0])
    shape = xy.shape[:-1]
    return s.reshape(shape), offset.reshape(shape), heading.reshape(shape)


def _lane_signals(scene: DriveScene, poses: np.ndarray, neighbours: bool = True) -> np.ndarray:
    """(B, T, 6): d_c, h_c, d_l, h_l, d_r, h_r; without `neighbours`, d_l .. h_r stay ABSENT / 0."""
    m = scene.map
    route_rows = [m.lane_index(lane) for lane in scene.route.lane_ids]
    xy, psi = poses[..., :2], poses[..., 2]
    frenet = {}

    def lane(row: int) -> tuple[np.ndarray, np.ndarray]:
        if row not in frenet:
            _, offset, heading = _frenet(m.lane_centerlines[row], xy)
            frenet[row] = (offset, wrap_angle(psi - heading))
        return frenet[row]

    points = shapely.points(xy.reshape(-1, 2))
    dist = np.stack([shapely.distance(m.lane_centerlines[r], points) for r in route_rows])
    nearest = np.asarray(route_rows)[np.argmin(dist, axis=0)].reshape(xy.shape[:-1])
    out = np.zeros((*xy.shape[:-1], 6))
    out[..., 2] = out[..., 4] = ABSENT
    for row in np.unique(nearest):
        mask = nearest == row
        d_c, h_c = lane(row)
        out[mask, 0], out[mask, 1] = d_c[mask], h_c[mask]
        if m.lane_is_connector[row] or not neighbours:
            continue
        peers = np.flatnonzero((m.lane_roadblock_ids == m.lane_roadblock_ids[row]) & ~m.lane_is_connector)
        for col, sign in ((2, 1.0), (4, -1.0)):
            best, gap = None, np.inf
            for peer in peers[peers != row]:
                rel = sign * np.median(d_c[mask] - lane(peer)[0][mask])  # peer's offset from this lane
                if 0.5 < rel < gap:
                    best, gap = peer, rel
            if best is not None:
                d, h = lane(best)
                out[mask, col], out[mask, col + 1] = d[mask], h[mask]
    return out


def _sat_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance [m] between convex quads a, b (..., 4, 2); minus the penetration depth when they overlap."""
    def point_edge(p: np.ndarray, q: np.ndarray) -> np.ndarray:  # points of p to edges of q
        e0, e1 = q[..., None, :, :], np.roll(q, -1, axis=-2)[..., None, :, :]
        pp = p[..., :, None, :]
        seg = e1 - e0
        u = np.clip(((pp - e0) * seg).sum(-1) / np.maximum((seg * seg).sum(-1), 1e-12), 0.0, 1.0)
        return np.linalg.norm(pp - (e0 + u[..., None] * seg), axis=-1).min(axis=(-1, -2))

    a, b = np.broadcast_arrays(a, b)
    gap = np.minimum(point_edge(a, b), point_edge(b, a))
    edges = np.concatenate([a[..., 1:3, :] - a[..., 0:2, :], b[..., 1:3, :] - b[..., 0:2, :]], axis=-2)
    axes = np.stack([-edges[..., 1], edges[..., 0]], -1)
    axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
    pa, pb = a @ np.swapaxes(axes, -1, -2), b @ np.swapaxes(axes, -1, -2)  # (..., 4 corners, 4 axes)
    overlap = np.minimum(pa.max(-2), pb.max(-2)) - np.maximum(pa.min(-2), pb.min(-2))
    depth = overlap.min(-1)
    return np.where(depth > 0, -depth, gap)


def _agent_steps(num: int, dt: float) -> np.ndarray:
    """Scene step index of each trajectory state (nearest, held at the last step)."""
    return np.minimum(CURRENT_INDEX + np.rint(np.arange(num) * dt / SIM_DT).astype(int), NUM_STEPS - 1)


def _agent_distance(scene: DriveScene, poses: np.ndarray, dt: float) -> np.ndarray:
    """(B, T) s [m]."""
    agents = scene.agents
    steps = _agent_steps(poses.shape[1], dt)
    if agents.num_agents == 0:
        return np.full(poses.shape[:2], FAR)
    centre = poses[..., :2] + PACIFICA.rear_axle_to_center * np.stack([np.cos(poses[..., 2]),
                                                                       np.sin(poses[..., 2])], -1)
    ego = box_corners(centre, poses[..., 2], PACIFICA.length, PACIFICA.width)  # (B, T, 4, 2)
    valid = agents.valid[:, steps]  # (N, T)
    # Box distance lies within centre distance -+ the two half diagonals: skip agents that cannot be nearest
    centres = np.linalg.norm(agents.xy[:, steps][None] - centre[:, None], axis=-1)  # (B, N, T)
    reach = 0.5 * np.hypot(PACIFICA.length, PACIFICA.width) + 0.5 * np.hypot(*agents.size.T)[None, :, None]
    lower = np.where(valid[None], centres - reach, np.inf)
    upper = np.where(valid[None], centres + reach, np.inf).min(axis=1, keepdims=True)
    keep = (lower <= np.minimum(upper, FAR)).any(axis=(0, 2))
    if not keep.any():
        return np.full(poses.shape[:2], FAR)
    other = box_corners(agents.xy[keep][:, steps], agents.heading[keep][:, steps], agents.size[keep, None, 0],
                        agents.size[keep, None, 1])  # (N', T, 4, 2)
    dist = _sat_distance(ego[:, None], other[None])  # (B, N', T)
    dist = np.where(valid[keep][None], dist, FAR)
    return np.minimum(dist.min(axis=1), FAR)


def _stop_points(scene: DriveScene) -> list[tuple[float, np.ndarray]]:
    """(route arc length [m], red (NUM_STEPS,) bool) of every stop point on the route."""
    route, lights, m = scene.route, scene.traffic_lights, scene.map
    red_of = {int(k): lights.is_red[i] for i, k in enumerate(lights.lane_ids)}
    lanes = list(scene.route.lane_ids)
    never = np.zeros(NUM_STEPS, bool)
    points, guarded = [], set()
    for line, lane in zip(m.stop_lines, m.stop_line_lane_ids, strict=True):
        if lane in lanes:
            k = lanes.index(lane)
            after = red_of.get(lanes[k + 1], never) if k + 1 < len(lanes) else never
            red = red_of.get(int(lane), never) | after
            points.append((route.centerline.project(line.centroid), red))
            guarded |= {lanes[k], *lanes[k + 1:k + 2]}
    for lane in lanes:
        if lane in red_of and lane not in guarded:
            start = shapely.Point(m.lane_centerlines[m.lane_index(lane)].coords[0])
            points.append((route.centerline.project(start), red_of[lane]))
    return points


def _stop_signals(scene: DriveScene, poses: np.ndarray, dt: float) -> np.ndarray:
    """(B, T, 2): stop_dist [m], red [0/1]."""
    front = poses[..., :2] + PACIFICA.rear_axle_to_front * np.stack([np.cos(poses[..., 2]),
                                                                     np.sin(poses[..., 2])], -1)
    s_front = _frenet(scene.route.centerline, front)[0]  # (B, T)
    steps = _agent_steps(poses.shape[1], dt)
    out = np.zeros((*poses.shape[:2], 2))
    out[..., 0] = FAR
    for s_stop, red in _stop_points(scene):
        ahead = s_stop > s_front[:, :1] - STOP_SLACK  # (B, 1)
        active = ahead & red[steps][None]
        out[..., 0] = np.where(active, np.minimum(out[..., 0], s_stop - s_front), out[..., 0])
        out[..., 1] = np.maximum(out[..., 1], active)
    return out


def _goal(scene: DriveScene, horizon_s: float) -> np.ndarray:
    """(2,) [m] route centreline point nearest the expert at `horizon_s` after now."""
    step = min(CURRENT_INDEX + round(horizon_s / SIM_DT), NUM_STEPS - 1)
    line = scene.route.centerline
    return np.asarray(line.interpolate(line.project(shapely.Point(scene.ego.pose[step, :2]))).coords[0])


def signals_from_poses(scene: DriveScene, poses: np.ndarray, dt: float,
                       names: Sequence[str] | None = None) -> Signals:
    """Signals (B, T, D) of map-frame rear-axle poses (B, T, 3) [m, rad], state 0 = now, spaced dt [s].

    `names` (default: all of SIGNAL_NAMES) picks the signals to compute, in SIGNAL_NAMES order; groups that no
    picked signal needs (lanes, agents, stop points, goal) are not computed.
    """
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[-1] != 3 or poses.shape[1] < 3:
        raise ValueError(f"poses must be (B, T >= 3, 3), got {poses.shape}")
    wanted = set(SIGNAL_NAMES if names is None else names)
    if wanted - set(SIGNAL_NAMES):
        raise ValueError(f"unknown signals {sorted(wanted - set(SIGNAL_NAMES))}; known: {SIGNAL_NAMES}")
    columns: dict[str, np.ndarray] = {}
    velocity = np.gradient(poses[..., :2], dt, axis=1, edge_order=2)
    forward = (velocity * np.stack([np.cos(poses[..., 2]), np.sin(poses[..., 2])], -1)).sum(-1)
    step = np.linalg.norm(velocity, axis=-1)
    columns["v"] = np.where(forward < 0, -step, step)
    columns["a"] = np.gradient(columns["v"], dt, axis=1, edge_order=2)
    columns["j"] = np.gradient(columns["a"], dt, axis=1, edge_order=2)
    columns["w"] = np.gradient(np.unwrap(poses[..., 2], axis=1), dt, axis=1, edge_order=2)
    if wanted & set(SIGNAL_NAMES[4:10]):
        columns.update(zip(SIGNAL_NAMES[4:10], np.moveaxis(
            _lane_signals(scene, poses, neighbours=bool(wanted & set(SIGNAL_NAMES[6:10]))), -1, 0), strict=True))
    if "s" in wanted:
        columns["s"] = _agent_distance(scene, poses, dt)
    if wanted & {"stop_dist", "red"}:
        columns["stop_dist"], columns["red"] = np.moveaxis(_stop_signals(scene, poses, dt), -1, 0)
    if "goal_dist" in wanted:
        goal = _goal(scene, (poses.shape[1] - 1) * dt)
        columns["goal_dist"] = np.linalg.norm(poses[..., :2] - goal, axis=-1)
    picked = tuple(name for name in SIGNAL_NAMES if name in wanted)
    return Signals(picked, np.stack([columns[name] for name in picked], axis=-1))


def drive_signals(scene: DriveScene, trajectory: Trajectory | None = None,
                  dt: float | None = None) -> Signals:
    """Signals (1, T, D) of `trajectory` (default: the expert's 4 s future at 0.1 s, T = 41), state 0 = now.

    `trajectory` may be in the ego or the map frame; `dt` [s] resamples it (linear), else its own dt is used.
    """
    trajectory = expert_trajectory(scene) if trajectory is None else trajectory
    states, dt = _global_states(scene, trajectory, dt)
    return signals_from_poses(scene, states[None], dt)


def batch_signals(scene: DriveScene, trajectories: Sequence[Trajectory], dt: float | None = None) -> Signals:
    """Signals (B, T, D) of B trajectories of one scene (same length and dt once resampled)."""
    if not trajectories:
        raise ValueError("batch_signals needs at least one trajectory")
    states = [_global_states(scene, trajectory, dt) for trajectory in trajectories]
    if len({(len(s), round(d, 9)) for s, d in states}) > 1:
        raise ValueError("trajectories differ in length or dt; pass dt to resample them")
    return signals_from_poses(scene, np.stack([s for s, _ in states]), states[0][1])
