"""Batched robustness equals stlpy 0.3 (float64, 1e-9) and the recorded fixtures; smooth mode, torch, errors."""

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from stlpy.benchmarks import DoorPuzzle, NarrowPassage, NonlinearReachAvoid, ReachAvoid

from stl import (
    And,
    FormulaError,
    LinearPredicate,
    Mode,
    NonlinearPredicate,
    Or,
    Param,
    Signals,
    UntilSemantics,
    parse_formula,
    register_function,
    robustness,
)
from stl.bench import bench_stl
from stl.robustness import _Ops
from stl.stlpy_bridge import stlpy_robustness, to_stlpy


def sqnorm(y):
    return (y**2).sum(-1)


register_function("sqnorm", sqnorm)

Y = np.array([0.0, 1, 3, 2, -1]).reshape(1, 5, 1)
SIG = Signals(("y",), Y)
P = parse_formula("y >= 0.5")
Q = parse_formula("y <= 2.5")

FIXTURES = [
    (P, 0, -0.5), (P, 2, 2.5), (P.always(0, 4), 0, -1.5), (P.eventually(0, 4), 0, 2.5),
    (P.always(1, 3), 0, 0.5), (P.eventually(0, 1), 0, 0.5), (P.eventually(0, 1), 3, 1.5),
    (P & Q, 2, -0.5), (P | Q, 2, 2.5), (~P, 2, -2.5),
    (P.until(Q, 0, 4), 0, 2.5), (Q.until(P, 0, 4), 0, 1.5),
    (P.until(Q, 2, 4, UntilSemantics.STLPY), 0, 1.5),
    (P.eventually(0, 2).always(0, 2), 0, 2.5), ((P | Q).always(0, 4), 0, 1.5),
]


@pytest.mark.parametrize("formula, t, expected", FIXTURES)
def test_reference_fixtures(formula, t, expected):
    ours = robustness(formula, SIG, t)
    assert ours.shape == (1,) and ours.dtype == np.float64 and ours[0] == pytest.approx(expected, abs=1e-12)
    assert stlpy_robustness(to_stlpy(formula, ["y"]), Y, t)[0] == pytest.approx(expected, abs=1e-12)


def test_past_the_end_is_our_error_where_stlpy_asserts():
    with pytest.raises(AssertionError, match="requested timestep 5"):
        stlpy_robustness(to_stlpy(P.always(0, 5), ["y"]), Y)
    with pytest.raises(FormulaError, match="window past the end") as err:
        robustness(P.always(0, 5), SIG)
    assert "G[0,5] (y >= 0.5)" in str(err.value)


def test_until_semantics_differ_when_start_is_positive():
    # y = 0, 1, 3, 2, -1; p: y - 0.5 = -.5, .5, 2.5, 1.5, -1.5; q: 2.5 - y = 2.5, 1.5, -.5, .5, 3.5
    # stlpy: max over t' in 2..4 of min(q(t'), p on [2, t')) = max(-.5, min(.5, 2.5), min(3.5, 2.5, 1.5)) = 1.5
    # textbook also needs p on [0, 2): min(p(0), p(1)) = -.5 caps everything at -.5
    textbook, stl = P.until(Q, 2, 4), P.until(Q, 2, 4, UntilSemantics.STLPY)
    assert robustness(textbook, SIG)[0] == -0.5 and robustness(stl, SIG)[0] == 1.5
    # at t = 1 (window 3..5 past the end) they need T > 5; on y[1:] + one more step, t = 0: p(1) = .5 holds
    longer = Signals(("y",), np.array([1.0, 3, 2, -1, 2, 0]).reshape(1, 6, 1))
    # p: .5, 2.5, 1.5, -1.5, 1.5; q: 1.5, -.5, .5, 3.5, .5; stlpy t'=2: min(.5, 2.5)=.5; t'=3: min(3.5,2.5,1.5)=1.5
    assert robustness(stl, longer)[0] == 1.5
    # textbook: also min(p(0), p(1)) = .5 -> min(1.5, .5) = .5
    assert robustness(textbook, longer)[0] == 0.5
    assert stlpy_robustness(to_stlpy(textbook, ["y"]), longer.values)[0] == 0.5


