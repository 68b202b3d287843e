"""Scene -> NLP data for the driving expert: reference steps, guesses, obstacles, bounds (map frame).

Step k = 0..N is at k dt [s] after now; agents are read at the nearest 0.1 s scene step, held at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scenes.drive import CURRENT_INDEX, NUM_STEPS, SIM_DT, DriveScene
from scenes.ego import PACIFICA
from stl.signals import STOP_SLACK, _goal, _stop_points
from trajopt.models import Model
from trajopt.reference import Reference, StationCorridor, neighbour_offsets

EGO_RADIUS = float(np.hypot(PACIFICA.length / 6.0, PACIFICA.width / 2.0))  # [m], 3 discs cover the box
FAR_AWAY = 1.0e4  # [m] padding for absent obstacles


@dataclass(frozen=True, eq=False)
class SceneData:
    """Per-scene quantities that do not depend on the target (cached by the expert)."""

    ref: Reference
    area: object  # shapely drivable area
    stops: list  # (route arc length [m], red (NUM_STEPS,) bool)
    corridor: StationCorridor  # drivable lateral bounds along the reference


def scene_data(scene: DriveScene) -> SceneData:
    """The reference, drivable area, stop points and lateral corridor of `scene`."""
    ref, area = Reference.from_line(scene.route.centerline), scene.map.drivable_area()
    return SceneData(ref, area, _stop_points(scene), StationCorridor(area, ref))


def agent_steps(n: int, dt: float) -> np.ndarray:
    """(n+1,) scene step index of each NLP step."""
    return np.minimum(CURRENT_INDEX + np.rint(np.arange(n + 1) * dt / SIM_DT).astype(int), NUM_STEPS - 1)


def turned_towards(heading: np.ndarray, reference: float) -> np.ndarray:
    """(N,) headings [rad] shifted by whole turns so that the first lies within pi of `reference` [rad]."""
    return heading + 2 * np.pi * np.round((reference - heading[0]) / (2 * np.pi))


def initial_state(scene: DriveScene) -> np.ndarray:
    """(4,) x [m], y [m], heading [rad], v [m/s] now."""
    return np.array([*scene.current_pose, float(scene.ego.speed[CURRENT_INDEX])])


def expert_guess(scene: DriveScene, n: int, dt: float) -> np.ndarray:
    """(n+1, 4) the scene's expert future resampled to n steps of dt (privileged)."""
    t_scene = (np.arange(NUM_STEPS) - CURRENT_INDEX) * SIM_DT
    t = np.arange(n + 1) * dt
    pose, speed = scene.ego.pose, scene.ego.speed
    cols = [np.interp(t, t_scene, pose[:, 0]), np.interp(t, t_scene, pose[:, 1]),
            np.interp(t, t_scene, np.unwrap(pose[:, 2])), np.interp(t, t_scene, speed)]
    return np.stack(cols, -1)


def lane_offsets(scene: DriveScene, data: SceneData, s: np.ndarray, target_lane: int) -> np.ndarray:
    """(K,) lateral offset [m] of the target lane centre from the route reference at arc lengths s."""
    if target_lane == 0:
        return np.zeros(len(s))
    off = neighbour_offsets(scene, data.ref, s, int(np.sign(target_lane)))
    valid = np.isfinite(off)
    if not valid.any():
        raise ValueError(f"target_lane {target_lane}: the route has no such neighbour lane here")
    return np.interp(np.arange(len(s)), np.flatnonzero(valid), off[valid])


