"""Rule parameters from expert windows (pSTL §1.3 style) and satisfaction checks.

Per window: `tightest` gives, per rule, the tightest parameters the window satisfies, widened by a margin
(upper bounds + margin, lower bounds - margin); NaN where the rule does not apply (no lane change to that
side, never red, no agent). Per dataset: `calibrate` picks per-parameter quantiles at a common level q' >= q,
the smallest on a grid up to 1 - (1 - q) / k (k parameters; union bound) at which a fraction >= q of the
applicable windows satisfies the whole rule (a rule with no applicable window keeps DEFAULT_PARAMS).
`satisfaction` reports robustness >= 0 rates. A params file is `CalibratedParams` as JSON; its `rules` field is
`RuleParams.to_json()`.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import cast

import numpy as np

from scenes.errors import DiffplanError
from stl.robustness import Mode, Signals, robustness
from stl.rules import DEFAULT_PARAMS, OneRuleParams, RuleParams, RuleParamsError, RuleSet, default_deadline
from stl.signals import ABSENT, FAR

PARAMS_VERSION = 1
MARGINS: dict[str, float] = {  # [units of the parameter]
    "v_min": 0.5, "v_max": 0.5, "d_max": 0.2, "h_max": 0.05, "d_band": 0.2, "d_safe": 0.1, "d_stop": 0.2,
    "r_goal": 0.5, "a_max": 0.2, "j_max": 0.5, "w_max": 0.02,
}


class ParamsError(DiffplanError, ValueError):
    """A params JSON file that cannot be used; the message names the file and the field."""


def _col(signals: Signals, name: str) -> np.ndarray:
    return np.asarray(signals.values)[..., signals.names.index(name)]


def lane_change_side(signals: Signals) -> np.ndarray:
    """(B,) +1 left / -1 right / 0 none: the window ends nearer a neighbour lane's centreline than its own."""
    end = {k: np.abs(_col(signals, k)[:, -1]) for k in ("d_c", "d_l", "d_r")}
    left = (end["d_l"] < end["d_c"]) & (end["d_l"] < ABSENT / 2)
    right = (end["d_r"] < end["d_c"]) & (end["d_r"] < ABSENT / 2) & ~left
    return left.astype(int) - right.astype(int)


def _lane_change_tightest(signals: Signals, side: str) -> tuple[np.ndarray, np.ndarray]:
    """(B,) d_band [m], h_max [rad] at the best entry step t0 <= deadline."""
    d, h = np.abs(_col(signals, f"d_{side}")), np.abs(_col(signals, f"h_{side}"))
    horizon = d.shape[1] - 1
    deadline = default_deadline(horizon)
    stay = horizon - deadline
    band = np.stack([d[:, t:t + stay + 1].max(1) for t in range(deadline + 1)], 1)
    best = band.argmin(1)
    heading = np.stack([h[:, t:t + stay + 1].max(1) for t in range(deadline + 1)], 1)
    return band.min(1), np.take_along_axis(heading, best[:, None], 1)[:, 0]


def tightest(rules: RuleSet, signals: Signals, margins: Mapping[str, float] = MARGINS) -> dict[str, dict]:
    """Rule -> param -> (B,) tightest value of each window, with margin; NaN where the rule does not apply.

    Non-finite signal values raise SignalError (they would otherwise become NaN parameters)."""
    signals.validate()
    col = {name: _col(signals, name) for name in signals.names}
    side = lane_change_side(signals)
    red = col["red"] > 0.5
    raw: dict[str, dict[str, np.ndarray]] = {
        "speed_band": {"v_min": col["v"].min(1), "v_max": col["v"].max(1)},
        "lane_keeping": {"d_max": np.abs(col["d_c"]).max(1), "h_max": np.abs(col["h_c"]).max(1)},
        "safe_distance": {"d_safe": np.where(col["s"].min(1) < FAR / 2, col["s"].min(1), np.nan)},
        "stop_before_line": {"d_stop": np.where(red.any(1), np.where(red, col["stop_dist"], np.inf).min(1),
                                                np.nan)},
        "reach_goal": {"r_goal": col["goal_dist"].min(1)},
        "comfort": {f"{k}_max": np.abs(col[k]).max(1) for k in ("a", "j", "w")},
    }
    for name, s, sign in (("lane_change_left", "l", 1), ("lane_change_right", "r", -1)):
        if name in rules.names:
            d_band, h_max = _lane_change_tightest(signals, s)
            raw[name] = {"d_band": np.where(side == sign, d_band, np.nan),
                         "h_max": np.where(side == sign, h_max, np.nan)}
    raw["lane_keeping"] = {k: np.where(side == 0, v, np.nan) for k, v in raw["lane_keeping"].items()}
    out = {}
    for rule in rules.rules:
        out[rule.name] = {p: raw[rule.name][p] + (-1 if p in rule.lower_bounds else 1) * margins[p]
                          for p in rule.params}
    return out


