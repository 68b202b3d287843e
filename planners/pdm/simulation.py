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


def navsim_normalize_angle(angle: np.ndarray) -> np.ndarray:
    """NAVSIM's `normalize_angle`, arctan2(sin, cos), in [-pi, pi] [rad]: not `scenes.geometry.wrap_angle`
    (which rounds differently and returns [-pi, pi)), so that the simulated states match NAVSIM's code."""
    return np.arctan2(np.sin(angle), np.cos(angle))


@functools.lru_cache(maxsize=8)
def _velocity_fit_matrix(num_displacements: int, dt: float) -> np.ndarray:
    """(M, M) G with velocity profile v = G @ s, s the displacements [m] projected on the start headings."""
    m = num_displacements
    integrate = np.tril(np.full((m, m), dt), k=-1)[:, :-1]  # v_i = v_0 + dt * sum_{j<i} a_j
    integrate = np.concatenate([np.ones((m, 1)), integrate], axis=1)  # (M, M) on x = (v_0, a_0..a_{M-2})
    design = dt * integrate  # displacement_i ~ dt * v_i along heading_i
    # NAVSIM's `_make_banded_difference_matrix` writes -I over its +1 band: the "jerk" rows are -a_j for
    # j < M - 2, and only the last row is a difference, a_{M-2} - a_{M-3}. Reproduced as is.
    jerk = np.zeros((m - 2, m))
    jerk[:, 1:-1] = -np.eye(m - 2)
    jerk[-1, -1] = 1.0
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
    rhs = weight * navsim_normalize_angle(diff[..., 2])
    _, _, curvature, info = lapack.dptsv(diag.ravel(), off.ravel()[:-1], rhs.ravel())
    if info != 0:
        raise np.linalg.LinAlgError(f"curvature fit: LAPACK ptsv info={info}")
    return velocity, curvature.reshape(k, m)


