"""The expert contract of the data engine: what an expert is asked (DriveTarget), how a solve ended
(ExpertStatus), what it returns (ExpertResult) and what a neighbouring solve may start from (WarmStart).

Two experts implement `Expert`: trajopt's DriveExpert (STL-constrained optimal control) and datagen's
FollowExpert (a log-following baseline without optimisation).

    targets = expert.sample_targets(scene, params, rng, count)      # list[DriveTarget]
    result = expert.solve(scene, targets[0], warm_start=None)       # ExpertResult; result.ok when usable
    again = expert.solve(scene, targets[1], warm_start=result.warm_start)
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from scenes.errors import DiffplanError
from stl.rules import DEFAULT_PARAMS, RuleParams

if TYPE_CHECKING:
    from scenes.drive import DriveScene
    from trajopt.nlp import Problem

DEFAULT_RULES = ("speed_band", "lane_keeping", "safe_distance", "comfort")
DEFAULT_TARGET_PARAMS = DEFAULT_PARAMS.only(DEFAULT_RULES)  # a DriveTarget's rules unless it names others


class ExpertError(DiffplanError, ValueError):
    """A target or warm start an expert cannot use; the message names the field and the value."""


class ExpertStatus(enum.Enum):
    """How a solve ended. The value is what datasets store (privileged extra `solver.status`, failure counts)."""

    SUCCESS = "success"  # an optimum that meets every constraint and every rule (exact robustness >= 0)
    OK = "ok"  # no optimisation (FollowExpert): the trajectory fits and meets every rule
    INFEASIBLE = "infeasible"  # the solver reports (local) infeasibility or leaves constraints violated
    STL_VIOLATED = "stl_violated"  # solved, but some rule's exact robustness is < 0
    SOLVER_FAILED = "solver_failed"  # iteration / time limit or numerical failure

    @property
    def ok(self) -> bool:
        """Whether a demonstration may be built from the solve."""
        return self in (ExpertStatus.SUCCESS, ExpertStatus.OK)


@dataclass(frozen=True)
class DriveTarget:
    """What an expert is asked.

    Attributes:
        reference_speed: [m/s] the speed to drive at.
        target_lane: 0 the route lane, +1 its left neighbour, -1 its right one.
        rule_params: the rules the trajectory must meet, with their parameters (rules without are not used).
        stop: come to a standstill in the route lane (pSTL's mode 3): reference_speed 0, target_lane 0.
    """

    reference_speed: float
    target_lane: int = 0
    rule_params: RuleParams = DEFAULT_TARGET_PARAMS
    stop: bool = False

    def validate(self) -> DriveTarget:
        """The target itself; ExpertError on a non-finite speed, an unknown lane or bad rule parameters."""
        if not math.isfinite(self.reference_speed):
            raise ExpertError(f"reference_speed must be a finite speed [m/s], got {self.reference_speed!r}")
        if self.target_lane not in (-1, 0, 1):
            raise ExpertError(f"target_lane must be -1, 0 or +1, got {self.target_lane!r}")
        if self.stop and (self.reference_speed != 0.0 or self.target_lane != 0):
            raise ExpertError(f"a stop target keeps the lane at reference_speed 0, got target_lane "
                              f"{self.target_lane} and reference_speed {self.reference_speed}")
        self.rule_params.validate()
        return self


@dataclass(frozen=True, eq=False)
class Multipliers:
    """The NLP multipliers at a solution, for a primal-dual warm start of the same NLP variant.

    Attributes:
        problem: the trajopt.nlp.Problem solved (a warm start uses the multipliers only for this object).
        lam_x: (num_w,) multipliers of the variable bounds.
        lam_g: (num_g,) multipliers of the constraint rows.
    """

    problem: Problem
    lam_x: np.ndarray
    lam_g: np.ndarray


@dataclass(frozen=True, eq=False)
class WarmStart:
    """What a neighbouring solve (same scene, same lane) starts from.

    Attributes:
        states: (N+1, 4) x [m], y [m], heading [rad], v [m/s], map frame; state 0 is replaced by the new
            solve's initial state.
        controls: (N, 2) acceleration [m/s^2] and steering [rad] (bicycle) or yaw rate [rad/s].
        multipliers: the solve's NLP multipliers, or None (a primal start only).
    """

    states: np.ndarray
    controls: np.ndarray
    multipliers: Multipliers | None = None


@dataclass(frozen=True, eq=False)
class ExpertResult:
    """A solve's trajectory and how it ended.

    Attributes:
        status: ExpertStatus; `ok` only for SUCCESS and OK.
        states: (N+1, 4) x [m], y [m], heading [rad], v [m/s]; map frame for driving, state 0 = now.
        controls: (N, 2) a [m/s^2] and steering [rad] (bicycle) or yaw rate [rad/s] (unicycle, follow).
        dt: step [s].
        iterations: solver iterations (summed over re-linearisations and fallbacks); for FollowExpert the
            profile steps that hit a limit.
        solve_ms: wall time of the whole solve [ms].
        robustness: rule name -> exact robustness at t = 0 of the solution (stl.robustness).
        params: the rules and parameters the solution was checked against.
        solver_status: the NLP solver's return status ("" without one).
        max_violation: largest constraint violation at the solution.
        passes: solves of the NLP (1 + re-linearisations and restarts).
        obstacle_agents: indices of the agents that held obstacle slots in the last NLP.
        fallback_from: the status of a fatrop solve that IPOPT solved again ("" when none).
        multipliers: the NLP multipliers at the solution (None without an NLP).
    """

    status: ExpertStatus
    states: np.ndarray
    controls: np.ndarray
    dt: float
    iterations: int
    solve_ms: float
    robustness: Mapping[str, float]
    params: RuleParams
    solver_status: str = ""
    max_violation: float = 0.0
    passes: int = 1
    obstacle_agents: tuple[int, ...] = ()
    fallback_from: str = ""
    multipliers: Multipliers | None = None

    @property
    def ok(self) -> bool:
        """Whether the solve succeeded."""
        return self.status.ok

    @property
    def warm_start(self) -> WarmStart:
        """This solution as the start of a neighbouring solve."""
        return WarmStart(self.states, self.controls, self.multipliers)


@runtime_checkable
class Expert(Protocol):
    """What the data engine asks of an expert (datagen.job.solve_scene)."""

    def sample_targets(self, scene: DriveScene, params: RuleParams, rng: np.random.Generator,
                       count: int, stop_fraction: float = 0.0, gap_fraction: float = 0.0
                       ) -> list[DriveTarget]:
        """`count` targets for `scene` from the dataset's rule `params`, deterministic given `rng`; after the
        first, each is a stop target with probability `stop_fraction`, else a gap target (keep the lane behind
        the nearest agent at a drawn distance) with probability `gap_fraction`, where the expert has them."""
        ...

    def solve(self, scene: DriveScene, target: DriveTarget, warm_start: WarmStart | None = None) -> ExpertResult:
        """A trajectory towards `target`, started from `warm_start` when given."""
        ...

    def prebuild(self) -> None:
        """Build what solves need (solvers) now, so that timed work does not pay for it."""
        ...

    def reset(self) -> None:
        """Forget state kept between solves, so that a job's results do not depend on what ran before."""
        ...