def test_smooth_cross_checks():
    g, f = P.always(0, 4), P.eventually(0, 4)
    for tau, lse_min, lse_max in [(1.0, -1.951914, 2.951914), (10.0, -1.500005, 2.500005)]:
        assert robustness(g, SIG, mode=Mode.SMOOTH, temperature=tau)[0] == pytest.approx(lse_min, abs=1e-6)
        smooth_max = robustness(f, SIG, mode="smooth", temperature=tau, max_kind="logsumexp")[0]
        assert smooth_max == pytest.approx(lse_max, abs=1e-6)
    assert robustness(f, SIG, mode="smooth", temperature=2.0)[0] == pytest.approx(2.343709, abs=1e-6)


def test_nonlinear_fixture():
    register_function("disc", lambda y: 1 - (y**2).sum(-1))
    values = np.array([[0, 0.5, 2], [0, 0.5, 0]]).T[None]
    sig = Signals(("a", "b"), values)
    g = parse_formula("disc(a, b) >= 0")
    assert np.allclose(robustness(g, sig, t=None), [[1.0, 0.5, -3.0]])
    assert robustness(g.eventually(0, 2), sig)[0] == 1.0
    assert robustness((~g).always(0, 2), sig)[0] == -1.0
    assert stlpy_robustness(to_stlpy((~g).always(0, 2), ("a", "b")), values)[0] == -1.0


# ------------------------------------------------------------------ random formulas against stlpy

NAMES = ("a", "b", "c")
_coef = st.sampled_from([-2.0, -1.0, 0.5, 1.0, 3.0])
_linear = st.builds(
    lambda terms, bound: LinearPredicate(tuple(terms), bound),
    st.lists(st.tuples(st.sampled_from(NAMES), _coef), min_size=1, max_size=2),
    st.floats(-1, 1, allow_nan=False),
)
_nonlinear = st.builds(
    lambda ins, bound: NonlinearPredicate("sqnorm", tuple(ins), sqnorm, bound),
    st.lists(st.sampled_from(NAMES), min_size=1, max_size=2), st.floats(0, 2),
)
_window = st.integers(0, 2).flatmap(lambda a: st.tuples(st.just(a), st.integers(a, a + 2)))


