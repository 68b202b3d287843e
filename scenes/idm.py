"""The Intelligent Driver Model (Treiber, Hennecke and Helbing 2000), the one IDM every part uses: the
synthetic traffic, PDM-Closed's proposals and the reactive agents of the driving evaluation.

a(v, s, dv) = a_max (1 - (v / v0)^delta - (s*(v, dv) / s)^2),  s* = s0 + v T + v dv / (2 sqrt(a_max b)),

with speed v, desired speed v0, gap s to the leader (inf: free road) and approach rate dv = v - v_leader.
Two published variants differ in s*: Treiber's book keeps the dynamic part v T + v dv / (2 sqrt(a b)) non-
negative (our synthetic traffic), nuPlan's and PDM-Closed's IDM does not. Powers are repeated products
(`scenes.portable.integer_power`), so the result has the same bits on every CPU.
"""

from __future__ import annotations

import numpy as np

from scenes.portable import integer_power

MIN_DESIRED_SPEED = 0.1  # [m/s] floor on v0 in the free-road term (v0 = 0 would divide by zero)
MIN_GAP = 0.05  # [m] floor on the gap in the interaction term


def braking_term(max_accel: np.ndarray | float, comfortable_decel: np.ndarray | float) -> np.ndarray:
    """2 sqrt(a_max b) [m/s^2], the denominator of s*'s dynamic part (computed once per vehicle)."""
    return 2.0 * np.sqrt(np.asarray(max_accel, dtype=np.float64) * comfortable_decel)


def free_road_acceleration(speed: np.ndarray | float, desired_speed: np.ndarray | float, max_accel: np.ndarray | float,
                           exponent: int = 4) -> np.ndarray:
    """a_max (1 - (v / v0)^delta) [m/s^2]: the IDM with no leader."""
    speed = np.asarray(speed, dtype=np.float64)
    return max_accel * (1.0 - integer_power(speed / np.maximum(desired_speed, MIN_DESIRED_SPEED), exponent))


def idm_acceleration(speed: np.ndarray | float, desired_speed: np.ndarray | float, gap: np.ndarray | float, approach_rate: np.ndarray | float,
                     max_accel: np.ndarray | float, braking: np.ndarray | float, headway: np.ndarray | float, jam_gap: np.ndarray | float, *,
                     exponent: int = 4, nonnegative_dynamic_gap: bool = True) -> np.ndarray:
    """IDM acceleration [m/s^2], element-wise over broadcast arrays.

    speed, desired_speed, approach_rate [m/s]; gap [m] bumper to bumper (inf: free road); max_accel [m/s^2];
    braking: `braking_term(a_max, b)` [m/s^2]; headway T [s]; jam_gap s0 [m]; exponent delta (an integer).
    `nonnegative_dynamic_gap`: Treiber's s* = s0 + max(0, v T + v dv / braking); False gives nuPlan's
    s* = s0 + v T + v dv / braking. The acceleration is not clipped: each user clips to its own limits.
    """
    speed, gap = np.asarray(speed, dtype=np.float64), np.asarray(gap, dtype=np.float64)
    if nonnegative_dynamic_gap:
        desired_gap = jam_gap + np.maximum(0.0, speed * headway + speed * approach_rate / braking)
    else:
        desired_gap = jam_gap + speed * headway + speed * approach_rate / braking
    ratio = desired_gap / np.maximum(gap, MIN_GAP)
    interaction = np.where(np.isfinite(gap), ratio * ratio, 0.0)
    free = integer_power(speed / np.maximum(desired_speed, MIN_DESIRED_SPEED), exponent)
    return max_accel * (1.0 - free - interaction)
