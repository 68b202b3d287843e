"""NAVSIM v1.1 ego simulation: frame transforms, nuPlan-style interpolation, LQR + kinematic bicycle."""

import numpy as np
import pytest
from scipy.interpolate import interp1d

from planners.pdm.simulation import (
    ego_state_vector,
    interpolate_poses,
    plan_to_global_poses,
    poses_to_states,
    simulate,
)
from planners.pdm.states import NUM_SIM_STATES
from planners.pdm.states import StateIndex as S
from scenes.ego import EgoState
from scenes.geometry import poses_to_local, wrap_angle

T_PLAN = np.arange(1, 9) * 0.5  # [s]
T_SIM = np.arange(NUM_SIM_STATES) * 0.1


def _ego(pose=(0.0, 0.0, 0.0), speed=0.0, accel=0.0, steer=0.0, yaw_rate=0.0) -> np.ndarray:
    state = np.zeros(11)
    state[:3], state[S.VELOCITY_X], state[S.ACCELERATION_X] = pose, speed, accel
    state[S.STEERING_ANGLE], state[S.ANGULAR_VELOCITY] = steer, yaw_rate
    return state


def _states_from_plan(plan: np.ndarray, ego: np.ndarray) -> np.ndarray:
    poses = interpolate_poses(plan_to_global_poses(plan, ego[..., :3]), 0.5)
    return poses_to_states(poses, ego)


def _arc_plan(speed: float, curvature: float, times: np.ndarray = T_PLAN) -> np.ndarray:
    s = speed * times
    h = curvature * s
    return np.stack([np.sin(h) / curvature, (1 - np.cos(h)) / curvature, h], -1)


def test_straight_plan_interpolates_exactly():
    ego = np.array([12.0, -3.0, 0.7])
    plan = np.stack([8.0 * T_PLAN, np.zeros(8), np.zeros(8)], -1)
    poses = interpolate_poses(plan_to_global_poses(plan, ego), 0.5)
    assert poses.shape == (NUM_SIM_STATES, 3)
    expected = ego[:2] + 8.0 * T_SIM[:, None] * np.array([np.cos(0.7), np.sin(0.7)])
    np.testing.assert_allclose(poses[:, :2], expected, atol=1e-9)
    np.testing.assert_allclose(poses[:, 2], 0.7, atol=1e-12)


