"""Batched Intelligent Driver Model along a path, as PDM-Closed's longitudinal policies.

State per row: progress [m] and velocity [m/s]. Leading agent per row: progress [m], velocity [m/s],
rear length [m].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scenes.idm import braking_term, idm_acceleration


@dataclass(frozen=True)
class IDMParameters:
    """NAVSIM's metric-cache PDM-Closed settings."""

    speed_limit_fractions: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 1.0)
    fallback_target_velocity: float = 15.0  # [m/s] when a lane has no speed limit
    min_gap_to_lead_agent: float = 1.0  # [m]
    headway_time: float = 1.5  # [s]
    accel_max: float = 1.5  # [m/s^2]
    decel_max: float = 3.0  # [m/s^2], positive
    acceleration_exponent: int = 10


def idm_step(progress: np.ndarray, velocity: np.ndarray, lead_progress: np.ndarray, lead_velocity: np.ndarray,
             lead_rear_length: np.ndarray, target_velocity: np.ndarray, params: IDMParameters,
             dt: float) -> tuple[np.ndarray, np.ndarray]:
    """One forward-Euler step of nuPlan's IDM (`scenes.idm`, s* not floored) for every row (R,); returns the
    next (progress, velocity)."""
    gap = np.maximum(lead_progress - progress - lead_rear_length, params.min_gap_to_lead_agent)
    accel = idm_acceleration(velocity, target_velocity, gap, velocity - lead_velocity, params.accel_max,
                             braking_term(params.accel_max, params.decel_max), params.headway_time,
                             params.min_gap_to_lead_agent, exponent=params.acceleration_exponent,
                             nonnegative_dynamic_gap=False)
    accel = np.clip(accel, -params.decel_max, params.accel_max)
    return progress + dt * velocity, velocity + dt * accel
