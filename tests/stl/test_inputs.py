"""Bad input to STL: each case is a typed one-line error that names the offending value, or a tested policy."""

import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import diffplan.commands.stl
from stl import (
    FormulaError,
    LinearPredicate,
    NonlinearPredicate,
    Param,
    SignalError,
    Signals,
    parse_formula,
    robustness,
)
from stl.calibrate import calibrate
from stl.rules import rule_set
from stl.signals import SIGNAL_NAMES

Y = np.array([0.0, 1, 3, 2, -1]).reshape(1, 5, 1)
SIG = Signals(("y",), Y)
G = parse_formula("G[0,3] y >= 0")


def raises_one_line(error: type[Exception], call, *needles: str) -> str:
    """Run `call`, expect exactly `error` (or a subclass) with a one-line message holding every needle."""
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and message, message
    for needle in needles:
        assert needle in message, (needle, message)
    return message


# ------------------------------------------------------------------ non-finite values


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_signal_values_are_refused(bad):
    values = Y.copy()
    values[0, 2, 0] = bad
    for sig in (Signals(("y",), values), Signals(("y",), torch.tensor(values))):
        for mode in ("exact", "smooth"):
            raises_one_line(SignalError, lambda s=sig, m=mode: robustness(G, s, mode=m),
                            f"signal 'y' is {bad}", "item 0, step 2", "G[0,3]")
    raises_one_line(SignalError, lambda: Signals(("y",), values).validate(), f"is {bad}")
    raises_one_line(SignalError, lambda: calibrate(rule_set("speed_band"), _drive(bad), 0.9), f"is {bad}")


def test_huge_finite_signal_values_are_accepted():
    values = np.full((1, 5, 1), 1e308)  # their sum overflows to inf; each value is finite
    assert robustness(G, Signals(("y",), values))[0] == 1e308


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_parameters_are_refused(bad):
    f = parse_formula("G[0,3] y <= {v_max}")
    raises_one_line(FormulaError, lambda: robustness(f, SIG, params={"v_max": bad}), "'v_max'", str(bad))
    raises_one_line(FormulaError, lambda: f.bind({"v_max": np.float64(bad)}), "'v_max'", str(bad))


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_coefficients_and_bounds_are_refused(bad):
    raises_one_line(FormulaError, lambda: LinearPredicate((("y", bad),)), "coefficient of 'y'", str(bad))
    raises_one_line(FormulaError, lambda: LinearPredicate((("y", 1.0),), bad), "bound", str(bad))
    raises_one_line(FormulaError, lambda: Param("k", bad), "scale of parameter 'k'", str(bad))
    raises_one_line(FormulaError, lambda: NonlinearPredicate("sq", ("y",), np.square, bad), "'sq'", str(bad))


# ------------------------------------------------------------------ values as lists, text as a formula


def test_values_as_lists_are_converted_with_numpy():
    as_list = Signals(("y",), Y.tolist())
    assert isinstance(as_list.values, np.ndarray)
    assert robustness(G, as_list)[0] == robustness(G, SIG)[0] == 0.0
    mapped = Signals.from_mapping({"y": Y[..., 0].tolist()})
    np.testing.assert_array_equal(robustness(G, mapped, t=None), robustness(G, SIG, t=None))


def test_values_that_are_not_numbers_are_refused():
    raises_one_line(SignalError, lambda: Signals(("y",), [[[0.0], [1.0, 2.0]]]), "not an array", "inhomogeneous")
    raises_one_line(SignalError, lambda: robustness(G, Signals(("y",), [[["a"]] * 5])), "real numbers", "<U1")
    raises_one_line(SignalError, lambda: robustness(G, Y), "needs Signals", "ndarray")


def test_text_in_place_of_a_formula_is_refused():
    # policy: no implicit parsing; the message names the text and says to call parse_formula
    raises_one_line(FormulaError, lambda: robustness("G[0,3] y >= 0", SIG), "'G[0,3] y >= 0'", "parse_formula")
    raises_one_line(FormulaError, lambda: robustness(3, SIG), "int 3")


# ------------------------------------------------------------------ signal names


def test_a_plain_string_of_names_is_refused():
    raises_one_line(SignalError, lambda: Signals("vx", np.zeros((1, 3, 2))), "'vx'", "tuple of strings")
    raises_one_line(SignalError, lambda: Signals(("v", 3), np.zeros((1, 3, 2))), "3")
    assert Signals(["v", "x"], np.zeros((1, 3, 2))).names == ("v", "x")  # any sequence of strings is fine
    raises_one_line(FormulaError, lambda: NonlinearPredicate("sq", "vx", np.square), "'vx'")