FLEX_MARGINS: dict[str, float] = {**MARGINS, "v_min": 1.0, "v_max": 1.0, "d_max": 0.3, "d_band": 0.3,
                                  "h_max": 0.1, "d_safe": 0.1}  # pSTL's `infer_gt_stlp --flex`
FLEX_V_MIN_FLOOR = -0.3  # [m/s] pSTL: v_min = max(min v - 1, -0.3)


def flex_params(rules: RuleSet, signals: Signals) -> RuleParams:
    """pSTL's per-window calibration (`infer_gt_stlp --flex`) of the first window of `signals` for `rules`:
    the tightest parameters widened by FLEX_MARGINS, v_min floored at FLEX_V_MIN_FLOOR; a rule that does not
    apply (NaN: no agent, no lane change to that side) gets its loosest sensible value (d_safe 0, the lane
    rules DEFAULT_PARAMS'). The window meets the result with robustness >= the margins."""
    tight = tightest(rules, signals, FLEX_MARGINS)
    out: dict[str, dict[str, float]] = {}
    for rule in rules.rules:
        default = cast(OneRuleParams, DEFAULT_PARAMS.of(rule.name)).bindings()
        values = {}
        for name in rule.params:
            value = float(tight[rule.name][name][0])
            values[name] = value if math.isfinite(value) else (0.0 if name == "d_safe" else default[name])
        if rule.name == "speed_band":
            values["v_min"] = max(values["v_min"], FLEX_V_MIN_FLOOR)
        out[rule.name] = values
    return RuleParams.from_json(out)


def window_robustness(rules: RuleSet, signals: Signals, params: RuleParams) -> dict[str, np.ndarray]:
    """Rule -> (B,) exact robustness at t = 0 of every window under the rule's `params`."""
    horizon = signals.values.shape[1] - 1
    formulas = rules.formulas(horizon, params)
    return {name: np.asarray(robustness(f, signals, t=0, mode=Mode.EXACT), dtype=np.float64)
            for name, f in formulas.items()}


def _satisfied(rule, tight: Mapping[str, np.ndarray], theta: Mapping[str, float]) -> np.ndarray:
    ok = [(tight[p] >= theta[p]) if p in rule.lower_bounds else (tight[p] <= theta[p]) for p in rule.params]
    return np.logical_and.reduce(ok)


def _quantiles(rule, tight: Mapping[str, np.ndarray], level: float) -> dict[str, float]:
    out = {}
    for p in rule.params:
        sign = -1.0 if p in rule.lower_bounds else 1.0
        out[p] = float(sign * np.quantile(sign * tight[p], level, method="inverted_cdf"))
    return out


@dataclass(frozen=True)
class CalibratedParams:
    """Calibrated rule parameters, with how they were obtained.

    Attributes: rules (the calibrated rules' parameters); q (target satisfaction fraction); levels (rule ->
    quantile level used); margins (param -> margin [param units]); dataset (path); count (windows);
    applicable (rule -> windows used; 0 = DEFAULT_PARAMS); horizon [steps]; dt [s].
    """

    rules: RuleParams
    q: float
    levels: dict[str, float | None]
    margins: dict[str, float]
    dataset: str
    count: int
    applicable: dict[str, int]
    horizon: int
    dt: float
    version: int = field(default=PARAMS_VERSION)

    def save(self, path: Path | str) -> None:
        """Write JSON atomically (temp file + rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w") as out:
            json.dump({**asdict(self), "rules": self.rules.to_json()}, out, indent=2, sort_keys=True)
            out.write("\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path | str) -> CalibratedParams:
        """Read and check a params file; ParamsError naming the file and field otherwise."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ParamsError(f"{path}: params file not found") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ParamsError(f"{path}: not a valid JSON params file ({error})") from None
        if not isinstance(data, dict):
            raise ParamsError(f"{path}: expected a JSON object, got {type(data).__name__}")
        if data.get("version") != PARAMS_VERSION:
            raise ParamsError(f"{path}: field 'version' is {data.get('version')!r}, "
                              f"expected {PARAMS_VERSION}")
        names = [f for f in cls.__dataclass_fields__]
        missing = [f for f in names if f not in data]
        if missing:
            raise ParamsError(f"{path}: missing field {missing[0]!r}")
        if not isinstance(data["rules"], dict) or not data["rules"]:
            raise ParamsError(f"{path}: field 'rules' must be a non-empty object of rule -> params")
        try:
            rules = RuleParams.from_json(data["rules"])
        except RuleParamsError as error:
            raise ParamsError(f"{path}: {error}") from None
        if not (isinstance(data["q"], (int, float)) and 0 < data["q"] < 1):
            raise ParamsError(f"{path}: field 'q' must be in (0, 1), got {data['q']!r}")
        return cls(rules=rules, **{f: data[f] for f in names if f != "rules"})


