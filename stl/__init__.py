"""Signal Temporal Logic: formulas, batched robustness, driving rules with typed parameters, calibration."""

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
from stl.robustness import Mode, SignalError, Signals, robustness
from stl.text import format_formula, parse_formula, register_function

__all__ = [
    "Always",
    "And",
    "Eventually",
    "Formula",
    "FormulaError",
    "LinearPredicate",
    "Mode",
    "NonlinearPredicate",
    "Not",
    "Or",
    "Param",
    "SignalError",
    "Signals",
    "Until",
    "UntilSemantics",
    "format_formula",
    "parse_formula",
    "register_function",
    "robustness",
]
