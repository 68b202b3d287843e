"""Comfort metrics as NAVSIM's `pdm_comfort_metrics.py` computes them (v1.1 and main), vectorised over K.

v1 (C): accelerations Savitzky-Golay (order 2) over a window of n = all states; jerk = derivative (window n,
order 2) of the acceleration smoothed over a window of 8; yaw rate / yaw acceleration: derivatives of the
unwrapped heading over a window of 5 (order 2 / order 3). Lateral acceleration is read from ACCELERATION_Y.
v2 (HC): longitudinal/lateral accelerations of the box centre (nuPlan's shift formula), window 8; jerks with
a derivative window of 15. Bounds are strict; values are rounded to 8 decimals first, as NAVSIM does.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.signal import savgol_filter

from planners.pdm.scoring.areas import EGO_REAR_AXLE_TO_CENTER
from planners.pdm.scoring.config import ScorerConfig
from planners.pdm.states import StateIndex

_DECIMALS = 8


@lru_cache(maxsize=64)
def _savgol_matrix(n: int, window: int, order: int, deriv: int, delta: float) -> np.ndarray:
    """(n, n) matrix M with savgol_filter(y, ..., mode='interp') == y @ M for y (..., n): the filter is linear."""
    eye = np.eye(n)
    return savgol_filter(eye, window_length=window, polyorder=order, deriv=deriv, delta=delta, axis=-1)


def _smooth(values: np.ndarray, window: int, order: int = 2, deriv: int = 0, delta: float = 1.0) -> np.ndarray:
    """scipy's Savitzky-Golay filter (mode 'interp') along the last axis, as a cached matrix product."""
    n = values.shape[-1]
    return values @ _savgol_matrix(n, min(window, n), order, deriv, float(delta))


def _acceleration(states: np.ndarray, coordinate: str, window: int = 8, center: bool = False) -> np.ndarray:
    """(K, T) [m/s^2] smoothed acceleration: 'x', 'y' or 'magnitude' (rear axle, or box centre for x/y)."""
    ax, ay = states[..., StateIndex.ACCELERATION_X], states[..., StateIndex.ACCELERATION_Y]
    if coordinate == "magnitude":
        values = np.hypot(ax, ay)
    elif coordinate == "x":
        values = ax
        if center:  # nuPlan get_acceleration_shifted: + d w^2 + d dw/dt on x, nothing on y
            d = EGO_REAR_AXLE_TO_CENTER
            omega = states[..., StateIndex.ANGULAR_VELOCITY]
            values = ax + d * omega**2 + d * states[..., StateIndex.ANGULAR_ACCELERATION]
    elif coordinate == "y":
        values = ay
    else:
        raise ValueError(f"unknown acceleration coordinate {coordinate!r}")
    return np.round(_smooth(values, window), _DECIMALS)


def _jerk(states: np.ndarray, coordinate: str, dt: float, window: int, center: bool = False) -> np.ndarray:
    """(K, T) [m/s^3] derivative (window `window`) of the acceleration smoothed over 8 states."""
    accel = _acceleration(states, coordinate, 8, center)
    return np.round(_smooth(accel, window, 2, 1, dt), _DECIMALS)


def _unwrap(headings: np.ndarray) -> np.ndarray:
    steps = np.round(np.diff(headings, axis=-1) / (2.0 * np.pi))
    adjust = np.concatenate([np.zeros_like(headings[..., :1]), np.cumsum(steps, axis=-1)], axis=-1)
    return headings - 2.0 * np.pi * adjust


def _yaw_derivative(states: np.ndarray, dt: float, deriv: int, order: int) -> np.ndarray:
    """(K, T) yaw rate [rad/s] (deriv 1) or yaw acceleration [rad/s^2] (deriv 2), window 5."""
    unwrapped = _unwrap(states[..., StateIndex.HEADING])
    return np.round(_smooth(unwrapped, 5, order, deriv, dt), _DECIMALS)