def formulas(depth: int):
    leaf = st.one_of(_linear, _linear, _nonlinear)
    if depth == 0:
        return leaf
    sub = formulas(depth - 1)
    return st.one_of(
        leaf,
        sub.map(lambda f: ~f),
        st.lists(sub, min_size=2, max_size=3).map(lambda fs: And(tuple(fs))),
        st.lists(sub, min_size=2, max_size=3).map(lambda fs: Or(tuple(fs))),
        st.tuples(sub, _window).map(lambda x: x[0].always(*x[1])),
        st.tuples(sub, _window).map(lambda x: x[0].eventually(*x[1])),
        st.tuples(sub, sub, _window, st.sampled_from(UntilSemantics)).map(
            lambda x: x[0].until(x[1], *x[2], x[3])
        ),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(formulas(4), st.integers(0, 3), st.integers(0, 2**31))
def test_random_formulas_match_stlpy(formula, extra, seed):
    try:
        oracle = to_stlpy(formula, NAMES)
    except FormulaError:
        assume(False)
    steps = formula.horizon + 1 + extra
    values = np.random.default_rng(seed).normal(size=(3, steps, 3))
    sig = Signals(NAMES, values)
    every = robustness(formula, sig, t=None)
    assert every.shape == (3, extra + 1) and every.dtype == np.float64
    for t in range(extra + 1):
        ours = robustness(formula, sig, t)
        np.testing.assert_array_equal(ours, every[:, t])
        np.testing.assert_allclose(ours, stlpy_robustness(oracle, values, t), rtol=0, atol=1e-9)


# ------------------------------------------------------------------ stlpy benchmark specifications

B6 = ("px", "py", "vx", "vy", "ux", "uy")


def inside(bounds):
    x0, x1, y0, y1 = bounds
    return parse_formula(f"px >= {x0!r} & px <= {x1!r} & py >= {y0!r} & py <= {y1!r}")


def outside(bounds):
    x0, x1, y0, y1 = bounds
    return parse_formula(f"px >= {x1!r} | px <= {x0!r} | py >= {y1!r} | py <= {y0!r}")


def circle(center, radius):
    def g(y):
        return radius**2 - (y[..., 0] - center[0]) ** 2 - (y[..., 1] - center[1]) ** 2

    return NonlinearPredicate("circle", ("px", "py"), g)


def _walks(n, steps, dim, lo, hi, seed):
    rng = np.random.default_rng(seed)
    start = rng.uniform(lo, hi, size=(n, 1, dim))
    return start + np.cumsum(rng.normal(scale=0.6, size=(n, steps, dim)), axis=1)


def _ours_vs_spec(ours, spec, values, names):
    theirs = np.array([spec.robustness(np.ascontiguousarray(y.T), 0)[0] for y in values])
    np.testing.assert_allclose(robustness(ours, Signals(names, values)), theirs, rtol=0, atol=1e-9)
    return theirs


def test_benchmark_reach_avoid_and_narrow_passage():
    goal, obs, horizon = (7.0, 8.0, 8.0, 9.0), (3.0, 5.0, 4.0, 6.0), 10
    ours = outside(obs).always(0, horizon) & inside(goal).eventually(0, horizon)
    spec = ReachAvoid(goal, obs, horizon).GetSpecification()
    theirs = _ours_vs_spec(ours, spec, _walks(64, 11, 6, 0, 10, 1), B6)
    assert theirs.std() > 0.1
    traj = np.zeros((3, 11, 6))
    traj[0, :, 0], traj[0, :, 1] = np.linspace(1, 7.5, 11), np.linspace(2, 8.5, 11)
    traj[1, :, 0], traj[1, :, 1] = np.linspace(1, 7.5, 11), np.r_[[2.0] * 6, np.linspace(2, 8.5, 5)]
    traj[2, :, :2] = (4.0, 5.0)
    np.testing.assert_allclose(robustness(ours, Signals(B6, traj)), [-0.75, 0.5, -3.0], atol=1e-12)

    passage = NarrowPassage(15)
    at_goal = Or(tuple(inside(g) for g in passage.goals))
    avoid = And(tuple(outside(o) for o in passage.obstacles))
    ours = at_goal.eventually(0, 15) & avoid.always(0, 15)
    _ours_vs_spec(ours, passage.GetSpecification(), _walks(64, 16, 6, 0, 10, 2), B6)


def test_benchmark_door_puzzle_until():
    puzzle, horizon = DoorPuzzle(12, 2), 12
    keys = [(puzzle.key1_bounds, puzzle.door1_bounds), (puzzle.key2_bounds, puzzle.door2_bounds)]
    avoid = And(tuple(outside(getattr(puzzle, f"obs{i}_bounds")) for i in range(1, 6)))
    doors = [outside(door).until(inside(key), 0, horizon) for key, door in keys]
    ours = And((avoid.always(0, horizon), *doors, inside(puzzle.goal_bounds).eventually(0, horizon)))
    _ours_vs_spec(ours, puzzle.GetSpecification(), _walks(64, 13, 6, 0, 15, 3), B6)


def test_benchmark_nonlinear_reach_avoid():
    scenario = NonlinearReachAvoid((7.5, 8.5), 0.75, (3.5, 5.0), 1.5, 15)
    ours = (~circle((3.5, 5.0), 1.5)).always(0, 15) & circle((7.5, 8.5), 0.75).eventually(0, 15)
    _ours_vs_spec(ours, scenario.GetSpecification(), _walks(64, 16, 3, 0, 10, 4), names := ("px", "py", "th"))
    line = np.zeros((1, 16, 3))
    line[0, :, 0], line[0, :, 1] = np.linspace(1, 7.5, 16), np.linspace(2, 8.5, 16)
    assert robustness(ours, Signals(names, line))[0] == pytest.approx(-2.08, abs=5e-3)


# ------------------------------------------------------------------ smooth mode, torch, gradients

SPEC = parse_formula("G[0,3] (a >= 0.2 | b <= 1) & (a >= -1) U[1,3] (F[0,2] (b >= 0.5))")


def test_torch_matches_numpy_and_keeps_dtype():
    values = np.random.default_rng(5).normal(size=(4, 10, 2))
    sig_np, sig_t = Signals(("a", "b"), values), Signals(("a", "b"), torch.tensor(values))
    for mode in Mode:
        for kind in ("boltzmann", "logsumexp"):
            out = robustness(SPEC, sig_t, t=None, mode=mode, temperature=3.0, max_kind=kind)
            assert isinstance(out, torch.Tensor) and out.dtype == torch.float64 and out.shape == (4, 5)
            ref = robustness(SPEC, sig_np, t=None, mode=mode, temperature=3.0, max_kind=kind)
            np.testing.assert_allclose(out.numpy(), ref, rtol=0, atol=1e-12)
    out32 = robustness(SPEC, Signals(("a", "b"), torch.tensor(values, dtype=torch.float32)))
    assert out32.dtype == torch.float32


@pytest.mark.parametrize("kind", ["boltzmann", "logsumexp"])
def test_smooth_gradients_match_finite_differences(kind):
    values = torch.tensor(np.random.default_rng(6).normal(size=(2, 8, 2)), requires_grad=True)

    def fn(x):
        return robustness(SPEC, Signals(("a", "b"), x), t=None, mode="smooth", temperature=2.0, max_kind=kind)

    assert torch.autograd.gradcheck(fn, (values,), eps=1e-6, atol=1e-6)


def test_smooth_bounds_and_limit():
    values = np.random.default_rng(7).normal(size=(32, 12, 2))
    sig = Signals(("a", "b"), values)
    g, f = parse_formula("G[0,11] (a >= 0)"), parse_formula("F[0,11] (a >= 0)")
    exact_g, exact_f = robustness(g, sig), robustness(f, sig)
    assert np.all(robustness(g, sig, mode="smooth", temperature=5.0) <= exact_g)
    assert np.all(robustness(f, sig, mode="smooth", temperature=5.0) <= exact_f + 1e-12)
    assert np.all(robustness(f, sig, mode="smooth", temperature=5.0, max_kind="logsumexp") >= exact_f)
    exact = robustness(SPEC, sig, t=None)
    soft = robustness(SPEC, sig, t=None, mode="smooth", temperature=1e4, max_kind="logsumexp")
    assert np.max(np.abs(soft - exact)) < 4 * math.log(12) / 1e4


# ------------------------------------------------------------------ smooth mode with negation: still a lower bound


def test_negated_always_smooth_is_not_above_exact():
    # the case: exact -0.0, and the old smooth value -softmin = +0.44 at tau = 1 read as satisfied
    sig = Signals(("y",), np.array([0.0, 1, 2, 3]).reshape(1, 4, 1))
    f = parse_formula("!(G[0,3] y >= 0)")
    exact = robustness(f, sig)[0]
    assert exact == 0.0 and math.copysign(1.0, exact) == -1.0
    smooth = robustness(f, sig, mode="smooth", temperature=1.0)[0]
    weights = np.exp(-np.arange(4.0))  # F[0,3] (-y >= 0): Boltzmann mean of 0, -1, -2, -3 at tau = 1
    assert smooth <= 0.0 and smooth == pytest.approx(-(np.arange(4.0) * weights).sum() / weights.sum())


@pytest.mark.parametrize("semantics", list(UntilSemantics))
def test_negated_until_smooth_is_the_smoothed_release(semantics):
    # !(P U[a,b] Q) = min over k of max(!Q(t + k), max of !P before); on Y: -2.5 for a = 0, and for a = 2
    # 0.5 (textbook) or -1.5 (stlpy)
    for a, expected in ((0, {UntilSemantics.TEXTBOOK: -2.5, UntilSemantics.STLPY: -2.5}),
                        (2, {UntilSemantics.TEXTBOOK: 0.5, UntilSemantics.STLPY: -1.5})):
        f = ~P.until(Q, a, 4, semantics)
        assert robustness(f, SIG)[0] == expected[semantics]
        for tau in (0.5, 1.0, 10.0):
            assert robustness(f, SIG, mode="smooth", temperature=tau)[0] <= expected[semantics]
        close = robustness(f, SIG, mode="smooth", temperature=1e4)[0]
        assert close == pytest.approx(expected[semantics], abs=1e-3)


@pytest.mark.parametrize("kind", ["boltzmann", "logsumexp"])
def test_smooth_running_max_is_the_prefix_mean(kind):
    x = np.random.default_rng(8).normal(scale=3.0, size=(2, 3, 6))
    for tau in (0.3, 2.0, 50.0):
        ops = _Ops(False, True, tau, kind)
        prefix = [ops.max(x[..., : k + 1]) for k in range(x.shape[-1])]
        np.testing.assert_allclose(ops.cummax(x), np.stack(prefix, -1), rtol=0, atol=1e-12)
        torch_ops = _Ops(True, True, tau, kind)
        np.testing.assert_allclose(torch_ops.cummax(torch.tensor(x)).numpy(), ops.cummax(x), rtol=0, atol=1e-12)


def _with_negations(depth: int):
    return st.one_of(formulas(depth), formulas(depth - 1).map(lambda f: ~f))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_with_negations(4), st.integers(0, 2**31))
