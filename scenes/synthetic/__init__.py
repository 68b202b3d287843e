"""Seeded procedural NAVSIM-style driving scenes: roads, intersections, merges, IDM traffic, pedestrians.

`generate_scene(seed, split)` is a pure function of its arguments: same inputs, bit-identical scene.
"""

from __future__ import annotations

import numpy as np

from scenes.drive import NUM_FUTURE_STEPS, NUM_HISTORY_STEPS, DriveLog, DriveScene, ScenarioType

GENERATOR_VERSION: str = "synthetic-drive/3"  # 3: portable float math (scenes.portable)

SPLIT_SEED_RANGES: dict[str, tuple[int, int]] = {
    "train": (0, 1_000_000_000),
    "val": (1_000_000_000, 1_100_000_000),
    "test": (1_100_000_000, 1_200_000_000),
}

SYNTHETIC_SCENARIOS: tuple[ScenarioType, ...] = tuple(s for s in ScenarioType if s is not ScenarioType.LOG)


def _check_split(split: str) -> tuple[int, int]:
    if split not in SPLIT_SEED_RANGES:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLIT_SEED_RANGES)}")
    return SPLIT_SEED_RANGES[split]


def scene_seed(split: str, dataset_seed: int, index: int) -> int:
    """Seed of scene `index` of a dataset: start of the split's range + dataset_seed + index."""
    start, stop = _check_split(split)
    seed = start + int(dataset_seed) + int(index)
    if not start <= seed < stop:
        raise ValueError(f"seed {seed} (dataset_seed={dataset_seed}, index={index}) is outside the {split!r} "
                         f"seed range [{start}, {stop})")
    return seed


def scenario_for_seed(seed: int) -> ScenarioType:
    """The scenario a seed picks when none is asked for (uniform over SYNTHETIC_SCENARIOS)."""
    return SYNTHETIC_SCENARIOS[int(np.random.default_rng([seed, 1]).integers(len(SYNTHETIC_SCENARIOS)))]


LONG_ROAD_EXTENSION = 200.0  # [m] longer roads for long logs: a 15 s drive at the fastest speed limit fits


def generate_log(seed: int, split: str, scenario: ScenarioType | None, future_steps: int) -> DriveLog:
    """A validated DriveLog for `seed`: the scene's layout type and traffic simulated `future_steps` SIM_DT
    steps after now, on roads LONG_ROAD_EXTENSION longer, with the ego's rear axle (not its centre) on its lane
    path, so that the log is a kinematic bicycle's (not the same scene as `generate_scene`'s)."""
    from scenes.synthetic.generator import generate_log as simulate_log

    _check_split(split)
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    if future_steps < NUM_FUTURE_STEPS:
        raise ValueError(f"a log needs at least {NUM_FUTURE_STEPS} future steps, got {future_steps}")
    scenario = scenario_for_seed(seed) if scenario is None else ScenarioType(scenario)
    if scenario is ScenarioType.LOG:
        raise ValueError("ScenarioType.LOG scenes come from logs, not from the synthetic generator")
    num_steps = NUM_HISTORY_STEPS + 1 + future_steps
    return simulate_log(int(seed), split, scenario, GENERATOR_VERSION, num_steps, LONG_ROAD_EXTENSION,
                        rear_on_path=True).validate()


def generate_scene(seed: int, split: str, scenario: ScenarioType | None = None) -> DriveScene:
    """A validated DriveScene for `seed`; `scenario` None picks one from the seed."""
    from scenes.synthetic.generator import generate

    _check_split(split)
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    scenario = scenario_for_seed(seed) if scenario is None else ScenarioType(scenario)
    if scenario is ScenarioType.LOG:
        raise ValueError("ScenarioType.LOG scenes come from logs, not from the synthetic generator")
    return generate(int(seed), split, scenario, GENERATOR_VERSION).validate()


__all__ = [
    "GENERATOR_VERSION",
    "LONG_ROAD_EXTENSION",
    "SPLIT_SEED_RANGES",
    "SYNTHETIC_SCENARIOS",
    "generate_log",
    "generate_scene",
    "scenario_for_seed",
    "scene_seed",
]
