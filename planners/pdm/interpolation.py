"""Agent plan -> reference states for the PDM simulator, as NAVSIM v1.1 `pdm_score.py` builds them.

NAVSIM converts the 8 ego-frame poses to the map frame (nuPlan `relative_to_absolute_poses`), prefixes the
logged ego state, wraps everything in nuPlan's `InterpolatedTrajectory` and samples it every 0.1 s. That
interpolation is linear in time (scipy `interp1d` on integer microseconds) for x, y, velocity, acceleration
and steering; heading is `np.unwrap`-ped over the knots, interpolated linearly, then wrapped to [-pi, pi).
"""

from __future__ import annotations

import numpy as np

from planners.pdm.states import NUM_SIM_STATES, NUM_STATE_FIELDS, SIM_INTERVAL, StateIndex
from scenes.geometry import wrap_angle

PLAN_INTERVAL = 0.5  # [s] spacing of the agent's 8 poses
_LINEAR_FIELDS = [StateIndex.VELOCITY_X, StateIndex.VELOCITY_Y, StateIndex.ACCELERATION_X,
                  StateIndex.ACCELERATION_Y, StateIndex.STEERING_ANGLE]


def plan_to_global_poses(plan_poses_ego: np.ndarray, ego_pose: np.ndarray) -> np.ndarray:
    """(..., N, 3) rear-axle-frame poses + ego pose (..., 3) -> (..., N + 1, 3) map-frame poses.

    Entry 0 is `ego_pose` as given; the others compose ego @ plan as 3x3 SE(2) matrices and read the heading
    back with arctan2, i.e. in (-pi, pi] [rad].
    """
    plan = np.asarray(plan_poses_ego, dtype=np.float64)
    ego = np.asarray(ego_pose, dtype=np.float64)
    lead = np.broadcast_shapes(plan.shape[:-2], ego.shape[:-1])
    plan = np.broadcast_to(plan, (*lead, *plan.shape[-2:]))
    ego = np.broadcast_to(ego, (*lead, 3))
    c0, s0 = np.cos(ego[..., 2:3]), np.sin(ego[..., 2:3])
    cr, sr = np.cos(plan[..., 2]), np.sin(plan[..., 2])
    out = np.empty((*lead, plan.shape[-2] + 1, 3))
    out[..., 0, :] = ego
    out[..., 1:, 0] = c0 * plan[..., 0] - s0 * plan[..., 1] + ego[..., 0:1]
    out[..., 1:, 1] = s0 * plan[..., 0] + c0 * plan[..., 1] + ego[..., 1:2]
    out[..., 1:, 2] = np.arctan2(s0 * cr + c0 * sr, c0 * cr - s0 * sr)
    return out


def _interp_weights(num_in: int, interval_in: float, num_out: int, interval_out: float):
    """scipy interp1d bookkeeping on a microsecond grid: (lo (num_out,), slope scale, offset) for each output."""
    t_in = np.round(np.arange(num_in) * interval_in * 1e6)  # [us]
    t_out = np.clip(np.round(np.arange(num_out) * interval_out * 1e6), t_in[0], t_in[-1])
    hi = np.clip(np.searchsorted(t_in, t_out), 1, num_in - 1)
    lo = hi - 1
    return lo, t_in[hi] - t_in[lo], t_out - t_in[lo]


def _interp_linear(values: np.ndarray, interval_in: float, num_out: int, interval_out: float) -> np.ndarray:
    """(..., T) knots at 0, interval_in, ... -> (..., num_out) samples; slope * dt + lo, as interp1d."""
    lo, width, offset = _interp_weights(values.shape[-1], interval_in, num_out, interval_out)
    y_lo, y_hi = values[..., lo], values[..., lo + 1]
    return (y_hi - y_lo) / width * offset + y_lo


def interpolate_poses(
    poses: np.ndarray, interval_in: float, num_out: int = NUM_SIM_STATES, interval_out: float = SIM_INTERVAL
) -> np.ndarray:
    """(..., T, 3) poses at 0, interval_in, ... [s] -> (..., num_out, 3) at 0, interval_out, ... [s].

    Times past the last knot are clamped to it (NAVSIM clips the query times). Heading [rad] is unwrapped
    over the knots, interpolated linearly and wrapped to [-pi, pi), exactly as nuPlan's AngularInterpolator.
    """
    poses = np.asarray(poses, dtype=np.float64)
    out = np.empty((*poses.shape[:-2], num_out, 3))
    out[..., 0] = _interp_linear(poses[..., 0], interval_in, num_out, interval_out)
    out[..., 1] = _interp_linear(poses[..., 1], interval_in, num_out, interval_out)
    heading = _interp_linear(np.unwrap(poses[..., 2], axis=-1), interval_in, num_out, interval_out)
    out[..., 2] = wrap_angle(heading)
    return out


def poses_to_states(
    poses: np.ndarray, ego_state0: np.ndarray, interval_in: float = PLAN_INTERVAL,
    interval_out: float = SIM_INTERVAL,
) -> np.ndarray:
    """(..., T, 3) interpolated poses + logged ego state (..., 11) -> (..., T, 11) reference states.

    As NAVSIM's `get_trajectory_as_array`: the plan states carry zero velocity, acceleration and steering,
    so these fields ramp linearly from the ego's values at t=0 to 0 at t=interval_in [s] (the first plan
    knot); steering rate, angular velocity and angular acceleration are 0 everywhere, state 0 included,
    because nuPlan rebuilds interpolated EgoStates without them. Only the poses reach the simulator.
    """
    poses = np.asarray(poses, dtype=np.float64)
    ego = np.asarray(ego_state0, dtype=np.float64)
    lead = np.broadcast_shapes(poses.shape[:-2], ego.shape[:-1])
    num_out = poses.shape[-2]
    states = np.zeros((*lead, num_out, NUM_STATE_FIELDS))
    states[..., :3] = poses
    num_knots = max(2, int(np.ceil((num_out - 1) * interval_out / interval_in - 1e-9)) + 1)
    knots = np.zeros((*lead, len(_LINEAR_FIELDS), num_knots))
    knots[..., 0] = np.broadcast_to(ego, (*lead, NUM_STATE_FIELDS))[..., _LINEAR_FIELDS]
    states[..., _LINEAR_FIELDS] = np.swapaxes(_interp_linear(knots, interval_in, num_out, interval_out), -1, -2)
    return states
