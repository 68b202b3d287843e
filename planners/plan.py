"""What planners answer: a `Plan` that states, in its `PlanSpec`, its horizon (poses, interval) and frame."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

from scenes import Frame, Trajectory, ValidationError


class PlanFrame(enum.Enum):
    """The body frame at planning time (x forward, y left [m], heading [rad] from x); stored as Frame.EGO."""

    EGO = "ego"  # a vehicle's rear axle
    ROBOT = "robot"  # a robot's base centre on the floor


@dataclass(frozen=True)
class PlanSpec:
    """What a domain's plans are: `num_poses` poses `dt` [s] apart (the first at now + dt) in `frame`."""

    num_poses: int
    dt: float
    frame: PlanFrame

    @property
    def horizon_s(self) -> float:
        """Time [s] the poses span."""
        return self.num_poses * self.dt


@dataclass(frozen=True, eq=False)
class Plan:
    """A planner's answer; `spec` states its horizon and frame.

    Attributes:
        trajectory: the executed plan, (spec.num_poses, 3) poses spec.dt apart in the body frame (Frame.EGO).
        candidates: (K, T, 3) every proposal the planner considered, same frame, or None.
        scores: (K,) the planner's score of each candidate (higher is better), or None.
        info: scalar diagnostics, e.g. {"latency_ms": 3.1}.
        spec: the horizon and frame the plan is for (keyword only).
    """

    trajectory: Trajectory
    candidates: np.ndarray | None = None
    scores: np.ndarray | None = None
    info: dict[str, float] = field(default_factory=dict)
    spec: PlanSpec = field(kw_only=True)

    def validate(self, expected: PlanSpec | None = None) -> Plan:
        """Check the trajectory is finite and meets `expected` (a planner's plan_spec; default: self.spec)."""
        expected = self.spec if expected is None else expected
        self.trajectory.validate()
        if self.trajectory.frame is not Frame.EGO:
            raise ValidationError("Plan.trajectory.frame: plans must be in the ego frame")
        if self.trajectory.poses.shape != (expected.num_poses, 3):
            raise ValidationError(f"Plan.trajectory.poses: shape {self.trajectory.poses.shape} is not "
                                  f"({expected.num_poses}, 3)")
        if abs(self.trajectory.dt - expected.dt) > 1e-9:
            raise ValidationError(f"Plan.trajectory.dt: {self.trajectory.dt} s, expected {expected.dt} s")
        if self.spec != expected:
            raise ValidationError(f"Plan.spec: {self.spec}, expected {expected}")
        return self
