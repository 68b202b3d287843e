"""Reactive IDM agents (eval.reactive) on hand-built and synthetic scenes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from eval.reactive import ReactiveIDMConfig, reactive_agent_tracks
from planners.pdm.states import NUM_SIM_STATES, NUM_STATE_FIELDS, StateIndex
from scenes import CURRENT_INDEX, NUM_STEPS, SIM_DT, AgentCategory, AgentTracks, ScenarioType, TrafficLights
from scenes.ego import PACIFICA
from scenes.synthetic import generate_scene
from tests.factories import straight_scene

T = (np.arange(NUM_STEPS) - CURRENT_INDEX) * SIM_DT  # (T,) [s], 0 now


def _car(x0: float, speed: float, y: float = 0.0, length: float = 4.5) -> AgentTracks:
    """One eastbound car at x0 [m] now, logged at constant `speed` [m/s]."""
    xy = np.stack([x0 + speed * T, np.full_like(T, y)], axis=-1)[None]
    velocity = np.zeros((1, NUM_STEPS, 2))
    velocity[..., 0] = speed
    return AgentTracks(np.array([1]), np.array([AgentCategory.VEHICLE], np.int8), np.array([[length, 1.9]]), xy,
                       np.zeros((1, NUM_STEPS)), velocity, np.ones((1, NUM_STEPS), bool))


def _ego_states(x: np.ndarray, speed: np.ndarray, y: float = 0.0) -> np.ndarray:
    """(41, 11) eastbound ego states with rear axle at x (41,) [m] and speed (41,) [m/s]."""
    states = np.zeros((NUM_SIM_STATES, NUM_STATE_FIELDS))
    states[:, StateIndex.X], states[:, StateIndex.Y], states[:, StateIndex.VELOCITY_X] = x, y, speed
    return states


def _scene(agents: AgentTracks, lights: TrafficLights | None = None):
    scene = straight_scene()
    lights = lights or TrafficLights(np.zeros(0, np.int64), np.zeros((0, NUM_STEPS), bool))
    return replace(scene, agents=agents, traffic_lights=lights)


def _stopping_ego() -> np.ndarray:
    """Ego from 10 m/s at x = 0 braking at 4 m/s^2 to a stop at x = 12.5 m (2.5 s), then standing."""
    t = np.arange(NUM_SIM_STATES) * SIM_DT
    speed = np.maximum(10.0 - 4.0 * t, 0.0)
    x = np.where(t < 2.5, 10.0 * t - 2.0 * t**2, 12.5)
    return _ego_states(x, speed)


def test_follower_brakes_behind_stopping_ego():
    config = ReactiveIDMConfig()
    scene = _scene(_car(-40.0, 10.0))
    ego = _stopping_ego()
    out = reactive_agent_tracks(scene, ego, config).validate()
    ego_rear = np.concatenate([ego[:, StateIndex.X], np.full(NUM_STEPS - CURRENT_INDEX - NUM_SIM_STATES, 12.5)])
    ego_rear = ego_rear - PACIFICA.rear_axle_to_rear
    future = slice(CURRENT_INDEX, None)
    gap = ego_rear - (out.xy[0, future, 0] + 2.25)
    logged_gap = ego_rear - (scene.agents.xy[0, future, 0] + 2.25)
    assert logged_gap.min() < 0.0  # log replay drives into the ego
    assert gap.min() >= config.min_gap - 1e-6
    assert gap[-1] < 10.0  # it closes up behind the stopped ego ...
    assert out.speed[0, -1] < 5.0  # ... slowing down
    np.testing.assert_allclose(out.xy[0, future, 1], 0.0, atol=1e-9)  # stays on the lane centreline
    assert (np.diff(out.xy[0, future, 0]) >= 0).all()


@pytest.mark.parametrize(("policy", "target"), [("replace", 15.0), ("cap", 10.0), ("ignore", 10.0)])
def test_free_agent_accelerates_per_idm(policy: str, target: float):
    config = ReactiveIDMConfig(speed_limit_policy=policy, radius=np.inf)
    scene = _scene(_car(-40.0, 5.0))  # lane speed limit 15 m/s
    far_ego = _ego_states(np.full(NUM_SIM_STATES, 900.0), np.zeros(NUM_SIM_STATES), y=900.0)
    out = reactive_agent_tracks(scene, far_ego, config)
    speed = out.speed[0, CURRENT_INDEX:]
    first_accel = config.accel_max * (1.0 - (5.0 / target) ** 4)  # no leader: the interaction term is ~0
    assert speed[1] == pytest.approx(5.0 + SIM_DT * first_accel, abs=1e-9)
    assert out.xy[0, CURRENT_INDEX + 1, 0] == pytest.approx(-40.0 + SIM_DT * 5.0, abs=1e-9)
    assert (np.diff(speed) > 0).all() and speed[-1] < target
    accel = np.diff(speed) / SIM_DT
    np.testing.assert_allclose(accel, config.accel_max * (1 - (speed[:-1] / target) ** 4), atol=1e-9)
    np.testing.assert_allclose(out.heading[0, CURRENT_INDEX + 1:], 0.0, atol=1e-9)
    np.testing.assert_allclose(out.velocity[0, CURRENT_INDEX + 1:, 1], 0.0, atol=1e-9)


def test_fast_agent_brakes_at_decel_max_towards_target():
    config = ReactiveIDMConfig(radius=np.inf)
    scene = _scene(_car(-40.0, 20.0))
    far_ego = _ego_states(np.full(NUM_SIM_STATES, 900.0), np.zeros(NUM_SIM_STATES), y=900.0)
    speed = reactive_agent_tracks(scene, far_ego, config).speed[0, CURRENT_INDEX:]
    assert speed[1] == pytest.approx(20.0 - SIM_DT * config.decel_max)  # 1 - (20/15)^4 < -2, clipped
    assert 15.0 < speed[-1] < 16.0


def test_agent_stops_at_red_light():
    lights = TrafficLights(np.array([1], np.int64), np.zeros((1, NUM_STEPS), bool))
    lights.is_red[0, CURRENT_INDEX:] = True  # the factory's stop line at x = 100 guards lane 1
    scene = _scene(_car(50.0, 8.0), lights)
    ego = _ego_states(np.full(NUM_SIM_STATES, 0.0), np.zeros(NUM_SIM_STATES), y=3.5)  # standing in lane 2
    out = reactive_agent_tracks(scene, ego)
    front = out.xy[0, CURRENT_INDEX:, 0] + 2.25
    assert front.max() < 100.0 and out.speed[0, -1] < 5.5  # approaching the stop line, slowing
    green = reactive_agent_tracks(_scene(_car(50.0, 8.0)), ego)
    assert green.xy[0, -1, 0] + 2.25 > 100.0


@pytest.mark.parametrize("kind", [ScenarioType.INTERSECTION_LEFT, ScenarioType.PARKED_VEHICLE,
                                  ScenarioType.PEDESTRIAN_CROSSING, ScenarioType.CURVED_ROAD])
def test_synthetic_scenes_history_and_passive_agents_unchanged(kind: ScenarioType):
    scene = generate_scene(0, "test", kind)
    states = np.zeros((NUM_SIM_STATES, NUM_STATE_FIELDS))
    states[:, :3] = scene.ego.pose[CURRENT_INDEX:CURRENT_INDEX + NUM_SIM_STATES]
    states[:, StateIndex.VELOCITY_X] = scene.ego.velocity[CURRENT_INDEX:CURRENT_INDEX + NUM_SIM_STATES, 0]
    out = reactive_agent_tracks(scene, states).validate()
    before = scene.agents
    history = slice(0, CURRENT_INDEX + 1)
    for name in ("xy", "heading", "velocity", "valid"):
        np.testing.assert_array_equal(getattr(out, name)[:, history], getattr(before, name)[:, history])
    passive = np.isin(before.category, [AgentCategory.PEDESTRIAN, AgentCategory.STATIC_OBJECT])
    for name in ("xy", "heading", "velocity", "valid"):
        np.testing.assert_array_equal(getattr(out, name)[passive], getattr(before, name)[passive])
    np.testing.assert_array_equal(out.track_ids, before.track_ids)
    changed = ~np.all(out.xy == before.xy, axis=(1, 2))
    assert changed.any() and not changed[passive].any()
    assert np.isfinite(out.xy).all() and np.isfinite(out.heading).all()
    # headings and velocities agree with the motion of re-simulated agents
    moving = changed[:, None] & (out.speed[:, CURRENT_INDEX + 1:] > 0.5)
    along = np.arctan2(out.velocity[..., 1], out.velocity[..., 0])[:, CURRENT_INDEX + 1:]
    assert np.abs(np.angle(np.exp(1j * (along - out.heading[:, CURRENT_INDEX + 1:]))))[moving].max() < 1e-6
    again = reactive_agent_tracks(scene, states)
    for name in ("xy", "heading", "velocity", "valid"):
        np.testing.assert_array_equal(getattr(again, name), getattr(out, name))
