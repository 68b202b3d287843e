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
    ref, area = Reference.from_line(scene.route.centerline), scene.map.drivable_area()
    return SceneData(ref, area, _stop_points(scene), StationCorridor(area, ref))


def agent_steps(n: int, dt: float) -> np.ndarray:
    """(n+1,) scene step index of each NLP step."""
    return np.minimum(CURRENT_INDEX + np.rint(np.arange(n + 1) * dt / SIM_DT).astype(int), NUM_STEPS - 1)


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


def select_obstacles(scene: DriveScene, path: np.ndarray, dt: float, slots: int, clearance: float,
                     reach: float = 40.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest agents to `path` (n+1, >=2): per slot and step centre x, y and heading cos, sin (M, n+1, 4),
    half sizes (M, 2) [m] inflated by the ego disc radius + `clearance`, and the selected agent indices.
    Absent slots and steps sit FAR_AWAY."""
    n = len(path) - 1
    agents, steps = scene.agents, agent_steps(n, dt)
    boxes = np.zeros((slots, n + 1, 4))
    boxes[..., 0] = FAR_AWAY * (1 + np.arange(slots))[:, None]
    boxes[..., 2] = 1.0
    half = np.ones((slots, 2))
    if agents.num_agents == 0:
        return boxes, half, np.zeros(0, int)
    xy, heading, valid = agents.xy[:, steps], agents.heading[:, steps], agents.valid[:, steps]
    dist = np.where(valid, np.linalg.norm(xy - path[None, :, :2], axis=-1), np.inf).min(1)
    order = [i for i in np.argsort(dist) if dist[i] < reach][:slots]
    for slot, i in enumerate(order):
        box = np.concatenate([xy[i], np.cos(heading[i])[:, None], np.sin(heading[i])[:, None]], -1)
        boxes[slot] = np.where(valid[i][:, None], box, boxes[slot])
        half[slot] = agents.size[i] / 2.0 + EGO_RADIUS + clearance
    return boxes, half, np.asarray(order, int)


def route_guess(scene: DriveScene, data: SceneData, model: Model, x0: np.ndarray, n: int, dt: float,
                v_ref: float, lane_c: np.ndarray, obstacles: tuple,
                stop_limit: np.ndarray) -> np.ndarray:
    """(n+1, 4) a guess along the reference: lateral blend to the target lane, speed towards v_ref, braking
    (<= 4 m/s^2) before obstacles near the path and active stop limits."""
    ref = data.ref
    s0, e0 = ref.frenet(x0[None, :2])
    t = np.arange(n + 1) / max(0.6 * n, 1.0)
    blend = np.clip(t, 0, 1) ** 2 * (3 - 2 * np.clip(t, 0, 1))
    lat = e0[0] + (lane_c - e0[0]) * blend
    boxes, half, order = obstacles
    boxes, half = boxes[:len(order)], half[:len(order)]
    s_obs, e_obs = ref.frenet(boxes[..., :2].reshape(-1, 2))
    s_obs, e_obs = s_obs.reshape(boxes.shape[:2]), e_obs.reshape(boxes.shape[:2])  # (M', n+1)
    s, v = [s0[0]], [x0[3]]
    for k in range(1, n + 1):
        vk = v[-1] + np.clip(v_ref - v[-1], -3.0 * dt, 2.0 * dt)
        near = np.abs(e_obs[:, k] - lat[k]) < half[:, 1]
        ahead = np.where(near & (s_obs[:, k] > s[-1]), s_obs[:, k] - half[:, 0] - 3.5, np.inf)
        gap = min(ahead.min(initial=np.inf), stop_limit[k] - PACIFICA.rear_axle_to_front) - s[-1]
        vk = max(0.0, min(vk, np.sqrt(2 * 4.0 * max(gap, 0.0)), v[-1] + 3.0 * dt))
        vk = max(vk, v[-1] - 6.0 * dt)
        s.append(s[-1] + vk * dt)
        v.append(vk)
    s, v = np.asarray(s), np.asarray(v)
    xy, heading, _ = ref.at(s)
    normal = np.stack([-np.sin(heading), np.cos(heading)], -1)
    xy = xy + lat[:, None] * normal
    heading = heading + np.arctan2(np.gradient(lat), np.maximum(np.gradient(s), 0.05))
    heading = heading + 2 * np.pi * np.round((x0[2] - heading[0]) / (2 * np.pi))
    states = np.concatenate([xy, heading[:, None], v[:, None]], -1)
    states[0] = x0
    return states


def stop_limits(scene: DriveScene, data: SceneData, x0: np.ndarray, n: int, dt: float, d_stop: float) -> np.ndarray:
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
