"""Navigation planners: a NavObservation (depth and a point goal) in, NAV_PLAN out (robot-frame waypoints)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from planners.base import Domain, Planner
from planners.plan import PlanFrame, PlanSpec
from scenes.nav import NAV_PLAN_DT, NAV_PLAN_POSES, NavObservation, NavWorldInterface, RobotProfile

NAV_PLAN = PlanSpec(NAV_PLAN_POSES, NAV_PLAN_DT, PlanFrame.ROBOT)


@dataclass(frozen=True, eq=False)
class NavPrivileged:
    """What a navigation oracle may know besides the observation.

    Attributes:
        world: the world (shortest paths, clearance). pose: (3,) the robot's world pose x, y [m], yaw [rad].
        goal: (2,) the goal in the world frame [m]. robot: the robot's footprint and limits.
    """

    world: NavWorldInterface
    pose: np.ndarray
    goal: np.ndarray
    robot: RobotProfile


class NavPlanner(Planner[NavObservation, NavPrivileged]):
    """Base of the navigation planners: NavObservation -> Plan meeting NAV_PLAN (NAV_PLAN_POSES waypoints
    NAV_PLAN_DT apart)."""

    domain = Domain.NAVIGATION
    plan_spec = NAV_PLAN
