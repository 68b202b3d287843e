"""The `pointnav-synth` benchmark: fixed held-out PointNav episodes in synthetic cluttered worlds and rooms.

Generated on first use with the world generator and Habitat-rule episode sampler (scenes.nav.generator,
scenes.nav.episodes), from world seeds no training set uses (HELD_OUT_SEED and up), and cached as a PointNav-v1
file at $DIFFPLAN_CACHE (default ~/.cache/diffplan)/pointnav/pointnav-synth-v1-<robot>.json.gz.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from eval.pointnav.episodes import read_episodes, write_episodes
from scenes._cli import UserError
from scenes.nav import ROBOTS, NavEpisode
from scenes.portable import PortableRandom

BENCHMARK_VERSION = "v2"  # v2: synthetic-nav/2 worlds
HELD_OUT_SEED = 900_000  # world seeds from here on are reserved for evaluation
WORLDS_PER_KIND = 10
EPISODES_PER_WORLD = 10
KINDS = ("cluttered", "rooms")
BENCHMARKS = ("pointnav-synth",)


def cache_dir() -> Path:
    return Path(os.environ.get("DIFFPLAN_CACHE", Path.home() / ".cache" / "diffplan")) / "pointnav"


def benchmark_path(name: str, robot: str) -> Path:
    return cache_dir() / f"{name}-{BENCHMARK_VERSION}-{robot}.json.gz"


def generate_synth_episodes(robot_name: str, on_world: Callable[[int], None] = lambda n: None) -> list[NavEpisode]:
    """WORLDS_PER_KIND x len(KINDS) worlds x EPISODES_PER_WORLD episodes (200), a pure function of the robot."""
    from scenes.nav.episodes import sample_episode
    from scenes.nav.generator import generate_world
    from scenes.nav.mujoco_world import MujocoNavWorld

    robot = ROBOTS[robot_name]
    episodes = []
    for kind_index, kind in enumerate(KINDS):
        for k in range(WORLDS_PER_KIND):
            seed = HELD_OUT_SEED + k
            world = MujocoNavWorld(generate_world(kind, seed))
            rng = PortableRandom([seed, kind_index, 2024])
            made, tries = 0, 0
            while made < EPISODES_PER_WORLD and tries < 20 * EPISODES_PER_WORLD:
                tries += 1
                episode = sample_episode(world, robot, rng, f"{kind}-{seed}-{made:02d}")
                if episode is not None:
                    episodes.append(episode)
                    made += 1
            on_world(1)
    return episodes


def load_benchmark(name: str, robot: str, on_world: Callable[[int], None] = lambda n: None) -> list[NavEpisode]:
    """The benchmark's episodes, generated and cached on first use."""
    if name not in BENCHMARKS:
        raise UserError(f"unknown benchmark {name!r}; expected a PointNav-v1 .json.gz or one of "
                        f"{', '.join(BENCHMARKS)}")
    path = benchmark_path(name, robot)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_episodes(path, generate_synth_episodes(robot, on_world))
    return read_episodes(path)
