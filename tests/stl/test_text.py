"""Text syntax: parse examples, printing, exact round trips (hypothesis) and syntax errors."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stl import (
    Always,
    And,
    Eventually,
    FormulaError,
    LinearPredicate,
    NonlinearPredicate,
    Not,
    Or,
    Param,
    Until,
    UntilSemantics,
    format_formula,
    parse_formula,
    register_function,
)


def dist(y):
    return (y**2).sum(-1) ** 0.5


register_function("dist", dist)


def lin(*terms, bound=0.0):
    return LinearPredicate(tuple(terms), bound)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2*v - x >= 3", lin(("v", 2.0), ("x", -1.0), bound=3.0)),
        ("v <= {v_max}", lin(("v", -1.0), bound=Param("v_max", -1.0))),
        ("v >= -{v_min}", lin(("v", 1.0), bound=Param("v_min", -1.0))),
        ("x >= 2.5 * {k}", lin(("x", 1.0), bound=Param("k", 2.5))),
        ("x > y", lin(("x", 1.0), ("y", -1.0))),
        ("3 < x", lin(("x", 1.0), bound=3.0)),
        ("-x + 1 >= 0.5", lin(("x", -1.0), bound=-0.5)),
        ("1e-3*a >= .5", lin(("a", 0.001), bound=0.5)),
        ("dist(px, py) >= 2", NonlinearPredicate("dist", ("px", "py"), dist, 2.0)),
        ("!(v >= 1)", Not(lin(("v", 1.0), bound=1.0))),
        ("G[0,40](v >= 2)", Always(lin(("v", 1.0), bound=2.0), 0, 40)),
        ("F[ 1 , 3 ] !v >= 0", Eventually(Not(lin(("v", 1.0))), 1, 3)),
        ("a>=0 & b>=0 | c>=0", Or((And((lin(("a", 1.0)), lin(("b", 1.0)))), lin(("c", 1.0))))),
        ("a>=0 & (b>=0 & c>=0)", And((lin(("a", 1.0)), And((lin(("b", 1.0)), lin(("c", 1.0))))))),
        ("a >= 0 U[1,4] b >= 0", Until(lin(("a", 1.0)), lin(("b", 1.0)), 1, 4)),
        ("(a >= 0) U_stlpy[1,4] (b >= 0)",
         Until(lin(("a", 1.0)), lin(("b", 1.0)), 1, 4, UntilSemantics.STLPY)),
        ("G[0,1] a >= 0 U[0,2] b >= 0 & c >= 0",
         And((Until(Always(lin(("a", 1.0)), 0, 1), lin(("b", 1.0)), 0, 2), lin(("c", 1.0))))),
    ],
)
def test_parse_examples(text, expected):
    parsed = parse_formula(text)
    assert parsed == expected
    assert parse_formula(format_formula(parsed)) == parsed


def test_canonical_printing():
    assert str(parse_formula("v <= {v_max}")) == "v <= {v_max}"
    assert str(parse_formula("2*v - x > 3")) == "2.0*v - x >= 3.0"
    assert str(parse_formula("-v - 2*x >= 1")) == "v + 2.0*x <= -1.0"
    text = "G[0,40](v >= 2) & F[0,20](G[0,20](dl <= 0.5 & dl >= -0.5))"
    assert str(parse_formula(text)) == "G[0,40] (v >= 2.0) & F[0,20] G[0,20] (dl <= 0.5 & dl >= -0.5)"
    assert str(parse_formula("!(a>=0 | b>=0)")) == "!(a >= 0.0 | b >= 0.0)"
    assert str(parse_formula("dist(x, y) >= -{r}")) == "dist(x, y) >= -{r}"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("v >=", "position 4 near 'end of input'"),
        ("G[0,1 v >= 2", "position 6 near 'v': expected ']'"),
        ("G[0,x] v >= 2", "position 4 near 'x'"),
        ("G[2,1] v >= 2", "0 <= start <= end"),
        ("v >= 2 & ", "position 9"),
        ("v $ 3", "position 2: unexpected character '$'"),
        ("v >= {a} + 1", "one parameter or constants"),
        ("v >= {a} + {b}", "position 12 near 'b': expected a single parameter"),
        ("foo(x) >= 1", "unknown function 'foo'"),
        ("(v >= 1", "expected ')'"),
        ("v >= 1)", "position 6 near ')': expected an operator or end of input"),
        ("v", "expected a comparison"),
        ("3 >= 2", "reads no signal"),
        ("dist(x) <= 1", "expected '>='"),
        ("dist(x) >= y", "reads a signal"),
    ],
)
def test_syntax_errors(text, fragment):
    with pytest.raises(FormulaError) as err:
        parse_formula(text)
    assert fragment in str(err.value)


_names = st.sampled_from(["a", "b", "v_max", "ego.v", "G", "x1"])
_float = st.floats(allow_nan=False, allow_infinity=False, width=64)
_bound = st.one_of(_float, st.builds(Param, st.sampled_from(["k", "v_min"]), _float))
_linear = st.builds(lambda t, b: LinearPredicate(tuple(t), b),
                    st.lists(st.tuples(_names, _float), min_size=1, max_size=3), _bound)
_nonlinear = st.builds(lambda ins, b: NonlinearPredicate("dist", tuple(ins), dist, b),
                       st.lists(_names, min_size=1, max_size=3), _bound)
_window = st.integers(0, 50).flatmap(lambda a: st.tuples(st.just(a), st.integers(a, a + 50)))


def _formulas():
    return st.recursive(
        st.one_of(_linear, _nonlinear),
        lambda sub: st.one_of(
            sub.map(Not),
            st.lists(sub, min_size=2, max_size=3).map(lambda fs: And(tuple(fs))),
            st.lists(sub, min_size=2, max_size=3).map(lambda fs: Or(tuple(fs))),
            st.tuples(sub, _window).map(lambda x: Always(x[0], *x[1])),
            st.tuples(sub, _window).map(lambda x: Eventually(x[0], *x[1])),
            st.tuples(sub, sub, _window, st.sampled_from(UntilSemantics)).map(
                lambda x: Until(x[0], x[1], *x[2], x[3])),
        ),
        max_leaves=8,
    )


@settings(max_examples=300, deadline=None)
@given(_formulas())
def test_round_trip(formula):
    text = format_formula(formula)
    assert parse_formula(text) == formula
    assert format_formula(parse_formula(text)) == text
