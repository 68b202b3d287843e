"""The closed loop (eval.closed_loop.simulation): hand-built roads with known outcomes, the failure rule,
log replay by the human planner, reactive IDM agents, and the job's determinism over workers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import planners
from diffplan.jobs import RunOptions, run_job
from eval.closed_loop import score_rollout
from eval.closed_loop.job import ClosedLoopConfig, ClosedLoopEvaluation, LogSource, evaluate_logs, summarize
from eval.closed_loop.simulation import AgentMode, SimulationConfig, simulate_log
from planners.drive_base import DRIVE_PLAN, DrivePlanner
from planners.plan import Plan
from scenes import (
    CURRENT_INDEX,
    NUM_PLAN_POSES,
    PLAN_DT,
    SIM_DT,
    AgentCategory,
    AgentTracks,
    DriveObservation,
    Frame,
    Trajectory,
)
from scenes.errors import ConfigError
from scenes.synthetic import SYNTHETIC_SCENARIOS, generate_log, scene_seed
from tests.factories import CAR_SIZE, LOG_STEPS, straight_log

CHECKPOINT = Path(__file__).resolve().parents[2] / "checkpoints" / "diffusiondrive-synth.safetensors"
NUM_LOG_STEPS = LOG_STEPS


def follower_agents() -> AgentTracks:
    """A car logged driving east at 8 m/s in the ego's lane, 40 m behind the ego's start (through the ego)."""
    t = (np.arange(NUM_LOG_STEPS) - CURRENT_INDEX) * SIM_DT
    xy = np.zeros((1, NUM_LOG_STEPS, 2))
    xy[0, :, 0] = -40.0 + 8.0 * t
    velocity = np.zeros((1, NUM_LOG_STEPS, 2))
    velocity[0, :, 0] = 8.0
    return AgentTracks(np.array([9], np.int64), np.array([AgentCategory.VEHICLE], np.int8),
                       np.array([CAR_SIZE]), xy, np.zeros((1, NUM_LOG_STEPS)), velocity,
                       np.ones((1, NUM_LOG_STEPS), bool))


class ConstantDeceleration(DrivePlanner):
    """Plans braking at DECEL [m/s^2] from the observed speed, straight ahead (x only), until standstill."""

    DECEL = 2.0

    def plan(self, observation: DriveObservation) -> Plan:
        speed = float(observation.ego.velocity[0])
        t = PLAN_DT * np.arange(1, NUM_PLAN_POSES + 1)
        t_stop = speed / self.DECEL
        x = np.where(t < t_stop, speed * t - 0.5 * self.DECEL * t * t, 0.5 * speed * t_stop)
        poses = np.zeros((NUM_PLAN_POSES, 3))
        poses[:, 0] = x
        return Plan(Trajectory(poses, PLAN_DT, Frame.EGO), spec=DRIVE_PLAN)


class Standstill(DrivePlanner):
    """Plans to stay where it is."""

    def plan(self, observation: DriveObservation) -> Plan:
        return Plan(Trajectory(np.zeros((NUM_PLAN_POSES, 3)), PLAN_DT, Frame.EGO), spec=DRIVE_PLAN)


class RaisesAt(DrivePlanner):
    """Constant velocity that raises on its `fail_at`-th call (0-based)."""

    def __init__(self, fail_at: int):
        self.fail_at, self.calls = fail_at, 0

    def reset(self) -> None:
        self.calls = 0

    def plan(self, observation: DriveObservation) -> Plan:
        if self.calls == self.fail_at:
            raise RuntimeError("sensor timeout")
        self.calls += 1
        poses = np.zeros((NUM_PLAN_POSES, 3))
        poses[:, 0] = float(observation.ego.velocity[0]) * PLAN_DT * np.arange(1, NUM_PLAN_POSES + 1)
        return Plan(Trajectory(poses, PLAN_DT, Frame.EGO), spec=DRIVE_PLAN)


def test_constant_velocity_on_a_straight_road_is_exact_until_it_hits_the_stopped_car():
    log = straight_log()
    result = simulate_log(log, planners.load("constant-velocity"), SimulationConfig(duration=10.0))
    pose = result.rollout.ego_pose
    assert result.error is None and pose.shape == (101, 3)
    # a constant-velocity plan is tracked with zero acceleration: 1 m per 0.1 s step, no lateral motion
    np.testing.assert_allclose(pose[:, 0], np.arange(101) * 1.0, rtol=0, atol=1e-9)
    assert (pose[:, 1] == 0).all() and (pose[:, 2] == 0).all()
    metrics = score_rollout(result.rollout, reactive=False)
    # the front bumper (x + 4.049) reaches the car's rear (60 - 2.25) at x = 53.70: an at-fault collision
    assert (metrics.at_fault_collisions == 1 and metrics.no_ego_at_fault_collisions == 0.0
            and metrics.score == 0.0)
    assert metrics.min_ttc == 0.0


def test_a_constant_deceleration_planner_stops_where_it_planned_to():
    log = straight_log()
    result = simulate_log(log, ConstantDeceleration(), SimulationConfig(duration=10.0))
    pose, velocity = result.rollout.ego_pose, result.rollout.ego_velocity
    # straight plans keep the ego on y = 0, heading 0
    assert (pose[:, 1] == 0).all() and (pose[:, 2] == 0).all()
    assert velocity[-1, 0] < 0.2  # at a standstill well before the end
    assert np.all(np.diff(velocity[:, 0]) <= 1e-9)  # it never speeds up
    # while braking, the bicycle's acceleration is the planned -2 m/s^2 (after the 0.2 s lag has settled)
    np.testing.assert_allclose(result.rollout.ego_acceleration[10:40, 0], -2.0, atol=0.05)
    # 10 m/s at 2 m/s^2 stops after 25 m; the lag at the start and the gentle last 0.5 m/s (the LQR reads the
    # reference speed 1 s ahead) add up to 3 m
    assert 25.0 < pose[-1, 0] < 28.5
    metrics = score_rollout(result.rollout, reactive=False)
    assert metrics.no_ego_at_fault_collisions == 1.0 and metrics.drivable_area_compliance == 1.0


def test_a_planner_that_raises_at_step_37_fails_the_scenario_there():
    log = straight_log()
    result = simulate_log(log, RaisesAt(37), SimulationConfig(duration=10.0))
    assert result.failed_step == 37 and result.error == "step 37: RuntimeError: sensor timeout"
    assert result.rollout.num_steps == 38 and len(result.calls) == 37  # the states up to the failing call


def test_the_failure_rule_scores_zero_and_lists_the_scenario(monkeypatch):
    monkeypatch.setattr(planners, "load", lambda name: RaisesAt(37))
    source = LogSource("navtest-synth", duration=5.0)
    monkeypatch.setattr(LogSource, "open", lambda self: lambda index: straight_log())
    records = evaluate_logs(source, [0], ClosedLoopConfig("raises", SimulationConfig(duration=5.0)))
    assert records[0].failed and records[0].failed_step == 37 and records[0].metrics.score == 0.0
    summary = summarize(records)
    assert summary.n_failed == 1 and summary.cls == 0.0


def test_replanning_every_k_steps_calls_the_planner_that_often():
    result = simulate_log(straight_log(), ConstantDeceleration(),
                          SimulationConfig(duration=3.0, replan_every=5))
    assert [call.step for call in result.calls] == [0, 5, 10, 15, 20, 25]
    assert result.rollout.num_steps == 31


def test_idm_agents_stop_behind_a_stopped_ego_that_replayed_agents_drive_into():
    log = straight_log(speed=0.0, agents=follower_agents())

    def closest_gap(mode: AgentMode) -> float:
        rollout = simulate_log(log, Standstill(), SimulationConfig(duration=10.0, agents=mode)).rollout
        ego_rear = rollout.ego_pose[:, 0] - 1.127
        follower_front = rollout.agent_xy[0, :, 0] + CAR_SIZE[0] / 2
        return float((ego_rear - follower_front).min())

    assert closest_gap(AgentMode.REPLAY) < -10.0  # the log drives through the ego
    assert 0.5 < closest_gap(AgentMode.IDM) < 3.0  # IDM stops about min_gap (1 m) behind it


def test_the_human_log_is_replayed_within_tracker_error():
    log = generate_log(scene_seed("test", 0, 2), "test", SYNTHETIC_SCENARIOS[2], 190)  # a left turn, 15 s
    result = simulate_log(log, planners.load("human"), SimulationConfig())
    rollout = result.rollout
    offset = rollout.ego_pose[:, :2] - rollout.expert_pose[:, :2]
    heading = rollout.expert_pose[:, 2]
    along = offset[:, 0] * np.cos(heading) + offset[:, 1] * np.sin(heading)
    lateral = offset[:, 1] * np.cos(heading) - offset[:, 0] * np.sin(heading)
    # nuPlan's LQR tracks the log's speed, not its position: it runs up to 1 m past the log's stop, and cuts
    # the tight left turn by 0.3 m
    assert rollout.num_steps == 151 and np.abs(along).max() < 1.0 and np.abs(lateral).max() < 0.35
    assert np.abs(along[:20]).max() < 0.05 and np.abs(lateral[:20]).max() < 0.05  # before the turn
    metrics = score_rollout(rollout, reactive=False)
    assert metrics.score == pytest.approx(1.0)


def test_simulation_config_names_bad_values():
    with pytest.raises(ConfigError, match="replan_every"):
        SimulationConfig(replan_every=0).validate()
    with pytest.raises(ConfigError, match="duration"):
        SimulationConfig(duration=float("nan")).validate()
    with pytest.raises(ConfigError, match="warm_start"):
        ClosedLoopConfig("pdm-closed", warm_start=(4, 1)).load_planner()


def test_results_do_not_depend_on_the_number_of_workers(tmp_path):
    """A stochastic planner (DiffusionDrive, warm-started) restarts from the seed at every scenario."""
    config = ClosedLoopConfig(str(CHECKPOINT), SimulationConfig(duration=1.5, agents=AgentMode.IDM, seed=5),
                              warm_start=(4, 1))
    job = ClosedLoopEvaluation(LogSource("navtest-synth", 1.5), config, (0, 1, 2), "dd", chunk_size=1)
    runs = [run_job(job, tmp_path / f"w{workers}", RunOptions(workers=workers)) for workers in (1, 2)]
    for a, b in zip(*runs, strict=True):
        assert (a.scene_id == b.scene_id and a.metrics == b.metrics and a.ec == b.ec
                and a.plan_gap_m == b.plan_gap_m)
    direct = evaluate_logs(LogSource("navtest-synth", 1.5), [1], config)[0]
    assert direct.metrics == runs[0][1].metrics


def test_simulated_traffic_driven_by_the_logged_ego_gives_back_the_log():
    from scenes.synthetic.live import SimulatedTraffic

    log = generate_log(scene_seed("test", 0, 5), "test", SYNTHETIC_SCENARIOS[5], 100)  # a merge
    traffic = SimulatedTraffic(log)
    for t in range(CURRENT_INDEX, log.num_steps - 1):
        traffic.advance(t, log.ego.pose[t], float(log.ego.velocity[t, 0]))
    tracks, after = traffic.tracks(), slice(CURRENT_INDEX + 1, None)
    both = tracks.valid[:, after] & log.agents.valid[:, after]
    gap = np.linalg.norm(tracks.xy[:, after] - log.agents.xy[:, after], axis=-1)[both]
    # the ego's speed is the log's finite difference, not the sim's
    assert both.sum() > 500 and gap.max() < 0.01
    assert (tracks.valid[:, after] != log.agents.valid[:, after]).mean() < 0.01


def test_simulated_traffic_reacts_to_an_ego_that_stops():
    log = generate_log(scene_seed("test", 0, 0), "test", SYNTHETIC_SCENARIOS[0], 100)  # straight road
    replay = simulate_log(log, Standstill(), SimulationConfig(duration=8.0, agents=AgentMode.REPLAY)).rollout
    simulated = simulate_log(log, Standstill(), SimulationConfig(duration=8.0, agents=AgentMode.SIM)).rollout
    assert score_rollout(simulated, True).no_ego_at_fault_collisions == 1.0

    def min_gap_behind(rollout) -> float:
        """Smallest distance [m] between the ego's rear axle and an agent box centre behind it in its lane."""
        ego = rollout.ego_pose[:, None, :2]
        offset = rollout.agent_xy.swapaxes(0, 1) - ego  # (T, N, 2)
        heading = rollout.ego_pose[:, None, 2]
        along = offset[..., 0] * np.cos(heading) + offset[..., 1] * np.sin(heading)
        lateral = offset[..., 1] * np.cos(heading) - offset[..., 0] * np.sin(heading)
        behind = rollout.agent_valid.T & (np.abs(lateral) < 1.0) & (along < 0) & (along > -40)
        return float(np.min(-along[behind], initial=np.inf))

    assert min_gap_behind(replay) < 2.0  # the log's traffic drives through the stopped ego
    assert min_gap_behind(simulated) > 3.0  # the simulator's vehicles queue behind it


def test_simulated_traffic_refuses_a_log_it_did_not_make():
    from scenes.synthetic.live import NotASyntheticLog, SimulatedTraffic

    with pytest.raises(NotASyntheticLog, match="test-straight"):
        SimulatedTraffic(straight_log())
