"""Signal Temporal Logic formulas: an immutable AST over named signals, with symbolic parameters.

Time bounds are integer steps, inclusive at both ends (stlpy's convention): G[a, b] phi holds at t when phi
holds at every t' in [t + a, t + b]. A predicate is `sum_i c_i * y_i - bound >= 0` (linear) or `g(y) >= 0`
(nonlinear); `bound` may be a `Param`, filled later with `bind`.
"""

from __future__ import annotations

import enum
import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

from scenes.errors import DiffplanError


class FormulaError(DiffplanError, ValueError):
    """A malformed formula or a bad evaluation request; the message names the node or the value."""


def finite_number(value: object, what: str) -> float:
    """`value` as a float when it is a finite real number (a 0-d array or tensor counts; a bool, a string
    such as "3" or None does not); FormulaError naming `what` and the value otherwise."""
    number = value.item() if getattr(value, "ndim", None) == 0 and hasattr(value, "item") else value
    if isinstance(number, numbers.Real) and not isinstance(number, bool):
        number = float(number)
        if math.isfinite(number):
            return number
    raise FormulaError(f"{what} must be a finite number, got {value!r}")


@dataclass(frozen=True)
class Param:
    """A named parameter times a scale: `scale * value(name)`."""

    name: str
    scale: float = 1.0

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise FormulaError(f"parameter name must be a non-empty string, got {self.name!r}")
        finite_number(self.scale, f"scale of parameter {self.name!r}")

    def value(self, params: Mapping[str, float]) -> float:
        """scale * params[name]; FormulaError naming the parameter unless that is a finite number."""
        return self.scale * finite_number(params[self.name], f"parameter {self.name!r}")


Bound = float | Param


class Formula(ABC):
    """Base of every node. Combine with `&`, `|`, `~`, `.always(a, b)`, `.eventually(a, b)`, `.until(...)`."""

    def children(self) -> tuple[Formula, ...]:
        """The direct sub-formulas (none for a predicate)."""
        return ()

    @property
    def horizon(self) -> int:
        """Steps after t that evaluating at t needs (stlpy's offset)."""
        return max((child.horizon for child in self.children()), default=0)

    def parameters(self) -> set[str]:
        """Names of the unbound parameters."""
        return set().union(*(child.parameters() for child in self.children()))

    def signals(self) -> set[str]:
        """Names of the signals the formula reads."""
        return set().union(*(child.signals() for child in self.children()))

    @abstractmethod
    def bind(self, params: Mapping[str, float]) -> Formula:
        """The formula with every `Param` named in `params` replaced by its value."""

    def nodes(self) -> list[Formula]:
        """Every node, depth first, this one first."""
        return [self, *(node for child in self.children() for node in child.nodes())]

    def __and__(self, other: Formula) -> And:
        return And((*_flatten(self, And), *_flatten(other, And)))

    def __or__(self, other: Formula) -> Or:
        return Or((*_flatten(self, Or), *_flatten(other, Or)))

    def __invert__(self) -> Not:
        return Not(self)

    def always(self, start: int, end: int) -> Always:
        """G[start, end] self."""
        return Always(self, start, end)

    def eventually(self, start: int, end: int) -> Eventually:
        """F[start, end] self."""
        return Eventually(self, start, end)

    def until(self, other: Formula, start: int, end: int, semantics: UntilSemantics | None = None) -> Until:
        """self U[start, end] other, with UntilSemantics.TEXTBOOK unless `semantics` is given."""
        return Until(self, other, start, end, semantics or UntilSemantics.TEXTBOOK)

    def __str__(self) -> str:
        from stl.text import format_formula

        return format_formula(self)


def _flatten(formula: Formula, kind: type[And | Or]) -> tuple[Formula, ...]:
    return formula.args if isinstance(formula, kind) else (formula,)


def _bind_bound(bound: Bound, params: Mapping[str, float]) -> Bound:
    return bound.value(params) if isinstance(bound, Param) and bound.name in params else bound


def _check_bound(bound: Bound, node: str) -> None:
    if not isinstance(bound, Param):
        finite_number(bound, f"{node}: bound")


def _check_names(names: Iterable[object], node: str) -> None:
    if isinstance(names, str) or not all(isinstance(name, str) for name in names):
        raise FormulaError(f"{node}: signal names must be a tuple of strings, got {names!r}")


@dataclass(frozen=True, eq=True)
class LinearPredicate(Formula):
    """sum(c * y[name] for name, c in terms) - bound >= 0 at each time step."""

    terms: tuple[tuple[str, float], ...]
    bound: Bound = 0.0

    def __post_init__(self):
        if not self.terms:
            raise FormulaError("a linear predicate needs at least one signal term")
        _check_names([name for name, _ in self.terms], "linear predicate")
        for name, c in self.terms:
            finite_number(c, f"linear predicate: coefficient of {name!r}")
        _check_bound(self.bound, "linear predicate")

    def signals(self) -> set[str]:
        """The names in `terms`."""
        return {name for name, _ in self.terms}

    def parameters(self) -> set[str]:
        """The bound's parameter name, if the bound is a `Param`."""
        return {self.bound.name} if isinstance(self.bound, Param) else set()

    def bind(self, params: Mapping[str, float]) -> LinearPredicate:
        """The predicate with its bound filled from `params` when it names a parameter there."""
        return replace(self, bound=_bind_bound(self.bound, params))


