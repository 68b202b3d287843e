"""pSTL's closed-loop test (eval.pstl.closed_loop): a scripted pSTL planner with known candidates on
hand-built straight roads (exact compliance, area, progress and collision values), the observation scorer
against stl directly, and determinism of a tiny untrained pSTL planner on synthetic logs."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from eval.closed_loop.job import LogSource
from eval.closed_loop.simulation import AgentMode, SimulationConfig, simulate_log
from eval.pstl import SurrogateSignals, mode_formula, mode_robustness, valid_area
from eval.pstl.closed_loop import (
    PstlClosedLoopConfig,
    observation_scorer,
    pstl_condition,
    run_pstl_closed_loop,
    run_scenario,
    summarize,
    world_scene,
)
from planners.pstl.condition import DrivingMode
from planners.pstl.model import PstlConfig, PstlModel, headings_from_xy
from planners.pstl.planner import PstlPlanner, SamplingSettings
from scenes import (
    CURRENT_INDEX,
    NUM_STEPS,
    SIM_DT,
    AgentTracks,
    DriveLog,
    TrafficLights,
)
from scenes.ego import PACIFICA
from scenes.errors import ConfigError
from stl.robustness import robustness
from tests import factories

TINY = {"d_model": 32, "depth": 1, "heads": 2, "ffn_dim": 64, "max_agents": 8, "max_polylines": 16,
        "hidden_dim": 64}
NUM_LOG_STEPS = factories.LOG_STEPS  # 12 s after the start
STEPS = np.arange(1, 9)  # plan poses, 0.5 s apart
FAST = 12.0  # [m/s] above pSTL's v_max = 9
DRIFT = 0.8  # [m] lateral offset of the drifting candidate at 4 s
CAR_X, CAR_SIZE = factories.CAR_X, factories.CAR_SIZE  # [m] the stopped car's centre and box
H_MAX = math.acos(0.8)  # [rad] pSTL's h_max = 0.2 on 1 - cos(error)


def straight_log(speed: float, stopped_car: bool) -> DriveLog:
    """`tests.factories.straight_log` at `speed` [m/s], with its stopped car at x = CAR_X or no agents."""
    return factories.straight_log(speed, None if stopped_car else AgentTracks.empty(NUM_LOG_STEPS))


def with_headings(xy: np.ndarray) -> np.ndarray:
    """(S, 8, 2) -> (S, 8, 3) plans with the model's headings."""
    tensor = torch.from_numpy(xy)
    return torch.cat([tensor, headings_from_xy(tensor)[..., None]], -1).numpy()


def scripted_candidates(speed: float, num: int, drift: float, fast: float | None = FAST) -> np.ndarray:
    """(num, 8, 3): the first half at `speed` [m/s] (candidate 0 straight along x, candidate 1 drifting left
    linearly to `drift` [m] at 4 s, the rest straight), the second half straight at `fast` (None: `speed`)."""
    xy = np.zeros((num, 8, 2))
    half = num // 2
    xy[:half, :, 0] = speed * 0.5 * STEPS
    xy[half:, :, 0] = (speed if fast is None else fast) * 0.5 * STEPS
    xy[1, :, 1] = drift * STEPS / 8.0
    return with_headings(xy)


class ScriptedModel(PstlModel):
    """A TINY PstlModel whose `sample` returns `scripted_candidates` at the observed speed
    (features.status[:, 4]); `drift` None draws it from the generator, U(0.2, 1.0) m per call."""

    def __init__(self, drift: float | None, fast: float | None):
        super().__init__(PstlConfig(**TINY))
        self.drift, self.fast = drift, fast

    def sample(self, features, condition, generator=None, sampler="ddim", steps=None, num_samples=1,
               guide=None):
        out = []
        for speed in features.status[:, 4].tolist():
            drift = self.drift
            if drift is None:
                drift = 0.2 + 0.8 * float(torch.rand(1, generator=generator))
            out.append(scripted_candidates(speed, num_samples, drift, self.fast))
        return torch.from_numpy(np.stack(out)).to(torch.float32)


def scripted_planner(drift: float | None = DRIFT, fast: float | None = FAST) -> PstlPlanner:
    """The real PstlPlanner around ScriptedModel, ranking by the observation scorer."""
    planner = PstlPlanner(ScriptedModel(drift, fast))
    planner.configure(pstl_condition(), SamplingSettings(num_samples=4))
    planner.scorer = observation_scorer()
    return planner


def test_pstl_condition_is_the_papers_fixed_theta():
    condition = pstl_condition()
    assert condition.mode is DrivingMode.KEEP
    np.testing.assert_allclose(condition.theta, [1.0, 9.0, 2.0, H_MAX, 0.1])
    assert 1.0 - math.cos(condition.h_max) == pytest.approx(0.2, abs=1e-15)  # pSTL's heading bound
    config = PstlClosedLoopConfig()
    assert (config.replan_every, config.samples, config.duration) == (5, 64, 15.0)
    assert config.simulation() == SimulationConfig(15.0, 5, AgentMode.REPLAY, 0)


