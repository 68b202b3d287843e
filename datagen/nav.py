"""The `datagen nav` job: procedural worlds -> PointNav episodes -> privileged expert roll-outs with depth,
written as a nav dataset (`scenes.store.nav`), resumable, on local processes or Ray.

Work unit = shard s: episodes i in [s * shard_size, ...). Episode i lives in world i // episodes_per_world,
whose kind cycles through the configured kinds and whose seed is `training_world_seed(seed, world)` (below
the seeds held out for evaluation);
its start/goal draws, roll-out and negatives use one rng seeded by SeedSequence([seed, i, 1]), retried up
to MAX_ATTEMPTS times. So the bytes depend only on the config: 1 worker, W workers or Ray write identical
datasets (depth comes from the same renderer on the same machine). Per shard, meta/datagen/unit-NNNNN.json
(written after the store shard) holds its counts and marks it done; a killed job loses at most the shards it
was writing. `NavDatagenJob` is the job `diffplan.jobs.run_job` runs (its pool workers are spawned, each
with its own GL context).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from datagen.critic import CRITIC_LABELS
from datagen.job import UNIT_DIR, total_failures
from scenes.errors import ConfigError
from scenes.nav.generator import NAV_GENERATOR_VERSION, WORLD_KINDS, generate_world, training_world_seed
from scenes.nav.types import ROBOTS, CameraSpec
from scenes.portable import PortableRandom
from scenes.store.layout import completed_shards
from scenes.store.nav import finalize_nav_dataset, write_nav_shard
from scenes.store.units import Shards, read_unit_records, write_unit_record

MAX_ATTEMPTS = 5  # episode draws per episode index before it counts as failed


def parse_camera(text: str) -> tuple[int, int]:
    """(width, height) from "WxH"; ConfigError when malformed or outside 64..640."""
    try:
        width, height = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise ConfigError("camera", f"{{field}} {text!r}: expected WIDTHxHEIGHT, e.g. 160x120") from None
    if not (64 <= width <= 640 and 64 <= height <= 640):
        raise ConfigError("camera", f"{{field}} {text}: width and height must be in 64..640")
    return width, height


@dataclass(frozen=True)
class NavDatagenConfig:
    """What to generate. `world_kinds`: the kinds worlds cycle through; `camera`: "WxH" [px]; `critic_label`:
    "points" (NavDP's released code) or "esdf" (robot-footprint clearance), see datagen.critic."""

    n: int
    robot: str = "wheeled"
    seed: int = 0
    world_kinds: tuple[str, ...] = WORLD_KINDS
    camera: str = "160x120"
    hfov_deg: float = CameraSpec.hfov_deg
    mount_height: float = CameraSpec.mount_height
    shard_size: int = 8  # episodes per shard
    episodes_per_world: int = 4
    critic_label: str = "points"
    generator_version: str = NAV_GENERATOR_VERSION

    def validate(self) -> NavDatagenConfig:
        """The config itself; ConfigError naming the field when a value is out of range or unknown."""
        if self.n < 1:
            raise ConfigError("n", f"{{field}} must be a positive number of trajectories, got {self.n}")
        if self.robot not in ROBOTS:
            raise ConfigError("robot", f"unknown robot {self.robot!r}; expected one of {', '.join(ROBOTS)}")
        unknown = [k for k in self.world_kinds if k not in WORLD_KINDS]
        if unknown or not self.world_kinds:
            raise ConfigError("world_kind", f"unknown world kind {', '.join(unknown) or '(none)'}; expected some "
                                            f"of {', '.join(WORLD_KINDS)}")
        if self.critic_label not in CRITIC_LABELS:
            raise ConfigError("critic_label", f"{{field}} {self.critic_label!r}: expected one of "
                                              f"{', '.join(CRITIC_LABELS)}")
        if self.shard_size < 1 or self.episodes_per_world < 1:
            raise ConfigError("shard_size", "{field} and episodes_per_world must be positive")
        if self.seed < 0:
            raise ConfigError("seed", f"{{field}} must be non-negative, got {self.seed}")
        self.camera_spec.validate()
        return self

    @property
    def camera_spec(self) -> CameraSpec:
        """The camera of `camera` (WxH), `hfov_deg` and `mount_height`."""
        width, height = parse_camera(self.camera)
        return CameraSpec(width, height, self.hfov_deg, self.mount_height)

    @property
    def shards(self) -> Shards:
        """Items in shards of `shard_size` (the units of its job)."""
        return Shards(self.n, self.seed, self.shard_size)

    def world_of(self, episode: int) -> tuple[str, int]:
        """(kind, seed) of episode `episode`'s world."""
        w = episode // self.episodes_per_world
        return self.world_kinds[w % len(self.world_kinds)], training_world_seed(self.seed, w)

    def episode_rng(self, episode: int) -> PortableRandom:
        """The generator of episode `episode`'s rollout (a pure function of seed and episode)."""
        return PortableRandom(np.random.SeedSequence([int(self.seed), int(episode), 1]))


@dataclass
class NavUnitReport:
    """What one shard did: episodes done, attempts, trajectories and frames written, failures by reason."""

    shard: int
    episodes: int = 0
    attempts: int = 0
    trajectories: int = 0
    frames: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0  # this run only
    resumed: bool = False

    def stored(self) -> dict:
        """The fields the unit record keeps (not the timing of this run)."""
        return {"shard": self.shard, "episodes": self.episodes, "attempts": self.attempts,
                "trajectories": self.trajectories,
                "frames": self.frames, "failures": dict(sorted(self.failures.items()))}


@dataclass(frozen=True)
class NavDatagenJob:
    """`diffplan datagen nav` as a sharded job (`diffplan.jobs.run_job` runs it): unit s rolls out the episodes
    of shard s and writes the store shard, then its unit record. `finish` writes the dataset's index."""

    config: NavDatagenConfig
    command: ClassVar[str] = "diffplan datagen nav"

    def __post_init__(self):
        self.config.validate()

    def job_record(self) -> dict[str, object]:
        """The config, world kinds as a list."""
        return {**asdict(self.config), "world_kinds": list(self.config.world_kinds)}

    def job_defaults(self) -> dict[str, object]:
        """Empty: every field is in every job file."""
        return {}

    @property
    def num_units(self) -> int:
        """Number of shards."""
        return self.config.shards.num_units

    def finished(self, root: Path) -> tuple[dict[int, NavUnitReport], dict[int, str]]:
        """Shards an earlier run committed (from their unit records); none is reported damaged."""
        records = read_unit_records(root, UNIT_DIR, sorted(s for s in completed_shards(root) if s < self.num_units))
        done = {shard: NavUnitReport(shard, data["episodes"], data["attempts"], data["trajectories"],
                                     data["frames"], data["failures"], resumed=True)
                for shard, data in records.items()}
        return done, {}

    def run_unit(self, root: Path, unit: int, on_item: Callable[[NavUnitReport], None]) -> NavUnitReport:
        """Generate, roll out and write shard `unit`, then its unit record. Safe to run in any process."""
        os.environ.setdefault("MUJOCO_GL", "egl")
        from datagen.nav_expert import record_demo
        from scenes.nav.episodes import sample_episode
        from scenes.nav.mujoco_world import MujocoNavWorld

        config = self.config
        robot, camera = ROBOTS[config.robot], config.camera_spec
        report, demos, kinds = NavUnitReport(unit), [], []
        start = time.perf_counter()
        world, world_key = None, None
        try:
            for index in config.shards.indices(unit):
                kind, seed = config.world_of(index)
                if world_key != (kind, seed):
                    if world is not None:
                        world.close()
                    world, world_key = MujocoNavWorld(generate_world(kind, seed)), (kind, seed)
                rng = config.episode_rng(index)
                before = report.trajectories
                for _ in range(MAX_ATTEMPTS):
                    report.attempts += 1
                    # `world` is set above on the first index
                    episode = sample_episode(world, robot, rng,  # type: ignore[arg-type]
                                             f"{config.seed}-{index:07d}")
                    demo = ("no_episode" if episode is None
                            else record_demo(world, episode, robot, camera, rng,  # type: ignore[arg-type]
                                             config.critic_label))
                    if isinstance(demo, str):
                        report.failures[demo] = report.failures.get(demo, 0) + 1
                        continue
                    demos.append(demo)
                    kinds.append(kind)
                    report.trajectories += 1
                    report.frames += demo.num_frames
                    break
                else:
                    report.failures["gave_up"] = report.failures.get("gave_up", 0) + 1
                report.episodes += 1
                on_item(NavUnitReport(unit, 1, trajectories=report.trajectories - before,
                                      frames=demos[-1].num_frames if report.trajectories > before else 0))
        finally:
            if world is not None:
                world.close()
        write_nav_shard(Path(root), unit, demos, camera, kinds)
        report.seconds = time.perf_counter() - start
        write_unit_record(Path(root), UNIT_DIR, unit, report.stored())
        return report

    def amount(self, report: NavUnitReport) -> int:
        """Episodes done."""
        return report.episodes

    def finish(self, root: Path, run) -> NavJobSummary:
        """Write the dataset's index; `run` is the runner's JobRun (reports of every unit, the new ones)."""
        robot = ROBOTS[self.config.robot]
        info = finalize_nav_dataset(Path(root), self.job_record(), self.config.shards.num_units, self.config.camera_spec,
                                    {**asdict(robot), "kind": robot.kind.value, "radius": robot.radius})
        return NavJobSummary(info, list(run.reports.values()), run.new_units)


@dataclass
class NavJobSummary:
    """The dataset's info.json, every shard's report, and the shards this run rolled out."""

    info: dict
    reports: list[NavUnitReport]
    new_units: set[int]

    @property
    def trajectories(self) -> int:
        """Trajectories in the dataset."""
        return int(self.info["num_episodes"])

    @property
    def frames(self) -> int:
        """Frames in the dataset."""
        return int(self.info["num_frames"])

    @property
    def attempts(self) -> int:
        """Episode attempts over every shard."""
        return sum(r.attempts for r in self.reports)

    @property
    def failures(self) -> dict[str, int]:
        """Failures by reason over every shard."""
        return total_failures(self.reports)

    @property
    def new_trajectories(self) -> int:
        """Trajectories rolled out by this run."""
        return sum(r.trajectories for r in self.reports if r.shard in self.new_units)
