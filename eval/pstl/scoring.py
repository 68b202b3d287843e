"""Exact STL robustness of pSTL plans under their condition: the evaluator's score (compliance is rho > 0).

A plan is 8 poses (x, y, heading) [m, m, rad] every PLAN_DT = 0.5 s in the ego rear-axle frame. It is put on
the map and the ego now is prepended, giving 9 states 0 .. 4 s; the mode's rules (`mode_rules`: speed_band,
the lane rule, safe_distance) are built over horizon H = 8 steps and evaluated at t = 0 with stl's EXACT
semantics (min / max; equal to stlpy's), under `condition.to_rule_params(DEFAULT_PARAMS)`.

Privileged: the signals come from the DriveScene (`stl.signals.signals_from_poses`), so safe_distance uses the
agents' LOGGED futures (non-reactive replay, as pSTL's evaluation does) and the lanes of the full map. This is
the evaluator; a planner sees only the observation (`eval.pstl.guide.SurrogateSignals`).

Horizons at 9 states and 0.5 s (what `window_robustness` builds: horizon = states - 1 = 8 steps):
- speed_band, lane_keeping, safe_distance: G[0, 8], i.e. every state 0 .. 4 s, the ego now (state 0) included.
  The speed at state 0 is the one-sided finite difference of states 0, 1, 2, not the ego's measured speed.
- lane_change_left / _right: F[0, D] G[0, H - D] with D = default_deadline(8) = 6 steps: inside the
  neighbour lane's band by state 6 (3.0 s) at the latest and kept there up to state 8 (4.0 s), so at least
  the last 3 states (1.0 s). pSTL's template (20 states) asks the band from step 9 (4.5 s) on.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce
from operator import and_

import numpy as np

from planners.pstl.condition import STLCondition, mode_rules
from scenes.drive import DriveScene
from scenes.errors import DiffplanError
from scenes.geometry import poses_to_global
from stl.calibrate import window_robustness
from stl.formula import Formula
from stl.rules import DEFAULT_PARAMS, RuleParams, RuleSet, rule_set
from stl.signals import signals_from_poses

PLAN_DT = 0.5  # [s] between plan poses
PLAN_POSES = 8  # poses per plan (4 s)
HORIZON = PLAN_POSES  # [steps] of the rules over the 9 states (the ego now, then the plan)


class ScoringInputError(DiffplanError, ValueError):
    """Plans of the wrong shape or with non-finite values; the message names the argument."""


@dataclass(frozen=True)
class RuleRobustness:
    """One rule's exact robustness: `rule` (an stl.rules name) and `rho` (S,) [the rule's units, m or m/s]."""

    rule: str
    rho: np.ndarray


@dataclass(frozen=True)
class ModeRobustness:
    """Exact robustness of S plans under a condition: `rho` (S,) = min over the mode's rules of `per_rule`
    (one RuleRobustness per rule, in `mode_rules` order). rho > 0 is compliance."""

    rho: np.ndarray
    per_rule: tuple[RuleRobustness, ...]

    @property
    def rules(self) -> tuple[str, ...]:
        """The rule names, in `per_rule` order."""
        return tuple(item.rule for item in self.per_rule)

    def of(self, rule: str) -> np.ndarray:
        """(S,) robustness of `rule`; KeyError naming the rules present otherwise."""
        for item in self.per_rule:
            if item.rule == rule:
                return item.rho
        raise KeyError(f"rule {rule!r} is not scored; the mode's rules are {', '.join(self.rules)}")


def mode_rule_params(condition: STLCondition) -> tuple[RuleSet, RuleParams]:
    """The mode's rules (`mode_rules`) and their parameters from θ over DEFAULT_PARAMS, those rules only."""
    rules = rule_set(mode_rules(condition.validate().mode))
    return rules, condition.to_rule_params(DEFAULT_PARAMS).only(rules.names)


def mode_formula(condition: STLCondition, horizon: int = HORIZON) -> Formula:
    """The conjunction of the mode's rules over `horizon` [steps], bound with θ: its robustness is the min of
    the rules' (exact) or their soft-min (smooth)."""
    rules, params = mode_rule_params(condition)
    return reduce(and_, rules.formulas(horizon, params).values())


def check_plans(plans: object, name: str = "plans") -> np.ndarray:
    """`plans` as float64 (S, 8, 3), S >= 1; ScoringInputError naming the shape otherwise."""
    try:
        array = np.asarray(plans, dtype=np.float64)
    except (TypeError, ValueError):
        raise ScoringInputError(f"{name} must be a numeric array (S, {PLAN_POSES}, 3)") from None
    if array.ndim != 3 or array.shape[1:] != (PLAN_POSES, 3) or array.shape[0] < 1:
        raise ScoringInputError(f"{name} must have shape (S >= 1, {PLAN_POSES}, 3) [m, m, rad], "
                                f"got {array.shape}")
    if not np.isfinite(array).all():
        raise ScoringInputError(f"{name} contains non-finite values")
    return array


def plan_states(scene: DriveScene, plans: np.ndarray) -> np.ndarray:
    """(S, 9, 3) map-frame states [m, m, rad]: the ego now (`scene.current_pose`), then the plans (S, 8, 3)
    given in its rear-axle frame."""
    plans = check_plans(plans)
    now = np.broadcast_to(scene.current_pose, (plans.shape[0], 1, 3))
    return np.concatenate([now, poses_to_global(plans, scene.current_pose)], axis=1)


def mode_robustness(scene: DriveScene, condition: STLCondition, plans: np.ndarray) -> ModeRobustness:
    """Exact robustness of plans (S, 8, 3) [m, m, rad] (ego frame, 0.5 s apart) under `condition` (module
    docstring): per rule and the min over rules, (S,) each. Privileged: agents follow their logged futures."""
    rules, params = mode_rule_params(condition)
    states = plan_states(scene, plans)
    needed = set().union(*(rule.formula(HORIZON).signals() for rule in rules.rules))
    signals = signals_from_poses(scene, states, PLAN_DT, names=needed)
    found = window_robustness(rules, signals, params)
    per_rule = tuple(RuleRobustness(name, found[name]) for name in rules.names)
    return ModeRobustness(np.min(np.stack([item.rho for item in per_rule]), axis=0), per_rule)
