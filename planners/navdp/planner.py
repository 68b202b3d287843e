"""The `navdp` navigation planner: sample 16 trajectories, rank them with the critic, apply NavDP's rules.

Plans follow closed-loop evaluation's convention (eval/pointnav, planners/nav_rule_based): waypoints that all
sit at the robot mean STOP (the tracker rests, which ends the episode); waypoints beside the robot make the
tracker turn on the spot. Rules (NavDP's point-goal agent, adapted to that convention; `select_trajectory`):
1. stop: the goal is within `stop_radius` [m] (habitat's 0.2 m): every pose at the origin;
2. the critic's best candidate is chosen (a seeded random one with `use_critic=False`, the ablation);
3. rotate in place (critic only): the best value is below `stop_threshold` (NavDP: -3.0): NavDP puts every
   waypoint at x = 0, y = sign(mean y of the best); here they sit SIDEWAYS_OFFSET beside the robot;
4. turn in place: the chosen trajectory ends closer than 0.5 m to the robot. NavDP zeroes its x, y (keeping
   the headings); a plan at the robot would be STOP here, so the waypoints go beside the robot on the side of
   its final heading (of the goal when that heading is 0);
5. final approach: within `approach_radius` (1 m, NavDP's arrival distance) of the goal, rule 4 is off and the
   chosen trajectory is followed up to its waypoint nearest the goal, then straight to the goal
   (`approach_goal`). NavDP has no STOP and its own episodes end at 1 m, so its rules never act closer;
   habitat's STOP needs the last 0.2 m. Without this, turning in place left the robot spinning 0.5-0.8 m
   from the goal, and trajectories that end short of it made the tracker rest there (a premature STOP).
Candidates and scores in the Plan are the raw samples (headings wrapped) and their critic values.
Sampling is seeded (LearnedPlanner): a torch.Generator restarted from `seed` at construction, on `reset()`
and when `seed` is set, so the same seed and the same calls give identical plans.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from planners.base import Domain
from planners.learned.base import LearnedPlanner
from planners.nav_base import NAV_PLAN, NavPrivileged
from planners.navdp.model import NavDPConfig, NavDPModel
from planners.plan import Plan
from planners.registry import register_planner
from scenes import Frame, Trajectory
from scenes.geometry import wrap_angle
from scenes.nav import NAV_PLAN_DT, NavObservation

TURN_IN_PLACE_RADIUS = 0.5  # [m] NavDP: trajectories ending closer than this turn in place
SIDEWAYS_OFFSET = 0.5  # [m] turn-in-place waypoints beside the robot (as planners.nav_rule_based)


@dataclass(frozen=True)
class InferenceRules:
    """NavDP's post-processing settings.

    Attributes:
        use_critic: rank by the critic; False picks a random candidate (ablation) and skips rule 3.
        stop_threshold: below this best critic value the robot rotates in place (NavDP eval default -3.0).
        stop_radius: goal distance [m] under which the plan is STOP (habitat-lab's success distance).
        approach_radius: goal distance [m] under which the final approach (rule 5) replaces rule 4 (NavDP's
            arrival distance; 0 turns rule 5 off).
    """

    use_critic: bool = True
    stop_threshold: float = -3.0
    stop_radius: float = 0.2
    approach_radius: float = 1.0


@dataclass(frozen=True)
class Selection:
    """What `select_trajectory` chose: poses (P, 3) robot frame, yaw wrapped; index of the chosen candidate
    (-1 when stopped); rule flags for Plan.info."""

    poses: np.ndarray
    index: int
    info: dict[str, float]


def sideways_plan(side: float, num_poses: int) -> np.ndarray:
    """(num_poses, 3) waypoints SIDEWAYS_OFFSET to the left (side > 0) or right, facing them: turn on the spot."""
    direction = 1.0 if side >= 0 else -1.0
    return np.tile([0.0, direction * SIDEWAYS_OFFSET, direction * math.pi / 2], (num_poses, 1))


def approach_goal(poses: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """(P, 3) robot-frame poses -> (P, 3): the path from the robot along `poses` to the waypoint nearest the
    (2,) goal [m], then straight to the goal, resampled at P equal arc lengths; yaw along the path."""
    num_poses = len(poses)
    path = np.vstack([np.zeros((1, 2)), poses[:, :2]])
    nearest = int(np.argmin(np.linalg.norm(path - goal, axis=1)))
    points = np.vstack([path[: nearest + 1], goal])
    steps = np.diff(points, axis=0)
    lengths = np.linalg.norm(steps, axis=1)
    keep = lengths > 1e-9
    steps, lengths = steps[keep], lengths[keep]
    if not len(lengths):  # the goal is at the robot
        return np.zeros((num_poses, 3))
    ends = np.cumsum(lengths)
    arc = np.linspace(ends[-1] / num_poses, ends[-1], num_poses)
    segment = np.minimum(np.searchsorted(ends, arc - 1e-12), len(lengths) - 1)
    along = (arc - (ends[segment] - lengths[segment])) / lengths[segment]
    xy = points[:-1][keep][segment] + along[:, None] * steps[segment]
    yaw = np.arctan2(steps[segment, 1], steps[segment, 0])
    return np.column_stack([xy, yaw])


def select_trajectory(candidates: np.ndarray, values: np.ndarray, goal: np.ndarray, rules: InferenceRules,
                      random_index: int = 0) -> Selection:
    """Apply the module's rules to (N, P, 3) robot-frame candidate poses with (N,) critic values and a (3,)
    goal; `random_index` is the candidate chosen when `rules.use_critic` is False."""
    num_poses = candidates.shape[1]
    info = {"stopped": 0.0, "rotated": 0.0, "turned_in_place": 0.0, "approached": 0.0,
            "best_value": float(np.max(values))}
    goal_distance = float(np.linalg.norm(goal[:2]))
    if goal_distance < rules.stop_radius:
        info["stopped"] = 1.0
        return Selection(np.zeros((num_poses, 3)), -1, info)
    index = int(np.argmax(values)) if rules.use_critic else int(random_index)
    poses = np.array(candidates[index], dtype=np.float64)
    if rules.use_critic and values[index] < rules.stop_threshold:
        info["rotated"] = 1.0
        return Selection(sideways_plan(poses[:, 1].mean(), num_poses), index, info)
    if goal_distance < rules.approach_radius:
        info["approached"] = 1.0
        return Selection(approach_goal(poses, np.asarray(goal[:2], dtype=np.float64)), index, info)
    if np.linalg.norm(poses[-1, :2]) < TURN_IN_PLACE_RADIUS:
        info["turned_in_place"] = 1.0
        final_yaw = float(wrap_angle(poses[-1, 2]))
        return Selection(sideways_plan(final_yaw if abs(final_yaw) > 1e-3 else goal[1], num_poses), index, info)
    poses[:, 2] = wrap_angle(poses[:, 2])
    return Selection(poses, index, info)


@register_planner("navdp")
class NavDPPlanner(LearnedPlanner[NavObservation, NavPrivileged]):
    """NavDP (depth + point goal -> 16 sampled trajectories, critic-ranked): a learned navigation planner,
    NAV_PLAN plans. `load("navdp")` is untrained; train with `diffplan train navdp --data NAV_DATASET`.
    The model is `model`, else one built from `config` (a NavDPConfig) with `overrides` of its fields.
    Settings after construction: `num_samples`, `rules` (InferenceRules), `seed`; `use_critic` is a shortcut
    into `rules`."""

    model_class = NavDPModel
    model: NavDPModel
    domain = Domain.NAVIGATION
    plan_spec = NAV_PLAN

    def __init__(self, model: NavDPModel | None = None, *, num_samples: int = 16, seed: int = 0,
                 rules: InferenceRules = InferenceRules(), config: NavDPConfig | None = None,
                 **overrides: Any):
        super().__init__(model, seed=seed, config=config, **overrides)
        self.num_samples, self.rules = num_samples, rules

    @property
    def use_critic(self) -> bool:
        """Whether the critic ranks the candidates (`rules.use_critic`)."""
        return self.rules.use_critic

    @use_critic.setter
    def use_critic(self, value: bool) -> None:
        self.rules = replace(self.rules, use_critic=bool(value))

    @torch.no_grad()
    def plan_batch(self, observations: Sequence[NavObservation]) -> list[Plan]:
        """One validated NAV_PLAN plan per observation, from one batched sampling pass."""
        if not observations:
            return []
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be positive, got {self.num_samples}")
        start = time.perf_counter()
        features = self.batched_features(observations)
        self.model.eval()
        _, proposed, scored = self.model.propose(features, self._generator, self.num_samples)
        candidates, values = proposed.double().cpu().numpy(), scored.double().cpu().numpy()
        picks = torch.randint(0, values.shape[1], (len(observations),), generator=self._generator).tolist()
        latency = 1e3 * (time.perf_counter() - start) / len(observations)
        plans = []
        for obs, candidate, value, pick in zip(observations, candidates, values, picks, strict=True):
            chosen = select_trajectory(candidate, value, np.asarray(obs.goal, dtype=np.float64), self.rules, pick)
            candidate[..., 2] = wrap_angle(candidate[..., 2])
            plan = Plan(Trajectory(chosen.poses, NAV_PLAN_DT, Frame.EGO), candidates=candidate, scores=value,
                        info={"latency_ms": latency, "index": float(chosen.index), **chosen.info},
                        spec=NAV_PLAN)
            plans.append(plan.validate())
        return plans
