"""nuPlan's closed loop on our logs: initialize -> (observe -> plan -> track -> propagate) every 0.1 s.

Reference: closed_loop_driving.md §1.1-1.4. The ego starts from the logged state at CURRENT_INDEX and is
tracked by the LQR on the kinematic bicycle (`planners.pdm.simulation.simulate`, nuPlan's two-stage
controller settings), one SIM_DT step per iteration. The planner is called every `replan_every` steps with the
observation built from the *simulated* ego and agents (`scenes.drive.observe`, privileged-clean); between
calls the ego keeps tracking the last plan. Agents are replayed from the log (CLS-NR) or driven by IDM along
their lanes and reacting to the simulated ego (CLS-R, `eval.reactive.ReactiveAgents` with nuPlan's settings).

A planner that raises, or returns a NaN or wrongly shaped plan, ends the scenario there: it scores 0 and is
listed with the step (our failure rule).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from eval.closed_loop.cls import DT, ClosedLoopRollout, TimedPlan
from eval.reactive import ReactiveAgents, ReactiveIDMConfig
from planners.base import Planner
from planners.drive_base import DrivePrivileged
from planners.pdm.interpolation import interpolate_poses, plan_to_global_poses, poses_to_states
from planners.pdm.simulation import ego_state_vector, simulate
from planners.pdm.states import StateIndex
from scenes.agents import AgentCategory, AgentTracks
from scenes.drive import CURRENT_INDEX, OBSERVED_HISTORY_STEPS, SIM_DT, DriveLog, DriveObservation, observe
from scenes.ego import PACIFICA, EgoState
from scenes.errors import ConfigError

if TYPE_CHECKING:
    from scenes.synthetic.live import SimulatedTraffic

S = StateIndex
NUPLAN_DURATION = 15.0  # [s] every nuPlan scenario type (reference §1.1)
# nuPlan's idm_agents: only vehicles present at the start become IDM agents, the others are not simulated
NUPLAN_IDM = ReactiveIDMConfig(categories=(AgentCategory.VEHICLE,), keep_unspawned=False)


class AgentMode(enum.Enum):
    """How the other road users move: REPLAY the log (CLS-NR), IDM along their lanes (CLS-R, nuPlan's agents),
    or SIM, our traffic simulator's own agents reacting to the ego (synthetic logs only; scored as CLS-R)."""

    REPLAY = "replay"
    IDM = "idm"
    SIM = "sim"

    @property
    def reactive(self) -> bool:
        """True for CLS-R."""
        return self is not AgentMode.REPLAY


@dataclass(frozen=True)
class SimulationConfig:
    """One closed-loop run's settings.

    Attributes:
        duration: [s] simulated after the start (nuPlan: 15), shortened to what the log holds.
        replan_every: planner calls every this many SIM_DT steps (nuPlan: 1, every 0.1 s).
        agents: AgentMode.
        seed: stochastic planners restart from it at the start of each scenario.
    """

    duration: float = NUPLAN_DURATION
    replan_every: int = 1
    agents: AgentMode = AgentMode.REPLAY
    seed: int = 0

    def validate(self) -> SimulationConfig:
        """The config itself; ConfigError naming the field on a bad value."""
        if not np.isfinite(self.duration) or self.duration <= 0:
            raise ConfigError("duration",
                              f"{{field}} must be a positive number of seconds, got {self.duration}")
        if not 1 <= self.replan_every <= 20:
            raise ConfigError("replan_every",
                              f"{{field}} must be 1 to 20 steps of 0.1 s, got {self.replan_every}")
        if not isinstance(self.agents, AgentMode):
            raise ConfigError("agents", f"{{field}} must be one of replay, idm, sim, got {self.agents!r}")
        return self

    def num_steps(self, log: DriveLog) -> int:
        """Simulated SIM_DT steps on `log`: the duration, or as many as the log has after the start."""
        return max(1, min(round(self.duration / SIM_DT), log.num_steps - 1 - CURRENT_INDEX))


@dataclass(frozen=True, eq=False)
class PlannerCall:
    """One planner call.

    Attributes:
        step: simulation step (0: the start).
        latency_ms: [ms] wall time of the call.
        origin: (3,) the simulated ego pose the plan is relative to, map frame.
        plan: (P, 3) the plan, ego frame at `origin`.
        candidates: (K, P, 3) the proposals the planner reported, same frame, or None.
        states: (41, 11) the plan as the ego would drive it from the call (StateIndex, map frame).
        network_steps: denoising steps the call took (None: not a diffusion planner or not reported).
    """

    step: int
    latency_ms: float
    origin: np.ndarray
    plan: np.ndarray
    candidates: np.ndarray | None
    states: np.ndarray
    network_steps: int | None = None


@dataclass(frozen=True, eq=False)
class ClosedLoopResult:
    """One simulated scenario.

    Attributes:
        scene_id: the log's id; scenario_type: its type.
        rollout: ClosedLoopRollout over the simulated steps (up to the failure, if any).
        calls: every planner call.
        error: the planner's failure as one line, or None; failed_step: the step it failed at.
    """

    scene_id: str
    scenario_type: str
    rollout: ClosedLoopRollout
    calls: list[PlannerCall] = field(default_factory=list)
    error: str | None = None
    failed_step: int | None = None

    @property
    def timed_plans(self) -> list[TimedPlan]:
        """The calls' driven plans with their times [s], for temporal consistency."""
        return [TimedPlan(call.step * DT, call.states) for call in self.calls]


class SimulationCallback:
    """Hooks of the loop, as nuPlan's simulation callbacks (metrics, logging, rendering); all no-ops here."""

    def on_start(self, log: DriveLog, config: SimulationConfig) -> None:
        """Before the first step."""

    def on_plan(self, step: int, observation: DriveObservation, call: PlannerCall) -> None:
        """After each planner call."""

    def on_step(self, step: int, ego_state: np.ndarray, agents: AgentTracks) -> None:
        """After each propagation: the ego state (11,) and the agents (N,) at the new step, map frame."""

    def on_end(self, result: ClosedLoopResult) -> None:
        """After the last step or a failure."""


def ego_state_from_vectors(states: np.ndarray) -> EgoState:
    """(T, 11) StateIndex states -> EgoState (T,) in the same frame."""
    return EgoState(states[:, :3].copy(), states[:, S.VELOCITY_X:S.VELOCITY_Y + 1].copy(),
                    states[:, S.ACCELERATION_X:S.ACCELERATION_Y + 1].copy(),
                    states[:, S.ANGULAR_VELOCITY].copy(), states[:, S.STEERING_ANGLE].copy())


def ego_box(state: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """The ego box centre (2,) [m], heading [rad] and map-frame velocity (2,) [m/s] of a state (11,)."""
    heading = float(state[S.HEADING])
    direction = np.array([np.cos(heading), np.sin(heading)])
    normal = np.array([-direction[1], direction[0]])
    centre = state[:2] + PACIFICA.rear_axle_to_center * direction
    return centre, heading, state[S.VELOCITY_X] * direction + state[S.VELOCITY_Y] * normal


def dense_reference(plan: np.ndarray, origin: np.ndarray, plan_dt: float) -> np.ndarray:
    """(P, 3) ego-frame plan every `plan_dt` [s] -> (1 + P * plan_dt / SIM_DT, 3) map-frame poses every
    SIM_DT, the first being `origin`."""
    return interpolate_poses(plan_to_global_poses(plan, origin), plan_dt)


class _Agents:
    """The agents over the log's steps: replayed, or IDM agents advanced with the simulated ego."""

    def __init__(self, log: DriveLog, mode: AgentMode, ego0: np.ndarray):
        self.log = log
        self.reactive: ReactiveAgents | SimulatedTraffic | None = None
        if mode is AgentMode.IDM:
            centre, heading, _ = ego_box(ego0)
            self.reactive = ReactiveAgents(log, centre, heading, NUPLAN_IDM)
        elif mode is AgentMode.SIM:
            from scenes.synthetic.live import SimulatedTraffic

            self.reactive = SimulatedTraffic(log)

    def advance(self, step: int, ego_state: np.ndarray) -> None:
        """Move from log step `step` to `step + 1`, reacting to the ego state (11,) at `step`."""
        if isinstance(self.reactive, ReactiveAgents):
            self.reactive.advance(step, *ego_box(ego_state))
        elif self.reactive is not None:
            self.reactive.advance(step, ego_state[:3], float(ego_state[S.VELOCITY_X]))

    def tracks(self, steps: slice) -> AgentTracks:
        """The agents over log steps `steps` as simulated so far."""
        if self.reactive is None:
            return self.log.agents.select(slice(None), steps)
        return self.reactive.tracks(steps)


def simulate_log(log: DriveLog, planner: Planner, config: SimulationConfig = SimulationConfig(),
                 callbacks: Sequence[SimulationCallback] = ()) -> ClosedLoopResult:
    """Run `planner` in closed loop on `log` (see the module docstring); deterministic given the config."""
    config.validate()
    num_steps = config.num_steps(log)
    first, last = CURRENT_INDEX, CURRENT_INDEX + num_steps  # log steps simulated: first .. last
    states = ego_state_vector(log.ego.slice(slice(0, last + 1)))  # (last + 1, 11); after `first`, simulated
    agents = _Agents(log, config.agents, states[first])
    planner.seed = config.seed
    planner.reset()
    for callback in callbacks:
        callback.on_start(log, config)
    calls: list[PlannerCall] = []
    reference, reference_step = None, 0
    error, failed = None, None
    step = 0
    for step in range(num_steps + 1):
        t = first + step
        if step < num_steps and step % config.replan_every == 0:
            observation = observe(ego_state_from_vectors(states[t - OBSERVED_HISTORY_STEPS:t + 1]),
                                  agents.tracks(slice(t - OBSERVED_HISTORY_STEPS, t + 1)), log.map, log.route,
                                  log.command, log.red_lane_ids(t))
            call, error = _call_planner(planner, observation, log, t, step, states[t])
            if call is None:
                failed = step
                break
            calls.append(call)
            reference, reference_step = dense_reference(call.plan, call.origin, planner.plan_spec.dt), step
            for callback in callbacks:
                callback.on_plan(step, observation, call)
        if step == num_steps:
            break
        assert reference is not None  # step 0 always plans
        if step == reference_step:
            tracked = calls[-1].states  # the plan just made, driven from this state
        else:
            remaining = reference[step - reference_step:]
            tracked = simulate(poses_to_states(remaining, states[t], interval_in=planner.plan_spec.dt)[None],
                               states[t])[0]
        agents.advance(t, states[t])
        states[t + 1] = tracked[1]
        for callback in callbacks:
            callback.on_step(step + 1, states[t + 1], agents.tracks(slice(t + 1, t + 2)))
    end = first + (step if failed is None else failed)
    result = ClosedLoopResult(log.metadata.scene_id, log.metadata.scenario_type.value,
                              _rollout(log, states[first:end + 1], agents.tracks(slice(first, end + 1))),
                              calls, error, failed)
    for callback in callbacks:
        callback.on_end(result)
    return result


def _call_planner(planner: Planner, observation: DriveObservation, log: DriveLog, t: int, step: int,
                  state: np.ndarray) -> tuple[PlannerCall | None, str | None]:
    """One planner call, timed and checked; (call, None), or (None, the failure as one line)."""
    try:
        start = time.perf_counter()
        plan = planner.plan_privileged(observation, DrivePrivileged(log, t))
        latency_ms = 1e3 * (time.perf_counter() - start)
        plan.validate(planner.plan_spec)
    except Exception as failure:  # noqa: BLE001 - any planner failure is a scored, listed failure
        return None, f"step {step}: {type(failure).__name__}: {failure}".splitlines()[0]
    poses = np.asarray(plan.trajectory.poses, dtype=np.float64)
    origin = observation.ego_pose_global
    reference = dense_reference(poses, origin, planner.plan_spec.dt)
    driven = simulate(poses_to_states(reference, state, interval_in=planner.plan_spec.dt)[None], state)[0]
    candidates = None if plan.candidates is None else np.asarray(plan.candidates, dtype=np.float64)
    steps = getattr(planner, "last_network_steps", None)
    return PlannerCall(step, latency_ms, origin.copy(), poses, candidates, driven, steps), None


def _rollout(log: DriveLog, states: np.ndarray, agents: AgentTracks) -> ClosedLoopRollout:
    """The ClosedLoopRollout of simulated ego states (T, 11) and agents (N, T) on `log`."""
    num = states.shape[0]
    return ClosedLoopRollout(
        ego_pose=states[:, :3].copy(),
        ego_velocity=states[:, S.VELOCITY_X:S.VELOCITY_Y + 1].copy(),
        ego_acceleration=states[:, S.ACCELERATION_X:S.ACCELERATION_Y + 1].copy(),
        ego_yaw_rate=states[:, S.ANGULAR_VELOCITY].copy(),
        agent_xy=agents.xy, agent_heading=agents.heading, agent_velocity=agents.velocity,
        agent_valid=agents.valid, agent_size=agents.size, agent_category=agents.category,
        map=log.map,
        route_lane_ids=np.array(log.route.lane_ids, dtype=np.int64),
        expert_pose=log.ego.pose[CURRENT_INDEX:CURRENT_INDEX + num].copy(),
        dt=SIM_DT,
    ).validate()
