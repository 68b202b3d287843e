"""Trajectory optimisation experts in CasADi (IPOPT + MUMPS, or fatrop): the driving expert that makes
demonstrations, and the expert contract of the data engine (trajopt.expert).

    expert = DriveExpert()                        # DriveExpertConfig(solver="fatrop", compiled=True): faster
    result = expert.solve(scene, target)          # ExpertResult; result.ok only for a verified SUCCESS
"""

from trajopt.drive import (
    DriveExpert,
    DriveExpertConfig,
    available_lanes,
    exact_robustness,
    sample_targets,
)
from trajopt.expert import (
    DriveTarget,
    Expert,
    ExpertError,
    ExpertResult,
    ExpertStatus,
    Multipliers,
    WarmStart,
)
from trajopt.nlp import Shape

__all__ = [
    "DriveExpert",
    "DriveExpertConfig",
    "DriveTarget",
    "Expert",
    "ExpertError",
    "ExpertResult",
    "ExpertStatus",
    "Multipliers",
    "Shape",
    "WarmStart",
    "available_lanes",
    "exact_robustness",
    "sample_targets",
]
