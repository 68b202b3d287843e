"""Translate formulas to stlpy 0.3 (the exact test oracle) and evaluate stlpy on a (B, T, D) batch.

stlpy negates predicates only, so negations are pushed down first (De Morgan, !G = F!, !F = G!); a negated
Until has no stlpy form. A TEXTBOOK Until with start a > 0 is written as
`G[0, a-1] left & left U_stlpy[a, b] right`, which has the same exact robustness (min distributes over max).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

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
)


def _bound(node: LinearPredicate | NonlinearPredicate) -> float:
    if isinstance(node.bound, Param):
        raise FormulaError(f"{node}: missing parameter {node.bound.name!r}; bind it before translating")
    return float(node.bound)


def _predicate(node: LinearPredicate | NonlinearPredicate, index: dict[str, int], negate: bool):
    import stlpy.STL as S

    unknown = sorted(node.signals() - set(index))
    if unknown:
        raise FormulaError(f"{node}: unknown signal(s) {unknown}; signals are {list(index)}")
    sign = -1.0 if negate else 1.0
    bound = _bound(node)
    if isinstance(node, LinearPredicate):
        a = np.zeros(len(index))
        for name, c in node.terms:
            a[index[name]] += c
        return S.LinearPredicate(sign * a, sign * bound)
    cols = [index[name] for name in node.inputs]
    fn = node.function

    def g(y):
        return sign * (float(np.asarray(fn(np.asarray(y)[cols]))) - bound)

    return S.NonlinearPredicate(g, len(index))


def _tree(args: list, kind: str):
    import stlpy.STL as S

    return S.STLTree(args, kind, [0] * len(args))


def _convert(node: Formula, index: dict[str, int], negate: bool):
    if isinstance(node, LinearPredicate | NonlinearPredicate):
        return _predicate(node, index, negate)
    if isinstance(node, Not):
        return _convert(node.arg, index, not negate)
    if isinstance(node, And | Or):
        kind = "and" if isinstance(node, And) != negate else "or"
        return _tree([_convert(arg, index, negate) for arg in node.args], kind)
    if isinstance(node, Always | Eventually):
        sub = _convert(node.arg, index, negate)
        if isinstance(node, Always) != negate:
            return sub.always(node.start, node.end)
        return sub.eventually(node.start, node.end)
    if isinstance(node, Until):
        if negate:
            raise FormulaError(f"!({node}): stlpy cannot express a negated until")
        left, right = _convert(node.left, index, False), _convert(node.right, index, False)
        until = left.until(right, node.start, node.end)
        if node.semantics is UntilSemantics.STLPY or node.start == 0:
            return until
        return _tree([left.always(0, node.start - 1), until], "and")
    raise FormulaError(f"{node}: no stlpy form for {type(node).__name__}")


def to_stlpy(formula: Formula, names: Sequence[str]):
    """The stlpy STLFormula of `formula` over the D = len(names)-dimensional signal y_t[i] = names[i]."""
    return _convert(formula, {name: i for i, name in enumerate(names)}, False)


def stlpy_robustness(stlpy_formula, values, t: int = 0) -> np.ndarray:
    """stlpy's robustness at step t for each item of a (B, T, D) batch (a Python loop: oracle only)."""
    values = np.asarray(values, dtype=np.float64)
    return np.array([float(stlpy_formula.robustness(np.ascontiguousarray(y.T), t)[0]) for y in values])