@functools.lru_cache(maxsize=8)
def _lqr_constants(horizon: int, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Closed forms of the lateral LQR's horizon products, linear in the features f = (v^2, va, av, a^2, v, a).

    Over the horizon the tracker's speed is v_k = v + a dt k (v current speed, a the acceleration command).
    Returns C (7, 6) giving (A01, A12, A02, q0 B0, q1 B1, B0, B1) = C @ f, and W (horizon, 2, 6) with
    (g0, g1) = sum_k kappa_k W[k] @ f for the curvatures kappa_k along the horizon.
    """
    n = np.arange(horizon, dtype=np.float64)
    i, j = np.meshgrid(n, n, indexing="ij")
    later = i > j
    pairs = [later.sum(), (later * (i + j)).sum() * dt, (later * i * j).sum() * dt**2]  # sum_{i>j} v_i v_j
    pairs_j = [(later * j).sum(), (later * j * (i + j)).sum() * dt, (later * j * i * j).sum() * dt**2]
    sum_v, sum_kv = [horizon, n.sum() * dt], [n.sum(), (n * n).sum() * dt]  # sum_k v_k, sum_k k v_k
    a01 = [0.0, 0.0, 0.0, 0.0, dt * sum_v[0], dt * sum_v[1]]
    a02 = [dt**2 / WHEELBASE * c for c in (pairs[0], pairs[1], 0.0, pairs[2])] + [0.0, 0.0]
    b0 = [dt**3 / WHEELBASE * c for c in (pairs_j[0], pairs_j[1], 0.0, pairs_j[2])] + [0.0, 0.0]
    b1 = [0.0, 0.0, 0.0, 0.0] + [dt**2 / WHEELBASE * c for c in sum_kv]
    q0, q1, _ = Q_LATERAL
    coef = np.array([a01, np.divide(a01, WHEELBASE), a02, np.multiply(q0, b0), np.multiply(q1, b1), b0, b1])
    tail = np.cumsum(n[::-1])[::-1] - n  # sum_{i>k} i
    weights = np.zeros((horizon, 2, 6))
    # g0 = -dt^2 sum_k kappa_k v_k sum_{i>k} v_i ; g1 = -dt sum_k kappa_k v_k
    weights[:, 0, 0] = -(dt**2) * (horizon - 1 - n)
    weights[:, 0, 1] = -(dt**3) * (tail + n * (horizon - 1 - n))
    weights[:, 0, 3] = -(dt**4) * n * tail
    weights[:, 1, 4] = -dt
    weights[:, 1, 5] = -(dt**2) * n
    return coef, weights


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
    out = np.zeros((num_k, num_t, NUM_STATE_FIELDS))
    out[:, 0] = state
    if num_t > 1:
        _closed_loop(poses, state, dt, out)
    return out.reshape(*lead, num_t, NUM_STATE_FIELDS)


def _sum_last(terms: np.ndarray) -> np.ndarray:
    """(..., 6) -> (...): explicit sum of the 6 feature terms."""
    return terms[..., 0] + terms[..., 1] + terms[..., 2] + terms[..., 3] + terms[..., 4] + terms[..., 5]


def _closed_loop(poses: np.ndarray, state: np.ndarray, dt: float, out: np.ndarray) -> None:
    """Fill out[:, 1:] (K, T-1, 11): per step the tracker's commands, then one bicycle step (NAVSIM order)."""
    num_k, num_t = poses.shape[:2]
    horizon = TRACKING_HORIZON
    velocity_profile, curvature_profile = fit_velocity_curvature(poses, dt)
    steps = np.arange(num_t - 1)
    last = num_t - 2  # last profile index; the tracker looks `horizon` steps ahead, clamped to it
    ref_velocity = velocity_profile[:, np.minimum(steps + horizon, last)].T.copy()  # (T-1, K)
    # stop controller iff v <= 0.2 and v_ref <= 0.2: compare v with 0.2, or with -inf if v_ref > 0.2
    stop_below = np.where(ref_velocity <= STOPPING_VELOCITY, STOPPING_VELOCITY, -np.inf)
    window = curvature_profile[:, np.minimum(steps[:, None] + np.arange(horizon), last)]  # (K, T-1, N)
    coef, weights = _lqr_constants(horizon, dt)
    g_weights = window @ weights.reshape(horizon, 12)
    g_weights = g_weights.reshape(num_k, num_t - 1, 2, 6).transpose(1, 2, 0, 3)  # (T-1, 2, K, 6)
    coef = coef[:, None, :]  # (7, 1, 6)
    ref_xy = (poses[:, :, 0] + 1j * poses[:, :, 1]).T.copy()  # (T, K)
    ref_rot = np.exp(-1j * poses[:, :, 2]).T.copy()  # rotates map-frame offsets into the reference frame
    ref_heading = poses[:, :, 2].T.copy()

    b_long = horizon * dt  # velocity after the horizon: v + b_long * accel
    k_long = -1.0 / (b_long * Q_LONGITUDINAL * b_long + R_LONGITUDINAL) * b_long * Q_LONGITUDINAL
    d_gain = -STOPPING_GAIN - k_long
    den0 = Q_LATERAL[2] * (horizon * dt) ** 2 + R_LATERAL  # B2 = horizon dt; its error term has weight 0
    assert Q_LATERAL[2] == 0.0, "the steering-angle error term is dropped from the lateral LQR"
    accel_gain = dt / (dt + ACCEL_TIME_CONSTANT)
    steer_gain = dt / (dt + STEERING_TIME_CONSTANT)
    two_pi, inv_two_pi = 2.0 * np.pi, 0.5 / np.pi
    clip = np.core.umath.clip  # type: ignore[attr-defined]  # the ufunc itself (np.clip wraps it)
    yaw_step = 1j * dt / WHEELBASE

    feats = np.empty((num_k, 6))  # (v^2, va, av, a^2, v, a)
    outer, pv = feats.reshape(num_k, 3, 2)[:, :2], feats[:, 4:]
    xy = state[:, S.X] + 1j * state[:, S.Y]
    j_heading = 1j * state[:, S.HEADING]
    feats[:, 4] = state[:, S.VELOCITY_X]
    accel, steer = state[:, S.ACCELERATION_X], state[:, S.STEERING_ANGLE]
    j_yaw_step = feats[:, 4] * np.tan(steer) * yaw_step  # heading rate v tan(steer) / wheelbase, times j dt
    hist: dict[str, list[np.ndarray]] = {f: [] for f in ("xy", "h", "v", "a", "d", "r")}  # (K,) per step
    for t in range(num_t - 1):
        vel = feats[:, 4]
        dv = vel - ref_velocity[t]
        stop = vel <= stop_below[t]
        np.multiply(stop * d_gain + k_long, dv, out=feats[:, 5])  # acceleration command
        np.multiply(pv[:, :, None], pv[:, None, :], out=outer)
        lqr = _sum_last(coef * feats)
        g = _sum_last(g_weights[t] * feats)
        lat_err = ((xy - ref_xy[t]) * ref_rot[t]).imag
        head_err = j_heading.imag - ref_heading[t]
        head_err = head_err - two_pi * np.rint(head_err * inv_two_pi)  # wrap to [-pi, pi]
        err0 = lat_err + lqr[0] * head_err + lqr[2] * steer + g[0]
        err1 = head_err + lqr[1] * steer + g[1]
        err1 = err1 - two_pi * np.rint(err1 * inv_two_pi)
        steer_cmd = (lqr[3] * err0 + lqr[4] * err1) / (lqr[3] * lqr[5] + lqr[4] * lqr[6] + den0) * (stop - 1.0)
        # bicycle: first-order lags, then forward Euler from the previous pose, speed and steering angle
        steer_rate = steer_gain * steer_cmd
        accel = accel_gain * (feats[:, 5] - accel) + accel
        xy = xy + np.exp(j_heading) * (vel * dt)
        j_heading = j_heading + j_yaw_step
        vel = vel + accel * dt
        steer = clip(steer + steer_rate * dt, -MAX_STEERING_ANGLE, MAX_STEERING_ANGLE)
        j_yaw_step = vel * np.tan(steer) * yaw_step
        feats[:, 4] = vel
        for key, value in zip(hist, (xy, j_heading, vel, accel, steer, steer_rate)):
            hist[key].append(value)

    xy, heading = np.stack(hist["xy"], 1), np.stack(hist["h"], 1).imag
    out[:, 1:, S.X], out[:, 1:, S.Y] = xy.real, xy.imag
    out[:, 1:, S.HEADING] = (heading + np.pi) % two_pi - np.pi
    for key, field in (("v", S.VELOCITY_X), ("a", S.ACCELERATION_X), ("d", S.STEERING_ANGLE),
                       ("r", S.STEERING_RATE)):
        out[:, 1:, field] = np.stack(hist[key], 1)
    yaw_rate = out[:, 1:, S.VELOCITY_X] * np.tan(out[:, 1:, S.STEERING_ANGLE]) / WHEELBASE
    out[:, 1:, S.ANGULAR_VELOCITY] = yaw_rate
    out[:, 1:, S.ANGULAR_ACCELERATION] = np.diff(out[:, :, S.ANGULAR_VELOCITY], axis=1) / dt