def test_the_config_refuses_reactive_agents_and_bad_sample_counts():
    with pytest.raises(ConfigError, match="agents must be replay"):
        PstlClosedLoopConfig(agents=AgentMode.IDM).validate()
    with pytest.raises(ConfigError, match="samples must be a positive integer"):
        PstlClosedLoopConfig(samples=0).validate()
    with pytest.raises(ConfigError, match="replan_every"):
        PstlClosedLoopConfig(replan_every=0).validate()


def test_the_observation_scorer_is_exact_stl_on_the_surrogate_signals():
    observation = straight_log(5.0, stopped_car=True)._observe_log(CURRENT_INDEX)
    plans = scripted_candidates(5.0, 4, DRIFT)
    condition = pstl_condition()
    rho = observation_scorer()(observation, condition, plans)
    signals = SurrogateSignals.from_observation(observation).signals(torch.from_numpy(plans[..., :2]))
    direct = robustness(mode_formula(condition), signals, t=0, mode="exact").numpy()
    np.testing.assert_array_equal(rho, direct)
    # by hand: on the centreline at 5 m/s, lane_keeping = min(d_lat, h_max) binds; at 12 m/s, v_max - 12
    assert rho[0] == pytest.approx(H_MAX, abs=1e-12)
    heading = math.atan2(DRIFT / 8.0, 2.5)
    assert rho[1] == pytest.approx(H_MAX - heading, abs=1e-12)
    np.testing.assert_allclose(rho[2:], 9.0 - FAST, atol=1e-9)
    smooth = observation_scorer(temperature=100.0)(observation, condition, plans)
    assert (smooth <= rho + 1e-12).all()  # the soft-min is below the min


def test_half_the_candidates_over_v_max_give_compliance_one_half_and_exact_progress():
    config = PstlClosedLoopConfig(duration=6.0, samples=4)
    record = run_scenario(scripted_planner(), straight_log(5.0, stopped_car=False), 0, config)
    # calls every 0.5 s over 6 s; the two FAST candidates break speed_band, the other two comply
    np.testing.assert_array_equal(record.call_steps, np.arange(0, 60, 5))
    np.testing.assert_array_equal(record.call_compliance, 0.5)
    np.testing.assert_array_equal(record.call_surrogate_compliance, 0.5)
    # satisfying points: (2.5 j, 0) and (2.5 j, 0.1 j), j = 1..8, 16 distinct cells of 100 x 100 over
    # [2.5, 20] x [0, 0.8] m
    assert valid_area(scripted_candidates(5.0, 4, DRIFT)[..., :2], np.array([True, True, False, False])) \
        == pytest.approx(16 / 100**2 * 17.5 * DRIFT, rel=1e-12)
    # (the planner hands plans on as float32: 0.8 m is 0.800000012 m)
    np.testing.assert_allclose(record.call_area, 16 / 100**2 * 17.5 * DRIFT, rtol=1e-7)
    # the straight 5 m/s candidate wins every call; a constant-velocity plan is tracked exactly: 5 m/s x 6 s
    assert record.progress_m == pytest.approx(30.0, abs=1e-9)
    assert not (record.collided or record.offroad) and record.end_step == 60 and record.error == ""
    summary = summarize([record])
    body = summary.as_json()
    assert body["compliance"] == 0.5 and body["collision_rate"] == 0.0 and body["offroad_rate"] == 0.0
    assert body["progress_m"] == pytest.approx(30.0, abs=1e-9) and body["n_scenarios"] == 1
    assert body["time_per_step_s"] == pytest.approx(float(np.mean(record.call_seconds)))
    assert set(body) == {"compliance", "surrogate_compliance", "area", "progress_m", "collision_rate",
                         "at_fault_collision_rate", "offroad_rate", "time_per_step_s", "n_scenarios", "n_failed"}
    assert body["at_fault_collision_rate"] == 0.0