@dataclass(frozen=True, eq=True)
class NonlinearPredicate(Formula):
    """g(y[inputs]) - bound >= 0. `function` maps (..., len(inputs)) to (...) for numpy and torch alike.

    `name` identifies the function in text and equality; register it with `stl.text.register_function`
    to parse it back.
    """

    name: str
    inputs: tuple[str, ...]
    function: Callable = field(compare=False, repr=False)
    bound: Bound = 0.0

    def __post_init__(self):
        _check_names(self.inputs, f"function {self.name!r}")
        _check_bound(self.bound, f"function {self.name!r}")

    def signals(self) -> set[str]:
        """The `inputs` names."""
        return set(self.inputs)

    def parameters(self) -> set[str]:
        """The bound's parameter name, if the bound is a `Param`."""
        return {self.bound.name} if isinstance(self.bound, Param) else set()

    def bind(self, params: Mapping[str, float]) -> NonlinearPredicate:
        """The predicate with its bound filled from `params` when it names a parameter there."""
        return replace(self, bound=_bind_bound(self.bound, params))


@dataclass(frozen=True, eq=True)
class Not(Formula):
    """!arg."""

    arg: Formula

    def children(self) -> tuple[Formula, ...]:
        """(arg,)."""
        return (self.arg,)

    def bind(self, params: Mapping[str, float]) -> Not:
        """!arg with arg bound."""
        return Not(self.arg.bind(params))


@dataclass(frozen=True, eq=True)
class And(Formula):
    """args[0] & args[1] & ... (at least two operands)."""

    args: tuple[Formula, ...]

    def __post_init__(self):
        if len(self.args) < 2:
            raise FormulaError("'and' needs at least two operands")

    def children(self) -> tuple[Formula, ...]:
        """The operands."""
        return self.args

    def bind(self, params: Mapping[str, float]) -> And:
        """The conjunction of the bound operands."""
        return And(tuple(arg.bind(params) for arg in self.args))


@dataclass(frozen=True, eq=True)
class Or(Formula):
    """args[0] | args[1] | ... (at least two operands)."""

    args: tuple[Formula, ...]

    def __post_init__(self):
        if len(self.args) < 2:
            raise FormulaError("'or' needs at least two operands")

    def children(self) -> tuple[Formula, ...]:
        """The operands."""
        return self.args

    def bind(self, params: Mapping[str, float]) -> Or:
        """The disjunction of the bound operands."""
        return Or(tuple(arg.bind(params) for arg in self.args))


def _check_window(node: str, start: int, end: int) -> None:
    if not (isinstance(start, int) and isinstance(end, int)) or start < 0 or end < start:
        raise FormulaError(f"{node}[{start},{end}]: bounds must be integers with 0 <= start <= end")


@dataclass(frozen=True, eq=True)
class Always(Formula):
    """G[start, end] arg."""

    arg: Formula
    start: int
    end: int

    def __post_init__(self):
        _check_window("G", self.start, self.end)

    def children(self) -> tuple[Formula, ...]:
        """(arg,)."""
        return (self.arg,)

    @property
    def horizon(self) -> int:
        """end + arg's horizon [steps]."""
        return self.end + self.arg.horizon

    def bind(self, params: Mapping[str, float]) -> Always:
        """The formula with arg bound."""
        return replace(self, arg=self.arg.bind(params))


@dataclass(frozen=True, eq=True)
class Eventually(Formula):
    """F[start, end] arg."""

    arg: Formula
    start: int
    end: int

    def __post_init__(self):
        _check_window("F", self.start, self.end)

    def children(self) -> tuple[Formula, ...]:
        """(arg,)."""
        return (self.arg,)

    @property
    def horizon(self) -> int:
        """end + arg's horizon [steps]."""
        return self.end + self.arg.horizon

    def bind(self, params: Mapping[str, float]) -> Eventually:
        """The formula with arg bound."""
        return replace(self, arg=self.arg.bind(params))


class UntilSemantics(enum.Enum):
    """How `left U[a, b] right` treats `left` before t + a.

    TEXTBOOK (default): exists t' in [t+a, t+b] with right(t') and left on [t, t').
    STLPY: stlpy 0.3's: left is only required on [t+a, t'), not on [t, t+a).
    They agree when a = 0.
    """

    TEXTBOOK = "textbook"
    STLPY = "stlpy"


@dataclass(frozen=True, eq=True)
class Until(Formula):
    """left U[start, end] right."""

    left: Formula
    right: Formula
    start: int
    end: int
    semantics: UntilSemantics = UntilSemantics.TEXTBOOK

    def __post_init__(self):
        _check_window("U", self.start, self.end)

    def children(self) -> tuple[Formula, ...]:
        """(left, right)."""
        return (self.left, self.right)

    @property
    def horizon(self) -> int:
        """end + the larger horizon of left and right [steps]."""
        return self.end + max(self.left.horizon, self.right.horizon)

    def bind(self, params: Mapping[str, float]) -> Until:
        """The formula with left and right bound."""
        return replace(self, left=self.left.bind(params), right=self.right.bind(params))
