"""Fixed, real observations for planner tests: synthetic driving scenes and one synthetic navigation world.

Driving: scene SCENE_SEED + k of the val split with scenario DRIVE_SCENARIOS[k]; its observation now.
Navigation: world cluttered-900000 (an evaluation seed) on MuJoCo, two wheeled episodes sampled from it; the
observation at each episode's start (default camera, 160 x 120), the second one moving.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache

import numpy as np

from scenes import DriveObservation, DriveScene, ScenarioType
from scenes.geometry import points_to_local
from scenes.nav import WHEELED, CameraSpec, NavEpisode, NavObservation, RobotProfile

SCENE_SEED = 1_000_000_007
DRIVE_SCENARIOS = (ScenarioType.INTERSECTION_LEFT, ScenarioType.PARKED_VEHICLE, ScenarioType.CURVED_ROAD)
WORLD = ("cluttered", 900_000)
VELOCITIES = ((0.0, 0.0), (0.3, 0.1))  # [m/s, rad/s] the robot's observed (v, omega) in each observation


@cache
def drive_scenes() -> tuple[DriveScene, ...]:
    from scenes.synthetic import generate_scene

    return tuple(generate_scene(SCENE_SEED + k, "val", kind) for k, kind in enumerate(DRIVE_SCENARIOS))


def drive_observations(count: int = 2) -> list[DriveObservation]:
    return [scene.observation() for scene in drive_scenes()[:count]]


@dataclass(frozen=True)
class NavCase:
    """A navigation observation and what an oracle may know besides: world, pose (3,), goal (2,), robot."""

    observation: NavObservation
    world: object
    pose: np.ndarray
    goal: np.ndarray
    robot: RobotProfile
    episode: NavEpisode


@cache
def nav_cases() -> tuple[NavCase, ...]:
    from scenes.nav.episodes import sample_episode
    from scenes.nav.generator import generate_world
    from scenes.nav.mujoco_world import MujocoNavWorld
    from scenes.portable import PortableRandom

    world = MujocoNavWorld(generate_world(*WORLD))
    rng = PortableRandom([WORLD[1], 3])
    cases = []
    for index, velocity in enumerate(VELOCITIES):
        episode = sample_episode(world, WHEELED, rng, str(index))
        assert episode is not None
        pose, goal = np.asarray(episode.start, np.float64), np.asarray(episode.goal, np.float64)
        local = points_to_local(goal, pose)
        camera = CameraSpec()
        observation = NavObservation(depth=np.asarray(world.render_depth(pose, camera), dtype=np.float32),
                                     goal=np.array([local[0], local[1], 0.0], dtype=np.float32),
                                     velocity=np.asarray(velocity, dtype=np.float32), camera=camera,
                                     time_s=0.3 * index)
        cases.append(NavCase(observation, world, pose, goal, WHEELED, episode))
    return tuple(cases)


def nav_observations(count: int = 2) -> list[NavObservation]:
    return [case.observation for case in nav_cases()[:count]]


def digest(array: np.ndarray) -> str:
    """sha256 of an array's bytes (C order), with its dtype and shape."""
    array = np.ascontiguousarray(array)
    return hashlib.sha256(f"{array.dtype.str}{array.shape}".encode() + array.tobytes()).hexdigest()
