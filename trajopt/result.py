"""A solve's ExpertStatus from the NLP solver's report, the constraint violation and the exact STL check."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from trajopt.expert import ExpertStatus

INFEASIBLE_STATUSES = frozenset({"Infeasible_Problem_Detected", "Restoration_Failed",
                                 "Search_Direction_Becomes_Too_Small", "Not_Enough_Degrees_Of_Freedom"})
OK_STATUSES = frozenset({"Solve_Succeeded", "Solved_To_Acceptable_Level"})


def classify(solver_status: str, success: bool, violation: float, robustness: Mapping[str, float],
             tol: float = 1e-4) -> ExpertStatus:
    """Status from IPOPT's (or fatrop's) return status and success flag, the largest constraint violation and
    the exact robustness of every rule."""
    if solver_status in INFEASIBLE_STATUSES or (not success and violation > tol):
        return ExpertStatus.INFEASIBLE
    if not success and solver_status not in OK_STATUSES:
        return ExpertStatus.SOLVER_FAILED
    if violation > tol:
        return ExpertStatus.INFEASIBLE
    if any(not np.isfinite(r) or r < 0 for r in robustness.values()):
        return ExpertStatus.STL_VIOLATED
    return ExpertStatus.SUCCESS
