"""Content digests of one scene of every scenario type, one world of every kind and a few PointNav episodes.

`python -m tests.fingerprints` prints them as one JSON object; tests/scenes/test_portability.py runs it in
subprocesses under other BLAS kernels, numpy CPU features and thread counts, and compares with FINGERPRINTS.
"""

from __future__ import annotations

import json

from scenes.digest import content_digest

SCENE_SEED = 1_000_000_007  # val split; scenario k uses SCENE_SEED + k
WORLD_SEED = 900_000


def compute() -> dict[str, str]:
    """{name: first 16 hex digits of the content digest}."""
    from scenes.nav import ROBOTS
    from scenes.nav.episodes import sample_episode
    from scenes.nav.generator import WORLD_KINDS, generate_world
    from scenes.nav.mujoco_world import MujocoNavWorld
    from scenes.portable import PortableRandom
    from scenes.synthetic import SYNTHETIC_SCENARIOS, generate_scene

    out = {}
    for k, scenario in enumerate(SYNTHETIC_SCENARIOS):
        out[scenario.name] = content_digest(generate_scene(SCENE_SEED + k, "val", scenario))[:16]
    for kind in WORLD_KINDS:
        world = generate_world(kind, WORLD_SEED)
        out[f"world:{kind}"] = content_digest(world)[:16]
        for name, robot in sorted(ROBOTS.items()):
            rng = PortableRandom([WORLD_SEED, 3])
            episodes = [sample_episode(MujocoNavWorld(world), robot, rng, str(i)) for i in range(2)]
            out[f"episodes:{kind}:{name}"] = content_digest(episodes)[:16]
    return out


if __name__ == "__main__":
    print(json.dumps(compute(), sort_keys=True))
