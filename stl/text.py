"""A short text syntax for STL formulas: `parse_formula` and `format_formula`, which round-trip.

Grammar (loosest binding first; `&` and `|` chain, `U` is left-associative)::

    or      := and ('|' and)*
    and     := until ('&' until)*
    until   := unary (('U' | 'U_stlpy') '[' int ',' int ']' unary)*
    unary   := '!' unary | ('G' | 'F') '[' int ',' int ']' unary | '(' or ')' | predicate
    predicate := sum ('>=' | '<=' | '>' | '<') sum        e.g. `2*v - x >= 3`, `v <= {v_max}`
               | name '(' sig (',' sig)* ')' ('>=' | '>') bound     (a registered function)
    sum     := ['+' | '-'] term (('+' | '-') term)*,  term := [number '*'] (signal | '{' param '}') | number

A linear predicate is `sum_i c_i y_i - bound >= 0`; `>` and `<` read as `>=` and `<=` (robustness does not
tell them apart). A parameter may appear once, scaled (`-{v_max}` is `Param("v_max", -1)`), not with a constant.
Floats print with `repr`, so finite values round-trip exactly. Numbers must be finite: `1e999` is refused, and
so are `nan`, `inf` and `infinity` (any case) as signal names, so `y >= nan` is an error, not a signal `nan`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import cast

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

_FUNCTIONS: dict[str, Callable] = {}
_NON_FINITE = frozenset({"nan", "inf", "infinity"})  # float() reads these: never signal names


def register_function(name: str, fn: Callable) -> None:
    """Make `name(sig, ...) >= bound` parse to a NonlinearPredicate calling `fn` on (..., k) arrays."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", name):
        raise FormulaError(f"function name {name!r} is not an identifier")
    _FUNCTIONS[name] = fn


def _bound(bound) -> str:
    if isinstance(bound, Param):
        if bound.scale == 1:
            return f"{{{bound.name}}}"
        if bound.scale == -1:
            return f"-{{{bound.name}}}"
        return f"{float(bound.scale)!r}*{{{bound.name}}}"
    return repr(float(bound))


def _linear(pred: LinearPredicate) -> str:
    flip = all(c < 0 for _, c in pred.terms)  # print `v <= 3.0` rather than `-v >= -3.0`
    parts = []
    for i, (name, c) in enumerate(pred.terms):
        c = -float(c) if flip else float(c)
        neg = c < 0 or (c == 0 and str(c).startswith("-"))
        mag = "" if abs(c) == 1 else f"{float(abs(c))!r}*"
        sign = ("-" if neg else "") if i == 0 else (" - " if neg else " + ")
        parts.append(f"{sign}{mag}{name}")
    bound = pred.bound
    if flip:
        bound = Param(bound.name, -bound.scale) if isinstance(bound, Param) else -float(bound)
    return f"{''.join(parts)} {'<=' if flip else '>='} {_bound(bound)}"


_BINARY = (And, Or, Until)
_PREDICATES = (LinearPredicate, NonlinearPredicate)


def _wrap(f: Formula, kinds: tuple) -> str:
    text = format_formula(f)
    return f"({text})" if isinstance(f, kinds) else text


def format_formula(f: Formula) -> str:
    """Canonical text of `f`; `parse_formula(format_formula(f)) == f` for finite floats."""
    if isinstance(f, LinearPredicate):
        return _linear(f)
    if isinstance(f, NonlinearPredicate):
        return f"{f.name}({', '.join(f.inputs)}) >= {_bound(f.bound)}"
    if isinstance(f, Not):
        return "!" + _wrap(f.arg, _BINARY + _PREDICATES)
    if isinstance(f, And | Or):
        return f" {'&' if isinstance(f, And) else '|'} ".join(_wrap(a, _BINARY) for a in f.args)
    if isinstance(f, Always | Eventually):
        op = "G" if isinstance(f, Always) else "F"
        return f"{op}[{f.start},{f.end}] {_wrap(f.arg, _BINARY + _PREDICATES)}"
    if isinstance(f, Until):
        op = "U" if f.semantics is UntilSemantics.TEXTBOOK else "U_stlpy"
        left, right = (_wrap(g, _BINARY + _PREDICATES) for g in (f.left, f.right))
        return f"{left} {op}[{f.start},{f.end}] {right}"
    raise FormulaError(f"cannot print {type(f).__name__}")


