"""nuPlan's closed-loop score (CLS-NR / CLS-R) over one simulated roll-out, its aggregation, and the temporal
consistency (EPDMS EC) of consecutive plans. Reference: closed_loop_driving.md §1.5, §1.6 and §5.

Per scenario: score = NC x DAC x DDC x MP x (5 EP + 5 TTC + 4 SLC + 2 C) / 16. Over scenarios: the plain mean
(nuPlan's type-weighted mean equals it), reported x 100. CLS-NR and CLS-R use the same metrics; only the
agents of the roll-out differ (log replay vs IDM), so `reactive` names the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from eval.closed_loop import cls_metrics as m
from planners.pdm.scoring import ScorerConfig
from planners.pdm.scoring.areas import points_in_polygons
from planners.pdm.scoring.comfort import extended_comfort
from planners.pdm.states import StateIndex
from scenes.agents import AgentCategory
from scenes.ego import PACIFICA
from scenes.maps import MapLayers

CLS_METRIC_VERSION = "nuplan-cls-v1"  # nuPlan devkit e9241677 metric set, as in the reference
WEIGHTS = {"ego_progress": 5.0, "time_to_collision": 5.0, "speed_limit": 4.0, "comfort": 2.0}
DT = 0.1  # [s] nuPlan's 10 Hz


@dataclass(frozen=True, eq=False)
class ClosedLoopRollout:
    """One simulated scenario, struct of arrays over T steps at `dt` (nuPlan: 151 steps, 15 s at 10 Hz), map
    frame, SI units. The ego is the Pacifica; its states are at the rear axle.

    Attributes:
        ego_pose: (T, 3) x [m], y [m], heading [rad].
        ego_velocity: (T, 2) [m/s] body frame (forward, left).
        ego_acceleration: (T, 2) [m/s^2] body frame.
        ego_yaw_rate: (T,) [rad/s].
        agent_xy: (N, T, 2) box centres [m]; agent_heading (N, T) [rad]; agent_velocity (N, T, 2) [m/s] map
            frame; agent_valid (N, T) bool; agent_size (N, 2) length, width [m]; agent_category (N,)
            `AgentCategory`.
        map: the map layers, same frame.
        route_lane_ids: (R,) int64, the expert route's lanes in driving order (empty: no route).
        expert_pose: (T, 3) the log's ego rear-axle poses over the same steps.
        lane_speed_limits: (L,) [m/s] per map lane (NaN: none); None takes `map.lane_speed_limits`.
        dt: [s] step.
    """

    ego_pose: np.ndarray
    ego_velocity: np.ndarray
    ego_acceleration: np.ndarray
    ego_yaw_rate: np.ndarray
    agent_xy: np.ndarray
    agent_heading: np.ndarray
    agent_velocity: np.ndarray
    agent_valid: np.ndarray
    agent_size: np.ndarray
    agent_category: np.ndarray
    map: MapLayers
    route_lane_ids: np.ndarray
    expert_pose: np.ndarray
    lane_speed_limits: np.ndarray | None = None
    dt: float = DT

    @property
    def num_steps(self) -> int:
        """Steps T."""
        return int(self.ego_pose.shape[0])

    def validate(self) -> ClosedLoopRollout:
        """The roll-out itself; ValueError on inconsistent shapes."""
        steps, num = self.num_steps, int(self.agent_xy.shape[0])
        expected = {
            "ego_pose": (steps, 3), "ego_velocity": (steps, 2), "ego_acceleration": (steps, 2),
            "ego_yaw_rate": (steps,), "agent_xy": (num, steps, 2), "agent_heading": (num, steps),
            "agent_velocity": (num, steps, 2), "agent_valid": (num, steps), "agent_size": (num, 2),
            "agent_category": (num,), "expert_pose": (steps, 3),
        }
        for name, shape in expected.items():
            if np.shape(getattr(self, name)) != shape:
                raise ValueError(f"ClosedLoopRollout.{name} has shape {np.shape(getattr(self, name))}, not {shape}")
        if self.lane_speed_limits is not None and np.shape(self.lane_speed_limits) != (self.map.num_lanes,):
            raise ValueError("ClosedLoopRollout.lane_speed_limits must have one entry per map lane")
        return self


@dataclass(frozen=True)
class ClsMetrics:
    """nuPlan closed-loop metrics of one scenario, each in [0, 1].

    Attributes:
        no_ego_at_fault_collisions, drivable_area_compliance, driving_direction_compliance,
            ego_is_making_progress: multipliers.
        ego_progress_along_expert_route (w 5), time_to_collision_within_bound (w 5), speed_limit_compliance
            (w 4), ego_is_comfortable (w 2): weighted metrics.
        score: the scenario score.
        reactive: True for CLS-R (IDM agents), False for CLS-NR (log replay).
        ego_progress, expert_progress: [m] along the route; min_ttc [s] (inf: none);
        worst_wrong_way: [m] in a 1 s window; at_fault_collisions: count over all groups.
    """

    no_ego_at_fault_collisions: float
    drivable_area_compliance: float
    driving_direction_compliance: float
    ego_is_making_progress: float
    ego_progress_along_expert_route: float
    time_to_collision_within_bound: float
    speed_limit_compliance: float
    ego_is_comfortable: float
    score: float
    reactive: bool
    ego_progress: float = 0.0
    expert_progress: float = 0.0
    min_ttc: float = float("inf")
    worst_wrong_way: float = 0.0
    at_fault_collisions: int = 0

    MULTIPLIERS = ("no_ego_at_fault_collisions", "drivable_area_compliance", "driving_direction_compliance",
                   "ego_is_making_progress")
    WEIGHTED = ("ego_progress_along_expert_route", "time_to_collision_within_bound", "speed_limit_compliance",
                "ego_is_comfortable")


def scenario_score(multipliers: Sequence[float], weighted: Sequence[float]) -> float:
    """(prod multipliers) x (5 EP + 5 TTC + 4 SLC + 2 C) / 16, weighted in `ClsMetrics.WEIGHTED` order."""
    weights = np.array(list(WEIGHTS.values()))
    return float(np.prod(multipliers) * np.dot(weights, np.asarray(weighted, dtype=float)) / weights.sum())


def _agent_view(rollout: ClosedLoopRollout) -> m.AgentView:
    category = np.asarray(rollout.agent_category)
    return m.AgentView(
        xy=np.asarray(rollout.agent_xy, dtype=np.float64),
        heading=np.asarray(rollout.agent_heading, dtype=np.float64),
        speed=np.linalg.norm(np.asarray(rollout.agent_velocity, dtype=np.float64), axis=-1),
        valid=np.asarray(rollout.agent_valid, dtype=bool),
        half=np.asarray(rollout.agent_size, dtype=np.float64) / 2.0,
        ego_half=np.array([PACIFICA.length, PACIFICA.width]) / 2.0,
        is_static=category == AgentCategory.STATIC_OBJECT,
        group=tuple(m.collision_group(int(c)) for c in category),
    )


def score_rollout(rollout: ClosedLoopRollout, reactive: bool) -> ClsMetrics:
    """Every nuPlan closed-loop metric of `rollout` and its scenario score.

    Args:
        rollout: the simulated scenario.
        reactive: whether the agents were reactive (CLS-R) or log replay (CLS-NR); names the result only.

    Returns:
        The metrics; any non-finite ego state scores the scenario 0 (our failure rule).
    """
    rollout.validate()
    dt = rollout.dt
    states = m.ego_states(rollout.ego_pose, rollout.ego_velocity, rollout.ego_acceleration, rollout.ego_yaw_rate)
    if not np.isfinite(states).all():
        return ClsMetrics(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, score=0.0, reactive=reactive)
    road = rollout.map
    index = m.MapIndex.build(road)
    corners, centers = m.ego_corners(states)
    agents = _agent_view(rollout)
    center_lane = m.driven_lanes(index, centers)
    common = m.in_common_or_connected_lanes(index, corners)
    rear_in_intersection = points_in_polygons(index.intersections, index.intersection_bounds,
                                              rollout.ego_pose[:, :2]).any(axis=0)

    counts, at_fault_steps, first_contact = m.collisions(states, corners, agents, common)
    nc = m.collision_score(counts)
    dac = m.drivable_area_compliance(index, corners, center_lane)
    ddc, wrong_way = m.driving_direction(road, centers, center_lane, dt)

    line = m.route_line(road, np.asarray(rollout.route_lane_ids))
    if line is None:
        ego_progress = expert_progress = 0.0
        ratio = 1.0
    else:
        expert_states = m.ego_states(rollout.expert_pose, np.zeros((rollout.num_steps, 2)),
                                     np.zeros((rollout.num_steps, 2)), np.zeros(rollout.num_steps))
        ego_progress = m.route_progress(line, centers)
        expert_progress = m.route_progress(line, m.ego_corners(expert_states)[1])
        ratio = m.progress_ratio(ego_progress, expert_progress)
    making_progress = float(ratio >= m.MIN_PROGRESS_RATIO)

    ttc = m.time_to_collision(states, centers, agents, at_fault_steps, first_contact, common, rear_in_intersection)
    ttc_ok = float(np.all(ttc > m.TTC_BOUND))
    limits = road.lane_speed_limits if rollout.lane_speed_limits is None else rollout.lane_speed_limits
    speed = np.linalg.norm(rollout.ego_velocity, axis=-1)
    slc, _ = m.speed_limit_compliance(road, np.asarray(limits, dtype=np.float64), speed, center_lane, dt)
    comfortable = m.is_comfortable(m.comfort_signals(states, PACIFICA.rear_axle_to_center, dt))

    multipliers = (nc, dac, ddc, making_progress)
    weighted = (ratio, ttc_ok, slc, comfortable)
    return ClsMetrics(
        *multipliers, *weighted,
        score=scenario_score(multipliers, weighted),
        reactive=reactive,
        ego_progress=ego_progress,
        expert_progress=expert_progress,
        min_ttc=float(ttc.min()) if ttc.size else float("inf"),
        worst_wrong_way=wrong_way,
        at_fault_collisions=int(sum(counts.values())),
    )


@dataclass(frozen=True)
class ClsSummary:
    """CLS over scenarios.

    Attributes:
        metric: "cls-r" or "cls-nr".
        cls: mean scenario score x 100 (nuPlan's reported CLS).
        n_scenes: scenarios aggregated.
        sub_metrics: the mean of every multiplier and weighted metric over scenarios (in [0, 1]).
        version: the metric version.
    """

    metric: str
    cls: float
    n_scenes: int
    sub_metrics: dict[str, float]
    version: str = CLS_METRIC_VERSION


def aggregate(results: Sequence[ClsMetrics]) -> ClsSummary:
    """The plain mean over scenarios (nuPlan's per-type means weighted by type counts equal it), x 100.

    Args:
        results: scenario metrics, all reactive or all non-reactive.

    Returns:
        The summary; ValueError on an empty or mixed list.
    """
    if not results:
        raise ValueError("aggregate needs at least one scenario")
    modes = {r.reactive for r in results}
    if len(modes) != 1:
        raise ValueError("cannot aggregate reactive (CLS-R) and non-reactive (CLS-NR) results together")
    names = ClsMetrics.MULTIPLIERS + ClsMetrics.WEIGHTED
    sub = {name: float(np.mean([getattr(r, name) for r in results])) for name in names}
    return ClsSummary(
        metric="cls-r" if modes.pop() else "cls-nr",
        cls=100.0 * float(np.mean([r.score for r in results])),
        n_scenes=len(results),
        sub_metrics=sub,
    )


@dataclass(frozen=True, eq=False)
class TimedPlan:
    """One planner output as the ego would drive it.

    Attributes:
        time: [s] simulation time of the planner call.
        states: (T, 11) simulated ego states at `dt` from that time, `planners.pdm.states.StateIndex` layout.
    """

    time: float
    states: np.ndarray


@dataclass(frozen=True)
class TemporalConsistency:
    """EC of consecutive plans (EPDMS extended comfort, reference §5).

    Attributes:
        ec: mean EC over the pairs (1.0 without pairs); ec_per_pair: one 0/1 per pair.
        pairs: ((earlier, later) plan indices) compared.
        mean_l2, max_l2: [m] rear-axle distance between the two plans over their overlap, mean and max.
    """

    ec: float
    ec_per_pair: tuple[float, ...]
    pairs: tuple[tuple[int, int], ...]
    mean_l2: float
    max_l2: float


def temporal_consistency(plans: Sequence[TimedPlan], offset: float = 0.5, dt: float = DT) -> TemporalConsistency:
    """Compare each plan with the one made `offset` seconds earlier (within dt / 2), as EPDMS's EC does:
    the earlier plan is shifted by round(offset / dt) states, and the RMS differences of acceleration, jerk,
    yaw rate and yaw acceleration must be within 0.7 m/s^2, 0.5 m/s^3, 0.1 rad/s, 0.1 rad/s^2.

    Args:
        plans: planner outputs with their call times, in any order.
        offset: [s] time between the compared plans.
        dt: [s] state spacing of the plans.

    Returns:
        The per-pair and mean EC, and the L2 gap of the overlapping states.
    """
    config = ScorerConfig(ec_plan_offset=offset, dt=dt)
    shift = round(offset / dt)
    times = np.array([p.time for p in plans], dtype=np.float64)
    scores: list[float] = []
    pairs: list[tuple[int, int]] = []
    gaps: list[np.ndarray] = []
    for later, plan in enumerate(plans):
        earlier = np.flatnonzero(np.abs(times - (plan.time - offset)) <= dt / 2)
        if earlier.size == 0:
            continue
        previous = plans[int(earlier[0])].states
        steps = min(len(plan.states), len(previous))
        if steps <= shift:
            continue
        current, before = plan.states[None, :steps], previous[None, :steps]
        scores.append(float(extended_comfort(current, before, config)[0]))
        pairs.append((int(earlier[0]), later))
        xy = StateIndex.X, StateIndex.Y
        gaps.append(np.linalg.norm(current[0, : steps - shift][:, xy] - before[0, shift:][:, xy], axis=-1))
    gap = np.concatenate(gaps) if gaps else np.zeros(0)
    return TemporalConsistency(
        ec=float(np.mean(scores)) if scores else 1.0,
        ec_per_pair=tuple(scores),
        pairs=tuple(pairs),
        mean_l2=float(gap.mean()) if gap.size else 0.0,
        max_l2=float(gap.max()) if gap.size else 0.0,
    )

