"""Recorded plans of the shipped checkpoints and the rule-based planners on fixed observations.

`python -m tests.planners.golden > tests/planners/golden_plans.json` records them (torch 2.13 CPU, x86-64, 2
threads). Each plan holds its poses (T, 3), candidates and scores as float values. They are compared to
GOLDEN_ATOL, not bit for bit: float32 networks and BLAS sums round differently on another CPU (AVX2 or
AVX-512) in the 7th digit, while a change of a planner moves a plan by far more.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from tests.planners.observations import digest, drive_observations, drive_scenes, nav_cases, nav_observations

ROOT = Path(__file__).resolve().parents[2]
CHECKPOINTS = {name: ROOT / "checkpoints" / f"{name}.safetensors"
               for name in ("diffusiondrive-synth", "ego-mlp-synth", "navdp-synth", "pstl-synth")}


GOLDEN_ATOL = 1e-5  # [m, rad, score] largest difference from the recorded values


def values(array: np.ndarray | None) -> list | None:
    """An array as nested lists of Python floats (None stays None)."""
    return None if array is None else np.asarray(array, dtype=np.float64).tolist()


def record(plan: Any) -> dict[str, Any]:
    """The plan's poses, candidates and scores as float values."""
    return {"poses": values(plan.trajectory.poses), "candidates": values(plan.candidates),
            "scores": values(plan.scores)}


def drive_oracle_plan(planner: Any, scene: Any) -> Any:
    from planners import DrivePrivileged

    return planner.plan_privileged(scene.observation(), DrivePrivileged(scene))


def nav_oracle_plan(planner: Any, case: Any) -> Any:
    from planners.nav_base import NavPrivileged

    context = NavPrivileged(case.world, case.pose.copy(), case.goal.copy(), case.robot)
    return planner.plan_privileged(case.observation, context)


def observation_digests() -> dict[str, str]:
    """What the plans are made from: a plan mismatch with a mismatch here is a change of the observations."""
    from scenes.digest import content_digest

    out = {f"drive{k}": content_digest(scene)[:16] for k, scene in enumerate(drive_scenes()[:2])}
    for k, case in enumerate(nav_cases()):
        out[f"nav{k}"] = digest(case.observation.depth)[:16] + " " + digest(case.observation.goal)[:16]
    return out


def golden_plans() -> dict[str, list[dict[str, Any]]]:
    """{case: [record of each plan]}; learned planners use seed 0, reset before every single plan."""
    import planners

    drive, nav = drive_observations(2), nav_observations(2)
    out: dict[str, list[dict[str, Any]]] = {}
    for name in ("constant-velocity", "pdm-closed"):
        planner = planners.load(name)
        out[name] = [record(planner.plan(obs)) for obs in drive]
    human = planners.load("human")
    out["human"] = [record(drive_oracle_plan(human, scene)) for scene in drive_scenes()[:2]]
    for name, path in CHECKPOINTS.items():
        planner = planners.load(path)
        planner.seed = 0
        observations = nav if name.startswith("navdp") else drive
        singles = []
        for obs in observations:
            planner.reset()
            singles.append(record(planner.plan(obs)))
        out[name] = singles
        planner.reset()
        out[f"{name} batch"] = [record(plan) for plan in planner.plan_batch(observations)]
    for name in ("go-to-goal", "dwa"):
        planner = planners.load(name)
        planner.reset()
        out[name] = [record(planner.plan(nav[0]))]
    expert = planners.load("expert")
    expert.reset()
    out["expert"] = [record(nav_oracle_plan(expert, nav_cases()[0]))]
    return out


if __name__ == "__main__":
    print(json.dumps({"observations": observation_digests(), "plans": golden_plans()}, indent=1))
