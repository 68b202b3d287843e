"""The `datagen nav` job: procedural worlds -> PointNav episodes -> privileged expert roll-outs with depth,
written as a nav dataset (`scenes.store.nav`), resumable, on local processes or Ray.

Work unit = shard s: episodes i in [s * shard_size, ...). Episode i lives in world i // episodes_per_world,
whose kind cycles through the configured kinds and whose seed is `training_world_seed(seed, world)` (below
the seeds held out for evaluation);
its start/goal draws, roll-out and negatives use one rng seeded by SeedSequence([seed, i, 1]), retried up
to MAX_ATTEMPTS times. So the bytes depend only on the config: 1 worker, W workers or Ray write identical
datasets (depth comes from the same renderer on the same machine). Per shard, meta/datagen/unit-NNNNN.json
(written after the store shard) holds its counts and marks it done; a killed job loses at most the shards it
was writing. Workers are spawned, not forked (each owns its GL context).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from datagen.critic import CRITIC_LABELS
from datagen.job import JOB_FILE, UNIT_DIR, total_failures
from scenes.errors import ConfigError
from scenes.jobfile import open_job_dir
from scenes.nav.generator import NAV_GENERATOR_VERSION, WORLD_KINDS, generate_world, training_world_seed
from scenes.nav.types import ROBOTS, CameraSpec
from scenes.portable import PortableRandom
from scenes.store.layout import atomic_write_bytes, completed_shards
from scenes.store.nav import finalize_nav_dataset, write_nav_shard

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
        width, height = parse_camera(self.camera)
        return CameraSpec(width, height, self.hfov_deg, self.mount_height)

    @property
    def num_shards(self) -> int:
        return -(-self.n // self.shard_size)

    def shard_indices(self, shard: int) -> range:
        return range(shard * self.shard_size, min(self.n, (shard + 1) * self.shard_size))

    def world_of(self, episode: int) -> tuple[str, int]:
        """(kind, seed) of episode `episode`'s world."""
        w = episode // self.episodes_per_world
        return self.world_kinds[w % len(self.world_kinds)], training_world_seed(self.seed, w)

    def episode_rng(self, episode: int) -> PortableRandom:
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
        return {"shard": self.shard, "episodes": self.episodes, "attempts": self.attempts,
                "trajectories": self.trajectories,
                "frames": self.frames, "failures": dict(sorted(self.failures.items()))}


def run_nav_unit(root: str, config: NavDatagenConfig, shard: int,
                 on_episode: Callable[[NavUnitReport], None] | None = None) -> NavUnitReport:
    """Generate, roll out and write shard `shard`, then its unit file. Safe to run in any process."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    from datagen.nav_expert import record_demo
    from scenes.nav.episodes import sample_episode
    from scenes.nav.mujoco_world import MujocoNavWorld

    robot, camera = ROBOTS[config.robot], config.camera_spec
    report, demos, kinds = NavUnitReport(shard), [], []
    start = time.perf_counter()
    world, world_key = None, None
    try:
        for index in config.shard_indices(shard):
            kind, seed = config.world_of(index)
            if world_key != (kind, seed):
                if world is not None:
                    world.close()
                world, world_key = MujocoNavWorld(generate_world(kind, seed)), (kind, seed)
            rng = config.episode_rng(index)
            before = report.trajectories
            for _ in range(MAX_ATTEMPTS):
                report.attempts += 1
                episode = sample_episode(world, robot, rng, f"{config.seed}-{index:07d}")
                demo = ("no_episode" if episode is None
                        else record_demo(world, episode, robot, camera, rng, config.critic_label))
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
            if on_episode is not None:
                on_episode(NavUnitReport(shard, 1, trajectories=report.trajectories - before,
                                       frames=demos[-1].num_frames if report.trajectories > before else 0))
    finally:
        if world is not None:
            world.close()
    write_nav_shard(Path(root), shard, demos, camera, kinds)
    report.seconds = time.perf_counter() - start
    path = Path(root) / UNIT_DIR / f"unit-{shard:05d}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (json.dumps(report.stored(), indent=2, sort_keys=True) + "\n").encode())
    return report


def _remove_leftovers(root: Path) -> None:
    """Temp files of writes a killed run left behind (never data)."""
    for folder in (root / "shards", root / "privileged", root / "meta", root / UNIT_DIR, root):
        if folder.is_dir():
            for name in os.listdir(folder):
                if ".tmp-" in name:
                    (folder / name).unlink(missing_ok=True)


def done_units(root: Path, config: NavDatagenConfig) -> dict[int, NavUnitReport]:
    """Shards finished by earlier runs (store shard complete and unit file present), with their counts."""
    out = {}
    for shard in completed_shards(root):
        path = root / UNIT_DIR / f"unit-{shard:05d}.json"
        if shard < config.num_shards and path.is_file():
            try:
                data = json.loads(path.read_text())
            except json.JSONDecodeError:
                continue  # redo it
            out[shard] = NavUnitReport(shard, data["episodes"], data["attempts"], data["trajectories"],
                                       data["frames"], data["failures"], resumed=True)
    return out


@dataclass
class NavJobSummary:
    info: dict
    reports: list[NavUnitReport]
    seconds: float  # wall time of this run

    @property
    def trajectories(self) -> int:
        return int(self.info["num_episodes"])

    @property
    def frames(self) -> int:
        return int(self.info["num_frames"])

    @property
    def attempts(self) -> int:
        return sum(r.attempts for r in self.reports)

    @property
    def failures(self) -> dict[str, int]:
        return total_failures(self.reports)

    @property
    def new_trajectories(self) -> int:
        return sum(r.trajectories for r in self.reports if not r.resumed)


def run_nav_datagen(root: Path, config: NavDatagenConfig, workers: int = 1, ray_address: str | None = None,
                    resume: bool = False, on_progress: Callable[[NavUnitReport], None] = lambda r: None
                    ) -> NavJobSummary:
    """Run the job; `on_progress(report)` gets partial reports (trajectories, frames) as work finishes."""
    config.validate()
    if workers < 1:
        raise ConfigError("workers", f"{{field}} must be positive, got {workers}")
    root = Path(root)
    job = {**asdict(config), "world_kinds": list(config.world_kinds)}
    if open_job_dir(root, JOB_FILE, job, "diffplan datagen nav", resume):
        _remove_leftovers(root)
    start = time.perf_counter()
    reports = done_units(root, config)
    for report in reports.values():
        on_progress(report)
    todo = [s for s in range(config.num_shards) if s not in reports]
    if ray_address:
        from scenes.ray_tasks import run_tasks

        for _, report in run_tasks(run_nav_unit, [(str(root), config, s) for s in todo], ray_address):
            reports[report.shard] = report
            on_progress(report)
    elif workers == 1:
        for shard in todo:
            report = run_nav_unit(str(root), config, shard, on_progress)
            reports[shard] = report
            on_progress(NavUnitReport(shard, failures=report.failures))
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [pool.submit(run_nav_unit, str(root), config, shard) for shard in todo]
            for future in as_completed(futures):
                report = future.result()
                reports[report.shard] = report
                on_progress(report)
    robot = ROBOTS[config.robot]
    info = finalize_nav_dataset(root, job, config.num_shards, config.camera_spec,
                                {**asdict(robot), "kind": robot.kind.value, "radius": robot.radius})
    return NavJobSummary(info, [reports[s] for s in sorted(reports)], time.perf_counter() - start)

