"""The planner interface: a small abstract base, as in NAVSIM and nuPlan.

A planner sees only a `DriveObservation` (ego frame, history only). Oracle planners that need the
privileged scene set `requires_scene = True` and implement `plan_from_scene`; reports flag them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from scenes import (
    CURRENT_INDEX,
    NUM_PLAN_POSES,
    PLAN_DT,
    DriveObservation,
    DriveScene,
    Frame,
    Trajectory,
    ValidationError,
)


@dataclass(frozen=True, eq=False)
class Plan:
    """A planner's answer.

    Attributes:
        trajectory: the executed plan; for driving 8 poses at 0.5 s in the ego frame.
        candidates: (K, T, 3) every proposal the planner considered, ego frame, or None.
        scores: (K,) the planner's score of each candidate (higher is better), or None.
        info: scalar diagnostics, e.g. {"latency_ms": 3.1}.
    """

    trajectory: Trajectory
    candidates: np.ndarray | None = None
    scores: np.ndarray | None = None
    info: dict[str, float] = field(default_factory=dict)

    def validate(self, num_poses: int = NUM_PLAN_POSES, dt: float = PLAN_DT) -> Plan:
        """Check the plan is a finite (num_poses, 3) ego-frame trajectory at `dt` [s]."""
        self.trajectory.validate()
        if self.trajectory.frame is not Frame.EGO:
            raise ValidationError("Plan.trajectory.frame: plans must be in the ego frame")
        if self.trajectory.poses.shape != (num_poses, 3):
            raise ValidationError(f"Plan.trajectory.poses: shape {self.trajectory.poses.shape} is not "
                                  f"({num_poses}, 3)")
        if abs(self.trajectory.dt - dt) > 1e-9:
            raise ValidationError(f"Plan.trajectory.dt: {self.trajectory.dt} s, expected {dt} s")
        return self


class Planner(ABC):
    """Maps an observation to a plan. Subclasses set `name` and implement `plan`."""

    name: ClassVar[str]
    requires_scene: ClassVar[bool] = False  # True for privileged oracles (e.g. the human log)

    def reset(self) -> None:
        """Forget any state kept between calls; called at the start of every scene."""

    @abstractmethod
    def plan(self, observation: DriveObservation) -> Plan:
        """Plan from what a planner may see."""

    def plan_batch(self, observations: Sequence[DriveObservation]) -> list[Plan]:
        """Plan for many observations; learned planners override this to batch."""
        return [self.plan(observation) for observation in observations]

    def plan_from_scene(self, scene: DriveScene, at: int = CURRENT_INDEX) -> Plan:
        """Plan at step `at` of a scene (default: now). Oracles read the privileged scene; others get only
        `scene.observation(at)`."""
        if self.requires_scene:
            raise NotImplementedError(f"{type(self).__name__} requires the scene but does not use it")
        return self.plan(scene.observation(at))
