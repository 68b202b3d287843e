"""Vectorised re-implementation of NAVSIM v1.1's PDMSimulator: batched LQR tracker + kinematic bicycle.

Behaviour follows `pdm_planner/simulation/{batch_lqr,batch_lqr_utils,batch_kinematic_bicycle,pdm_simulator}.py`;
only the arithmetic is reorganised for speed (same optima, same update order, differences at rounding level):
- velocity fit: its normal matrix does not depend on the headings (cos^2 + sin^2 = 1), so the fitted velocity
  profile is a constant (M, M) matrix times the projected displacements;
- curvature fit: in the variables kappa_i (instead of kappa_0 and curvature rates) the regularised least squares
  problem is tridiagonal, solved for all rows at once by LAPACK ptsv;
- lateral LQR: the 10-step products of the linearised dynamics have closed forms, because the tracker's
  velocity over the horizon is affine in the step index (constant acceleration command).
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.linalg import lapack

from planners.pdm.interpolation import interpolate_poses, plan_to_global_poses, poses_to_states
from planners.pdm.states import NUM_STATE_FIELDS, SIM_INTERVAL, StateIndex
from scenes.ego import PACIFICA, EgoState

__all__ = ["ego_state_vector", "interpolate_poses", "plan_to_global_poses", "poses_to_states", "simulate"]

# BatchLQRTracker defaults.
Q_LONGITUDINAL, R_LONGITUDINAL = 10.0, 1.0
Q_LATERAL, R_LATERAL = (1.0, 10.0, 0.0), 1.0  # lateral error, heading error, steering angle
TRACKING_HORIZON = 10  # [steps]
JERK_PENALTY = 1e-4
CURVATURE_RATE_PENALTY = 1e-2
INITIAL_CURVATURE_PENALTY = 1e-10
STOPPING_GAIN = 0.5
STOPPING_VELOCITY = 0.2  # [m/s]
# BatchKinematicBicycleModel defaults.
MAX_STEERING_ANGLE = np.pi / 3  # [rad]
ACCEL_TIME_CONSTANT = 0.2  # [s]
STEERING_TIME_CONSTANT = 0.05  # [s]
WHEELBASE = PACIFICA.wheelbase  # [m]

S = StateIndex


def ego_state_vector(ego: EgoState) -> np.ndarray:
    """scenes EgoState of shape S (map frame) -> (*S, 11) StateIndex vector.

    Steering rate and angular acceleration are not in EgoState and are set to 0.
    """
    pose = np.asarray(ego.pose, dtype=np.float64)
    out = np.zeros((*pose.shape[:-1], NUM_STATE_FIELDS))
    out[..., S.X:S.HEADING + 1] = pose
    out[..., S.VELOCITY_X:S.VELOCITY_Y + 1] = ego.velocity
    out[..., S.ACCELERATION_X:S.ACCELERATION_Y + 1] = ego.acceleration
    out[..., S.STEERING_ANGLE] = ego.steering
    out[..., S.ANGULAR_VELOCITY] = ego.yaw_rate
    return out


def _wrap(angle: np.ndarray) -> np.ndarray:
    """NAVSIM `normalize_angle`: arctan2(sin, cos), in [-pi, pi] [rad]."""
    return np.arctan2(np.sin(angle), np.cos(angle))


@functools.lru_cache(maxsize=8)
def _velocity_fit_matrix(num_displacements: int, dt: float) -> np.ndarray:
    """(M, M) G with velocity profile v = G @ s, s the displacements [m] projected on the start headings."""
    m = num_displacements
    integrate = np.tril(np.full((m, m), dt), k=-1)[:, :-1]  # v_i = v_0 + dt * sum_{j<i} a_j
    integrate = np.concatenate([np.ones((m, 1)), integrate], axis=1)  # (M, M) on x = (v_0, a_0..a_{M-2})
    design = dt * integrate  # displacement_i ~ dt * v_i along heading_i
    jerk = np.zeros((m - 2, m))
    jerk[:, 1:-1] -= np.eye(m - 2)
    jerk[:, 2:] += np.eye(m - 2)
    normal = design.T @ design + JERK_PENALTY * jerk.T @ jerk
    return integrate @ np.linalg.pinv(normal) @ design.T


def fit_velocity_curvature(poses: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """(K, T, 3) poses -> velocity [m/s] and curvature [1/m] profiles, each (K, T - 1), as NAVSIM's fit.

    Velocity: least squares on the displacements with jerk penalty; curvature: least squares on the heading
    changes given that velocity, with curvature-rate penalty (and 1e-10 on the initial curvature).
    """
    k, t = poses.shape[:2]
    m = t - 1
    diff = np.diff(poses, axis=1)
    heading = poses[:, :-1, 2]
    projected = np.cos(heading) * diff[..., 0] + np.sin(heading) * diff[..., 1]
    velocity = projected @ _velocity_fit_matrix(m, dt).T
    # min sum (dh_i - w_i kappa_i)^2 + c sum (kappa_{i+1} - kappa_i)^2 + eps kappa_0^2, w_i = v_i dt.
    weight = velocity * dt
    rate_weight = CURVATURE_RATE_PENALTY / dt**2
    diag = weight * weight + 2.0 * rate_weight
    diag[:, [0, -1]] -= rate_weight
    diag[:, 0] += INITIAL_CURVATURE_PENALTY
    off = np.full((k, m), -rate_weight)
    off[:, -1] = 0.0  # no coupling between rows
    rhs = weight * _wrap(diff[..., 2])
    _, _, curvature, info = lapack.dptsv(diag.ravel(), off.ravel()[:-1], rhs.ravel())
    if info != 0:
        raise np.linalg.LinAlgError(f"curvature fit: LAPACK ptsv info={info}")
    return velocity, curvature.reshape(k, m)


@functools.lru_cache(maxsize=8)
def _lqr_constants(horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Sums over the horizon for v_k = v + alpha * k: pair sums (3, 3) and curvature weights (horizon, 5)."""
    n = np.arange(horizon, dtype=np.float64)
    i, j = np.meshgrid(n, n, indexing="ij")
    later = i > j
    # rows: sum_{i>j} v_i v_j, sum_{i>j} j v_i v_j, sum_j j v_j (both as coefficients of v^2, v*alpha, alpha^2
    # and for the last of v, alpha, 0)
    pair = np.array([
        [later.sum(), (later * (i + j)).sum(), (later * i * j).sum()],
        [(later * j).sum(), (later * j * (i + j)).sum(), (later * j * i * j).sum()],
        [n.sum(), (n * n).sum(), 0.0],
    ])
    tail = np.cumsum(n[::-1])[::-1] - n  # sum_{i>k} i
    kappa_weights = np.stack([np.ones(horizon), n, horizon - 1 - n, tail + n * (horizon - 1 - n), n * tail], 1)
    return pair, kappa_weights


