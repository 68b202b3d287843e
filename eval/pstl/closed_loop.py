"""pSTL's closed-loop test (Table II, `nusc_sim.py`) on diffplan's nuPlan-style closed loop.

Protocol (pSTL -> here):
- every 0.5 s the planner samples candidates and the best-ρ mode-0 one is executed -> `simulate_log` with
  `replan_every` 5 steps of 0.1 s; the planner samples `samples` (64) candidates of the KEEP mode only (pSTL
  samples 64 x 3 modes and forces modes 1 and 2 to -10000, so only its 64 KEEP samples can win or count),
  ranks them with `observation_scorer` and the LQR tracks the winner (pSTL executes its first control);
- neighbours are the log replayed (non-reactive): `AgentMode.REPLAY` only;
- fixed θ: `pstl_condition()` (v_min 1, v_max 9 m/s, d_safe 0.1 m, h_max, d_lat; see there).

Metrics (pSTL `nusc_sim.py:726-747`):
- compliance: mean over planner calls (pooled over scenarios) of the fraction of candidates with ρ > 0. ρ is
  EXACT and privileged: `scoring.mode_robustness` on the world at the call, the simulated ego's pose with the
  log's agent futures, which under replay ARE the simulated agents (`world_scene`). The planner's own
  observation-only values give `surrogate_compliance`.
- area: mean over calls of `metrics.valid_area` of the satisfying candidates' 8 poses (ego frame: relative to
  the start and rotated by its heading) [m^2].
- progress: Σ v dt of the executed ego up to the episode's end, v its forward speed [m]; averaged over
  scenarios.
- collision / off-road rates: episode flags averaged over scenarios. `simulate_log` cannot stop early, so the
  episode ends at the first event, as pSTL's loop does: each flag is "happened by then" (an off-road after a
  collision does not count), calls after it do not count and progress stops there. Collision: any contact of
  the ego's box with an agent's box (nuPlan's box test, `cls_metrics.collisions`, at fault or not; pSTL:
  4-disc distance < 0.1 m). Off-road: nuPlan's drivable area compliance at that step
  (`cls_metrics.drivable_area_compliance`: a corner >= 0.3 m off every lane and drivable polygon; pSTL tests
  one point against nuScenes' drivable_area layer).
- time per step: mean wall time per planner call (sampling and ranking) [s], pooled like compliance.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from eval.closed_loop import cls_metrics as m
from eval.closed_loop.cls import ClosedLoopRollout, _agent_view
from eval.closed_loop.job import LogSource
from eval.closed_loop.simulation import AgentMode, ClosedLoopResult, SimulationConfig, simulate_log
from eval.pstl.guide import SurrogateSignals, smooth_mode_robustness, stl_objective
from eval.pstl.metrics import valid_area
from eval.pstl.scoring import HORIZON, check_plans, mode_formula, mode_robustness
from planners.pstl.condition import DrivingMode, STLCondition
from planners.pstl.planner import CandidateScorer, PstlPlanner, SamplingSettings
from scenes.agents import AgentTracks
from scenes.drive import (
    CURRENT_INDEX,
    NUM_STEPS,
    SIM_DT,
    DriveLog,
    DriveObservation,
    DriveScene,
    TrafficLights,
)
from scenes.ego import EgoState
from scenes.errors import ConfigError
from stl.robustness import Mode, robustness

PSTL_DURATION = 15.0  # [s]
PSTL_REPLAN_EVERY = 5  # [SIM_DT steps]: pSTL's dt = 0.5 s
PSTL_SAMPLES = 64  # candidates per call (pSTL: --sampling_size 64 per mode)
PSTL_H_MAX = math.acos(1.0 - 0.2)  # [rad] pSTL's 1 - cos(error) <= 0.2 as |error| <= h_max (0.6435 rad)
PSTL_D_LAT = 2.0  # [m] the largest symmetric band inside pSTL's [-3, 2]


def pstl_condition() -> STLCondition:
    """pSTL's closed-loop θ (nusc_sim.py:466-471) as a KEEP condition (v_min, v_max, d_lat, h_max, d_safe).

    v_min 1, v_max 9 [m/s] and d_safe 0.1 [m] are pSTL's. h_max: pSTL bounds 1 - cos(heading error) by
    0.2, i.e. |error| <= acos(0.8) = 0.6435 rad, which is our h_max (the same constraint; h_max = 0.2 rad
    would be 3x stricter). d_lat: pSTL's offset band [d_min, d_max] = [-3, 2] is asymmetric, ours is
    |d| <= d_lat; d_lat = 2 m is its tighter side, the largest symmetric band inside it and half of a ~4 m
    nuScenes lane, so a plan in our band is in pSTL's; we lose only its strip 2 to 3 m to the right, more
    than half a lane off the centreline.
    """
    return STLCondition(DrivingMode.KEEP, np.array([1.0, 9.0, PSTL_D_LAT, PSTL_H_MAX, 0.1])).validate()


def observation_scorer(temperature: float | None = None) -> CandidateScorer:
    """pSTL's ranking of candidates, from the observation only (privileged-clean: no agent futures).

    The scorer (observation, condition, plans (S, 8, 3) [m, m, rad] ego frame) -> (S,) float64 is the
    robustness at t = 0 of `mode_formula(condition)` on `SurrogateSignals.from_observation(observation)`:
    agents present now moved at constant velocity, lanes of the observed map, headings from the plan's xy
    steps (the plan's heading column is not read). `temperature` None: stl's EXACT semantics (min / max);
    a number: SMOOTH at that τ (pSTL ranks by its smooth ρ at τ = 100).
    """
    if temperature is not None and not (math.isfinite(temperature) and temperature > 0):
        raise ConfigError("temperature", f"{{field}} must be None or a positive number, got {temperature}")

    def score(observation: DriveObservation, condition: STLCondition, plans: np.ndarray) -> np.ndarray:
        xy = torch.from_numpy(check_plans(plans)[..., :2])
        surrogate = SurrogateSignals.from_observation(observation)
        with torch.no_grad():
            if temperature is None:
                formula = mode_formula(condition, HORIZON)
                rho = robustness(formula, surrogate.signals(xy), t=0, mode=Mode.EXACT)
            else:
                rho = smooth_mode_robustness(surrogate, condition, xy, temperature)
        return rho.detach().numpy().astype(np.float64)

    return score


@dataclass(frozen=True)
class PstlClosedLoopConfig:
    """The test's settings (module docstring).

    Attributes:
        condition: the fixed condition (mode and θ), `pstl_condition()` (KEEP).
        duration: [s] simulated per log, shortened to what the log holds (imported 5 s logs: about 5).
        replan_every: planner calls every this many SIM_DT steps (pSTL: 5, 0.5 s).
        samples: candidates per call, all of `condition.mode`.
        seed: the planner's noise restarts from it in each scenario.
        temperature: the observation scorer's (None: exact ranking).
        agents: only AgentMode.REPLAY (the exact compliance reads the agents' futures from the log).
    """

    condition: STLCondition = field(default_factory=pstl_condition)
    duration: float = PSTL_DURATION
    replan_every: int = PSTL_REPLAN_EVERY
    samples: int = PSTL_SAMPLES
    seed: int = 0
    temperature: float | None = None
    agents: AgentMode = AgentMode.REPLAY

    def validate(self) -> PstlClosedLoopConfig:
        """Self; ConfigError naming the field on a bad value."""
        self.condition.validate()
        if self.agents is not AgentMode.REPLAY:
            raise ConfigError("agents", "{field} must be replay (pSTL's non-reactive neighbours; the exact "
                                        f"compliance reads their futures from the log), got {self.agents}")
        if isinstance(self.samples, bool) or not isinstance(self.samples, int) or self.samples < 1:
            raise ConfigError("samples", f"{{field}} must be a positive integer, got {self.samples!r}")
        self.simulation().validate()
        return self

    def simulation(self) -> SimulationConfig:
        """The SimulationConfig of a run."""
        return SimulationConfig(self.duration, self.replan_every, self.agents, self.seed)


@dataclass(frozen=True, eq=False)
class PstlScenarioRecord:
    """One episode. C = the planner calls before its end.

    Attributes:
        index, scene_id, scenario_type: which log.
        call_steps: (C,) int simulation step of each call.
        call_compliance: (C,) fraction of candidates with exact (world) ρ > 0.
        call_surrogate_compliance: (C,) the same with the planner's observation-only scores.
        call_area: (C,) `valid_area` of the satisfying candidates [m^2].
        call_seconds: (C,) wall time of each call [s].
        progress_m: Σ v dt of the executed ego up to `end_step` [m].
        collided, offroad: the episode's flags (events by `end_step`); at_fault_collision: an at-fault
            contact (nuPlan's rule) by `end_step`.
        end_step: the first collision or off-road step, else the last simulated step [SIM_DT steps].
        error: the planner's failure as one line ("" if none; the rollout stops there).
    """

    index: int
    scene_id: str
    scenario_type: str
    call_steps: np.ndarray
    call_compliance: np.ndarray
    call_surrogate_compliance: np.ndarray
    call_area: np.ndarray
    call_seconds: np.ndarray
    progress_m: float
    collided: bool
    offroad: bool
    at_fault_collision: bool
    end_step: int
    error: str = ""

    @property
    def compliance(self) -> float:
        """Mean of `call_compliance` (NaN without calls)."""
        return _mean(self.call_compliance)

    @property
    def area(self) -> float:
        """Mean of `call_area` [m^2] (NaN without calls)."""
        return _mean(self.call_area)


@dataclass(frozen=True)
class PstlClosedLoopSummary:
    """Table II's figures: compliance, surrogate_compliance, area [m^2] and time_per_step_s pooled over every
    counted call; progress_m [m] and the collision / off-road rates averaged over scenarios (collision_rate
    counts every contact, as pSTL does; at_fault_collision_rate only nuPlan's at-fault ones: a replayed
    agent that drives into the ego from behind is not at fault)."""

    compliance: float
    surrogate_compliance: float
    area: float
    progress_m: float
    collision_rate: float
    at_fault_collision_rate: float
    offroad_rate: float
    time_per_step_s: float
    n_scenarios: int
    n_failed: int
    records: tuple[PstlScenarioRecord, ...] = ()

    def as_json(self) -> dict[str, float | int | None]:
        """One flat object of the figures (no records); NaN as null."""
        body = {"compliance": self.compliance, "surrogate_compliance": self.surrogate_compliance,
                "area": self.area, "progress_m": self.progress_m, "collision_rate": self.collision_rate,
                "at_fault_collision_rate": self.at_fault_collision_rate, "offroad_rate": self.offroad_rate,
                "time_per_step_s": self.time_per_step_s, "n_scenarios": self.n_scenarios,
                "n_failed": self.n_failed}
        return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in body.items()}


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


@dataclass(frozen=True)
class EpisodeEvents:
    """First step [SIM_DT steps] of each event in a rollout, -1 for none: any contact, at-fault contact
    (nuPlan), off the drivable area."""

    collision: int
    at_fault: int
    offroad: int

    def end(self, last: int) -> int:
        """The episode's last step: the first event, else `last`."""
        events = [step for step in (self.collision, self.offroad) if step >= 0]
        return min(events) if events else last


def episode_events(rollout: ClosedLoopRollout) -> EpisodeEvents:
    """The rollout's events, by nuPlan's collision and drivable-area tests (`cls_metrics`)."""
    states = m.ego_states(rollout.ego_pose, rollout.ego_velocity, rollout.ego_acceleration,
                          rollout.ego_yaw_rate)
    index = m.MapIndex.build(rollout.map)
    corners, centers = m.ego_corners(states)
    common = m.in_common_or_connected_lanes(index, corners)
    _, at_fault_steps, first_contact = m.collisions(states, corners, _agent_view(rollout), common)
    contacts = first_contact[first_contact >= 0]
    offroad = -1
    lanes = m.driven_lanes(index, centers)
    if m.drivable_area_compliance(index, corners, lanes) == 0.0:
        offroad = next(t for t in range(len(lanes))
                       if m.drivable_area_compliance(index, corners[t:t + 1], lanes[t:t + 1]) == 0.0)
    fault = np.flatnonzero(at_fault_steps)
    return EpisodeEvents(int(contacts.min()) if contacts.size else -1, int(fault[0]) if fault.size else -1,
                         offroad)


def _agents_window(agents: AgentTracks, rows: np.ndarray) -> AgentTracks:
    """The tracks at `rows`; rows past the log's end extrapolate the last step at constant velocity."""
    last = agents.num_steps - 1
    held = np.minimum(rows, last)
    beyond = np.maximum(rows - last, 0) * SIM_DT  # [s]
    xy = agents.xy[:, held] + agents.velocity[:, held] * beyond[None, :, None]
    return AgentTracks(agents.track_ids, agents.category, agents.size, xy, agents.heading[:, held],
                       agents.velocity[:, held], agents.valid[:, held])


def world_scene(log: DriveLog, rollout: ClosedLoopRollout, step: int) -> DriveScene:
    """Privileged: the world at simulation step `step` as a DriveScene for `scoring.mode_robustness`.

    Its now is log step CURRENT_INDEX + step; the ego up to now is the simulated one (the log's before the
    start), held after now (the mode's rules read only its pose now); agents, map, route and lights are the
    log's (under replay the agents are the simulated ones), past the log's end at constant velocity.
    """
    rows = step + np.arange(NUM_STEPS)  # the log row of each scene row; now: CURRENT_INDEX + step
    sim = np.clip(rows - CURRENT_INDEX, 0, step)  # rollout row of each scene row (before the start: unused)
    before = rows < CURRENT_INDEX
    pose = np.where(before[:, None], log.ego.pose[np.minimum(rows, CURRENT_INDEX)], rollout.ego_pose[sim])
    velocity = np.where(before[:, None], log.ego.velocity[np.minimum(rows, CURRENT_INDEX)],
                        rollout.ego_velocity[sim])
    acceleration = np.where(before[:, None], log.ego.acceleration[np.minimum(rows, CURRENT_INDEX)],
                            rollout.ego_acceleration[sim])
    yaw_rate = np.where(before, log.ego.yaw_rate[np.minimum(rows, CURRENT_INDEX)], rollout.ego_yaw_rate[sim])
    ego = EgoState(pose, velocity, acceleration, yaw_rate, np.zeros(NUM_STEPS))
    lights = log.traffic_lights
    held = np.minimum(rows, log.num_steps - 1)
    return DriveScene(log.metadata, ego, _agents_window(log.agents, rows), log.map, log.route, log.command,
                      TrafficLights(lights.lane_ids, lights.is_red[:, held]))


class _RecordingScorer:
    """A CandidateScorer that keeps every (S,) score it returns, in call order."""

    def __init__(self, scorer: CandidateScorer):
        self.scorer = scorer
        self.scores: list[np.ndarray] = []

    def __call__(self, observation: DriveObservation, condition: STLCondition, plans: np.ndarray
                 ) -> np.ndarray:
        out = np.asarray(self.scorer(observation, condition, plans), dtype=np.float64)
        self.scores.append(out)
        return out


def score_episode(log: DriveLog, index: int, result: ClosedLoopResult, condition: STLCondition,
                  surrogate_scores: Sequence[np.ndarray]) -> PstlScenarioRecord:
    """The record of one simulated episode; `surrogate_scores` (S,) per call are the planner's own scores."""
    rollout = result.rollout
    events = episode_events(rollout)
    end = events.end(rollout.num_steps - 1)
    nan = np.full(1, np.nan)  # a call whose scores were not recorded
    scores = [*surrogate_scores, *[nan] * (len(result.calls) - len(surrogate_scores))]
    calls = [(c, s) for c, s in zip(result.calls, scores, strict=False) if c.step < max(end, 1)]
    compliance, area = [], []
    for call, _ in calls:
        candidates = call.plan[None] if call.candidates is None else call.candidates
        satisfied = mode_robustness(world_scene(log, rollout, call.step), condition, candidates).rho > 0
        compliance.append(float(np.mean(satisfied)))
        area.append(valid_area(candidates[..., :2], satisfied))
    speed = rollout.ego_velocity[:end, 0]
    return PstlScenarioRecord(
        index=index, scene_id=result.scene_id, scenario_type=result.scenario_type,
        call_steps=np.array([c.step for c, _ in calls], dtype=np.int64),
        call_compliance=np.array(compliance, dtype=np.float64),
        call_surrogate_compliance=np.array([np.nan if np.isnan(s).any() else float(np.mean(s > 0))
                                            for _, s in calls], dtype=np.float64),
        call_area=np.array(area, dtype=np.float64),
        call_seconds=np.array([c.latency_ms / 1e3 for c, _ in calls], dtype=np.float64),
        progress_m=float(np.sum(speed) * rollout.dt), collided=0 <= events.collision <= end,
        offroad=0 <= events.offroad <= end, at_fault_collision=0 <= events.at_fault <= end, end_step=end,
        error=result.error or "")


def run_scenario(planner: PstlPlanner, log: DriveLog, index: int, config: PstlClosedLoopConfig
                 ) -> PstlScenarioRecord:
    """Simulate `planner` (configured by `run_pstl_closed_loop`, or as it is) on `log` and score the episode.
    The planner's scorer is wrapped for the call to record its scores, then restored."""
    scorer = planner.scorer
    recording = _RecordingScorer(scorer if scorer is not None else observation_scorer(config.temperature))
    planner.scorer = recording
    try:
        result = simulate_log(log, planner, config.simulation())
    finally:
        planner.scorer = scorer
    return score_episode(log, index, result, config.condition, recording.scores)


def summarize(records: Sequence[PstlScenarioRecord]) -> PstlClosedLoopSummary:
    """Table II's figures over scenario records (module docstring); ValueError without records."""
    if not records:
        raise ValueError("no scenarios to summarize")

    def pooled(name: str) -> float:
        return _mean(np.concatenate([getattr(r, name) for r in records]))

    return PstlClosedLoopSummary(
        compliance=pooled("call_compliance"), surrogate_compliance=pooled("call_surrogate_compliance"),
        area=pooled("call_area"), progress_m=float(np.mean([r.progress_m for r in records])),
        collision_rate=float(np.mean([r.collided for r in records])),
        at_fault_collision_rate=float(np.mean([r.at_fault_collision for r in records])),
        offroad_rate=float(np.mean([r.offroad for r in records])), time_per_step_s=pooled("call_seconds"),
        n_scenarios=len(records), n_failed=sum(bool(r.error) for r in records), records=tuple(records))


def with_stl_feedback(planner: PstlPlanner, refine_rounds: int | None = None,
                      temperature: float | None = 100.0) -> PstlPlanner:
    """`planner` set up as pSTL deploys it ("Ours"): the observation-only STL objective (`stl_objective`) for
    guidance and RefineNet, the candidates ranked by `observation_scorer(temperature)`, and `refine_rounds`
    RefineNet rounds (None: one when its model has a RefineNet, else none); other guidance settings kept.
    Returns the planner."""
    if refine_rounds is None:
        refine_rounds = 1 if planner.refinable else 0
    planner.configure(guidance=dataclasses.replace(planner.guidance, refine_rounds=refine_rounds))
    planner.objective_builder = stl_objective
    planner.scorer = observation_scorer(temperature)
    return planner


def run_pstl_closed_loop(planner: PstlPlanner, source: LogSource, indices: Sequence[int],
                         config: PstlClosedLoopConfig = PstlClosedLoopConfig()) -> PstlClosedLoopSummary:
    """pSTL's closed-loop test of `planner` on logs `indices` of `source`: the planner samples
    `config.samples` candidates of `config.condition` (its sampler and guidance kept) ranked by
    `observation_scorer`; its condition, sampling and scorer are restored afterwards. Deterministic given
    `config.seed`."""
    config.validate()
    saved = planner.condition, planner.sampling, planner.scorer
    sampling = SamplingSettings(planner.sampling.sampler, planner.sampling.steps, config.samples)
    try:
        planner.configure(config.condition, sampling)
        planner.scorer = observation_scorer(config.temperature)
        log = source.validate().open()
        records = [run_scenario(planner, log(int(i)), int(i), config) for i in indices]
    finally:
        planner.configure(saved[0], saved[1])
        planner.scorer = saved[2]
    return summarize(records)

