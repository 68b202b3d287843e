"""Simple reference planners: constant velocity, and the human (expert) log as a privileged oracle."""

from __future__ import annotations

import numpy as np

from planners.base import Plan, Planner
from planners.registry import register_planner
from scenes import CURRENT_INDEX, NUM_PLAN_POSES, PLAN_DT, DriveObservation, DriveScene, Frame, Trajectory


@register_planner("constant-velocity")
class ConstantVelocityPlanner(Planner):
    """NAVSIM's ConstantVelocityAgent: x_i = (i + 1) * dt * |v|, y = heading = 0, in the ego frame."""

    def plan(self, observation: DriveObservation) -> Plan:
        speed = float(np.linalg.norm(observation.ego.velocity))
        poses = np.zeros((NUM_PLAN_POSES, 3))
        poses[:, 0] = speed * PLAN_DT * np.arange(1, NUM_PLAN_POSES + 1)
        return Plan(Trajectory(poses, PLAN_DT, Frame.EGO))


@register_planner("human")
class HumanPlanner(Planner):
    """The logged / expert future. Privileged: it reads the scene, so reports flag it as an oracle."""

    requires_scene = True

    def plan(self, observation: DriveObservation) -> Plan:
        raise RuntimeError("the human planner is an oracle: call plan_from_scene(scene)")

    def plan_from_scene(self, scene: DriveScene, at: int = CURRENT_INDEX) -> Plan:
        return Plan(scene.expert_plan(at=at))