def calibrate(rules: RuleSet, signals: Signals, q: float, dataset: str = "", dt: float = 0.1,
              margins: Mapping[str, float] = MARGINS, grid: int = 50) -> CalibratedParams:
    """Dataset-level parameters such that a fraction >= q of the applicable windows satisfies each rule."""
    if not 0 < q < 1:
        raise ValueError(f"q must be in (0, 1), got {q}")
    tight = tightest(rules, signals, margins)
    params, levels, applicable = RuleParams(), {}, {}
    for rule in rules.rules:
        mask = ~np.isnan(tight[rule.name][rule.params[0]])
        applicable[rule.name] = int(mask.sum())
        if not mask.any():
            default = cast("OneRuleParams", DEFAULT_PARAMS.of(rule.name))  # it has every rule
            params, levels[rule.name] = params.with_rule(rule.name, default), float("nan")
            continue
        sub = {p: v[mask] for p, v in tight[rule.name].items()}
        top = 1.0 - (1.0 - q) / len(rule.params)
        for level in np.linspace(q, top, grid):
            theta = _quantiles(rule, sub, float(level))
            if _satisfied(rule, sub, theta).mean() >= q:
                break
        params = params.with_rule(rule.name, rule.params_type(**theta))
        levels[rule.name] = float(level)
    found = {k: (None if math.isnan(v) else v) for k, v in levels.items()}
    used = {p: float(margins[p]) for rule in rules.rules for p in rule.params}
    return CalibratedParams(params, float(q), found, used, str(dataset), int(signals.values.shape[0]),
                            applicable, int(signals.values.shape[1] - 1), float(dt))


def applicable(rules: RuleSet, signals: Signals) -> dict[str, np.ndarray]:
    """Rule -> (B,) bool: the windows the rule is checked on."""
    zero = {p: 0.0 for p in MARGINS}
    return {name: ~np.isnan(v[next(iter(v))]) for name, v in tightest(rules, signals, zero).items()}


def satisfaction(rules: RuleSet, signals: Signals, params: CalibratedParams,
                 scenario_types: Sequence[str]) -> dict[str, dict[str, dict[str, float]]]:
    """Group ('all' and each scenario type) -> rule -> {'rate', 'n'}: fraction of applicable windows with
    robustness >= 0 (rate NaN when n = 0)."""
    missing = [name for name in rules.names if params.rules.of(name) is None]
    if missing:
        raise ParamsError(f"params file has no field 'rules.{missing[0]}'")
    rho = window_robustness(rules, signals, params.rules)
    mask = applicable(rules, signals)
    types = np.asarray(scenario_types)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for group in ["all", *sorted(set(types.tolist()))]:
        rows = np.ones(len(types), bool) if group == "all" else types == group
        out[group] = {}
        for name in rules.names:
            sel = rows & mask[name]
            n = int(sel.sum())
            out[group][name] = {"rate": float((rho[name][sel] >= 0).mean()) if n else float("nan"), "n": n}
    return out


def verify_tightest(rules: RuleSet, signals: Signals, tight: Mapping[str, Mapping[str, np.ndarray]]) -> dict:
    """Rule -> (B,) robustness of each window under its own tightest params (NaN where not applicable)."""
    out = {}
    for name in rules.names:
        rho = np.full(signals.values.shape[0], np.nan)
        for i in np.flatnonzero(~np.isnan(tight[name][next(iter(tight[name]))])):
            one = Signals(signals.names, signals.values[i:i + 1])
            rule = rules.rules[rules.names.index(name)]
            own = rule.params_type(**{p: float(v[i]) for p, v in tight[name].items()})
            params = RuleParams().with_rule(name, own)
            rho[i] = window_robustness(RuleSet((rule,)), one, params)[name][0]
        out[name] = rho
    return out
