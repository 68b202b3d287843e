"""pSTL's condition: a driving mode and the STL parameters θ of that mode's rules.

pSTL (Meng & Fan, RA-L 2024) conditions its diffusion policy on a high-level label (0 keep, 1 left change,
2 right change, 3 stop sign or light) and θ = (v_min, v_max, d_min, d_max, d_safe, h_max). Its lane band is
asymmetric (d_min <= d <= d_max on the signed offset) and its heading term is 1 - cos(error) <= h_max.
diffplan's lane rules (`stl.rules`) are symmetric, so θ here is

    θ = (v_min [m/s], v_max [m/s], d_lat [m], h_max [rad], d_safe [m])   (THETA_FIELDS)

with |offset| <= d_lat and |heading error| <= h_max [rad]. d_lat is lane_keeping's d_max in KEEP and STOP, and
the lane change's d_band in LEFT and RIGHT. pSTL masks label 3 out as an outlier; here STOP is a mode of its
own that keeps the lane (its spec is KEEP's; what makes it a stop is the data it is trained on).

`planners` may not import `stl`, so RuleParams is read and built structurally (`RuleParamsLike`): by the rule
names and fields of `stl.rules` (speed_band, lane_keeping, lane_change_left/right, safe_distance).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import types
import typing
from collections.abc import Iterable, Sequence
from typing import Any, Protocol, TypeVar

import numpy as np
import torch

from scenes.errors import DiffplanError


class ConditionError(DiffplanError, ValueError):
    """A driving mode or θ that cannot condition the policy; the message names the field."""


class DrivingMode(enum.IntEnum):
    """pSTL's high-level labels; STOP is its outlier label 3, here a real mode."""

    KEEP = 0
    LEFT = 1
    RIGHT = 2
    STOP = 3


THETA_FIELDS = ("v_min", "v_max", "d_lat", "h_max", "d_safe")
THETA_UNITS = ("m/s", "m/s", "m", "rad", "m")
THETA_RANGE = ((-5.0, 20.0), (0.5, 30.0), (0.05, 5.0), (0.02, 1.0), (0.0, 10.0))  # calibrated (low, high)
DEFAULT_THETA = (0.0, 15.0, 0.5, 0.2, 0.5)  # stl.rules.DEFAULT_PARAMS' values
NUM_MODES = len(DrivingMode)
CONDITION_DIM = NUM_MODES + len(THETA_FIELDS)  # mode one-hot, then θ in [-1, 1]

LANE_RULE = {DrivingMode.KEEP: "lane_keeping", DrivingMode.LEFT: "lane_change_left",
             DrivingMode.RIGHT: "lane_change_right", DrivingMode.STOP: "lane_keeping"}
LANE_WIDTH_PARAM = {"lane_keeping": "d_max", "lane_change_left": "d_band", "lane_change_right": "d_band"}


class RuleParamsLike(Protocol):
    """What `stl.rules.RuleParams` offers that this module uses (read by rule and field name)."""

    @property
    def names(self) -> tuple[str, ...]: ...  # noqa: D102

    def of(self, name: str) -> Any: ...  # noqa: D102

    def only(self, names: Iterable[str]) -> Any: ...  # noqa: D102

    def with_rule(self, name: str, params: Any) -> Any: ...  # noqa: D102


R = TypeVar("R", bound=RuleParamsLike)


def mode_rules(mode: DrivingMode) -> tuple[str, str, str]:
    """The rules a mode asks (pSTL's Φ_mode): speed_band, its lane rule, safe_distance."""
    return "speed_band", LANE_RULE[DrivingMode(mode)], "safe_distance"


def _is_mode(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) \
        and int(value) in {mode.value for mode in DrivingMode}


def _number(value: float) -> str:
    return f"{value:g}"


