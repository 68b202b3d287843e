"""Reference driving planners: constant velocity, and the human (expert) log as a privileged oracle."""

from __future__ import annotations

import numpy as np

from planners.drive_base import DRIVE_PLAN, DrivePlanner, DrivePrivileged
from planners.plan import Plan
from planners.registry import register_planner
from scenes import NUM_PLAN_POSES, PLAN_DT, DriveObservation, Frame, Trajectory


@register_planner("constant-velocity")
class ConstantVelocityPlanner(DrivePlanner):
    """NAVSIM's ConstantVelocityAgent: x_i = (i + 1) * dt * |v|, y = heading = 0, in the ego frame."""

    def plan(self, observation: DriveObservation) -> Plan:
        """Straight ahead at the current speed [m/s]: (8, 3) ego-frame poses."""
        speed = float(np.linalg.norm(observation.ego.velocity))
        poses = np.zeros((NUM_PLAN_POSES, 3))
        poses[:, 0] = speed * PLAN_DT * np.arange(1, NUM_PLAN_POSES + 1)
        return Plan(Trajectory(poses, PLAN_DT, Frame.EGO), spec=DRIVE_PLAN)


@register_planner("human")
class HumanPlanner(DrivePlanner):
    """The logged / expert future. A privileged oracle: it plans only from the scene (`plan_privileged`), so
    reports flag it; `plan` raises OracleError."""

    privileged = True

    def plan(self, observation: DriveObservation) -> Plan:
        """Raises OracleError: the human log needs the privileged scene."""
        raise self.oracle_error()

    def plan_privileged(self, observation: DriveObservation, context: DrivePrivileged) -> Plan:
        """The scene's logged expert plan from step `at`, in the frame of the observing ego (in closed loop the
        simulated ego, which tracks the log's absolute poses as nuPlan's log-future planner does)."""
        return Plan(context.scene.expert_plan(at=context.at, origin=observation.ego_pose_global), spec=DRIVE_PLAN)
