"""Solve outcome: status enum, frozen result, IPOPT status classification."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np


class TrajoptStatus(enum.Enum):
    SUCCESS = "success"
    INFEASIBLE = "infeasible"  # IPOPT reports (local) infeasibility or leaves constraints violated
    STL_VIOLATED = "stl_violated"  # solved, but some rule's exact robustness is < 0
    SOLVER_FAILED = "solver_failed"  # iteration / time limit or numerical failure


INFEASIBLE_STATUSES = frozenset({"Infeasible_Problem_Detected", "Restoration_Failed",
                                 "Search_Direction_Becomes_Too_Small", "Not_Enough_Degrees_Of_Freedom"})
OK_STATUSES = frozenset({"Solve_Succeeded", "Solved_To_Acceptable_Level"})


@dataclass(frozen=True, eq=False)
class TrajoptResult:
    """An optimised trajectory.

    Attributes:
        status: TrajoptStatus; `ok` only for SUCCESS.
        states: (N+1, 4) x [m], y [m], heading [rad], v [m/s]; map frame for driving, state 0 = now.
        controls: (N, 2) a [m/s^2] and steering [rad] (bicycle) or yaw rate [rad/s] (unicycle).
        dt: step [s].
        iterations: IPOPT iterations (summed over re-linearisations).
        wall_ms: wall time of the whole solve [ms].
        robustness: rule -> exact robustness at t = 0 of the solution (stl.robustness).
        params: rule -> parameters used.
        solver_status: IPOPT's return status string.
        max_violation: largest constraint violation at the solution.
        info: extra data (target, re-linearisations, ...).
    """

    status: TrajoptStatus
    states: np.ndarray
    controls: np.ndarray
    dt: float
    iterations: int
    wall_ms: float
    robustness: dict[str, float]
    params: dict[str, dict[str, float]]
    solver_status: str = ""
    max_violation: float = 0.0
    info: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status is TrajoptStatus.SUCCESS


def classify(solver_status: str, success: bool, violation: float, robustness: dict[str, float],
             tol: float = 1e-4) -> TrajoptStatus:
    """Status from IPOPT's report, the constraint violation and the exact STL check."""
    if solver_status in INFEASIBLE_STATUSES or (not success and violation > tol):
        return TrajoptStatus.INFEASIBLE
    if not success and solver_status not in OK_STATUSES:
        return TrajoptStatus.SOLVER_FAILED
    if violation > tol:
        return TrajoptStatus.INFEASIBLE
    if any(not np.isfinite(r) or r < 0 for r in robustness.values()):
        return TrajoptStatus.STL_VIOLATED
    return TrajoptStatus.SUCCESS
