"""Driving planners: a DriveObservation in, DRIVE_PLAN out (8 ego-frame poses 0.5 s apart, as NAVSIM's)."""

from __future__ import annotations

from dataclasses import dataclass

from planners.base import Domain, Planner
from planners.plan import PlanFrame, PlanSpec
from scenes import CURRENT_INDEX, NUM_PLAN_POSES, PLAN_DT, DriveObservation
from scenes.drive import DriveLog

DRIVE_PLAN = PlanSpec(NUM_PLAN_POSES, PLAN_DT, PlanFrame.EGO)


@dataclass(frozen=True, eq=False)
class DrivePrivileged:
    """What a driving oracle may know besides the observation: the whole scene or log (its logged future too)
    and the step `at` the observation is from (default: now)."""

    scene: DriveLog
    at: int = CURRENT_INDEX


class DrivePlanner(Planner[DriveObservation, DrivePrivileged]):
    """Base of the driving planners: DriveObservation -> Plan meeting DRIVE_PLAN."""

    domain = Domain.DRIVING
    plan_spec = DRIVE_PLAN
