"""The one IDM (scenes.idm): hand-computed values of both variants, and its users agree with it."""

from __future__ import annotations

import numpy as np
import pytest

from planners.pdm.idm import IDMParameters, idm_step
from scenes.idm import braking_term, free_road_acceleration, idm_acceleration
from scenes.portable import integer_power
from scenes.synthetic.traffic import idm, idm1


def test_free_road_is_the_desired_speed_term_only():
    # a = 1.5 (1 - (10 / 20)^4) = 1.5 * 15 / 16, exact in binary
    assert idm_acceleration(10.0, 20.0, np.inf, 3.0, 1.5, 2.0, 1.0, 2.0) == 1.40625
    assert free_road_acceleration(10.0, 20.0, 1.5) == 1.40625
    assert free_road_acceleration(0.0, 0.0, 1.5) == 1.5  # v0 = 0 is floored, not a division by zero


def test_the_two_variants_differ_only_when_the_leader_pulls_away():
    # v = 10, leader 5 m/s faster, T = 1 s, s0 = 2 m, a = b = 1 (braking term 2), gap 4 m, v0 = 20:
    # dynamic part 10 * 1 + 10 * (-5) / 2 = -15; free term (1/2)^4 = 1/16.
    kwargs = {"speed": 10.0, "desired_speed": 20.0, "gap": 4.0, "approach_rate": -5.0, "max_accel": 1.0,
              "braking": float(braking_term(1.0, 1.0)), "headway": 1.0, "jam_gap": 2.0}
    assert kwargs["braking"] == 2.0
    # Treiber: s* = 2 + max(0, -15) = 2, (2 / 4)^2 = 1/4 -> 1 - 1/16 - 1/4
    assert idm_acceleration(**kwargs) == 0.6875
    # nuPlan: s* = 2 - 15 = -13, (-13 / 4)^2 = 10.5625 -> 1 - 1/16 - 10.5625
    assert idm_acceleration(**kwargs, nonnegative_dynamic_gap=False) == -9.625
    closing = {**kwargs, "approach_rate": 2.0}  # s* = 2 + 10 + 10 = 22 in both: (22 / 4)^2 = 30.25
    assert idm_acceleration(**closing) == idm_acceleration(**closing, nonnegative_dynamic_gap=False) == -29.3125


def test_integer_power_is_repeated_squaring():
    x = np.random.default_rng(0).uniform(0.0, 2.0, 1000)
    assert np.array_equal(integer_power(x, 4), (x * x) * (x * x))
    assert np.array_equal(integer_power(x, 10), ((x * x) * (x * x)) * ((x * x) * (x * x)) * (x * x))
    for n in range(1, 13):
        np.testing.assert_allclose(integer_power(x, n), x ** n, rtol=4e-16 * n, atol=0)
    assert integer_power(1.5, 10) == 1.5 ** 10 == 57.6650390625  # exact in binary
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match="integer exponent"):
            integer_power(x, bad)


def test_synthetic_traffic_uses_treibers_variant():
    args = (10.0, 20.0, 4.0, -5.0, 1.0, 1.0, 1.0, 2.0)  # v, v0, gap, dv, a, b, T, s0
    assert idm(*args) == idm1(*args) == 0.6875


def test_pdm_step_is_nuplans_idm_clipped():
    """nuPlan's formula written out with numpy's `power`, against idm_step, on random rows."""
    rng = np.random.default_rng(1)
    params = IDMParameters()
    rows = 500
    progress, velocity = rng.uniform(0, 50, rows), rng.uniform(0, 20, rows)
    lead_progress, lead_velocity = progress + rng.uniform(-5, 60, rows), rng.uniform(0, 25, rows)
    rear, target = rng.uniform(0, 3, rows), rng.uniform(2, 20, rows)
    s_star = (params.min_gap_to_lead_agent + velocity * params.headway_time
              + velocity * (velocity - lead_velocity) / (2 * np.sqrt(params.accel_max * params.decel_max)))
    gap = np.maximum(lead_progress - progress - rear, params.min_gap_to_lead_agent)
    accel = params.accel_max * (1 - (velocity / target) ** params.acceleration_exponent - (s_star / gap) ** 2)
    expected = velocity + 0.1 * np.clip(accel, -params.decel_max, params.accel_max)
    next_progress, next_velocity = idm_step(progress, velocity, lead_progress, lead_velocity, rear, target,
                                            params, 0.1)
    np.testing.assert_allclose(next_velocity, expected, rtol=0, atol=1e-12)
    assert np.array_equal(next_progress, progress + 0.1 * velocity)
    assert (next_velocity < velocity - 0.1 * params.decel_max + 1e-12).any()  # some rows brake at the limit
