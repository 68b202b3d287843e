"""Batched STL robustness over named signals, exact or smooth, for numpy and torch alike.

Every node is evaluated once over the whole batch and all time steps (sliding windows, no Python loops over
time or batch); a node of horizon h over T steps yields a trace of shape (B, T - h):

    rho(pred, t)        = sum_i c_i y_i(t) - bound            (or g(y(t)) - bound)
    rho(!phi, t)        = -rho(phi, t)
    rho(phi & psi, t)   = min(rho(phi, t), rho(psi, t))       (| uses max)
    rho(G[a,b] phi, t)  = min_{t' in [t+a, t+b]} rho(phi, t') (F uses max)
    rho(phi U[a,b] psi, t) = max_{t' in [t+a, t+b]} min(rho(psi, t'), min_{s in [t0, t')} rho(phi, s))

with t0 = t for UntilSemantics.TEXTBOOK (phi must hold from t on) and t0 = t + a for UntilSemantics.STLPY
(stlpy 0.3: phi is only required from t + a on); the two agree when a = 0. The inner min is a cumulative min
over a window, so Until costs one (B, T - h, b) tensor.

Smooth mode (temperature tau) replaces min by the soft-min -logsumexp(-tau x) / tau, which is <= min, and max
by either the Boltzmann mean sum_i x_i softmax(tau x)_i (`max_kind="boltzmann"`, stlpy's DrakeSmoothSolver,
Gilpin et al. 2021; <= max, so the pair under-approximates) or logsumexp(tau x) / tau
(`max_kind="logsumexp"`, STLCG/pSTL; >= max, so there is no one-sided bound). Negating a smooth value would
turn a lower bound into an upper one, so smooth mode first pushes negation down to the predicates (negation
normal form): !G = F!, !F = G!, !(a & b) = !a | !b, !(a | b) = !a & !b, !!a = a, and !(phi U[a,b] psi) is
its exact dual (release)

    rho(!(phi U[a,b] psi), t) = min_{t' in [t+a, t+b]} max(-rho(psi, t'), max_{s in [t0, t')} -rho(phi, s))

whose running max is smoothed by the Boltzmann (or logsumexp) mean of each prefix. Every smooth operator then
sits at or below its exact one on arguments at or below theirs, so with `max_kind="boltzmann"` smooth
robustness <= exact robustness for every formula, and it tends to it as tau grows. Exact mode is unchanged.

Bad input is refused, never turned into NaN: `Signals` takes a tuple of names (a plain string is refused) and
converts array-likes such as nested lists with numpy; non-finite or non-numeric values raise `SignalError`;
a non-finite parameter, coefficient or temperature, a parameter that is not a number (None, "fast", even "3")
and text in place of a formula (call `stl.parse_formula` first) raise `FormulaError`.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from stl.formula import (
    Always,
    And,
    Eventually,
    Formula,
    FormulaError,
    LinearPredicate,
    NonlinearPredicate,
    Not,
    Or,
    Param,
    Until,
    UntilSemantics,
    finite_number,
)

if TYPE_CHECKING:
    import torch
    from typing_extensions import TypeIs


class SignalError(FormulaError):
    """Signal names or values that cannot be evaluated; the message names the name or the value."""


def _is_torch(x: object) -> TypeIs[torch.Tensor]:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


@dataclass(frozen=True)
class Signals:
    """A batch of named signals: values[b, t, i] is signal names[i] at step t of item b; shape (B, T, D).

    `names` is a sequence of strings (a plain string is refused: "vx" is not ("v", "x")); `values` a numpy
    array or torch tensor, and anything else (nested lists) is converted with `np.asarray`.
    """

    names: tuple[str, ...]
    values: np.ndarray | torch.Tensor

    def __post_init__(self):
        names = self.names
        if isinstance(names, str | bytes):
            raise SignalError(f"signal names must be a tuple of strings, got the string {names!r}")
        try:
            names = tuple(names)
        except TypeError:
            raise SignalError(f"signal names must be a tuple of strings, got {names!r}") from None
        for name in names:
            if not isinstance(name, str):
                raise SignalError(f"signal names must be strings, got {name!r} in {names!r}")
        object.__setattr__(self, "names", names)
        if not (isinstance(self.values, np.ndarray) or _is_torch(self.values)):
            try:
                values = np.asarray(self.values)
            except (TypeError, ValueError) as error:
                raise SignalError(f"signal values are not an array: {_one_line(error)}") from None
            object.__setattr__(self, "values", values)

    @classmethod
    def from_mapping(cls, columns: Mapping[str, Any]) -> Signals:
        """Stack (B, T) arrays or tensors, one per name, into (B, T, D)."""
        names = tuple(columns)
        arrays = list(columns.values())
        if arrays and _is_torch(arrays[0]):
            import torch

            return cls(names, torch.stack(arrays, dim=-1)).validate()
        try:
            values = np.stack([np.asarray(a) for a in arrays], axis=-1)
        except (TypeError, ValueError) as error:
            raise SignalError(f"signals {list(names)} do not stack to (B, T, D): {_one_line(error)}") from None
        return cls(names, values).validate()

    def validate(self) -> Signals:
        """Check the shape is (B, T, D) with D == len(names), names are unique and every value is a finite
        number; SignalError (a FormulaError) otherwise."""
        shape = tuple(self.values.shape)
        if len(shape) != 3:
            raise SignalError(f"signal values must have shape (B, T, D), got {shape}")
        if shape[2] != len(self.names):
            raise SignalError(
                f"dimension mismatch: values have D={shape[2]} columns but {len(self.names)} names {self.names}"
            )
        if len(set(self.names)) != len(self.names):
            raise SignalError(f"duplicate signal names in {self.names}")
        _check_finite(self)
        return self


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def _check_finite(signals: Signals) -> None:
    """SignalError naming the signal, item, step and value of the first non-finite or non-numeric value."""
    values = signals.values
    if _is_torch(values):
        values = values.detach()
        if values.is_complex():
            raise SignalError(f"signal values must be real numbers, got dtype {values.dtype}")
        if values.is_floating_point() and not bool(values.sum().isfinite()):  # all finite if the sum is
            bad = (~values.isfinite()).nonzero()
            if len(bad):
                b, t, d = (int(i) for i in bad[0])
                raise SignalError(f"signal {signals.names[d]!r} is {values[b, t, d].item()} at item {b}, "
                                  f"step {t}; values must be finite")
        return
    if values.dtype.kind not in "biuf":
        raise SignalError(f"signal values must be real numbers, got dtype {values.dtype}")
    with np.errstate(over="ignore"):
        total = values.sum() if values.dtype.kind == "f" else 0.0
    if not np.isfinite(total):  # all values are finite if their sum is
        bad_idx = np.argwhere(~np.isfinite(values))
        if len(bad_idx):
            b, t, d = (int(i) for i in bad_idx[0])
            raise SignalError(f"signal {signals.names[d]!r} is {values[b, t, d]} at item {b}, step {t}; "
                              "values must be finite")


class Mode(enum.Enum):
    """EXACT: min / max; SMOOTH: their smooth approximations at a temperature (module docstring)."""

    EXACT = "exact"
    SMOOTH = "smooth"


class _Ops:
    """min/max/cumulative-min and windows for one backend (numpy or torch) and one mode."""

    def __init__(self, torch_mode: bool, smooth: bool, tau: float, max_kind: str):
        if max_kind not in ("boltzmann", "logsumexp"):
            raise FormulaError(f"max_kind must be 'boltzmann' or 'logsumexp', got {max_kind!r}")
        tau_value = finite_number(tau, "temperature")
        if not tau_value > 0:
            raise FormulaError(f"temperature must be positive, got {tau!r}")
        self.torch, self.smooth, self.tau, self.max_kind = torch_mode, smooth, tau_value, max_kind
        if torch_mode:
            import torch

            self.T = torch

    def window(self, x, start: int, size: int, n: int):
        """(B, n, size) with out[:, t, j] = x[:, t + start + j]."""
        x = x[:, start : start + n + size - 1]
        if self.torch:
            return x.unfold(1, size, 1)
        return x[:, None] if n == 1 else sliding_window_view(x, size, axis=1)  # one window: just a view

    def stack(self, xs):
        return self.T.stack(xs, dim=-1) if self.torch else np.stack(xs, axis=-1)

    def concat(self, xs):
        return self.T.cat(xs, dim=-1) if self.torch else np.concatenate(xs, axis=-1)

    def _lse(self, x):
        if self.torch:
            return self.T.logsumexp(x, dim=-1)
        m = np.max(x, axis=-1, keepdims=True)
        return np.log(np.sum(np.exp(x - m), axis=-1)) + m[..., 0]

    def min(self, x):
        """Min over the last axis (soft-min in smooth mode)."""
        if not self.smooth:
            return x.amin(dim=-1) if self.torch else np.min(x, axis=-1)
        return -self._lse(-self.tau * x) / self.tau

    def max(self, x):
        """Max over the last axis (Boltzmann mean or logsumexp in smooth mode)."""
        if not self.smooth:
            return x.amax(dim=-1) if self.torch else np.max(x, axis=-1)
        if self.max_kind == "logsumexp":
            return self._lse(self.tau * x) / self.tau
        if self.torch:
            return (x * self.T.softmax(self.tau * x, dim=-1)).sum(dim=-1)
        z = self.tau * x
        w = np.exp(z - np.max(z, axis=-1, keepdims=True))
        return np.sum(x * w, axis=-1) / np.sum(w, axis=-1)

    def cummin(self, x):
        """Running min along the last axis (soft: -logcumsumexp(-tau x) / tau)."""
        if not self.smooth:
            return self.T.cummin(x, dim=-1).values if self.torch else np.minimum.accumulate(x, axis=-1)
        return -self._lcse(-self.tau * x) / self.tau

    def _lcse(self, z):
        return self.T.logcumsumexp(z, dim=-1) if self.torch else np.logaddexp.accumulate(z, axis=-1)

    def cummax(self, x):
        """Running max along the last axis (soft: the Boltzmann mean, or logcumsumexp, of each prefix).

        The Boltzmann mean of x[..., :k+1] is sum x_i e^(tau x_i) / sum e^(tau x_i); with z = x - min(x) + 1
        >= 1 both sums are logcumsumexps (log z is finite), and the mean is exp(lcse(tau x + log z) -
        lcse(tau x)) + min(x) - 1 (the shift cancels, value and gradient).
        """
        if not self.smooth:
            return self.T.cummax(x, dim=-1).values if self.torch else np.maximum.accumulate(x, axis=-1)
        z = self.tau * x
        if self.max_kind == "logsumexp":
            return self._lcse(z) / self.tau
        low = x.amin(dim=-1, keepdim=True) if self.torch else np.min(x, axis=-1, keepdims=True)
        log_shifted = self.T.log(x - low + 1.0) if self.torch else np.log(x - low + 1.0)
        exp = self.T.exp if self.torch else np.exp
        return exp(self._lcse(z + log_shifted) - self._lcse(z)) + low - 1.0


# `node` is a Formula; typed Any because dispatching on _KINDS[type(node)] does not narrow it for mypy
def _trace(node: Any, y, index: Mapping[str, int], ops: _Ops, horizons: dict[int, int] | None = None,
           negate: bool = False):
    """Robustness of `node` (of !node when `negate`) at every step where it is defined: (B, T - node.horizon).

    Exact mode negates values (`negate` stays False); smooth mode pushes negation to the predicates, so
    `negate` swaps min and max (module docstring). `horizons` memoises node.horizon by node identity over one
    evaluation (it is recursive).
    """
    kind = _KINDS.get(type(node)) or _kind(node)
    if kind == "linear":
        out = None
        for name, c in node.terms:
            term = c * y[:, :, index[name]]
            out = term if out is None else out + term
        return -(out - node.bound) if negate else out - node.bound
    if kind == "nonlinear":
        out = node.function(y[:, :, [index[name] for name in node.inputs]]) - node.bound
        return -out if negate else out
    if horizons is None:
        horizons = {}
    if kind == "not":
        if ops.smooth:
            return _trace(node.arg, y, index, ops, horizons, not negate)
        return -_trace(node.arg, y, index, ops, horizons)
    n = y.shape[1] - _horizon(node, horizons)
    if kind in ("and", "or"):
        if all(type(arg) is LinearPredicate and len(arg.terms) == 1 for arg in node.args):
            # c_i * y_i - bound_i of every operand at once, as (B, n, k): the same numbers as stacking them
            columns = [index[arg.terms[0][0]] for arg in node.args]
            scale: Any = [arg.terms[0][1] for arg in node.args]  # then an array or tensor
            bound: Any = [arg.bound for arg in node.args]
            if ops.torch:
                scale, bound = (ops.T.tensor(v, dtype=y.dtype, device=y.device) for v in (scale, bound))
            else:
                scale, bound = np.array(scale, dtype=y.dtype), np.array(bound, dtype=y.dtype)
            parts = scale * y[:, :n][:, :, columns] - bound
            if negate:
                parts = -parts
        else:
            parts = ops.stack([_trace(arg, y, index, ops, horizons, negate)[:, :n] for arg in node.args])
        return ops.min(parts) if (kind == "and") != negate else ops.max(parts)
    if kind in ("always", "eventually"):
        arg = _trace(node.arg, y, index, ops, horizons, negate)
        w = ops.window(arg, node.start, node.end - node.start + 1, n)
        return ops.min(w) if (kind == "always") != negate else ops.max(w)
    return _until(node, y, index, ops, n, horizons, negate)


_KINDS: dict[type, str] = {LinearPredicate: "linear", NonlinearPredicate: "nonlinear", Not: "not", And: "and",
                           Or: "or", Always: "always", Eventually: "eventually", Until: "until"}


def _kind(node: Formula) -> str:
    """The _KINDS key of a node of a subclass of the node types."""
    for cls, kind in _KINDS.items():
        if isinstance(node, cls):
            return kind
    raise FormulaError(f"{node}: unsupported node {type(node).__name__}")


def _horizon(node: Any, memo: dict[int, int]) -> int:
    """node.horizon, memoised by node identity in `memo`."""
    key = id(node)
    if key not in memo:
        kind = _KINDS.get(type(node))
        if kind in ("always", "eventually"):
            memo[key] = node.end + _horizon(node.arg, memo)
        elif kind == "until":
            memo[key] = node.end + max(_horizon(node.left, memo), _horizon(node.right, memo))
        elif kind in ("not", "and", "or"):
            memo[key] = max(_horizon(child, memo) for child in node.children())
        else:  # predicates, and subclasses that may define their own horizon
            memo[key] = node.horizon
    return memo[key]


def _until(node: Until, y, index, ops: _Ops, n: int, horizons: dict[int, int], negate: bool = False):
    """max over k in [a, b] of min(right(t + k), min left[t + s0, t + k)), s0 = 0 (textbook) or a (stlpy).

    With `negate` (smooth mode only) its dual, the release: min over k of max(!right(t + k), max !left[..)).
    """
    left = _trace(node.left, y, index, ops, horizons, negate)
    right = _trace(node.right, y, index, ops, horizons, negate)
    outer, inner, running = (ops.min, ops.max, ops.cummax) if negate else (ops.max, ops.min, ops.cummin)
    a, b = node.start, node.end
    s0 = 0 if node.semantics is UntilSemantics.TEXTBOOK else a
    r = ops.window(right, a, b - a + 1, n)  # r[..., j] = right(t + a + j)
    parts = []
    j0 = 1 if a == s0 else 0  # k = a + j0 is the first switch time with a non-empty left interval
    if j0:
        parts.append(r[..., :1])
    if b > s0:
        prefix = running(ops.window(left, s0, b - s0, n))  # prefix[..., i] = min (max) left[t+s0 .. t+s0+i]
        held = prefix[..., a - s0 + j0 - 1 : b - s0]
        parts.append(inner(ops.stack([r[..., j0:], held])))
    return outer(ops.concat(parts) if len(parts) > 1 else parts[0])


def _check(formula: Formula, signals: Signals, params: Mapping[str, float] | None) -> Formula:
    if not isinstance(formula, Formula):
        if isinstance(formula, str):
            raise FormulaError(f"robustness needs a Formula, got the string {formula!r}; "
                               "parse it with stl.parse_formula first")
        raise FormulaError(f"robustness needs a Formula, got {type(formula).__name__} {formula!r}")
    if not isinstance(signals, Signals):
        raise SignalError(f"robustness needs Signals, got {type(signals).__name__}")
    try:
        signals.validate()
    except FormulaError as err:
        raise type(err)(f"{formula}: {err}") from None
    if params:
        formula = formula.bind(params)
    for node in formula.nodes():
        if isinstance(node, LinearPredicate | NonlinearPredicate):
            if isinstance(node.bound, Param):
                raise FormulaError(f"{node}: missing parameter {node.bound.name!r} (bind it or pass params=)")
            unknown = sorted(node.signals() - set(signals.names))
            if unknown:
                raise FormulaError(f"{node}: unknown signal(s) {unknown}; signals are {list(signals.names)}")
    return formula


def robustness(
    formula: Formula,
    signals: Signals,
    t: int | None = 0,
    mode: Mode | str = Mode.EXACT,
    temperature: float = 100.0,
    params: Mapping[str, float] | None = None,
    max_kind: str = "boltzmann",
):
    """Robustness of `formula` on a (B, T, D) batch: (B,) at step `t`, or (B, T - horizon) for t=None.

    numpy in gives numpy out; torch in gives torch out (same device and dtype, differentiable).
    Needs t + horizon < T (stlpy's condition). `params` fills unbound `Param` bounds with finite numbers.
    `temperature` (finite, > 0; used in smooth mode) is tau [1 / robustness units]. A string formula is
    refused (parse it with `parse_formula`); bad input raises FormulaError or SignalError (module docstring).
    """
    try:
        mode = Mode(mode)
    except ValueError:
        raise FormulaError(f"mode must be 'exact' or 'smooth', got {mode!r}") from None
    formula = _check(formula, signals, params)
    values = signals.values
    torch_mode = _is_torch(values)
    if not torch_mode:
        values = np.asarray(values)
        if not np.issubdtype(values.dtype, np.floating):
            values = values.astype(np.float64)
    ops = _Ops(torch_mode, mode is Mode.SMOOTH, temperature, max_kind)
    horizons: dict[int, int] = {}
    steps, h = values.shape[1], _horizon(formula, horizons)
    if t is None:
        if steps - h <= 0:
            raise FormulaError(f"{formula}: window past the end: horizon {h} needs more than {steps} steps")
        return _trace(formula, values, {n: i for i, n in enumerate(signals.names)}, ops, horizons)
    if not isinstance(t, int | np.integer) or t < 0 or t + h >= steps:
        raise FormulaError(
            f"{formula}: window past the end: t + horizon = {t} + {h} needs T > {t + h}, signals have {steps}"
        )
    window = values[:, t : t + h + 1]
    return _trace(formula, window, {n: i for i, n in enumerate(signals.names)}, ops, horizons)[:, 0]