@dataclass(frozen=True, eq=False)
class Obstacles:
    """Agents given obstacle slots, chosen per step (slot j at step k holds the j-th nearest agent then).

    Attributes:
        boxes: (M, n+1, 4) centre x, y [m] and heading cos, sin per slot and step; empty slots sit FAR_AWAY.
        half: (M, n+1, 2) half length, width [m] inflated by the ego disc radius + clearance (1 when empty).
        ids: (M, n+1) agent index held by each slot at each step, -1 when empty.
        needed: slots the busiest step needs (when more than M, only the M nearest are kept there).
    """

    boxes: np.ndarray
    half: np.ndarray
    ids: np.ndarray
    needed: int

    @property
    def present(self) -> np.ndarray:
        """(M, n+1) bool: the slot holds an agent at that step."""
        return self.ids >= 0

    @property
    def agents(self) -> np.ndarray:
        """(K,) sorted indices of the agents that hold a slot at some step."""
        return np.unique(self.ids[self.ids >= 0])

    def first(self, slots: int) -> Obstacles:
        """The nearest `slots` slots of every step."""
        return Obstacles(self.boxes[:slots], self.half[:slots], self.ids[:slots], self.needed)

    def held(self, other: Obstacles) -> np.ndarray:
        """(M', n+1) bool: slot j of `other` at step k is empty or its agent holds one of these then."""
        return (other.ids[:, None, :] == self.ids[None, :, :]).any(1) | (other.ids < 0)

    def covers(self, other: Obstacles) -> bool:
        """Whether every agent that holds a slot of `other` at a step also holds one of these then."""
        return bool(self.held(other).all())


def select_obstacles(scene: DriveScene, paths: list[np.ndarray], dt: float, slots: int, clearance: float,
                     reach: float = 4.0) -> Obstacles:
    """Per step, the agents whose bounding circle comes within `reach` [m] of the ego's on any of `paths`
    ((n+1, >=3) rear-axle poses, same n), nearest first, in at most `slots` slots.

    An agent far from every path at a step needs no constraint there: slots are shared between agents over
    time, so the NLP has rows for the busiest step only, not for every agent near the path at some time."""
    n = len(paths[0]) - 1
    agents, steps = scene.agents, agent_steps(n, dt)
    boxes = np.zeros((slots, n + 1, 4))
    boxes[..., 0] = FAR_AWAY * (1 + np.arange(slots))[:, None]
    boxes[..., 2] = 1.0
    half = np.ones((slots, n + 1, 2))
    ids = np.full((slots, n + 1), -1)
    if agents.num_agents == 0:
        return Obstacles(boxes, half, ids, 0)
    xy, heading, valid = agents.xy[:, steps], agents.heading[:, steps], agents.valid[:, steps]
    gap = np.full(valid.shape, np.inf)  # (A, n+1) centre distance minus both bounding radii [m]
    for path in paths:
        centre = path[:, :2] + PACIFICA.rear_axle_to_center * np.stack(
            [np.cos(path[:, 2]), np.sin(path[:, 2])], -1)
        gap = np.minimum(gap, np.linalg.norm(xy - centre[None], axis=-1))
    gap = gap - PACIFICA.half_diagonal - 0.5 * np.hypot(agents.size[:, :1], agents.size[:, 1:])
    gap = np.where(valid, gap, np.inf)
    near = gap < reach + clearance
    order = np.argsort(np.where(near, gap, np.inf), axis=0, kind="stable")[:slots]  # (M', n+1) agent ids
    taken = np.take_along_axis(near, order, axis=0)  # (M', n+1)
    k = np.broadcast_to(np.arange(n + 1), order.shape)
    box = np.stack([xy[order, k, 0], xy[order, k, 1],
                    np.cos(heading[order, k]), np.sin(heading[order, k])], -1)
    size = agents.size[order] / 2.0 + EGO_RADIUS + clearance  # (M', n+1, 2)
    used = len(order)
    boxes[:used] = np.where(taken[..., None], box, boxes[:used])
    half[:used] = np.where(taken[..., None], size, half[:used])
    ids[:used] = np.where(taken, order, -1)
    return Obstacles(boxes, half, ids, int(near.sum(0).max()))


