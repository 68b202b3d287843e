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

import numpy as np

from scenes.drive import CURRENT_INDEX, NUM_FUTURE_STEPS, SIM_DT, DriveScene
from scenes.ego import PACIFICA, EgoState
from scenes.errors import DiffplanError
from scenes.geometry import poses_to_global, wrap_angle
from stl.calibrate import flex_params
from stl.rules import rule_set
from stl.signals import signals_from_poses
from trajopt.drive import LANE_RULES
from trajopt.expert import DriveTarget, ExpertResult

MIN_STEER_SPEED = 0.1  # [m/s] below this the steering angle is undefined and stored as 0
FLEX_POSES, FLEX_DT = 8, 0.5  # the plan whose tight θ `flex_extras` records: 8 poses at 0.5 s
TARGET_MODES = {0: "keep", 1: "left", -1: "right"}  # target lane -> pSTL's mode name (a stop target: "stop")


class DemoError(DiffplanError, ValueError):
    """A solve that cannot become a demonstration; the message names the scene or the value."""


def future_states(states: np.ndarray, dt: float = SIM_DT) -> tuple[np.ndarray, int]:
    """(NUM_FUTURE_STEPS, 4) x, y, heading (unwrapped), v after now from solver states (N+1, 4) spaced `dt`;
    and how many of them were extrapolated past the solve's horizon."""
    states = np.asarray(states, dtype=np.float64)
    if states.ndim != 2 or states.shape[1] != 4 or len(states) < 2:
        raise DemoError(f"expert states must be (N+1 >= 2, 4), got {states.shape}")
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


def demo_extras(target: DriveTarget, result: ExpertResult, horizon_dt: float = SIM_DT) -> dict[str, object]:
    """Flat record (the store's privileged extras): stl.RULE.PARAM of the rules the solve was checked against
    (`result.params`), robustness.RULE, solver.status (ExpertStatus value) / iterations, target.speed / lane /
    mode (keep, left, right, stop: pSTL's modes),
    horizon.steps / dt.

    The solve's wall time is deliberately not stored: it differs from run to run and would break the
    byte-identical datasets (the job reports it in its summary instead).
    """
    record: dict[str, object] = {}
    params = result.params.to_json()
    for rule in sorted(params):
        for name in sorted(params[rule]):
            record[f"stl.{rule}.{name}"] = float(params[rule][name])
    for rule, value in sorted(result.robustness.items()):
        record[f"robustness.{rule}"] = float(value)
    record["solver.status"] = result.status.value
    record["solver.iterations"] = int(result.iterations)
    record["target.speed"] = float(target.reference_speed)
    record["target.lane"] = int(target.target_lane)
    record["target.mode"] = "stop" if target.stop else TARGET_MODES[target.target_lane]
    record["horizon.steps"] = int(len(result.states) - 1)
    record["horizon.dt"] = float(horizon_dt)
    return record


def flex_extras(demo: DriveScene, target: DriveTarget) -> dict[str, object]:
    """flex.RULE.PARAM: pSTL's per-window calibration (`stl.calibrate.flex_params`) of the demo's 4 s plan (8
    poses at 0.5 s, the plans a policy makes) under its mode's rules (speed band, the target lane's rule, safe
    distance): the tight θ the demo meets, which pSTL conditions its policy on."""
    poses = poses_to_global(demo.expert_plan(FLEX_POSES, FLEX_DT).poses, demo.current_pose)
    states = np.concatenate([demo.current_pose[None], poses])[None]
    rules = rule_set(("speed_band", LANE_RULES[target.target_lane], "safe_distance"))
    params = flex_params(rules, signals_from_poses(demo, states, FLEX_DT))
    return {f"flex.{rule}.{name}": float(value) for rule, values in sorted(params.to_json().items())
            for name, value in sorted(values.items())}


def build_demo(scene: DriveScene, result: ExpertResult, target: DriveTarget, k: int,
               dt: float | None = None) -> tuple[DriveScene, dict[str, object]]:
    """Demo k of `scene` (scene_id f"{scene_id}-demo{k}") and its extras record; `dt` [s] overrides the
    solve's step `result.dt`."""
    if not result.ok:
        raise DemoError(f"{scene.metadata.scene_id}: cannot build a demo from a failed solve "
                        f"({result.status.value})")
    dt = float(result.dt if dt is None else dt)
    ego = demo_ego(scene, result.states, dt)
    metadata = dataclasses.replace(scene.metadata, scene_id=f"{scene.metadata.scene_id}-demo{k}")
    demo = dataclasses.replace(scene, metadata=metadata, ego=ego)
    return demo, {**demo_extras(target, result, dt), **flex_extras(demo, target)}
