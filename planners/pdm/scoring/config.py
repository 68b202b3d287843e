"""Scorer constants (NAVSIM `PDMScorerConfig`, comfort bounds) and the per-proposal result record."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from planners.pdm.scoring.sub_metrics import SubMetrics


class MetricVersion(enum.Enum):
    """Which NAVSIM score to compute."""

    PDMS_V1 = "pdms-v1"  # NAVSIM v1.1: NC*DAC*(5 EP + 5 TTC + 2 C)/12
    EPDMS_V2 = "epdms-v2"  # NAVSIM v2 (main): NC*DAC*DDC*TLC*(5 EP + 5 TTC + 2 LK + 2 HC + 2 EC)/16


@dataclass(frozen=True)
class ScorerConfig:
    """Every constant of NAVSIM's scorer, with NAVSIM's defaults. Distances [m], speeds [m/s], times [s]."""

    version: MetricVersion = MetricVersion.PDMS_V1
    # weights
    progress_weight: float = 5.0
    ttc_weight: float = 5.0
    comfort_weight: float = 2.0  # v1 C
    driving_direction_weight: float = 0.0  # v1 only (DDC is multiplicative in v2)
    lane_keeping_weight: float = 2.0  # v2
    history_comfort_weight: float = 2.0  # v2
    extended_comfort_weight: float = 2.0  # v2
    # collisions
    stopped_speed_threshold: float = 5e-2  # NC: ego / track stopped (<=)
    behind_angle_deg: float = 150.0  # agent behind ego: relative angle > this
    ahead_angle_deg: float = 30.0  # TTC: agent ahead: relative angle < this
    static_collision_score: float = 0.5  # at-fault NC against a non-agent object
    # TTC
    ttc_stopped_speed_threshold: float = 5e-3  # ego speed below this skips the step (<)
    ttc_projection_steps: tuple[int, ...] = (0, 3, 6, 9)  # x dt: 0, 0.3, 0.6, 0.9 s
    ttc_last_step_v2: int = 31  # v2 evaluates TTC at steps 0..31 only
    # driving direction
    driving_direction_horizon: float = 1.0
    driving_direction_compliance_threshold: float = 2.0  # strict <
    driving_direction_violation_threshold: float = 6.0  # strict <
    # progress
    progress_distance_threshold: float = 5.0
    # lane keeping (v2)
    lane_keeping_deviation_limit: float = 0.5  # strict >
    lane_keeping_horizon_window: float = 2.0
    # comfort bounds (strict)
    min_lon_accel: float = -4.05
    max_lon_accel: float = 2.40
    max_abs_lat_accel: float = 4.89
    max_abs_mag_jerk: float = 8.37
    max_abs_lon_jerk: float = 4.13
    max_abs_yaw_rate: float = 0.95
    max_abs_yaw_accel: float = 1.93
    # extended comfort (v2), RMS of differences, <=
    ec_acceleration_threshold: float = 0.7
    ec_jerk_threshold: float = 0.5
    ec_yaw_rate_threshold: float = 0.1
    ec_yaw_accel_threshold: float = 0.1
    ec_plan_offset: float = 0.5  # time between the two consecutive plans
    # history comfort (v2): NAVSIM pads 9 logged states (-1.5 .. -0.7 s at 0.1 s) before the plan
    history_comfort_steps: int = 9
    # sampling
    dt: float = 0.1

    @property
    def is_v2(self) -> bool:
        """Whether the metric is EPDMS (NAVSIM v2)."""
        return self.version is MetricVersion.EPDMS_V2


@dataclass(frozen=True, eq=False)
class ProposalScores(SubMetrics[np.ndarray]):
    """Per-proposal sub-metrics (SubMetrics, each (K,)), score and progress.

    Attributes:
        score: (K,) PDMS (v1) or EPDMS (v2).
        raw_progress: (K,) [m] box-centre progress along the centreline, >= 0 (before NC*DAC scaling).
        reference_progress: (K,) [m] the reference's raw progress, repeated.
        version: MetricVersion.
    """

    score: np.ndarray
    raw_progress: np.ndarray
    reference_progress: np.ndarray
    version: MetricVersion

    def __len__(self) -> int:
        return int(self.score.shape[0])

    def as_dict(self) -> dict[str, np.ndarray]:
        """Sub-metrics (canonical order), score and progress as a dict of (K,) arrays."""
        keys = (*self.NAMES, "score", "raw_progress", "reference_progress")
        return {key: getattr(self, key) for key in keys}
