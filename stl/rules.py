"""Parametric driving rules (pSTL-style templates over `stl.signals` names) and their registry.

Every template takes the window's horizon H [steps] (a window has H + 1 states, evaluated at t = 0) and
returns a Formula whose bounds are `Param`s named after the rule's parameters:

- speed_band(v_min, v_max):           G[0,H] (v >= v_min & v <= v_max)
- lane_keeping(d_max, h_max):          G[0,H] (|d_c| <= d_max & |h_c| <= h_max)
- lane_change_left(d_band, h_max):     F[0,D] G[0,H-D] (|d_l| <= d_band & |h_l| <= h_max), D = deadline
- lane_change_right(d_band, h_max):    the same on d_r, h_r
- safe_distance(d_safe):               G[0,H] s >= d_safe
- stop_before_line(d_stop):            G[0,H] (!red | stop_dist >= d_stop), !red = FAR * (0.5 - red) >= 0
- reach_goal(r_goal):                  F[0,H] goal_dist <= r_goal
- comfort(a_max, j_max, w_max):        G[0,H] (|a| <= a_max & |j| <= j_max & |w| <= w_max)

|x| <= c is (x <= c) & (-x <= c), whose robustness is c - |x|.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from scenes.errors import DiffplanError
from stl.formula import Formula, LinearPredicate, Param
from stl.signals import FAR


class UnknownRuleError(DiffplanError, KeyError):
    """A rule name not in RULES; str() is the one-line message."""

    def __str__(self) -> str:
        return str(self.args[0])


def upper(signal: str, param: str) -> Formula:
    """signal <= param."""
    return LinearPredicate(((signal, -1.0),), Param(param, -1.0))


def lower(signal: str, param: str) -> Formula:
    """signal >= param."""
    return LinearPredicate(((signal, 1.0),), Param(param))


def within(signal: str, param: str) -> Formula:
    """|signal| <= param."""
    return upper(signal, param) & LinearPredicate(((signal, 1.0),), Param(param, -1.0))


def default_deadline(horizon: int) -> int:
    """Lane-change deadline [steps]: three quarters of the window."""
    return (3 * horizon) // 4


def speed_band(horizon: int) -> Formula:
    return (lower("v", "v_min") & upper("v", "v_max")).always(0, horizon)


def lane_keeping(horizon: int) -> Formula:
    return (within("d_c", "d_max") & within("h_c", "h_max")).always(0, horizon)


def _lane_change(side: str, horizon: int, deadline: int | None) -> Formula:
    deadline = default_deadline(horizon) if deadline is None else deadline
    if not 0 <= deadline <= horizon:
        raise ValueError(f"lane-change deadline {deadline} must be within [0, {horizon}] steps")
    band = within(f"d_{side}", "d_band") & within(f"h_{side}", "h_max")
    return band.always(0, horizon - deadline).eventually(0, deadline)


def lane_change_left(horizon: int, deadline: int | None = None) -> Formula:
    return _lane_change("l", horizon, deadline)


def lane_change_right(horizon: int, deadline: int | None = None) -> Formula:
    return _lane_change("r", horizon, deadline)


def safe_distance(horizon: int) -> Formula:
    return lower("s", "d_safe").always(0, horizon)


def stop_before_line(horizon: int) -> Formula:
    green = LinearPredicate((("red", -FAR),), -FAR / 2)  # +-FAR/2: never the binding disjunct
    return (green | lower("stop_dist", "d_stop")).always(0, horizon)


def reach_goal(horizon: int) -> Formula:
    return upper("goal_dist", "r_goal").eventually(0, horizon)


def comfort(horizon: int) -> Formula:
    return (within("a", "a_max") & within("j", "j_max") & within("w", "w_max")).always(0, horizon)


@dataclass(frozen=True)
class Rule:
    """A named template, its parameters in order, and which side each bounds.

    Attributes:
        name: registry key.
        params: parameter names.
        lower_bounds: the params that are lower bounds (a larger value is stricter); the rest are upper.
        template: horizon [steps] -> Formula.
    """

    name: str
    params: tuple[str, ...]
    lower_bounds: frozenset[str]
    template: Callable[[int], Formula]

    def formula(self, horizon: int) -> Formula:
        return self.template(horizon)


RULES: dict[str, Rule] = {rule.name: rule for rule in (
    Rule("speed_band", ("v_min", "v_max"), frozenset({"v_min"}), speed_band),
    Rule("lane_keeping", ("d_max", "h_max"), frozenset(), lane_keeping),
    Rule("lane_change_left", ("d_band", "h_max"), frozenset(), lane_change_left),
    Rule("lane_change_right", ("d_band", "h_max"), frozenset(), lane_change_right),
    Rule("safe_distance", ("d_safe",), frozenset({"d_safe"}), safe_distance),
    Rule("stop_before_line", ("d_stop",), frozenset({"d_stop"}), stop_before_line),
    Rule("reach_goal", ("r_goal",), frozenset(), reach_goal),
    Rule("comfort", ("a_max", "j_max", "w_max"), frozenset(), comfort),
)}


@dataclass(frozen=True)
class RuleSet:
    """Named rules; `formulas(horizon)` builds them, `parameters` lists each rule's parameter names."""

    rules: tuple[Rule, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(rule.name for rule in self.rules)

    @property
    def parameters(self) -> dict[str, tuple[str, ...]]:
        return {rule.name: rule.params for rule in self.rules}

    def formulas(self, horizon: int, params: dict[str, dict[str, float]] | None = None) -> dict[str, Formula]:
        """Rule -> formula over `horizon` steps, bound with `params[rule]` when given."""
        out = {rule.name: rule.formula(horizon) for rule in self.rules}
        if params is not None:
            out = {name: formula.bind(params[name]) for name, formula in out.items()}
        return out


def rule_set(names: Iterable[str] | str = "all") -> RuleSet:
    """RuleSet of `names`: an iterable, a comma-separated string, or 'all'. UnknownRuleError on a bad name."""
    if isinstance(names, str):
        names = list(RULES) if names.strip() == "all" else [n.strip() for n in names.split(",") if n.strip()]
    names = list(dict.fromkeys(names))
    if not names:
        raise UnknownRuleError("no rule named; expected 'all' or some of " + ", ".join(RULES))
    unknown = [n for n in names if n not in RULES]
    if unknown:
        raise UnknownRuleError(f"unknown rule {unknown[0]!r}; expected 'all' or some of {', '.join(RULES)}")
    return RuleSet(tuple(RULES[n] for n in names))