def test_smooth_under_approximates_exact_with_negation_anywhere(formula, seed):
    values = np.random.default_rng(seed).normal(size=(4, formula.horizon + 3, 3))
    sig = Signals(NAMES, values)
    exact = robustness(formula, sig, t=None)
    for tau in (1.0, 10.0, 100.0, 1e3, 1e4):
        boltzmann = robustness(formula, sig, t=None, mode="smooth", temperature=tau)
        assert np.all(boltzmann <= exact + 1e-9), tau
        # the gap is O(1 / tau) (observed <= 2.5 / tau); logsumexp has no sign but converges alike
        assert np.max(exact - boltzmann) <= 20.0 / tau
        lse = robustness(formula, sig, t=None, mode="smooth", temperature=tau, max_kind="logsumexp")
        assert np.max(np.abs(lse - exact)) <= 20.0 / tau


NEGATED = parse_formula("!(G[0,3] (a >= 0.2 | !(b <= 1)) & !((a >= -1) U[1,3] !(F[0,2] b >= 0.5)))")


@pytest.mark.parametrize("kind", ["boltzmann", "logsumexp"])
def test_negated_smooth_torch_matches_numpy_and_has_gradients(kind):
    values = np.random.default_rng(9).normal(size=(3, 10, 2))
    ref = robustness(NEGATED, Signals(("a", "b"), values), t=None, mode="smooth", temperature=3.0, max_kind=kind)
    x = torch.tensor(values, requires_grad=True)

    def fn(x):
        return robustness(NEGATED, Signals(("a", "b"), x), t=None, mode="smooth", temperature=3.0, max_kind=kind)

    np.testing.assert_allclose(fn(x).detach().numpy(), ref, rtol=0, atol=1e-12)
    assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-6)