@dataclasses.dataclass(frozen=True, eq=False)
class STLCondition:
    """A driving mode and its θ (5,) float64, laid out as THETA_FIELDS; see the module docstring."""

    mode: DrivingMode
    theta: np.ndarray  # (5,) v_min, v_max [m/s], d_lat [m], h_max [rad], d_safe [m]

    def __post_init__(self) -> None:
        try:
            theta = np.array(self.theta, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise ConditionError(f"theta = {self.theta!r} is not a sequence of numbers") from None
        theta.setflags(write=False)
        object.__setattr__(self, "theta", theta)
        if _is_mode(self.mode):
            object.__setattr__(self, "mode", DrivingMode(int(self.mode)))

    def validate(self) -> STLCondition:
        """Self, or ConditionError naming the first bad field."""
        if not _is_mode(self.mode):
            raise ConditionError(f"mode = {self.mode!r} is not a driving mode; expected "
                                 + ", ".join(f"{m.value} {m.name}" for m in DrivingMode))
        if self.theta.shape != (len(THETA_FIELDS),):
            raise ConditionError(f"theta has {self.theta.size} values, expected {len(THETA_FIELDS)}: "
                                 + ", ".join(THETA_FIELDS))
        for name, value, (low, high), unit in zip(THETA_FIELDS, self.theta, THETA_RANGE, THETA_UNITS, strict=True):
            if not math.isfinite(value):
                raise ConditionError(f"theta.{name} = {value} is not a finite number")
            if not low <= value <= high:
                raise ConditionError(f"theta.{name} = {_number(value)} is outside the calibrated range "
                                     f"[{_number(low)}, {_number(high)}] {unit}")
        if self.v_min >= self.v_max:
            raise ConditionError(f"theta.v_min = {_number(self.v_min)} must be below theta.v_max = "
                                 f"{_number(self.v_max)} m/s")
        return self

    @property
    def v_min(self) -> float:
        """Lowest speed [m/s]."""
        return float(self.theta[0])

    @property
    def v_max(self) -> float:
        """Highest speed [m/s]."""
        return float(self.theta[1])

    @property
    def d_lat(self) -> float:
        """Half-width of the lane band [m] (lane keeping's d_max, the lane change's d_band)."""
        return float(self.theta[2])

    @property
    def h_max(self) -> float:
        """Largest heading error to the lane [rad]."""
        return float(self.theta[3])

    @property
    def d_safe(self) -> float:
        """Smallest gap to every agent [m]."""
        return float(self.theta[4])

    @classmethod
    def default(cls, mode: DrivingMode = DrivingMode.KEEP) -> STLCondition:
        """`mode` with DEFAULT_THETA (stl.rules.DEFAULT_PARAMS' values)."""
        return cls(DrivingMode(mode), np.array(DEFAULT_THETA)).validate()

    @classmethod
    def within_range(cls, mode: DrivingMode, theta: np.ndarray) -> STLCondition:
        """The validated condition of `theta` (5,) clipped into THETA_RANGE (a calibrated θ can lie outside
        it: a 23 m gap with no agent near conditions as d_safe 10 m)."""
        low, high = np.array(THETA_RANGE).T
        return cls(mode, np.clip(np.asarray(theta, dtype=np.float64), low, high)).validate()

    @classmethod
    def from_rule_params(cls, mode: DrivingMode, params: RuleParamsLike, clip: bool = False) -> STLCondition:
        """The validated condition of `mode` with θ read from `params` (a RuleParams): speed_band, the
        mode's lane rule (`LANE_RULE`) and safe_distance, clipped into THETA_RANGE with `clip`
        (`within_range`); ConditionError naming a rule `params` lacks."""
        try:
            mode = DrivingMode(mode)
        except ValueError:
            raise ConditionError(f"mode = {mode!r} is not a driving mode") from None
        records = []
        for rule in mode_rules(mode):
            record = params.of(rule)
            if record is None:
                raise ConditionError(f"rules.{rule} is missing; mode {mode.name} needs "
                                     + ", ".join(mode_rules(mode)))
            records.append(record)
        speed, lane, safe = records
        d_lat = getattr(lane, LANE_WIDTH_PARAM[LANE_RULE[mode]])
        theta = np.array([speed.v_min, speed.v_max, d_lat, lane.h_max, safe.d_safe])
        return cls.within_range(mode, theta) if clip else cls(mode, theta).validate()

    def to_rule_params(self, base: R) -> R:
        """`base` (a RuleParams) with the mode's rules set from θ and the lane rules the mode does not ask
        removed; its other rules (stop_before_line, reach_goal, comfort) are kept as they are."""
        self.validate()
        speed, lane, safe = mode_rules(self.mode)
        values = {speed: {"v_min": self.v_min, "v_max": self.v_max},
                  lane: {LANE_WIDTH_PARAM[lane]: self.d_lat, "h_max": self.h_max},
                  safe: {"d_safe": self.d_safe}}
        kept = [name for name in base.names if name not in LANE_WIDTH_PARAM or name == lane]
        out: Any = base.only(dict.fromkeys([*kept, *values]))
        for rule, fields in values.items():
            out = out.with_rule(rule, _record_type(base, rule)(**fields))
        return typing.cast(R, out)


def _record_type(params: RuleParamsLike, rule: str) -> Any:
    """The record class of `rule` in `params`' class (its field annotation `Record | None`)."""
    hint = typing.get_type_hints(type(params))[rule]
    arms = [arm for arm in typing.get_args(hint) if arm is not types.NoneType]
    return arms[0] if arms else hint


def theta_normalised(theta: torch.Tensor) -> torch.Tensor:
    """(..., 5) θ -> [-1, 1] by THETA_RANGE (not clamped)."""
    low = theta.new_tensor([low for low, _ in THETA_RANGE])
    high = theta.new_tensor([high for _, high in THETA_RANGE])
    return 2.0 * (theta - low) / (high - low) - 1.0


def theta_denormalised(z: torch.Tensor) -> torch.Tensor:
    """Inverse of `theta_normalised`: (..., 5) in [-1, 1] -> θ [m/s, m/s, m, rad, m]."""
    low = z.new_tensor([low for low, _ in THETA_RANGE])
    high = z.new_tensor([high for _, high in THETA_RANGE])
    return (z + 1.0) * (high - low) / 2.0 + low


def condition_tensor(conditions: Sequence[STLCondition]) -> torch.Tensor:
    """(B, 9) float32: mode one-hot (4), then θ normalised to [-1, 1] by THETA_RANGE (5); validates each."""
    for condition in conditions:
        condition.validate()
    modes = torch.tensor([int(c.mode) for c in conditions], dtype=torch.int64)
    theta = torch.from_numpy(np.stack([c.theta for c in conditions])) if conditions else torch.zeros(0, 5)
    one_hot = torch.nn.functional.one_hot(modes, NUM_MODES).to(torch.float32)
    return torch.cat([one_hot, theta_normalised(theta.to(torch.float64)).to(torch.float32)], dim=-1)


RELAX_LOOSEST = (0.0, 20.0, 3.0, 1.0, 0.0)  # [m/s, m/s, m, rad, m] the loosest θ relabelling reaches
RELAX_UPPER = (False, True, True, True, False)  # per θ field: an upper bound (relaxed upwards)?


def relax_conditions(condition: torch.Tensor, fraction: float, generator: torch.Generator | None = None,
                     relax_v_max: bool = False) -> torch.Tensor:
    """Hindsight relabelling: (B, 9) conditions (`condition_tensor`) with a random `fraction` of the rows
    relaxed to a looser θ that their demonstration still satisfies.

    In a relaxed row each of v_min, d_lat, h_max and d_safe (and v_max with `relax_v_max`), with probability
    1/2, moves a U(0, 1) share of the way from its value towards RELAX_LOOSEST (v_min and d_safe down, v_max,
    d_lat and h_max up; a field already looser stays). Every bound only widens, so a demonstration that met
    its tight θ meets the relaxed one.
    Trained on both, the policy reads a loose bound (pSTL's closed-loop v_min 1 m/s, d_lat 2 m) as "any plan
    inside it" instead of as the unusual demonstrations whose own tight θ happened to be that loose (the
    slow, wandering ones). v_max stays tight unless `relax_v_max`: it is the speed command, and relaxed it
    means "any speed below", which takes the speed control away (measured: the v_max sweep's rise fell from
    3.6 to 0.45 m/s) but makes pSTL's closed-loop v_max of 9 m/s a limit rather than a target speed.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"relabel fraction must be in [0, 1], got {fraction}")
    if fraction == 0.0 or condition.shape[0] == 0:
        return condition
    theta = theta_denormalised(condition[:, NUM_MODES:])
    relaxable = torch.tensor([relax_v_max or name != "v_max" for name in THETA_FIELDS],
                             device=condition.device)
    loosest = condition.new_tensor(RELAX_LOOSEST).expand_as(theta)
    upper = torch.tensor(RELAX_UPPER, device=condition.device).expand_as(theta)
    loosest = torch.where(upper, torch.maximum(theta, loosest), torch.minimum(theta, loosest))
    b = condition.shape[0]
    rows = torch.rand(b, 1, generator=generator) < fraction
    fields = (torch.rand(b, len(THETA_FIELDS), generator=generator) < 0.5) & relaxable
    share = torch.rand(b, len(THETA_FIELDS), generator=generator)
    share = (share * (rows & fields)).to(condition)
    relaxed = theta + share * (loosest - theta)
    return torch.cat([condition[:, :NUM_MODES], theta_normalised(relaxed)], dim=-1)


def free_v_min(condition: torch.Tensor, fraction: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, 9) conditions with v_min lowered to min(v_min, RELAX_LOOSEST's 0 m/s) in a random `fraction` of
    the rows; every other field is kept (d_safe too).

    Why: under pSTL's tight calibration the speed band alone (the demonstration's least and greatest speed
    +- 1 m/s) pins the speed profile, and with it the gap to a leader, so d_safe carries nothing a model
    needs and it learns to ignore it. With v_min freed, slowing down behind a leader is explained by d_safe
    alone, which makes d_safe a command (measured on `datagen drive --gap-scenes-only` data). The bound only
    widens, so the demonstration still meets its condition.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"free v_min fraction must be in [0, 1], got {fraction}")
    if fraction == 0.0 or condition.shape[0] == 0:
        return condition
    theta = theta_denormalised(condition[:, NUM_MODES:])
    rows = torch.rand(condition.shape[0], generator=generator) < fraction
    v_min = torch.where(rows.to(theta.device), theta[:, 0].clamp(max=RELAX_LOOSEST[0]), theta[:, 0])
    theta = torch.cat([v_min[:, None], theta[:, 1:]], dim=-1)
    return torch.cat([condition[:, :NUM_MODES], theta_normalised(theta)], dim=-1)
