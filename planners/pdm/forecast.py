"""PDM-Closed's view of the world: the observation's objects moved forward at constant velocity.

As NAVSIM's PDMObservation: objects valid now within `radius` of the ego keep their heading and move
with their current velocity; static objects stay.
"""

from __future__ import annotations

import numpy as np

from scenes import (
    CURRENT_INDEX,
    NUM_FUTURE_STEPS,
    NUM_STEPS,
    SIM_DT,
    AgentTracks,
    DriveObservation,
    DriveScene,
    EgoState,
    ScenarioType,
    SceneMetadata,
    TrafficLights,
)


def constant_velocity_agents(observation: DriveObservation, radius: float = 100.0) -> AgentTracks:
    """(N, NUM_STEPS) tracks in the ego frame: unobserved (invalid) early steps, the observed history ending at
    CURRENT_INDEX, then a constant-velocity future."""
    agents = observation.agents
    now = agents.valid[:, -1] & (np.linalg.norm(agents.xy[:, -1], axis=-1) <= radius)
    agents = agents.select(now)
    n, pad = agents.num_agents, CURRENT_INDEX + 1 - agents.num_steps
    t = SIM_DT * np.arange(1, NUM_FUTURE_STEPS + 1)
    future_xy = agents.xy[:, -1:, :] + t[None, :, None] * agents.velocity[:, -1:, :]
    return AgentTracks(
        track_ids=agents.track_ids,
        category=agents.category,
        size=agents.size,
        xy=np.concatenate([np.zeros((n, pad, 2)), agents.xy, future_xy], axis=1),
        heading=np.concatenate([np.zeros((n, pad)), agents.heading,
                                np.repeat(agents.heading[:, -1:], NUM_FUTURE_STEPS, 1)], 1),
        velocity=np.concatenate([np.zeros((n, pad, 2)), agents.velocity,
                                 np.repeat(agents.velocity[:, -1:], NUM_FUTURE_STEPS, 1)], 1),
        valid=np.concatenate([np.zeros((n, pad), bool), agents.valid, np.ones((n, NUM_FUTURE_STEPS), bool)], 1),
    )


def forecast_scene(observation: DriveObservation, radius: float = 100.0) -> DriveScene:
    """A DriveScene in the ego frame whose future is PDM-Closed's forecast (not the truth).

    The observed history ends at CURRENT_INDEX (earlier steps repeat its first state) and the ego's future
    repeats its current state; only the scorer's map, route and agents are meaningful.
    """
    history = observation.ego_history
    before, after = CURRENT_INDEX + 1 - len(history), NUM_STEPS - CURRENT_INDEX - 1
    ego = EgoState(*(np.concatenate([np.repeat(field[:1], before, axis=0), field,
                                     np.repeat(field[-1:], after, axis=0)], axis=0)
                     for field in (history.pose, history.velocity, history.acceleration, history.yaw_rate,
                                   history.steering)))
    return DriveScene(
        metadata=SceneMetadata("pdm-forecast", 0, "test", ScenarioType.LOG, "pdm-forecast"),
        ego=ego,
        agents=constant_velocity_agents(observation, radius),
        map=observation.map,
        route=observation.route,
        command=observation.command,
        traffic_lights=TrafficLights(np.zeros(0, np.int64), np.zeros((0, NUM_STEPS), bool)),
    )
