"""PointNav evaluation over many episodes: one process (workers=1) or a spawn process pool, chunked.

Each worker loads the planner and the tracker once and keeps the worlds it has built. Every episode reseeds
numpy and torch from (seed, episode index), so results do not depend on the number of workers.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable, Iterator
from concurrent.futures import as_completed
from dataclasses import dataclass, field

import numpy as np

import planners
from eval.pointnav.loop import LoopConfig, run_episode
from eval.pointnav.results import EpisodeResult
from eval.pool import worker_pool
from planners.control import make_tracker
from scenes.nav import ROBOTS, NavEpisode, NavWorldInterface, RobotProfile

HABITAT_SCENE_SUFFIXES = (".glb", ".ply", ".obj", ".gltf")
DEFAULT_WORLDS = "eval.pointnav.runner:synthetic_world"


@dataclass(frozen=True)
class PointNavConfig:
    """What to run. `planner` is a registered name or checkpoint; `robot` overrides the episodes' robot.

    Attributes:
        worlds: "module:function" mapping a world_id to a NavWorldInterface (Habitat scene files, ending in
            .glb/.ply/.obj/.gltf, always go to scenes.nav.habitat.HabitatWorld).
    """

    planner: str
    tracker: str = "mpc"
    robot: str | None = None
    seed: int = 0
    loop: LoopConfig = field(default_factory=LoopConfig)
    worlds: str = DEFAULT_WORLDS
    use_critic: bool = True  # False: NavDP executes a random sample instead of the critic's best (ablation)


def synthetic_world(world_id: str) -> NavWorldInterface:
    """The synthetic MuJoCo world a world id ("cluttered-12", "rooms-3", ...) names."""
    from scenes.nav.generator import world_from_id
    from scenes.nav.mujoco_world import MujocoNavWorld

    return MujocoNavWorld(world_from_id(world_id))


def world_factory(spec: str) -> Callable[[str], NavWorldInterface]:
    """The function named by "module:function"."""
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


class WorldCache:
    """Worlds by id, built on first use (episodes of one world are usually consecutive)."""

    def __init__(self, spec: str, size: int = 4):
        self.spec, self.size, self.worlds = spec, size, {}

    def get(self, world_id: str) -> NavWorldInterface:
        if world_id not in self.worlds:
            if len(self.worlds) >= self.size:
                self.worlds.pop(next(iter(self.worlds)))
            if world_id.endswith(HABITAT_SCENE_SUFFIXES):
                from scenes.nav.habitat import HabitatWorld

                self.worlds[world_id] = HabitatWorld(world_id)
            else:
                self.worlds[world_id] = world_factory(self.spec)(world_id)
        return self.worlds[world_id]


def _episode_seed(seed: int, index: int) -> int:
    return (seed * 1_000_003 + index) % 2**32


def _seed_everything(seed: int, index: int) -> None:
    value = _episode_seed(seed, index)
    random.seed(value)
    np.random.seed(value)
    try:
        import torch
    except ImportError:
        return
    torch.manual_seed(value)


def evaluate_chunk(episodes: list[tuple[int, NavEpisode]], config: PointNavConfig) -> list[EpisodeResult]:
    """Run the (index, episode) pairs in order with one planner, one tracker per robot and a world cache."""
    planner = planners.load(config.planner)
    if not config.use_critic:
        planner.use_critic = False
    worlds = WorldCache(config.worlds)
    trackers = {}
    results = []
    for index, episode in episodes:
        robot = ROBOTS[config.robot or episode.robot]
        if robot.name not in trackers:
            trackers[robot.name] = make_tracker(config.tracker, robot)
        if isinstance(getattr(planner, "robot", None), RobotProfile):  # the rule-based baselines' footprint
            planner.robot = robot
        _seed_everything(config.seed, index)
        if hasattr(planner, "seed"):  # stochastic learned planners draw from their own generator, reset per episode
            planner.seed = _episode_seed(config.seed, index)
        results.append(run_episode(worlds.get(episode.world_id), episode, planner, trackers[robot.name], robot,
                                   config.loop, index=index))
    return results


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def evaluate_episodes(episodes: list[NavEpisode], config: PointNavConfig, workers: int = 1, chunk_size: int = 8,
                      on_progress: Callable[[int], None] = lambda n: None) -> list[EpisodeResult]:
    """Evaluate every episode; results come back in episode order whatever the number of workers."""
    chunks = list(_chunks(list(enumerate(episodes)), chunk_size))
    results: list[EpisodeResult] = []
    if workers == 1:
        for chunk in chunks:
            results.extend(evaluate_chunk(chunk, config))
            on_progress(len(chunk))
    else:
        with worker_pool(workers) as pool:
            futures = {pool.submit(evaluate_chunk, chunk, config): len(chunk) for chunk in chunks}
            for future in as_completed(futures):
                results.extend(future.result())
                on_progress(futures[future])
    return sorted(results, key=lambda r: r.index)