def test_circular_plan_interpolates_on_chords():
    radius, omega, h0 = 20.0, 0.4, 3.0  # left turn at 8 m/s; heading crosses +pi
    knots_t = np.arange(9) * 0.5
    angle = h0 - np.pi / 2 + omega * knots_t  # polar angle of the rear axle around the centre
    centre = np.array([5.0, 7.0])
    knots = np.stack([centre[0] + radius * np.cos(angle), centre[1] + radius * np.sin(angle),
                      wrap_angle(h0 + omega * knots_t)], -1)
    plan = poses_to_local(knots[1:], knots[0])
    poses = interpolate_poses(plan_to_global_poses(plan, knots[0]), 0.5)
    seg, frac = np.minimum(T_SIM // 0.5, 7).astype(int), (T_SIM - 0.5 * np.minimum(T_SIM // 0.5, 7)) / 0.5
    # chord point: radius sqrt((1-f)^2 + f^2 + 2 f (1-f) cos(dphi)), polar angle from the chord direction
    dphi = omega * 0.5
    r = radius * np.sqrt((1 - frac) ** 2 + frac**2 + 2 * frac * (1 - frac) * np.cos(dphi))
    polar = angle[seg] + np.arctan2(frac * np.sin(dphi), (1 - frac) + frac * np.cos(dphi))
    np.testing.assert_allclose(np.hypot(*(poses[:, :2] - centre).T), r, atol=1e-9)
    np.testing.assert_allclose(poses[:, :2], centre + r[:, None] * np.stack([np.cos(polar), np.sin(polar)], -1),
                               atol=1e-9)
    # heading: unwrapped, linear in time, hence exact on the circle; wrapped to [-pi, pi)
    np.testing.assert_allclose(poses[:, 2], wrap_angle(h0 + omega * T_SIM), atol=1e-9)
    assert np.all(poses[:, 2] >= -np.pi) and np.all(poses[:, 2] < np.pi)
    assert np.max(radius - r) > 0.09  # the chord error is real (R (1 - cos(dphi / 2)) = 0.1 m)


def test_interpolation_matches_scipy_interp1d_on_microseconds():
    rng = np.random.default_rng(3)
    knots = rng.normal(size=(9, 3)) * [10.0, 10.0, 2.5]
    got = interpolate_poses(knots, 0.5)
    t_in, t_out = np.arange(9) * 500_000, np.arange(41) * 100_000
    np.testing.assert_array_equal(got[:, :2], interp1d(t_in, knots[:, :2], axis=0)(t_out))
    heading = interp1d(t_in, np.unwrap(knots[:, 2]))(t_out)
    np.testing.assert_allclose(got[:, 2], (heading + np.pi) % (2 * np.pi) - np.pi, atol=1e-15)


def test_plan_to_global_round_trip_and_batching():
    rng = np.random.default_rng(0)
    plans = rng.normal(size=(5, 8, 3)) * [10.0, 3.0, 1.0]
    egos = rng.normal(size=(5, 3)) * [100.0, 100.0, 3.0]
    glob = plan_to_global_poses(plans, egos)
    assert glob.shape == (5, 9, 3)
    np.testing.assert_array_equal(glob[:, 0], egos)
    for plan, ego, g in zip(plans, egos, glob):
        back = poses_to_local(g[1:], ego)
        np.testing.assert_allclose(back[:, :2], plan[:, :2], atol=1e-9)
        np.testing.assert_allclose(wrap_angle(back[:, 2] - plan[:, 2]), 0.0, atol=1e-12)
        np.testing.assert_array_equal(plan_to_global_poses(plan, ego), g)


def test_poses_to_states_follows_interpolated_trajectory():
    ego = _ego((1.0, 2.0, 0.3), speed=5.0, accel=1.0, steer=0.1, yaw_rate=0.2)
    ego[S.VELOCITY_Y], ego[S.STEERING_RATE], ego[S.ANGULAR_ACCELERATION] = 0.2, 0.4, 0.5
    poses = interpolate_poses(plan_to_global_poses(_arc_plan(5.0, 0.01), ego[:3]), 0.5)
    states = poses_to_states(poses, ego)
    np.testing.assert_array_equal(states[:, :3], poses)
    ramp = np.maximum(1.0 - T_SIM / 0.5, 0.0)
    for field in (S.VELOCITY_X, S.VELOCITY_Y, S.ACCELERATION_X, S.STEERING_ANGLE):
        np.testing.assert_allclose(states[:, field], ego[field] * ramp, atol=1e-12)
    for field in (S.ACCELERATION_Y, S.STEERING_RATE, S.ANGULAR_VELOCITY, S.ANGULAR_ACCELERATION):
        np.testing.assert_array_equal(states[:, field], 0.0)


def test_ego_state_vector():
    ego = EgoState(pose=np.array([1.0, 2.0, 0.5]), velocity=np.array([3.0, 0.1]),
                   acceleration=np.array([0.4, -0.2]), yaw_rate=np.array(0.05), steering=np.array(0.02))
    vec = ego_state_vector(ego)
    np.testing.assert_array_equal(vec, [1.0, 2.0, 0.5, 3.0, 0.1, 0.4, -0.2, 0.02, 0.0, 0.05, 0.0])


@pytest.mark.parametrize("name", ["straight", "arc", "accelerating"])
def test_lqr_tracks_feasible_plans(name):
    ego_pose = (30.0, -10.0, 1.2)
    if name == "straight":
        ego, plan = _ego(ego_pose, speed=10.0), np.stack([10.0 * T_PLAN, 0 * T_PLAN, 0 * T_PLAN], -1)
    elif name == "arc":  # 10 m/s on a 50 m radius, starting with the matching steering angle and yaw rate
        steer = np.arctan(3.089 / 50.0)
        ego, plan = _ego(ego_pose, speed=10.0, steer=steer, yaw_rate=0.2), _arc_plan(10.0, 1 / 50.0)
    else:  # 5 -> 6 m/s with a smooth acceleration a(t) = 0.5 sin(pi t / 4) [m/s^2]
        ego = _ego(ego_pose, speed=5.0)
        s = 5.0 * T_PLAN + 0.5 * (4 / np.pi) * (T_PLAN - (4 / np.pi) * np.sin(np.pi * T_PLAN / 4))
        plan = np.stack([s, 0 * s, 0 * s], -1)
    ref = _states_from_plan(plan, ego)
    sim = simulate(ref[None], ego)[0]
    np.testing.assert_array_equal(sim[0], ego)
    assert np.max(np.hypot(*(sim[:, :2] - ref[:, :2]).T)) < 0.2
    assert np.max(np.abs(wrap_angle(sim[:, 2] - ref[:, 2]))) < 0.02


def test_tracker_lags_accelerating_plans_like_navsim():
    """NAVSIM's velocity fit penalises accelerations (not jerk), and the LQR aims 1 s ahead: a plan at a
    constant 1 m/s^2 from 5 m/s ends about 0.71 m behind (checked against NAVSIM v1.1's own code)."""
    ego = _ego(speed=5.0)
    s = 5.0 * T_PLAN + 0.5 * T_PLAN**2
    ref = _states_from_plan(np.stack([s, 0 * s, 0 * s], -1), ego)
    sim = simulate(ref, ego)
    assert ref[-1, 0] - sim[-1, 0] == pytest.approx(0.7086, abs=1e-3)


def test_stop_controller_keeps_standstill():
    ego = _ego((4.0, 5.0, -2.0))
    sim = simulate(_states_from_plan(np.zeros((8, 3)), ego)[None], ego)[0]
    np.testing.assert_array_equal(sim, np.broadcast_to(ego, sim.shape))


def _random_batch(num: int, seed: int):
    rng = np.random.default_rng(seed)
    speed, accel = rng.uniform(0, 20, (num, 1)), rng.uniform(-4, 3, (num, 1))
    s = np.maximum(speed * T_PLAN + 0.5 * accel * T_PLAN**2, 0.0)
    h = rng.uniform(-0.3, 0.3, (num, 1)) * s / 10 + rng.normal(0, 0.1, (num, 8))
    plans = np.stack([s * np.cos(h), s * np.sin(h), h], -1) + rng.normal(0, 0.5, (num, 8, 3)) * [1, 1, 0]
    egos = np.zeros((num, 11))
    egos[:, :3] = rng.normal(size=(num, 3)) * [500, 500, 3]
    egos[:, S.VELOCITY_X] = np.abs(rng.normal(0, 8, num))
    egos[::4, S.VELOCITY_X] = 0.1  # some rows start in the stop controller's band
    egos[:, S.STEERING_ANGLE] = rng.normal(0, 0.3, num)
    egos[:, S.ANGULAR_VELOCITY] = rng.normal(0, 0.2, num)
    return _states_from_plan(plans, egos), egos


def test_batched_equals_row_by_row_and_steering_is_bounded():
    refs, egos = _random_batch(12, seed=1)
    egos[0] = _ego((3.0, 4.0, 0.5), speed=4.0)
    refs[0] = _states_from_plan(_arc_plan(4.0, 1.0), egos[0])  # 1 m radius: beyond the steering limit
    sims = simulate(refs, egos)
    assert sims.shape == (12, NUM_SIM_STATES, 11)
    np.testing.assert_array_equal(sims[:, 0], egos)
    # rows agree to rounding only: BLAS and numpy's SIMD loops (e.g. sin/cos/tan) round differently for
    # different array sizes and alignments, so bit-exact equality cannot be guaranteed
    for k in range(12):
        np.testing.assert_allclose(simulate(refs[k:k + 1], egos[k])[0], sims[k], rtol=0, atol=1e-10)
    assert np.max(np.abs(sims[:, :, S.STEERING_ANGLE])) <= np.pi / 3
    assert np.max(np.abs(sims[:, :, S.STEERING_ANGLE])) == pytest.approx(np.pi / 3)  # row 0 saturates
    np.testing.assert_array_equal(sims[:, 1:, [S.VELOCITY_Y, S.ACCELERATION_Y]], 0.0)
    # leading dimensions and a shared initial state
    np.testing.assert_allclose(simulate(refs.reshape(3, 4, 41, 11), egos[0])[1, 2], simulate(refs[6], egos[0]),
                               rtol=0, atol=1e-10)


# --- a naive dense transcription of NAVSIM's algorithm (pinv least squares, per-step horizon matrices)
def _naive_simulate(poses: np.ndarray, init: np.ndarray) -> np.ndarray:
    dt, wb, n_h, m = 0.1, 3.089, 10, poses.shape[0] - 1
    d = np.diff(poses, axis=0)
    design = np.zeros((2 * m, m))
    for i in range(m):
        for row, f in ((2 * i, np.cos), (2 * i + 1, np.sin)):
            design[row, 0], design[row, 1:i + 1] = f(poses[i, 2]) * dt, f(poses[i, 2]) * dt**2
    jerk = np.zeros((m - 2, m))
    jerk[np.arange(m - 2), np.arange(m - 2) + 1] = -1.0  # NAVSIM's banded matrix, +1 band overwritten
    jerk[-1, -1] = 1.0
    x = np.linalg.pinv(design.T @ design + 1e-4 * jerk.T @ jerk) @ design.T @ d[:, :2].ravel()
    vel = x[0] + np.concatenate([[0], np.cumsum(x[1:] * dt)])
    lower = np.tri(m) * dt**2 * vel[:, None]
    lower[:, 0] = vel * dt
    reg = 1e-2 * np.eye(m)
    reg[0, 0] = 1e-10
    x = np.linalg.pinv(lower.T @ lower + reg) @ lower.T @ np.arctan2(np.sin(d[:, 2]), np.cos(d[:, 2]))
    kappa = x[0] + np.concatenate([[0], np.cumsum(x[1:] * dt)])
    out = np.zeros((m + 1, 11))
    out[0] = s = init
    for t in range(m):
        ridx = min(t + n_h, m - 1)
        v, v_ref = s[S.VELOCITY_X], vel[ridx]
        if v <= 0.2 and v_ref <= 0.2:
            acc, u = -0.5 * (v - v_ref), 0.0
        else:
            acc = -10.0 / 11.0 * (v - v_ref)
            a_mat, b_vec, g_vec = np.eye(3), np.zeros(3), np.zeros(3)
            for k in range(n_h):
                vk = v + k * acc * dt
                phi = np.eye(3)
                phi[0, 1], phi[1, 2] = vk * dt, vk * dt / wb
                a_mat, b_vec = phi @ a_mat, phi @ b_vec + [0, 0, dt]
                g_vec = phi @ g_vec + [0, -vk * kappa[min(t + k, ridx)] * dt, 0]
            h = poses[t, 2]
            dx, dy = s[0] - poses[t, 0], s[1] - poses[t, 1]
            err = a_mat @ [-dx * np.sin(h) + dy * np.cos(h), np.angle(np.exp(1j * (s[2] - h))), s[7]] + g_vec
            err[1] = np.angle(np.exp(1j * err[1]))
            q = np.array([1.0, 10.0, 0.0])
            u = -(b_vec * q) @ err / ((b_vec * q) @ b_vec + 1.0)
        new = s.copy()
        new[S.ACCELERATION_X] = acc_f = 0.1 / 0.3 * (acc - s[5]) + s[5]
        new[S.STEERING_RATE] = rate = 0.1 / 0.15 * u
        new[0], new[1] = s[0] + s[3] * np.cos(s[2]) * dt, s[1] + s[3] * np.sin(s[2]) * dt
        new[2] = wrap_angle(s[2] + s[3] * np.tan(s[7]) / wb * dt)
        new[3], new[4], new[6] = s[3] + acc_f * dt, 0.0, 0.0
        new[7] = np.clip(s[7] + rate * dt, -np.pi / 3, np.pi / 3)
        new[9] = new[3] * np.tan(new[7]) / wb
        new[10] = (new[9] - s[9]) / dt
        out[t + 1] = s = new
    return out


def test_matches_naive_dense_navsim_transcription():
    refs, egos = _random_batch(6, seed=7)
    sims = simulate(refs, egos)
    for ref, ego, sim in zip(refs, egos, sims):
        naive = _naive_simulate(ref[:, :3], ego)
        diff = np.abs(sim - naive)
        diff[:, 2] = np.abs(wrap_angle(sim[:, 2] - naive[:, 2]))
        assert diff.max() < 1e-8