def route_guess(scene: DriveScene, data: SceneData, model: Model, x0: np.ndarray, n: int, dt: float,
                v_ref: float, lane_c: np.ndarray, obstacles: Obstacles,
                stop_limit: np.ndarray) -> np.ndarray:
    """(n+1, 4) a guess along the reference: lateral blend to the target lane, speed towards v_ref, at most
    the speed from which braking at 4 m/s^2 keeps behind each leader near the path (braking as hard from its
    own speed along the route) and before active stop limits."""
    ref = data.ref
    s0, e0 = ref.frenet(x0[None, :2])
    t = np.arange(n + 1) / max(0.6 * n, 1.0)
    blend = np.clip(t, 0, 1) ** 2 * (3 - 2 * np.clip(t, 0, 1))
    lat = e0[0] + (lane_c - e0[0]) * blend
    boxes, half, present = obstacles.boxes, obstacles.half, obstacles.present
    s_obs, e_obs = ref.frenet(boxes[..., :2].reshape(-1, 2))
    s_obs, e_obs = s_obs.reshape(boxes.shape[:2]), e_obs.reshape(boxes.shape[:2])  # (M, n+1)
    v_obs = _along_route_speeds(scene, ref, n, dt)[np.maximum(obstacles.ids, 0), np.arange(n + 1)]  # (M, n+1)
    s, v = [s0[0]], [x0[3]]
    for k in range(1, n + 1):
        vk = v[-1] + np.clip(v_ref - v[-1], -3.0 * dt, 2.0 * dt)
        near = present[:, k] & (np.abs(e_obs[:, k] - lat[k]) < half[:, k, 1])
        ahead = near & (s_obs[:, k] > s[-1])
        # the speed from which braking at 4 m/s^2 keeps behind each leader braking as hard (Gipps)
        gap = np.maximum(s_obs[:, k] - half[:, k, 0] - 3.5 - s[-1], 0.0)
        safe = np.sqrt(np.maximum(v_obs[:, k], 0.0) ** 2 + 2 * 4.0 * gap)
        stop_gap = max(stop_limit[k] - PACIFICA.rear_axle_to_front - s[-1], 0.0)
        limit = min(np.where(ahead, safe, np.inf).min(initial=np.inf), np.sqrt(2 * 4.0 * stop_gap))
        vk = max(0.0, min(vk, limit, v[-1] + 3.0 * dt))
        vk = max(vk, v[-1] - 6.0 * dt)
        s.append(s[-1] + vk * dt)
        v.append(vk)
    station, speed = np.asarray(s), np.asarray(v)
    xy, heading, _ = ref.at(station)
    normal = np.stack([-np.sin(heading), np.cos(heading)], -1)
    xy = xy + lat[:, None] * normal
    heading = heading + np.arctan2(np.gradient(lat), np.maximum(np.gradient(station), 0.05))
    heading = turned_towards(heading, x0[2])
    states = np.concatenate([xy, heading[:, None], speed[:, None]], -1)
    states[0] = x0
    return states


def _along_route_speeds(scene: DriveScene, ref: Reference, n: int, dt: float) -> np.ndarray:
    """(max(A, 1), n+1) each agent's speed [m/s] along the reference at the NLP's steps (0 where it is
    invalid or there are no steps to difference; one row of zeros without agents, for empty slots' index 0).
    Per agent, not per obstacle slot: a slot may hold another agent at the next step."""
    agents, steps = scene.agents, agent_steps(n, dt)
    if agents.num_agents == 0 or n == 0:
        return np.zeros((max(agents.num_agents, 1), n + 1))
    s_agent = ref.project(agents.xy[:, steps])  # (A, n+1)
    v = np.gradient(s_agent, dt, axis=1)
    valid = agents.valid[:, steps]
    # np.gradient differences steps k-1 and k+1 (one-sided at the ends): all of them must be valid
    used = valid.copy()
    used[:, 1:] &= valid[:, :-1]
    used[:, :-1] &= valid[:, 1:]
    return np.where(used, v, 0.0)


def stop_limits(scene: DriveScene, data: SceneData, x0: np.ndarray, n: int, dt: float,
                d_stop: float) -> np.ndarray:
    """(n+1,) largest route arc length [m] the front bumper may reach at each step (inf where no red)."""
    out = np.full(n + 1, np.inf)
    front0 = x0[:2] + PACIFICA.rear_axle_to_front * np.array([np.cos(x0[2]), np.sin(x0[2])])
    s_front0 = data.ref.project(front0[None])[0]
    steps = agent_steps(n, dt)
    for s_stop, red in data.stops:
        if s_stop > s_front0 - STOP_SLACK:
            out = np.where(red[steps], np.minimum(out, s_stop - d_stop), out)
    return out


def goal_point(scene: DriveScene, n: int, dt: float) -> np.ndarray:
    """(2,) the reach_goal rule's goal for a window of n steps of dt."""
    return _goal(scene, n * dt)
