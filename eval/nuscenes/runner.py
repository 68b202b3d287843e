"""Open-loop nuScenes planning evaluation of a planner on a dataset: one plan per scene, scored under each
named metric definition (`PRESETS`).

Our plans are 8 poses at 0.5 s (4 s); the nuScenes metrics read the first 6 (3 s). A planner that raises or
returns a non-finite plan is listed and left out: the published definitions have no rule for a missing plan.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import planners
from eval.nuscenes.metrics import PRESETS, PlanningBatch, PlanningMetrics, evaluate, planning_sample
from eval.runner import plan_at
from scenes.drive import CURRENT_INDEX
from scenes.errors import DiffplanError
from scenes.store import DriveDataset

PLAN_NOTE = "plans are 8 poses at 0.5 s; the nuScenes metrics use the first 6 (3 s)"


class NoPlansError(DiffplanError, ValueError):
    """The planner produced no usable plan on any scene."""


@dataclass(frozen=True)
class PlannerFailure:
    """A scene the planner produced no usable plan for: its index, id and the error's first line."""

    index: int
    scene_id: str
    error: str


@dataclass(frozen=True)
class OpenLoopRun:
    """The plans of one planner as a PlanningBatch (the scenes it planned), and the scenes it failed on."""

    batch: PlanningBatch
    failures: tuple[PlannerFailure, ...]

    def metrics(self, preset: str) -> PlanningMetrics:
        """The metrics under definition `preset` (a key of PRESETS)."""
        return evaluate(self.batch, PRESETS[preset])


def plan_scenes(dataset: str, planner: planners.Planner, indices: Sequence[int], seed: int = 0,
                on_scene: Callable[[], None] = lambda: None, name: str = "the planner") -> OpenLoopRun:
    """Plan every scene of `indices` once with `planner` (`name` in messages), at the current step (oracles
    from the privileged context)."""
    data = DriveDataset.open(dataset)
    planner.seed = seed
    rows, failures = [], []
    for index in indices:
        scene = data[index]
        planner.reset()
        try:
            plan = plan_at(planner, scene, CURRENT_INDEX)
            plan.validate(planner.plan_spec)
        except Exception as error:  # noqa: BLE001 - a planner failure is listed, not fatal
            failures.append(PlannerFailure(index, scene.metadata.scene_id,
                                           f"{type(error).__name__}: {error}".splitlines()[0]))
        else:
            rows.append(planning_sample(scene, plan.trajectory.poses[:, :2]))
        on_scene()
    if not rows:
        raise NoPlansError(f"{name} planned none of the {len(indices)} scenes")
    return OpenLoopRun(PlanningBatch.concatenate(rows), tuple(failures))
