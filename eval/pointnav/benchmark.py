"""The `pointnav-synth` benchmark: fixed held-out PointNav episodes in synthetic cluttered worlds and rooms.

Generated on first use with the world generator and Habitat-rule episode sampler (scenes.nav.generator,
scenes.nav.episodes), from world seeds no training set uses (HELD_OUT_SEED and up), and cached as a PointNav-v1
file at $DIFFPLAN_CACHE (default ~/.cache/diffplan)/pointnav/pointnav-synth-v2-<robot>.json.gz.

Every world and every episode (as the file gives it back) is checked against the manifest shipped in
eval/pointnav/manifests/pointnav-synth-<robot>.json while it is built, and the episodes again whenever the
cached file is read: a machine or checkout that builds another benchmark stops at the first differing item.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from eval.pointnav.episodes import episode_from_habitat, episode_to_habitat, read_episodes, write_episodes
from scenes.digest import combined_digest, content_digest
from scenes.errors import ConfigError
from scenes.manifest import BenchmarkIdentity, BenchmarkManifest, ManifestError, load_manifest
from scenes.nav import NAV_GENERATOR_VERSION, ROBOTS, NavEpisode
from scenes.portable import PortableRandom

BENCHMARK_VERSION = "v2"  # v2: synthetic-nav/2 worlds (portable float math)
HELD_OUT_SEED = 900_000  # world seeds from here on are reserved for evaluation
WORLDS_PER_KIND = 10
EPISODES_PER_WORLD = 10
KINDS = ("cluttered", "rooms")
BENCHMARKS = ("pointnav-synth",)
MANIFEST_DIR = Path(__file__).resolve().parent / "manifests"
WORLD_ITEM = "world:"  # manifest item ids of worlds start with this; episodes use their episode ids


def cache_dir() -> Path:
    """Where built benchmarks are cached: $DIFFPLAN_CACHE/pointnav, default ~/.cache/diffplan/pointnav."""
    return Path(os.environ.get("DIFFPLAN_CACHE", Path.home() / ".cache" / "diffplan")) / "pointnav"


def benchmark_path(name: str, robot: str) -> Path:
    """The cached episodes file of benchmark `name` for `robot`."""
    return cache_dir() / f"{name}-{BENCHMARK_VERSION}-{robot}.json.gz"


def manifest_name(name: str, robot: str) -> str:
    """The manifest name of benchmark `name` for `robot`."""
    return f"{name}-{robot}"


def as_read_back(episode: NavEpisode) -> NavEpisode:
    """The episode as a PointNav-v1 file gives it back (the yaw goes through a quaternion)."""
    return episode_from_habitat(episode_to_habitat(episode))


def _synth_items(robot_name: str, manifest: BenchmarkManifest | None, on_world: Callable[[int], None]
                 ) -> tuple[list[NavEpisode], list[str], list[str]]:
    """Episodes, and the ids and digests of every world and episode (as a file gives it back) in build order,
    each checked against `manifest` when given."""
    from scenes.nav.episodes import sample_episode
    from scenes.nav.generator import generate_world
    from scenes.nav.mujoco_world import MujocoNavWorld

    robot = ROBOTS[robot_name]
    episodes: list[NavEpisode]
    ids: list[str]
    digests: list[str]
    episodes, ids, digests = [], [], []

    def add(item_id: str, digest: str) -> None:
        if manifest is not None:
            manifest.check(len(ids), item_id, digest)
        ids.append(item_id)
        digests.append(digest)

    for kind_index, kind in enumerate(KINDS):
        for k in range(WORLDS_PER_KIND):
            seed = HELD_OUT_SEED + k
            nav_world = generate_world(kind, seed)
            add(WORLD_ITEM + nav_world.world_id, content_digest(nav_world))
            world = MujocoNavWorld(nav_world)
            rng = PortableRandom([seed, kind_index, 2024])
            made, tries = 0, 0
            while made < EPISODES_PER_WORLD and tries < 20 * EPISODES_PER_WORLD:
                tries += 1
                episode = sample_episode(world, robot, rng, f"{kind}-{seed}-{made:02d}")
                if episode is not None:
                    add(episode.episode_id, content_digest(as_read_back(episode)))
                    episodes.append(episode)
                    made += 1
            on_world(1)
    return episodes, ids, digests


def generate_synth_episodes(robot_name: str, on_world: Callable[[int], None] = lambda n: None,
                            manifest: BenchmarkManifest | None = None) -> list[NavEpisode]:
    """WORLDS_PER_KIND x len(KINDS) worlds x EPISODES_PER_WORLD episodes (200), a pure function of the robot."""
    return _synth_items(robot_name, manifest, on_world)[0]


def build_manifest(name: str, robot_name: str) -> BenchmarkManifest:
    """The manifest of `name` for one robot as this checkout builds it (to ship when its version is bumped)."""
    _, ids, digests = _synth_items(robot_name, None, lambda n: None)
    return BenchmarkManifest(manifest_name(name, robot_name), BENCHMARK_VERSION.lstrip("v"), NAV_GENERATOR_VERSION,
                             tuple(ids), tuple(digests))


def shipped_manifest(name: str, robot: str) -> BenchmarkManifest:
    """The manifest of benchmark `name` for `robot` that this checkout ships."""
    return load_manifest(manifest_name(name, robot), NAV_GENERATOR_VERSION, MANIFEST_DIR)


def load_benchmark(name: str, robot: str, on_world: Callable[[int], None] = lambda n: None) -> list[NavEpisode]:
    """The benchmark's episodes, generated (and checked) on first use, then read from the cache and checked."""
    if name not in BENCHMARKS:
        raise ConfigError("episodes", f"unknown benchmark {name!r}; expected a PointNav-v1 .json.gz or one of "
                                      f"{', '.join(BENCHMARKS)}")
    if robot not in ROBOTS:
        raise ConfigError("robot", f"unknown robot {robot!r}; expected one of {', '.join(ROBOTS)}")
    manifest = shipped_manifest(name, robot)
    path = benchmark_path(name, robot)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_episodes(path, generate_synth_episodes(robot, on_world, manifest))
    episodes = read_episodes(path)
    expected = [(i, d) for i, d in zip(manifest.item_ids, manifest.digests, strict=True)
                if not i.startswith(WORLD_ITEM)]
    if len(episodes) != len(expected):
        raise ManifestError(f"{path}: {len(episodes)} episodes, but {manifest.name} has {len(expected)}; "
                            "delete the file to build it again")
    for episode, (item_id, digest) in zip(episodes, expected, strict=True):
        if episode.episode_id != item_id or content_digest(episode) != digest:
            raise ManifestError(f"{path}: episode {episode.episode_id} differs from the {manifest.name} manifest "
                                "(edited or from another version?); delete the file to build it again")
    return episodes


def select_episodes(count: int, limit: int | None, spread: bool) -> list[int]:
    """Indices of the episodes to evaluate: all, the first `limit`, or `limit` spread evenly over the set
    (pointnav-synth lists cluttered worlds, then rooms: a spread subset has both)."""
    if limit is None or limit >= count:
        return list(range(count))
    if not spread:
        return list(range(limit))
    return [k * count // limit for k in range(limit)]


def episodes_identity(benchmark: str | None, robot: str, episodes: list[NavEpisode], selected: list[int],
                      spread: bool = False) -> BenchmarkIdentity:
    """What evaluating `episodes[selected]` runs on: a benchmark (its version and set hash) or a plain file."""
    evaluated = combined_digest(content_digest(episodes[i]) for i in selected)
    spread = spread and len(selected) < len(episodes)
    if benchmark is None:
        return BenchmarkIdentity(None, "", "", evaluated, len(selected), len(episodes), spread)
    manifest = shipped_manifest(benchmark, robot)
    return BenchmarkIdentity(manifest.name, manifest.version, manifest.set_hash, evaluated, len(selected),
                             len(episodes), spread)