def test_driving_into_a_stopped_car_ends_the_episode_with_a_collision():
    log = straight_log(8.0, stopped_car=True)
    config = PstlClosedLoopConfig(duration=8.0, samples=4)
    # every candidate straight on at the observed speed: the ego keeps 8 m/s whatever the ranking
    record = run_scenario(scripted_planner(drift=0.0, fast=None), log, 0, config)
    # 0.8 m per step; the front bumper (x + 4.049) passes the car's rear (60 - 2.25 = 57.75) first at step 68
    first = math.ceil((CAR_X - CAR_SIZE[0] / 2 - PACIFICA.rear_axle_to_front) / 0.8)
    assert first == 68 and record.collided and record.at_fault_collision and not record.offroad
    assert record.end_step == first
    assert record.progress_m == pytest.approx(first * 0.8, abs=1e-9)  # Σ v dt up to the collision
    np.testing.assert_array_equal(record.call_steps, np.arange(0, first, 5))  # calls after it do not count
    # exact world ρ: from x = 0.8 c a candidate keeps a box gap 57.75 - 4.049 - 0.8 c - 4 j, least at j = 8,
    # 21.701 - 0.8 c: it complies (> d_safe 0.1) for c = 0 .. 25 only
    np.testing.assert_array_equal(record.call_compliance, [1.0] * 6 + [0.0] * 8)
    summary = summarize([record])
    assert summary.collision_rate == 1.0 and summary.at_fault_collision_rate == 1.0


def test_the_world_scene_is_the_simulated_ego_with_the_logged_agents():
    log = straight_log(10.0, stopped_car=True)
    result = simulate_log(log, scripted_planner(), SimulationConfig(duration=3.0, replan_every=5))
    scene = world_scene(log, result.rollout, 10)
    np.testing.assert_array_equal(scene.current_pose, result.rollout.ego_pose[10])
    np.testing.assert_array_equal(scene.agents.xy[:, CURRENT_INDEX], log.agents.xy[:, CURRENT_INDEX + 10])
    rho = mode_robustness(scene, pstl_condition(), result.calls[2].candidates)
    gap = CAR_X - CAR_SIZE[0] / 2 - (10.0 + 40.0 + PACIFICA.rear_axle_to_front)  # at 4 s, 10 m/s from x = 10
    assert rho.of("safe_distance")[0] == pytest.approx(gap - 0.1, abs=1e-9)


def test_past_the_logs_end_the_world_agents_go_on_at_constant_velocity():
    log = straight_log(10.0, stopped_car=True)
    end = NUM_STEPS  # a 5 s log, as imported ones; the car now drives east at 3 m/s from x = CAR_X
    t = (np.arange(end) - CURRENT_INDEX) * SIM_DT
    xy = np.zeros((1, end, 2))
    xy[0, :, 0] = CAR_X + 3.0 * t
    velocity = np.zeros((1, end, 2))
    velocity[0, :, 0] = 3.0
    agents = dataclasses.replace(log.agents.select(steps=slice(0, end)), xy=xy, velocity=velocity)
    lights = TrafficLights(np.zeros(0, np.int64), np.zeros((0, end), bool))
    short = dataclasses.replace(log, ego=log.ego.slice(slice(0, end)), agents=agents,
                                traffic_lights=lights).validate()
    result = simulate_log(short, scripted_planner(), SimulationConfig(duration=5.0, replan_every=5))
    assert result.rollout.num_steps == 51
    scene = world_scene(short, result.rollout, 45)  # log rows 45 .. 115, the log ends at row 70
    expected = CAR_X + 3.0 * (np.arange(NUM_STEPS) - CURRENT_INDEX + 45) * SIM_DT
    np.testing.assert_allclose(scene.agents.xy[0, :, 0], expected, atol=1e-9)
    assert scene.agents.valid.all()


def test_the_run_is_deterministic_under_a_seed_and_restores_the_planner():
    planner = PstlPlanner(PstlModel(PstlConfig(**TINY)))
    planner.configure(sampling=SamplingSettings(steps=2, num_samples=3))
    before = (planner.condition, planner.sampling, planner.scorer)
    source = LogSource("navtest-synth", duration=1.0)
    config = PstlClosedLoopConfig(duration=1.0, samples=8)

    def run(seed: int):
        return run_pstl_closed_loop(planner, source, [0, 1], dataclasses.replace(config, seed=seed))

    first, again, other = run(0), run(0), run(1)
    assert (planner.condition, planner.sampling, planner.scorer) == before
    assert first.n_scenarios == 2 and first.n_failed == 0
    for a, b in zip(first.records, again.records, strict=True):
        for name in ("call_steps", "call_compliance", "call_surrogate_compliance", "call_area"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert (a.progress_m, a.collided, a.offroad, a.end_step) == (b.progress_m, b.collided, b.offroad,
                                                                     b.end_step)
    assert [r.progress_m for r in other.records] != [r.progress_m for r in first.records]
    assert 0.0 <= first.compliance <= 1.0 and first.time_per_step_s > 0.0


def test_a_scripted_planner_with_random_drift_is_deterministic_per_seed():
    log = straight_log(5.0, stopped_car=False)

    def areas(seed: int) -> np.ndarray:
        return run_scenario(scripted_planner(drift=None), log, 0,
                            PstlClosedLoopConfig(duration=2.0, samples=4, seed=seed)).call_area

    np.testing.assert_array_equal(areas(3), areas(3))
    assert not np.array_equal(areas(3), areas(4))