_TOKEN = re.compile(
    r"\s*(?:(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|(?P<id>[A-Za-z_][A-Za-z0-9_.]*)"
    r"|(?P<op>>=|<=|[<>!&|()\[\],*{}+-]))"
)


def _tokenize(text: str) -> list[tuple[str, str, int]]:
    tokens, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            if text[pos:].strip() == "":
                break
            bad = pos + len(text[pos:]) - len(text[pos:].lstrip())
            raise FormulaError(f"syntax error at position {bad}: unexpected character {text[bad]!r} in {text!r}")
        kind = cast(str, m.lastgroup)  # a group matched
        tokens.append((kind, m.group(kind), m.start(kind)))
        pos = m.end()
    tokens.append(("end", "end of input", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str):
        self.text, self.tokens, self.i = text, _tokenize(text), 0

    def peek(self, k: int = 0) -> tuple[str, str, int]:
        return self.tokens[min(self.i + k, len(self.tokens) - 1)]

    def error(self, expected: str) -> FormulaError:
        _, tok, pos = self.peek()
        return FormulaError(f"syntax error at position {pos} near {tok!r}: expected {expected} in {self.text!r}")

    def accept(self, *values: str) -> str | None:
        kind, tok, _ = self.peek()
        if kind != "num" and tok in values and kind != "end":
            self.i += 1
            return tok
        return None

    def expect(self, value: str) -> None:
        if self.accept(value) is None:
            raise self.error(repr(value))

    def refuse_non_finite(self, tok: str, pos: int) -> None:
        """FormulaError if `tok` (a number or a signal name at `pos`) reads as a non-finite float."""
        if tok.lower() in _NON_FINITE:
            raise FormulaError(f"syntax error at position {pos}: {tok!r} is not a finite number and cannot "
                               f"name a signal, in {self.text!r}")
        if self.peek()[0] == "num" and not math.isfinite(float(tok)):
            raise FormulaError(f"syntax error at position {pos}: number {tok!r} is not finite, in {self.text!r}")

    def integer(self) -> int:
        kind, tok, _ = self.peek()
        if kind != "num" or not tok.isdigit():
            raise self.error("a non-negative integer time bound")
        self.i += 1
        return int(tok)

    def window(self) -> tuple[int, int]:
        self.expect("[")
        a = self.integer()
        self.expect(",")
        b = self.integer()
        self.expect("]")
        return a, b

    def formula(self) -> Formula:
        return self.chain("|", Or, lambda: self.chain("&", And, self.until))

    def chain(self, op: str, kind: type, sub: Callable[[], Formula]) -> Formula:
        args = [sub()]
        while self.accept(op):
            args.append(sub())
        return args[0] if len(args) == 1 else kind(tuple(args))

    def is_temporal(self, *names: str) -> bool:
        kind, tok, _ = self.peek()
        return kind == "id" and tok in names and self.peek(1)[1] == "["

    def until(self) -> Formula:
        left = self.unary()
        while self.is_temporal("U", "U_stlpy"):
            _, tok, _ = self.peek()
            self.i += 1
            a, b = self.window()
            sem = UntilSemantics.TEXTBOOK if tok == "U" else UntilSemantics.STLPY
            left = Until(left, self.unary(), a, b, sem)
        return left

    def unary(self) -> Formula:
        if self.accept("!"):
            return Not(self.unary())
        if self.is_temporal("G", "F"):
            _, tok, _ = self.peek()
            self.i += 1
            a, b = self.window()
            return (Always if tok == "G" else Eventually)(self.unary(), a, b)
        if self.accept("("):
            inner = self.formula()
            self.expect(")")
            return inner
        return self.predicate()

    def predicate(self) -> Formula:
        kind, _, pos = self.peek()
        if kind == "id" and self.peek(1)[1] == "(":
            return self.nonlinear()
        lhs = self.sum()
        op = self.accept(">=", "<=", ">", "<")
        if op is None:
            raise self.error("a comparison (>=, <=, >, <)")
        rhs = self.sum()
        if op in ("<=", "<"):
            lhs, rhs = rhs, lhs
        terms = tuple(lhs[0]) + tuple((n, -c) for n, c in rhs[0])
        if not terms:
            raise FormulaError(f"syntax error at position {pos}: the predicate reads no signal in {self.text!r}")
        return LinearPredicate(terms, self.combine_bound(lhs, rhs, pos))

    def combine_bound(self, lhs, rhs, pos: int):
        """Bound of `lhs >= rhs`: rhs constants minus lhs constants."""
        params = [p for p in (lhs[2], rhs[2]) if p is not None]
        consts = lhs[1] + rhs[1]
        if len(params) > 1 or (params and consts):
            raise FormulaError(
                f"syntax error at position {pos}: a bound is one parameter or constants, not both, "
                f"in {self.text!r}"
            )
        if rhs[2] is not None:
            return rhs[2]
        if lhs[2] is not None:
            return Param(lhs[2].name, -lhs[2].scale)
        lo, hi = (c[0] if len(c) == 1 else sum(c) for c in (lhs[1], rhs[1]))  # keeps the sign of -0.0
        return float(-lo if not rhs[1] else hi - lo if lhs[1] else hi)

    def sum(self) -> tuple[list[tuple[str, float]], list[float], Param | None]:
        """(signal terms, constants, parameter) of `['-'] term (('+'|'-') term)*`."""
        terms: list[tuple[str, float]]
        consts: list[float]
        param: Param | None
        terms, consts, param = [], [], None
        op: str | None = self.accept("-", "+") or "+"
        while True:
            coef = -1.0 if op == "-" else 1.0
            kind, tok, pos = self.peek()
            if kind == "num":
                self.refuse_non_finite(tok, pos)
                self.i += 1
                coef *= float(tok)
                if not self.accept("*"):
                    consts.append(coef)
                    op = self.accept("+", "-")
                    if op is None:
                        return terms, consts, param
                    continue
                kind, tok, pos = self.peek()
            if kind == "id" and not self.is_temporal("G", "F", "U", "U_stlpy"):
                self.refuse_non_finite(tok, pos)
                self.i += 1
                terms.append((tok, coef))
            elif self.accept("{"):
                if self.peek()[0] != "id" or param is not None:
                    raise self.error("one parameter name" if param is None else "a single parameter")
                param = Param(self.peek()[1], coef)
                self.i += 1
                self.expect("}")
            else:
                raise self.error("a signal, number or {parameter}")
            op = self.accept("+", "-")
            if op is None:
                return terms, consts, param

    def nonlinear(self) -> NonlinearPredicate:
        _, name, pos = self.peek()
        if name not in _FUNCTIONS:
            raise FormulaError(
                f"unknown function {name!r} at position {pos} in {self.text!r}; "
                "register it with stl.text.register_function"
            )
        self.i += 2
        inputs = []
        while True:
            kind, tok, pos = self.peek()
            if kind != "id":
                raise self.error("a signal name")
            self.refuse_non_finite(tok, pos)
            self.i += 1
            inputs.append(tok)
            if not self.accept(","):
                break
        self.expect(")")
        if self.accept(">=", ">") is None:
            raise self.error("'>=' (a function predicate reads `g(y) >= bound`)")
        rhs = self.sum()
        if rhs[0]:
            raise FormulaError(f"syntax error at position {pos}: the bound of {name}(...) reads a signal")
        bound = self.combine_bound(([], [], None), rhs, pos)
        return NonlinearPredicate(name, tuple(inputs), _FUNCTIONS[name], bound)


def parse_formula(text: str) -> Formula:
    """Parse the syntax above; a FormulaError names the position and token of a syntax error."""
    parser = _Parser(text)
    formula = parser.formula()
    if parser.peek()[0] != "end":
        raise parser.error("an operator or end of input")
    return formula
