"""pSTL's controllability study: sweep one θ field, keep everything else (noise included) fixed, and measure.

pSTL (Meng & Fan, RA-L 2024, `nusc_sim.py --test_aggressive`) shows "varied characteristics conditional on STL
parameters" by rerunning one scene under three θ settings (`CASE_STUDY`). `sweep` makes that quantitative:
one field of a base condition takes each of `values` in turn, the planner is reset to the same seed before
every point (common random numbers: only the condition changes), and each point records

    mean_speed [m/s]  stl signal "v" over the 8 plan poses (states 1 .. 8, 0.5 .. 4 s), mean over samples
    min_gap [m]       stl signal "s" (ego box to the nearest agent box, the scene's LOGGED agent futures) min
                      over the 8 plan poses, then mean over samples; FAR (1000 m) with no agent
    compliance        fraction of samples with exact ρ > 0 under that point's condition (`mode_robustness`)

The ego now (state 0) is left out of both metrics: its gap does not depend on the plan. The signals are the
ones the rules read (`plan_states`: the ego now prepended, map frame, 0.5 s apart), so "v" is the finite
difference speed `speed_band` scores.

`MONOTONE_EXPECTATIONS` states what a controllable policy must show (v_max ↑ ⇒ mean speed non-decreasing,
d_safe ↑ ⇒ min gap non-decreasing) and `is_monotone` checks one sweep against such an expectation.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from eval.pstl.scoring import PLAN_DT, check_plans, mode_robustness, plan_states
from planners.pstl.condition import THETA_FIELDS, DrivingMode, STLCondition
from planners.pstl.planner import SamplingSettings
from scenes.drive import DriveObservation, DriveScene
from stl.signals import signals_from_poses


class ConditionedPlanner(Protocol):
    """What `sweep` uses of a `PstlPlanner`: its condition, sampling and seed (setting it resets the
    generator), `configure` and `plan` (whose `candidates` are the (S, 8, 3) samples)."""

    condition: STLCondition
    sampling: SamplingSettings
    seed: int

    def configure(self, condition: STLCondition | None = None,
                  sampling: SamplingSettings | None = None) -> Any:
        """Set the condition and sampling settings."""

    def plan(self, observation: DriveObservation) -> Any:
        """A Plan whose `candidates` are the (S, 8, 3) samples."""


class Metric(enum.Enum):
    """A per-point measurement of a sweep; the value is the `SweepPoint` attribute it reads."""

    MEAN_SPEED = "mean_speed"  # [m/s]
    MIN_GAP = "min_gap"  # [m]
    COMPLIANCE = "compliance"  # [fraction]


class Direction(enum.IntEnum):
    """How a metric should move as the swept value grows."""

    NON_DECREASING = 1
    NON_INCREASING = -1


@dataclass(frozen=True)
class SampleBehaviour:
    """What S samples do: mean speed [m/s] over samples and plan poses, and the min gap [m] to agents (min
    over plan poses, mean over samples)."""

    mean_speed: float
    min_gap: float


@dataclass(frozen=True, eq=False)
class SweepPoint:
    """One swept value: its condition, `SampleBehaviour`'s two numbers, compliance (fraction of samples with
    ρ > 0), the samples (S, 8, 3) [m, m, rad] ego frame 0.5 s apart and their exact ρ (S,)."""

    value: float
    condition: STLCondition
    mean_speed: float  # [m/s]
    min_gap: float  # [m]
    compliance: float  # [fraction]
    samples: np.ndarray  # (S, 8, 3)
    rho: np.ndarray  # (S,)

    def metric(self, metric: Metric) -> float:
        """The value of `metric` at this point."""
        return float(getattr(self, Metric(metric).value))


@dataclass(frozen=True)
class Sweep:
    """`field` (a THETA_FIELDS name) swept over `points`, in increasing value."""

    field: str
    points: tuple[SweepPoint, ...]

    @property
    def values(self) -> np.ndarray:
        """(P,) the swept values [the field's unit]."""
        return np.array([point.value for point in self.points])

    def series(self, metric: Metric) -> np.ndarray:
        """(P,) `metric` at each point."""
        return np.array([point.metric(metric) for point in self.points])


@dataclass(frozen=True)
class MonotoneExpectation:
    """Sweeping `field` upwards should move `metric` in `direction`."""

    field: str
    metric: Metric
    direction: Direction

    def holds(self, sweep: Sweep, tol: float = 0.0) -> bool:
        """`is_monotone(sweep, metric, direction, tol)` for a sweep of `field`; ValueError for another."""
        if sweep.field != self.field:
            raise ValueError(f"this expectation is about a sweep of {self.field}, got one of {sweep.field}")
        return is_monotone(sweep, self.metric, self.direction, tol)


MONOTONE_EXPECTATIONS = (
    MonotoneExpectation("v_max", Metric.MEAN_SPEED, Direction.NON_DECREASING),
    MonotoneExpectation("d_safe", Metric.MIN_GAP, Direction.NON_DECREASING),
)


def expectation_for(field: str) -> MonotoneExpectation | None:
    """The entry of MONOTONE_EXPECTATIONS about `field`, None if there is none."""
    return next((item for item in MONOTONE_EXPECTATIONS if item.field == field), None)


def is_monotone(sweep: Sweep, metric: Metric, direction: Direction, tol: float = 0.0) -> bool:
    """Whether `metric` moves in `direction` along the sweep (points in increasing value).

    `tol` [the metric's unit, >= 0] is the slack per consecutive pair: a step may go against `direction` by
    at most `tol` (e.g. sampling noise of a finite sample set with a trained model); tol = 0 asks strict
    monotonicity (equal neighbours always pass). The slack is per step, not cumulative: many small dips can
    still add up to a larger overall drop. A sweep with fewer than two points is monotone.
    """
    if not (math.isfinite(tol) and tol >= 0.0):
        raise ValueError(f"tol must be a finite number >= 0, got {tol}")
    steps = np.diff(sweep.series(Metric(metric))) * int(Direction(direction))
    return bool(np.all(steps >= -tol))


def sample_behaviour(scene: DriveScene, plans: np.ndarray) -> SampleBehaviour:
    """Mean speed and min gap (module docstring) of plans (S, 8, 3) [m, m, rad] ego frame, 0.5 s apart."""
    signals = signals_from_poses(scene, plan_states(scene, plans), PLAN_DT, names=("v", "s"))
    values = np.asarray(signals.values)
    v = values[:, 1:, signals.names.index("v")]
    s = values[:, 1:, signals.names.index("s")]
    return SampleBehaviour(float(v.mean()), float(s.min(axis=1).mean()))


def with_field(condition: STLCondition, field: str, value: float) -> STLCondition:
    """`condition` with θ.`field` set to `value`, validated (ConditionError naming the field if outside
    THETA_RANGE)."""
    if field not in THETA_FIELDS:
        raise ValueError(f"field {field!r} is not a θ field; expected one of {', '.join(THETA_FIELDS)}")
    theta = condition.theta.copy()
    theta[THETA_FIELDS.index(field)] = float(value)
    return STLCondition(condition.mode, theta).validate()


def sample_plans(planner: ConditionedPlanner, observation: DriveObservation, condition: STLCondition,
                 samples: int, seed: int) -> np.ndarray:
    """(S, 8, 3) samples of `planner` under `condition`, its generator restarted from `seed` first."""
    planner.configure(condition=condition,
                      sampling=dataclasses.replace(planner.sampling, num_samples=int(samples)))
    planner.seed = seed  # the setter calls reset(): the same noise at every call
    candidates = planner.plan(observation).candidates
    if candidates is None:
        raise ValueError(f"{type(planner).__name__} returned no candidates; a sweep needs its samples")
    return check_plans(candidates, "candidates")


def sweep(planner: ConditionedPlanner, scene: DriveScene, base: STLCondition, field: str,
          values: Sequence[float], samples: int = 64, seed: int = 0) -> Sweep:
    """Sweep θ.`field` of `base` over `values` (strictly increasing, each valid in THETA_RANGE) with `samples`
    samples per point on `scene`, the planner reset to `seed` before each point (common random numbers).

    The planner's condition, sampling and seed are restored afterwards (its generator restarts).
    """
    values = [float(v) for v in values]
    if not values or any(b <= a for a, b in itertools.pairwise(values)):
        raise ValueError(f"values must be a non-empty, strictly increasing sequence, got {values}")
    if samples < 1:
        raise ValueError(f"samples must be positive, got {samples}")
    conditions = [with_field(base, field, value) for value in values]  # all validated before sampling
    observation = scene.observation()
    saved = (planner.condition, planner.sampling, planner.seed)
    points = []
    try:
        for value, condition in zip(values, conditions, strict=True):
            plans = sample_plans(planner, observation, condition, samples, seed)
            behaviour = sample_behaviour(scene, plans)
            rho = mode_robustness(scene, condition, plans).rho
            points.append(SweepPoint(value, condition, behaviour.mean_speed, behaviour.min_gap,
                                     float(np.mean(rho > 0.0)), plans, rho))
    finally:
        planner.configure(condition=saved[0], sampling=saved[1])
        planner.seed = saved[2]
    return Sweep(field, tuple(points))


# ---- pSTL's case study -------------------------------------------------------------------------------------

PSTL_H_MAX = 0.2  # pSTL's heading bound on 1 - cos(error), all three settings


@dataclass(frozen=True)
class CaseStudySetting:
    """One row of pSTL's case-study table: a label and the condition mapped onto our θ."""

    label: str
    condition: STLCondition


def from_pstl_theta(v_min: float, v_max: float, d_min: float, d_max: float, d_safe: float, h_max: float,
                    mode: DrivingMode = DrivingMode.KEEP) -> STLCondition:
    """pSTL's θ = (v_min, v_max, d_min, d_max, d_safe, h_max) as our symmetric θ:

    - v_min, v_max [m/s] and d_safe [m] are copied. pSTL's gap is between 4-disc car models, ours between
      boxes (`stl.signals`), so the same d_safe is a little looser here than there.
    - d_lat = (d_max - d_min) / 2 [m]: a band of the same width, centred on the lane (ours is |d| <= d_lat).
    - h_max: pSTL bounds 1 - cos(error) <= h_max, ours |error| <= h_max [rad], so h_max = arccos(1 - h_max).
    """
    d_lat = 0.5 * (d_max - d_min)
    heading = math.acos(1.0 - h_max)
    return STLCondition(mode, np.array([v_min, v_max, d_lat, heading, d_safe])).validate()


CASE_STUDY = (  # nusc_sim.py:444-465 (real_data_ros2.md §6), mode 0 (lane keeping) as the closed loop runs
    CaseStudySetting("1: v_max 1, d_safe 2", from_pstl_theta(0.0, 1.0, -1.0, 2.0, 2.0, PSTL_H_MAX)),
    CaseStudySetting("2: v_max 4, d_safe 1", from_pstl_theta(0.0, 4.0, -1.0, 1.0, 1.0, PSTL_H_MAX)),
    CaseStudySetting("3: v_max 6, d_safe 0.2", from_pstl_theta(0.0, 6.0, -1.0, 1.0, 0.2, PSTL_H_MAX)),
)


def run_case_study(planner: ConditionedPlanner, scene: DriveScene,
                   settings: Sequence[CaseStudySetting] = CASE_STUDY, samples: int = 64,
                   seed: int = 0) -> tuple[tuple[str, np.ndarray], ...]:
    """(label, samples (S, 8, 3)) per setting, each from the same seed (common random numbers), as
    `figures.case_study` takes them. The planner's condition, sampling and seed are restored afterwards."""
    observation = scene.observation()
    saved = (planner.condition, planner.sampling, planner.seed)
    try:
        return tuple((item.label, sample_plans(planner, observation, item.condition, samples, seed))
                     for item in settings)
    finally:
        planner.configure(condition=saved[0], sampling=saved[1])
        planner.seed = saved[2]
