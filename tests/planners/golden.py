"""Recorded plans of the shipped checkpoints and the rule-based planners on fixed observations.

`python -m tests.planners.golden > tests/planners/golden_plans.json` records them; golden_plans.json was
recorded so with the planner interface from before the one-contract rework (torch 2.13 CPU, x86-64, 2
threads). Each plan is a sha256 of its poses' bytes (float64, (T, 3)) and its last pose's exact values, plus
digests of its candidates and scores where it has them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.planners.observations import digest, drive_observations, drive_scenes, nav_cases, nav_observations

ROOT = Path(__file__).resolve().parents[2]
CHECKPOINTS = {name: ROOT / "checkpoints" / f"{name}.safetensors"
               for name in ("diffusiondrive-synth", "ego-mlp-synth", "navdp-synth")}


def record(plan: Any, score_values: bool = False) -> dict[str, Any]:
    """Digests of the plan's poses, candidates and scores, its last pose and, with `score_values`, its scores
    (PDM-Closed's sums round differently with the number of BLAS threads: compared to 1e-12)."""
    poses = plan.trajectory.poses
    out = {"poses": digest(poses), "last": [float(v) for v in poses[-1]],
           "candidates": None if plan.candidates is None else digest(plan.candidates),
           "scores": None if plan.scores is None else digest(plan.scores)}
    if score_values:
        out["score_values"] = [float(v) for v in plan.scores]
    return out


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
        out[name] = [record(planner.plan(obs), score_values=name == "pdm-closed") for obs in drive]
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
