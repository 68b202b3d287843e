"""Trajectory optimisation experts in CasADi (IPOPT + MUMPS, or fatrop): the driving expert that makes
demonstrations.

    expert = DriveExpert()                        # DriveExpertConfig(solver="fatrop", compiled=True): faster
    result = expert.solve(scene, target)          # TrajoptResult; result.ok only for a verified SUCCESS
"""

from trajopt.drive import (
    DriveExpert,
    DriveExpertConfig,
    DriveTarget,
    available_lanes,
    demo_poses,
    exact_robustness,
    sample_targets,
)
from trajopt.nlp import Shape
from trajopt.result import TrajoptResult, TrajoptStatus
from trajopt.robot import solve_unicycle_goal

__all__ = [
    "DriveExpert",
    "DriveExpertConfig",
    "DriveTarget",
    "Shape",
    "TrajoptResult",
    "TrajoptStatus",
    "available_lanes",
    "demo_poses",
    "exact_robustness",
    "sample_targets",
    "solve_unicycle_goal",
]