# ------------------------------------------------------------------ non-finite numbers in text


@pytest.mark.parametrize("text, fragment", [
    ("y >= nan", "position 5: 'nan' is not a finite number and cannot name a signal"),
    ("y >= inf", "position 5: 'inf' is not a finite number"),
    ("y >= -Infinity", "position 6: 'Infinity' is not a finite number"),
    ("NaN + y >= 0", "position 0: 'NaN' is not a finite number"),
    ("y >= 1e999", "position 5: number '1e999' is not finite"),
    ("1e400 * y >= 0", "position 0: number '1e400' is not finite"),
])
def test_non_finite_numbers_in_text_are_refused(text, fragment):
    raises_one_line(FormulaError, lambda: parse_formula(text), fragment, repr(text))


def test_function_inputs_named_nan_are_refused():
    from stl import register_function

    register_function("sq", lambda y: (y**2).sum(-1))
    raises_one_line(FormulaError, lambda: parse_formula("sq(x, inf) >= 1"), "'inf'", "position 6")
    assert parse_formula("y >= {nan}").bound == Param("nan")  # a parameter may be called that: it is braced


# ------------------------------------------------------------------ temperature, mode, parameters


@pytest.mark.parametrize("bad", [math.inf, math.nan, 0.0, -1.0, "fast", None])
def test_bad_temperatures_are_refused(bad):
    raises_one_line(FormulaError, lambda: robustness(G, SIG, mode="smooth", temperature=bad), "temperature",
                    repr(bad))


def test_bad_mode_and_max_kind_are_refused():
    raises_one_line(FormulaError, lambda: robustness(G, SIG, mode="fast"), "mode", "'fast'")
    raises_one_line(FormulaError, lambda: robustness(G, SIG, mode="smooth", max_kind="soft"), "'soft'")


@pytest.mark.parametrize("bad", [None, "fast", "3", True, [3.0]])
def test_parameters_that_are_not_numbers_are_refused(bad):
    f = parse_formula("G[0,3] y <= {v_max}")
    raises_one_line(FormulaError, lambda: robustness(f, SIG, params={"v_max": bad}), "'v_max'", repr(bad))
    raises_one_line(FormulaError, lambda: f.bind({"v_max": bad}), "parameter 'v_max'", repr(bad))


def test_numeric_parameter_types_are_accepted():
    f = parse_formula("G[0,3] y <= {v_max}")
    for good in (3, 3.0, np.float32(3.0), np.int64(3), np.array(3.0), torch.tensor(3.0)):
        assert robustness(f, SIG, params={"v_max": good})[0] == 0.0


# ------------------------------------------------------------------ the CLI reports these as one line


def _drive(bad: float | None = None, items: int = 3) -> Signals:
    """Plausible driving signals (items, 41, D), with one value of v set to `bad`."""
    values = np.zeros((items, 41, len(SIGNAL_NAMES)))
    values[..., SIGNAL_NAMES.index("v")] = 10.0
    values[..., SIGNAL_NAMES.index("stop_dist")] = values[..., SIGNAL_NAMES.index("s")] = 1000.0
    values[..., SIGNAL_NAMES.index("d_l")] = values[..., SIGNAL_NAMES.index("d_r")] = 100.0
    if bad is not None:
        values[1, 7, SIGNAL_NAMES.index("v")] = bad
    return Signals(SIGNAL_NAMES, values)


def test_cli_reports_bad_signals_as_one_line(monkeypatch, tmp_path):
    def invoke(signals: Signals, *args: str):
        monkeypatch.setattr(diffplan.commands.stl, "dataset_windows", lambda path: (signals, ["lane_follow"] * 3))
        return CliRunner().invoke(diffplan.commands.stl.app, [*args, "--data", str(tmp_path)])

    out = tmp_path / "params.json"
    result = invoke(_drive(), "calibrate", "--rules", "speed_band", "--out", str(out))
    assert result.exit_code == 0, result.output
    for args in (("calibrate", "--out", str(tmp_path / "other.json")), ("check", "--params", str(out))):
        result = invoke(_drive(math.nan), *args)
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and "signal 'v' is nan" in lines[0], lines
