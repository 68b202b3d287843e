"""PointNav evaluation over many episodes, as a resumable sharded job of chunks of episodes.

A chunk loads the planner and the tracker once and keeps the worlds it has built. Every episode reseeds numpy
and torch from (seed, episode index), so results do not depend on how the chunks are run.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

import planners
from eval.pointnav.loop import LoopConfig, run_episode
from eval.pointnav.results import EpisodeResult
from eval.records import from_json, to_json
from planners.control import make_tracker
from scenes.nav import ROBOTS, NavEpisode, NavWorldInterface, RobotProfile
from scenes.store.units import parsed_unit_records, write_unit_record

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
        self.worlds: dict[str, NavWorldInterface]  # id -> world, oldest first
        self.spec, self.size, self.worlds = spec, size, {}

    def get(self, world_id: str) -> NavWorldInterface:
        """World `world_id` (a Habitat scene by its file suffix, else from the world spec), cached."""
        if world_id not in self.worlds:
            if len(self.worlds) >= self.size:
                self.worlds.pop(next(iter(self.worlds)))
            if world_id.endswith(HABITAT_SCENE_SUFFIXES):
                from scenes.nav.habitat import HabitatWorld

                self.worlds[world_id] = HabitatWorld(world_id)
            else:
                self.worlds[world_id] = world_factory(self.spec)(world_id)
        return self.worlds[world_id]


def episode_seed(seed: int, index: int) -> int:
    """The seed of episode `index` of a run with seed `seed` (its planner's, and the global generators')."""
    return (seed * 1_000_003 + index) % 2**32


def seed_episode_rngs(seed: int, index: int) -> None:
    """Seed Python's, numpy's and torch's global generators for episode `index`."""
    value = episode_seed(seed, index)
    random.seed(value)
    np.random.seed(value)
    try:
        import torch
    except ImportError:
        return
    torch.manual_seed(value)


def evaluate_chunk(episodes: list[tuple[int, NavEpisode]], config: PointNavConfig,
                   on_episode: Callable[[EpisodeResult], None] = lambda result: None) -> list[EpisodeResult]:
    """Run the (index, episode) pairs in order with one planner, one tracker per robot and a world cache;
    `on_episode(result)` after each."""
    planner = planners.load(config.planner)
    if not config.use_critic:
        planner.use_critic = False  # type: ignore[attr-defined]  # (planners without a critic ignore it)
    worlds = WorldCache(config.worlds)
    trackers = {}
    results = []
    for index, episode in episodes:
        robot = ROBOTS[config.robot or episode.robot]
        if robot.name not in trackers:
            trackers[robot.name] = make_tracker(config.tracker, robot)
        if isinstance(getattr(planner, "robot", None), RobotProfile):  # the rule-based baselines' footprint
            planner.robot = robot  # type: ignore[attr-defined]
        seed_episode_rngs(config.seed, index)
        planner.seed = episode_seed(config.seed, index)  # stochastic planners restart their generator
        results.append(run_episode(worlds.get(episode.world_id), episode, planner, trackers[robot.name], robot,
                                   config.loop, index=index))
        on_episode(results[-1])
    return results


@dataclass(frozen=True)
class PointNavEvaluation:
    """`diffplan eval pointnav` as a sharded job (`diffplan.jobs.run_job` runs it) in its run folder: unit u runs
    episodes[u * chunk_size, ...] and commits `units/unit-NNNNN.json` (their results). A rerun resumes.

    Attributes:
        episodes: the (index, episode) pairs to run, indices into the evaluated list.
        config: what to run.
        planner_fingerprint: the planner's name or its checkpoint's content hash (a resumed run must match).
        episodes_hash: content hash of the episodes (a resumed run must match).
        chunk_size: episodes per unit.
    """

    episodes: tuple[tuple[int, NavEpisode], ...]
    config: PointNavConfig
    planner_fingerprint: str
    episodes_hash: str
    chunk_size: int = 8
    command: ClassVar[str] = "diffplan eval pointnav"

    def job_record(self) -> dict[str, object]:
        """Planner (and its fingerprint), tracker, robot, seed, critic use, loop, worlds and episodes: what a
        resumed run must match."""
        c = self.config
        return {"planner": c.planner, "planner_fingerprint": self.planner_fingerprint, "tracker": c.tracker,
                "robot": c.robot, "seed": c.seed, "use_critic": c.use_critic, "loop": asdict(c.loop),
                "worlds": c.worlds, "episodes": [i for i, _ in self.episodes], "episodes_hash": self.episodes_hash,
                "chunk_size": self.chunk_size}

    def job_defaults(self) -> dict[str, object]:
        """Empty: every field is in every job file."""
        return {}

    @property
    def num_units(self) -> int:
        """Number of chunks."""
        return -(-len(self.episodes) // self.chunk_size)

    def finished(self, root: Path) -> tuple[dict[int, list[EpisodeResult]], dict[int, str]]:
        """Chunks an earlier run committed (their results), and those whose unit record is unreadable."""
        return parsed_unit_records(root, UNIT_DIR, self.num_units,
                                   lambda body: [from_json(EpisodeResult, r) for r in body["results"]])

    def run_unit(self, root: Path, unit: int, on_item: Callable[[list[EpisodeResult]], None]
                 ) -> list[EpisodeResult]:
        """Run chunk `unit`'s episodes, then commit their results; the results."""
        chunk = list(self.episodes[unit * self.chunk_size:(unit + 1) * self.chunk_size])
        results = evaluate_chunk(chunk, self.config, lambda result: on_item([result]))
        write_unit_record(Path(root), UNIT_DIR, unit, {"results": [to_json(r) for r in results]})
        return results

    def amount(self, report: list[EpisodeResult]) -> int:
        """Episodes done."""
        return len(report)

    def finish(self, root: Path, run) -> list[EpisodeResult]:
        """Every episode's result, sorted by index."""
        return sorted((r for results in run.reports.values() for r in results), key=lambda r: r.index)


UNIT_DIR = "units"


def evaluate_episodes(episodes: list[NavEpisode], config: PointNavConfig) -> list[EpisodeResult]:
    """Evaluate every episode in this process, without a job folder (tests, notebooks); the same results as
    `PointNavEvaluation` run by `diffplan.jobs.run_job`."""
    return evaluate_chunk(list(enumerate(episodes)), config)