def simulate(reference_states: np.ndarray, ego_state0: np.ndarray, dt: float = SIM_INTERVAL) -> np.ndarray:
    """Track (..., T, 11) reference states (poses used) from initial state (11,) or (..., 11).

    Returns (..., T, 11) simulated states at dt [s]; state 0 is the initial state.
    """
    ref = np.asarray(reference_states, dtype=np.float64)
    init = np.asarray(ego_state0, dtype=np.float64)
    lead = np.broadcast_shapes(ref.shape[:-2], init.shape[:-1])
    num_t = ref.shape[-2]
    poses = np.broadcast_to(ref[..., :3], (*lead, num_t, 3)).reshape(-1, num_t, 3)
    state = np.broadcast_to(init, (*lead, NUM_STATE_FIELDS)).reshape(-1, NUM_STATE_FIELDS)
    num_k = poses.shape[0]

    velocity_profile, curvature_profile = fit_velocity_curvature(poses, dt)
    last = num_t - 2  # last profile index
    steps = np.arange(num_t - 1)
    horizon = TRACKING_HORIZON
    ref_velocity = velocity_profile[:, np.minimum(steps + horizon, last)]  # (K, T-1)
    window = curvature_profile[:, np.minimum(steps[:, None] + np.arange(horizon), last)]  # (K, T-1, N)
    pair, kappa_weights = _lqr_constants(horizon)
    kappa = np.moveaxis(window @ kappa_weights, -1, 0)  # (5, K, T-1)
    ref_cos, ref_sin = np.cos(poses[:, :, 2]), np.sin(poses[:, :, 2])

    b_long = horizon * dt  # velocity after the horizon: v + b_long * accel
    k_long = -1.0 / (b_long * Q_LONGITUDINAL * b_long + R_LONGITUDINAL) * b_long * Q_LONGITUDINAL
    q0, q1, q2 = Q_LATERAL
    c_a02, c_b0, c_b1 = dt**2 / WHEELBASE, dt**3 / WHEELBASE, dt**2 / WHEELBASE
    b2 = horizon * dt  # steering-angle entry of the lateral B
    accel_gain = dt / (dt + ACCEL_TIME_CONSTANT)
    steer_gain = dt / (dt + STEERING_TIME_CONSTANT)

    x, y, heading = state[:, S.X].copy(), state[:, S.Y].copy(), state[:, S.HEADING].copy()
    vel, accel, steer = state[:, S.VELOCITY_X].copy(), state[:, S.ACCELERATION_X].copy(), state[:, S.STEERING_ANGLE]
    yaw_rate = state[:, S.ANGULAR_VELOCITY]
    hist = {f: [] for f in ("x", "y", "h", "v", "a", "d", "r", "w", "wd")}
    for t in range(num_t - 1):
        # --- tracker: longitudinal (one-step LQR or stopping P controller)
        v_ref = ref_velocity[:, t]
        stop = (v_ref <= STOPPING_VELOCITY) & (vel <= STOPPING_VELOCITY)
        accel_cmd = np.where(stop, -STOPPING_GAIN * (vel - v_ref), k_long * (vel - v_ref))
        # --- tracker: lateral, errors w.r.t. reference pose t, velocity v + alpha * k over the horizon
        dx, dy = x - poses[:, t, 0], y - poses[:, t, 1]
        lat_err = -dx * ref_sin[:, t] + dy * ref_cos[:, t]
        head_err = _wrap(heading - poses[:, t, 2])
        alpha = accel_cmd * dt
        v2, va, a2 = vel * vel, vel * alpha, alpha * alpha
        a01 = dt * (horizon * vel + pair[2, 0] * alpha)
        a02 = c_a02 * (pair[0, 0] * v2 + pair[0, 1] * va + pair[0, 2] * a2)
        b0 = c_b0 * (pair[1, 0] * v2 + pair[1, 1] * va + pair[1, 2] * a2)
        b1 = c_b1 * (pair[2, 0] * vel + pair[2, 1] * alpha)
        g0 = -dt**2 * (kappa[2, :, t] * v2 + kappa[3, :, t] * va + kappa[4, :, t] * a2)
        g1 = -dt * (kappa[0, :, t] * vel + kappa[1, :, t] * alpha)
        err0 = lat_err + a01 * head_err + a02 * steer + g0
        err1 = _wrap(head_err + a01 / WHEELBASE * steer + g1)
        tail = q0 * b0 * err0 + q1 * b1 * err1
        if q2:
            tail = tail + q2 * b2 * _wrap(steer)
        steer_rate_cmd = -tail / (q0 * b0 * b0 + q1 * b1 * b1 + q2 * b2 * b2 + R_LATERAL)
        steer_rate_cmd = np.where(stop, 0.0, steer_rate_cmd)
        # --- bicycle: first-order lags, then forward Euler with the previous pose, speed and steering
        new_accel = accel_gain * (accel_cmd - accel) + accel
        ideal_steer = dt * steer_rate_cmd + steer
        filtered = steer_gain * (ideal_steer - steer) + steer
        steer_rate = (filtered - steer) / dt
        x = x + vel * np.cos(heading) * dt
        y = y + vel * np.sin(heading) * dt
        heading = (heading + vel * np.tan(steer) / WHEELBASE * dt + np.pi) % (2.0 * np.pi) - np.pi
        vel = vel + new_accel * dt
        steer = np.clip(steer + steer_rate * dt, -MAX_STEERING_ANGLE, MAX_STEERING_ANGLE)
        new_yaw_rate = vel * np.tan(steer) / WHEELBASE
        yaw_accel = (new_yaw_rate - yaw_rate) / dt
        accel, yaw_rate = new_accel, new_yaw_rate
        for key, value in zip(hist, (x, y, heading, vel, accel, steer, steer_rate, yaw_rate, yaw_accel)):
            hist[key].append(value)

    out = np.zeros((num_k, num_t, NUM_STATE_FIELDS))
    out[:, 0] = state
    fields = (S.X, S.Y, S.HEADING, S.VELOCITY_X, S.ACCELERATION_X, S.STEERING_ANGLE, S.STEERING_RATE,
              S.ANGULAR_VELOCITY, S.ANGULAR_ACCELERATION)
    if num_t > 1:
        out[:, 1:, list(fields)] = np.stack([np.stack(hist[key], axis=1) for key in hist], axis=-1)
    return out.reshape(*lead, num_t, NUM_STATE_FIELDS)