# ------------------------------------------------------------------ parameters and errors


def test_parameters_and_errors():
    f = parse_formula("G[0,2] (v <= {v_max})")
    sig = Signals(("v",), np.array([[1.0, 2.0, 4.0]])[..., None])
    assert robustness(f, sig, params={"v_max": 5.0})[0] == 1.0
    assert robustness(f.bind({"v_max": 3.0}), sig)[0] == -1.0
    assert f.bind({"v_max": 3.0}) == parse_formula("G[0,2] (v <= 3.0)")
    with pytest.raises(FormulaError, match="missing parameter 'v_max'") as err:
        robustness(f, sig)
    assert "v <= {v_max}" in str(err.value)
    with pytest.raises(FormulaError, match=r"unknown signal\(s\) \['w'\]") as err:
        robustness(parse_formula("G[0,1] (v - w >= 0)"), sig)
    assert "v - w >= 0.0" in str(err.value)
    with pytest.raises(FormulaError, match="dimension mismatch") as err:
        robustness(f, Signals(("v", "x"), sig.values), params={"v_max": 1.0})
    assert "G[0,2] (v <= {v_max})" in str(err.value)
    with pytest.raises(FormulaError, match="window past the end"):
        robustness(f, sig, t=1, params={"v_max": 1.0})
    with pytest.raises(FormulaError, match="shape"):
        Signals(("v",), np.zeros((3, 1))).validate()
    with pytest.raises(FormulaError, match="negated until"):
        to_stlpy(~P.until(Q, 0, 2), ["y"])
    with pytest.raises(FormulaError, match="missing parameter"):
        to_stlpy(parse_formula("y >= {k}"), ["y"])
    assert robustness(parse_formula("y >= -{k}"), SIG, params={"k": 1.0})[0] == 1.0
    assert isinstance(parse_formula("y >= -{k}").bound, Param)


def test_bench_smoke():
    result = bench_stl(0.05, batch=256, stlpy_items=16)
    assert result["max_abs_diff"] <= 1e-9 and result["nodes"] >= 10 and result["ratio"] > 1