def _within(values: np.ndarray, low: float, high: float) -> np.ndarray:
    return np.all((values > low) & (values < high), axis=-1)


def is_comfortable(states: np.ndarray, config: ScorerConfig, v2: bool = False) -> np.ndarray:
    """(K, 6) bool per bound: lon accel, lat accel, jerk magnitude, lon jerk, yaw accel, yaw rate.

    states: (K, T, 11). v2=False follows NAVSIM v1.1, v2=True NAVSIM main (history comfort)."""
    n = states.shape[1]
    dt = config.dt
    accel_window, jerk_window = (8, 15) if v2 else (n, n)
    lon = _acceleration(states, "x", accel_window, center=v2)
    lat = _acceleration(states, "y", accel_window, center=v2)
    jerk = _jerk(states, "magnitude", dt, jerk_window)
    lon_jerk = _jerk(states, "x", dt, jerk_window, center=v2)
    yaw_accel = _yaw_derivative(states, dt, 2, 3)
    yaw_rate = _yaw_derivative(states, dt, 1, 2)
    return np.stack(
        [
            _within(lon, config.min_lon_accel, config.max_lon_accel),
            _within(lat, -config.max_abs_lat_accel, config.max_abs_lat_accel),
            _within(jerk, -config.max_abs_mag_jerk, config.max_abs_mag_jerk),
            _within(lon_jerk, -config.max_abs_lon_jerk, config.max_abs_lon_jerk),
            _within(yaw_accel, -config.max_abs_yaw_accel, config.max_abs_yaw_accel),
            _within(yaw_rate, -config.max_abs_yaw_rate, config.max_abs_yaw_rate),
        ],
        axis=-1,
    )


def comfort(states: np.ndarray, config: ScorerConfig) -> np.ndarray:
    """(K,) v1 comfort C in {0, 1} for states (K, T, 11)."""
    return is_comfortable(states, config, v2=False).all(axis=-1).astype(np.float64)


def history_comfort(states: np.ndarray, history: np.ndarray | None, config: ScorerConfig) -> np.ndarray:
    """(K,) v2 HC: comfort of [history (H, 11), states (K, T, 11)] as one uniform 0.1 s sequence; 1 without
    history."""
    if history is None or len(history) == 0:
        return np.ones(states.shape[0])
    padded = np.concatenate([np.broadcast_to(history, (states.shape[0], *history.shape)), states], axis=1)
    return is_comfortable(padded, config, v2=True).all(axis=-1).astype(np.float64)


def _ec_features(states: np.ndarray, dt: float) -> tuple[np.ndarray, ...]:
    return (
        _acceleration(states, "magnitude", 8),
        _jerk(states, "magnitude", dt, 15),
        _yaw_derivative(states, dt, 1, 2),
        _yaw_derivative(states, dt, 2, 2),  # NAVSIM's EC uses order 2 for the yaw acceleration
    )


def extended_comfort(states: np.ndarray, previous_states: np.ndarray | None, config: ScorerConfig) -> np.ndarray:
    """(K,) v2 EC in {0, 1}: RMS differences between this plan (K, T, 11) and the plan made `ec_plan_offset`
    earlier (K or 1, T, 11), over their overlap. 1 when `previous_states` is None."""
    num = states.shape[0]
    if previous_states is None:
        return np.ones(num)
    previous = np.broadcast_to(previous_states.reshape(-1, *states.shape[1:]), states.shape)
    shift = round(config.ec_plan_offset / config.dt)
    current = states[:, :-shift] if shift else states
    earlier = previous[:, shift:]
    limits = (
        config.ec_acceleration_threshold,
        config.ec_jerk_threshold,
        config.ec_yaw_rate_threshold,
        config.ec_yaw_accel_threshold,
    )
    ok = np.ones(num, dtype=bool)
    for a, b, limit in zip(_ec_features(current, config.dt), _ec_features(earlier, config.dt), limits):
        ok &= np.sqrt(np.mean((a - b) ** 2, axis=1)) <= limit
    return ok.astype(np.float64)
