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

Each rule's parameters are a frozen record (SpeedBandParams, ...), and `RuleParams` holds those of some rules
(None: the rule is not used); its JSON form {rule: {param: value}} is the `rules` field of params files.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from scenes.errors import DiffplanError
from stl.formula import Formula, LinearPredicate, Param
from stl.signals import FAR


class UnknownRuleError(DiffplanError, KeyError):
    """A rule name not in RULES; str() is the one-line message."""

    def __str__(self) -> str:
        return str(self.args[0])


class RuleParamsError(DiffplanError, ValueError):
    """Rule parameters that cannot be used; the message names the field (rules.RULE.PARAM) and the value."""


def _finite(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise RuleParamsError(f"field '{where}' must be a finite number, got {value!r}")
    return value  # type: ignore[return-value]  # a finite Real (int, float or numpy scalar), kept as given


@dataclass(frozen=True)
class _Params:
    """One rule's parameters: finite numbers named as its template's `Param`s, in the template's order."""

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def bindings(self) -> dict[str, float]:
        """Param name -> value, to bind the rule's formula (`Formula.bind`, `robustness(params=)`)."""
        return {name: getattr(self, name) for name in self.names()}

    def validate(self, where: str = "params") -> _Params:
        for name in self.names():
            _finite(getattr(self, name), f"{where}.{name}")
        return self


@dataclass(frozen=True)
class SpeedBandParams(_Params):
    """speed_band: v_min <= v <= v_max, both [m/s]."""

    v_min: float
    v_max: float


@dataclass(frozen=True)
class LaneKeepingParams(_Params):
    """lane_keeping: |offset from the lane centreline| <= d_max [m], |heading error| <= h_max [rad]."""

    d_max: float
    h_max: float


@dataclass(frozen=True)
class LaneChangeParams(_Params):
    """lane_change_left / _right: by the deadline, |offset from the neighbour lane's centreline| <= d_band [m]
    and |heading error to it| <= h_max [rad], until the window ends."""

    d_band: float
    h_max: float


@dataclass(frozen=True)
class SafeDistanceParams(_Params):
    """safe_distance: gap to every agent >= d_safe [m]."""

    d_safe: float


@dataclass(frozen=True)
class StopBeforeLineParams(_Params):
    """stop_before_line: while red, distance to the stop line >= d_stop [m]."""

    d_stop: float


@dataclass(frozen=True)
class ReachGoalParams(_Params):
    """reach_goal: some state within r_goal [m] of the goal."""

    r_goal: float


@dataclass(frozen=True)
class ComfortParams(_Params):
    """comfort: |acceleration| <= a_max [m/s^2], |jerk| <= j_max [m/s^3], |yaw rate| <= w_max [rad/s]."""

    a_max: float
    j_max: float
    w_max: float


OneRuleParams = (SpeedBandParams | LaneKeepingParams | LaneChangeParams | SafeDistanceParams | StopBeforeLineParams
                 | ReachGoalParams | ComfortParams)


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
    """G[0,H] (v >= v_min & v <= v_max) over horizon H [steps]."""
    return (lower("v", "v_min") & upper("v", "v_max")).always(0, horizon)


def lane_keeping(horizon: int) -> Formula:
    """G[0,H] (|d_c| <= d_max & |h_c| <= h_max) over horizon H [steps]."""
    return (within("d_c", "d_max") & within("h_c", "h_max")).always(0, horizon)


def _lane_change(side: str, horizon: int, deadline: int | None) -> Formula:
    deadline = default_deadline(horizon) if deadline is None else deadline
    if not 0 <= deadline <= horizon:
        raise ValueError(f"lane-change deadline {deadline} must be within [0, {horizon}] steps")
    band = within(f"d_{side}", "d_band") & within(f"h_{side}", "h_max")
    return band.always(0, horizon - deadline).eventually(0, deadline)


def lane_change_left(horizon: int, deadline: int | None = None) -> Formula:
    """F[0,D] G[0,H-D] (|d_l| <= d_band & |h_l| <= h_max): in the left lane by deadline D [steps] (default:
    `default_deadline`), then kept."""
    return _lane_change("l", horizon, deadline)


def lane_change_right(horizon: int, deadline: int | None = None) -> Formula:
    """`lane_change_left` on the right neighbour lane (d_r, h_r)."""
    return _lane_change("r", horizon, deadline)


def safe_distance(horizon: int) -> Formula:
    """G[0,H] s >= d_safe over horizon H [steps]."""
    return lower("s", "d_safe").always(0, horizon)


def stop_before_line(horizon: int) -> Formula:
    """G[0,H] (!red | stop_dist >= d_stop) over horizon H [steps]."""
    green = LinearPredicate((("red", -FAR),), -FAR / 2)  # +-FAR/2: never the binding disjunct
    return (green | lower("stop_dist", "d_stop")).always(0, horizon)


def reach_goal(horizon: int) -> Formula:
    """F[0,H] goal_dist <= r_goal over horizon H [steps]."""
    return upper("goal_dist", "r_goal").eventually(0, horizon)


def comfort(horizon: int) -> Formula:
    """G[0,H] (|a| <= a_max & |j| <= j_max & |w| <= w_max) over horizon H [steps]."""
    return (within("a", "a_max") & within("j", "j_max") & within("w", "w_max")).always(0, horizon)


@dataclass(frozen=True)
class Rule:
    """A named template, the record of its parameters, and which side each bounds.

    Attributes:
        name: registry key.
        params_type: the rule's parameter record (SpeedBandParams, ...); its fields name the template's Params.
        lower_bounds: the params that are lower bounds (a larger value is stricter); the rest are upper.
        template: horizon [steps] -> Formula.
    """

    name: str
    params_type: type[OneRuleParams]
    lower_bounds: frozenset[str]
    template: Callable[[int], Formula]

    @property
    def params(self) -> tuple[str, ...]:
        """Parameter names, in order."""
        return self.params_type.names()

    def formula(self, horizon: int) -> Formula:
        """The rule's formula over horizon `horizon` [steps], its bounds `Param`s."""
        return self.template(horizon)


RULES: dict[str, Rule] = {rule.name: rule for rule in (
    Rule("speed_band", SpeedBandParams, frozenset({"v_min"}), speed_band),
    Rule("lane_keeping", LaneKeepingParams, frozenset(), lane_keeping),
    Rule("lane_change_left", LaneChangeParams, frozenset(), lane_change_left),
    Rule("lane_change_right", LaneChangeParams, frozenset(), lane_change_right),
    Rule("safe_distance", SafeDistanceParams, frozenset({"d_safe"}), safe_distance),
    Rule("stop_before_line", StopBeforeLineParams, frozenset({"d_stop"}), stop_before_line),
    Rule("reach_goal", ReachGoalParams, frozenset(), reach_goal),
    Rule("comfort", ComfortParams, frozenset(), comfort),
)}


@dataclass(frozen=True)
class RuleParams:
    """The parameters of some rules: one record per rule, None where the rule is not used. Field names are the
    rule names of RULES, in its order (the canonical order of `names`, `items` and `to_json`)."""

    speed_band: SpeedBandParams | None = None
    lane_keeping: LaneKeepingParams | None = None
    lane_change_left: LaneChangeParams | None = None
    lane_change_right: LaneChangeParams | None = None
    safe_distance: SafeDistanceParams | None = None
    stop_before_line: StopBeforeLineParams | None = None
    reach_goal: ReachGoalParams | None = None
    comfort: ComfortParams | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """The rules that have parameters, in RULES order."""
        return tuple(name for name, _ in self.items())

    def items(self) -> tuple[tuple[str, OneRuleParams], ...]:
        """(rule name, its parameters) of the rules that have them, in RULES order."""
        return tuple((f.name, getattr(self, f.name)) for f in fields(self) if getattr(self, f.name) is not None)

    def of(self, name: str) -> OneRuleParams | None:
        """Rule `name`'s parameters, None when it has none; UnknownRuleError on a name not in RULES."""
        if name not in RULES:
            raise UnknownRuleError(f"unknown rule {name!r}; expected one of {', '.join(RULES)}")
        return getattr(self, name)

    def only(self, names: Iterable[str]) -> RuleParams:
        """These parameters for the rules `names` only (rules without parameters stay absent)."""
        return RuleParams(**{name: self.of(name) for name in names})  # type: ignore[arg-type]  # (by name)

    def updated(self, other: RuleParams) -> RuleParams:
        """These parameters with every rule that `other` has taken from `other`."""
        return replace(self, **dict(other.items()))  # type: ignore[arg-type]  # each record by its field name

    def with_rule(self, name: str, params: OneRuleParams) -> RuleParams:
        """These parameters with rule `name`'s replaced by `params`."""
        self.of(name)
        return replace(self, **{name: params})  # type: ignore[arg-type]  # the record by its field name

    def validate(self) -> RuleParams:
        """RuleParamsError unless every record is its rule's type and every value a finite number."""
        for name, params in self.items():
            if not isinstance(params, RULES[name].params_type):
                raise RuleParamsError(f"field 'rules.{name}' must be {RULES[name].params_type.__name__}, "
                                      f"got {type(params).__name__}")
            params.validate(f"rules.{name}")
        return self

    def to_json(self) -> dict[str, dict[str, float]]:
        """{rule: {param: value}} of the rules that have parameters: a params file's `rules` field."""
        return {name: params.bindings() for name, params in self.items()}

    @classmethod
    def from_json(cls, data: object) -> RuleParams:
        """The parameters of a params file's `rules` field {rule: {param: number}}; RuleParamsError naming the
        field when a rule or parameter is unknown or missing, or a value is not a finite number."""
        if not isinstance(data, Mapping):
            raise RuleParamsError(f"field 'rules' must be an object of rule -> params, got {type(data).__name__}")
        records: dict[str, Any] = {}  # rule name -> its record (field name -> value)
        for name, values in data.items():
            if name not in RULES:
                raise RuleParamsError(f"field 'rules.{name}': unknown rule {name!r}; expected some of "
                                      f"{', '.join(RULES)}")
            if not isinstance(values, Mapping):
                raise RuleParamsError(f"field 'rules.{name}' must be an object of param -> number")
            expected = RULES[name].params
            unknown = [key for key in values if key not in expected]
            if unknown:
                raise RuleParamsError(f"field 'rules.{name}.{unknown[0]}': unknown parameter {unknown[0]!r}; "
                                      f"expected {', '.join(expected)}")
            missing = [key for key in expected if key not in values]
            if missing:
                raise RuleParamsError(f"missing field 'rules.{name}.{missing[0]}'")
            records[name] = RULES[name].params_type(
                **{key: _finite(values[key], f"rules.{name}.{key}") for key in expected})
        return cls(**records)


DEFAULT_PARAMS = RuleParams(  # every rule's parameters where nothing else is given (no calibration window applies)
    speed_band=SpeedBandParams(v_min=0.0, v_max=15.0), lane_keeping=LaneKeepingParams(d_max=0.5, h_max=0.2),
    lane_change_left=LaneChangeParams(d_band=0.5, h_max=0.2),
    lane_change_right=LaneChangeParams(d_band=0.5, h_max=0.2), safe_distance=SafeDistanceParams(d_safe=0.5),
    stop_before_line=StopBeforeLineParams(d_stop=0.0), reach_goal=ReachGoalParams(r_goal=2.0),
    comfort=ComfortParams(a_max=4.0, j_max=10.0, w_max=0.5),
)


@dataclass(frozen=True)
class RuleSet:
    """Named rules; `formulas(horizon)` builds them, `parameters` lists each rule's parameter names."""

    rules: tuple[Rule, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """The rule names, in order."""
        return tuple(rule.name for rule in self.rules)

    @property
    def parameters(self) -> dict[str, tuple[str, ...]]:
        """Rule name -> its parameter names."""
        return {rule.name: rule.params for rule in self.rules}

    def formulas(self, horizon: int, params: RuleParams | None = None) -> dict[str, Formula]:
        """Rule -> formula over `horizon` steps, bound with the rule's `params` when given (RuleParamsError
        naming a rule that has none)."""
        out = {rule.name: rule.formula(horizon) for rule in self.rules}
        if params is not None:
            out = {name: formula.bind(_required(params, name).bindings()) for name, formula in out.items()}
        return out


def _required(params: RuleParams, name: str) -> OneRuleParams:
    found = params.of(name)
    if found is None:
        raise RuleParamsError(f"missing field 'rules.{name}'")
    return found


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
