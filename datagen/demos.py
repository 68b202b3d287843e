"""A demonstration DriveScene from a scene and a successful expert solve, plus its flat extras record.

The ego's future (steps after CURRENT_INDEX: NUM_FUTURE_STEPS at SIM_DT) is replaced by the optimised
trajectory; everything else (history, agents, map, route, lights) is the source scene's. The body-frame
quantities are made consistent with the states (kinematic bicycle about the rear axle):
    velocity = (v, 0); acceleration = (dv/dt, v * yaw_rate); yaw_rate = d heading/dt (central differences
    over the whole 66-step ego track, so the seam at now is smooth); steering = atan(L * yaw_rate / v)
    (0 below 0.1 m/s), L = PACIFICA wheelbase.
A solve sampled at another dt is resampled to SIM_DT (linear; heading unwrapped). A horizon shorter than
5 s is extended at constant speed and constant yaw rate from the last state (the "last controls", with the
acceleration held at 0 so the speed never goes negative).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from scenes.drive import CURRENT_INDEX, NUM_FUTURE_STEPS, SIM_DT, DriveScene
from scenes.ego import PACIFICA, EgoState
from scenes.geometry import wrap_angle

MIN_STEER_SPEED = 0.1  # [m/s] below this the steering angle is undefined and stored as 0


def future_states(states: np.ndarray, dt: float = SIM_DT) -> tuple[np.ndarray, int]:
    """(NUM_FUTURE_STEPS, 4) x, y, heading (unwrapped), v after now from solver states (N+1, 4) spaced `dt`;
    and how many of them were extrapolated past the solve's horizon."""
    states = np.asarray(states, dtype=np.float64)
    if states.ndim != 2 or states.shape[1] != 4 or len(states) < 2:
        raise ValueError(f"expert states must be (N+1 >= 2, 4), got {states.shape}")
    states = states.copy()
    states[:, 2] = np.unwrap(states[:, 2])
    times = dt * np.arange(len(states))
    wanted = SIM_DT * np.arange(1, NUM_FUTURE_STEPS + 1)
    inside = wanted <= times[-1] + 1e-9
    out = np.empty((NUM_FUTURE_STEPS, 4))
    for c in range(4):
        out[inside, c] = np.interp(wanted[inside], times, states[:, c])
    extra = int((~inside).sum())
    if extra:
        last, previous = states[-1], states[-2]
        yaw_rate = (last[2] - previous[2]) / dt
        v = max(float(last[3]), 0.0)
        t = wanted[~inside] - times[-1]
        heading = last[2] + yaw_rate * t
        if abs(yaw_rate) > 1e-9:
            x = last[0] + v / yaw_rate * (np.sin(heading) - np.sin(last[2]))
            y = last[1] - v / yaw_rate * (np.cos(heading) - np.cos(last[2]))
        else:
            x, y = last[0] + v * t * np.cos(last[2]), last[1] + v * t * np.sin(last[2])
        out[~inside] = np.column_stack([x, y, heading, np.full_like(t, v)])
    return out, extra


def demo_ego(scene: DriveScene, states: np.ndarray, dt: float = SIM_DT) -> EgoState:
    """The scene's ego with its future replaced by the expert states (see the module doc)."""
    future, _ = future_states(states, dt)
    history = scene.ego.slice(slice(0, CURRENT_INDEX + 1))
    heading = np.unwrap(np.concatenate([history.pose[:, 2], future[:, 2]]))
    speed = np.concatenate([history.speed, future[:, 3]])
    yaw_rate = np.gradient(heading, SIM_DT)
    accel = np.gradient(speed, SIM_DT)
    now = slice(CURRENT_INDEX + 1, None)
    v = future[:, 3]
    steering = np.where(v > MIN_STEER_SPEED,
                        np.arctan(PACIFICA.wheelbase * yaw_rate[now] / np.maximum(v, MIN_STEER_SPEED)), 0.0)
    pose = np.column_stack([future[:, :2], wrap_angle(future[:, 2])])
    return EgoState(
        pose=np.concatenate([history.pose, pose]),
        velocity=np.concatenate([history.velocity, np.column_stack([v, np.zeros_like(v)])]),
        acceleration=np.concatenate([history.acceleration, np.column_stack([accel[now], v * yaw_rate[now]])]),
        yaw_rate=np.concatenate([history.yaw_rate, yaw_rate[now]]),
        steering=np.concatenate([history.steering, steering]),
    )


def demo_extras(target: object, result: object, horizon_dt: float = SIM_DT) -> dict[str, object]:
    """Flat record: stl.RULE.PARAM, robustness.RULE, solver.status/iterations, target.speed/lane.

    Parameters are the solve's own `result.params` (rule -> params actually used) when it has them, else
    `target.rule_params`; the target's speed is `.speed` or `.reference_speed`, its lane `.lane` or
    `.target_lane` (trajopt's DriveTarget).

    The solver's wall_ms is deliberately not stored: it differs from run to run and would break the
    byte-identical datasets (the job reports it in its summary instead).
    """
    record: dict[str, object] = {}
    params: Mapping[str, Mapping[str, float]] = (getattr(result, "params", None)
                                                 or getattr(target, "rule_params", None) or {})
    for rule in sorted(params):
        for name in sorted(params[rule]):
            record[f"stl.{rule}.{name}"] = float(params[rule][name])
    for rule, value in sorted(result.robustness.items()):
        record[f"robustness.{rule}"] = float(value)
    status = result.status
    record["solver.status"] = str(getattr(status, "value", status))
    record["solver.iterations"] = int(result.iterations)
    speed = getattr(target, "speed", getattr(target, "reference_speed", None))
    lane = getattr(target, "lane", getattr(target, "target_lane", None))
    if speed is not None:
        record["target.speed"] = float(speed)
    if lane is not None:
        record["target.lane"] = int(lane)
    record["horizon.steps"] = int(len(result.states) - 1)
    record["horizon.dt"] = float(horizon_dt)
    return record


def build_demo(scene: DriveScene, result: object, target: object, k: int,
               dt: float | None = None) -> tuple[DriveScene, dict[str, object]]:
    """Demo k of `scene` (scene_id f"{scene_id}-demo{k}") and its extras record."""
    if not result.ok:
        raise ValueError(f"{scene.metadata.scene_id}: cannot build a demo from a failed solve "
                         f"({getattr(result.status, 'value', result.status)})")
    dt = float(getattr(result, "dt", SIM_DT) if dt is None else dt)
    ego = demo_ego(scene, result.states, dt)
    metadata = dataclasses.replace(scene.metadata, scene_id=f"{scene.metadata.scene_id}-demo{k}")
    demo = dataclasses.replace(scene, metadata=metadata, ego=ego)
    return demo, demo_extras(target, result, dt)
