"""The navigation planner interface: robot-frame waypoints from depth and a point goal.

A `NavPlanner` sees only a `NavObservation`. Privileged oracles (the expert) set `requires_world = True`
and implement `plan_privileged`; evaluation reports flag them.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from planners.base import Plan, Planner
from scenes.nav import NAV_PLAN_DT, NAV_PLAN_POSES, NavObservation, NavWorldInterface, RobotProfile


class NavPlanner(Planner):
    """Maps a NavObservation to a Plan of NAV_PLAN_POSES robot-frame waypoints NAV_PLAN_DT apart."""

    requires_world: ClassVar[bool] = False

    def plan(self, observation: NavObservation) -> Plan:  # type: ignore[override]
        raise NotImplementedError

    def plan_privileged(self, observation: NavObservation, world: NavWorldInterface, pose: np.ndarray,
                        goal: np.ndarray, robot: RobotProfile) -> Plan:
        """Plan with privileged access to the world, the robot's world pose (3,) and the goal (2,)."""
        if self.requires_world:
            raise NotImplementedError(f"{type(self).__name__} requires the world but does not use it")
        return self.plan(observation)


def validate_nav_plan(plan: Plan) -> Plan:
    """Check a navigation plan's shape, frame and interval."""
    return plan.validate(NAV_PLAN_POSES, NAV_PLAN_DT)
