"""Score any number of driving plans on one scene in one vectorised call (NAVSIM's pipeline).

plan (ego frame, 8 poses at 0.5 s) -> map frame, prefixed with the current pose -> 41 poses at 0.1 s ->
LQR + kinematic bicycle from the logged ego state -> PDM scorer against the reference (PDM-Closed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from planners.pdm.closed import PDMClosed
from planners.pdm.interpolation import interpolate_poses, plan_to_global_poses, poses_to_states
from planners.pdm.scoring import (
    MetricVersion,
    ProposalScores,
    SceneGeometry,
    ScorerConfig,
    apply_human_filter,
    score_proposals,
)
from planners.pdm.simulation import ego_state_vector, simulate
from planners.pdm.states import NUM_SIM_STATES, SIM_INTERVAL, StateIndex
from scenes import CURRENT_INDEX, PLAN_DT, PREVIOUS_PLAN_STEPS, DriveScene


@dataclass(frozen=True, eq=False)
class PlanEvaluation:
    """Scores of K plans on one scene.

    Attributes:
        scores: ProposalScores, every sub-metric, the score and the raw progress [m] of each plan and of the
            reference, each (K,).
        states: (K, 41, 4) simulated x [m], y [m], heading [rad], forward speed [m/s], map frame, 0..4 s.
        reference_states: (41, 11) the simulated reference (StateIndex layout).
    """

    scores: ProposalScores
    states: np.ndarray
    reference_states: np.ndarray


def initial_state(scene: DriveScene, at: int = CURRENT_INDEX) -> np.ndarray:
    """(11,) the logged ego state at step `at` (default: now), map frame (StateIndex layout)."""
    return ego_state_vector(scene.ego.slice(at))


def simulate_plans(scene: DriveScene, plans: np.ndarray, plan_dt: float = PLAN_DT, at: int = CURRENT_INDEX
                   ) -> np.ndarray:
    """Plans (K, T, 3) every `plan_dt` [s], in the ego frame at step `at` -> simulated states (K, 41, 11)
    from the logged state at `at`, map frame."""
    plans = np.asarray(plans, dtype=np.float64)
    return simulate_scene_plans([scene] * len(plans), plans, plan_dt, at)


def simulate_scene_plans(scenes: list[DriveScene], plans: np.ndarray, plan_dt: float = PLAN_DT,
                         at: int = CURRENT_INDEX) -> np.ndarray:
    """One plan per scene (B, T, 3), ego frames -> simulated states (B, 41, 11), each in its map frame.

    A single vectorised simulator call for many scenes (per-row initial states).
    """
    plans = np.asarray(plans, dtype=np.float64)
    origins = np.stack([scene.ego.pose[at] for scene in scenes])
    ego0 = np.stack([initial_state(scene, at) for scene in scenes])
    poses = interpolate_poses(plan_to_global_poses(plans, origins), plan_dt)
    return simulate(poses_to_states(poses, ego0, interval_in=plan_dt), ego0)


def reference_states(scene: DriveScene, planner: PDMClosed | None = None) -> np.ndarray:
    """(41, 11) PDM-Closed's trajectory on the scene's observation, simulated as NAVSIM's metric cache does."""
    dense, _, _ = (planner or PDMClosed()).trajectory(scene.observation())
    poses = plan_to_global_poses(dense[1:NUM_SIM_STATES], scene.current_pose)
    ego0 = initial_state(scene)
    return simulate(poses_to_states(poses, ego0, interval_in=SIM_INTERVAL)[None], ego0)[0]


def score_plans(
    scene: DriveScene,
    plans: np.ndarray,
    reference: np.ndarray | None = None,
    version: MetricVersion = MetricVersion.PDMS_V1,
    geometry: SceneGeometry | None = None,
    human_filter: bool = True,
    previous_plans: np.ndarray | None = None,
    states: np.ndarray | None = None,
) -> PlanEvaluation:
    """Score K ego-frame plans (K, 8, 3) at 0.5 s on `scene` in one call.

    Args:
        reference: (41, 11) simulated reference states; default: PDM-Closed's, computed now.
        version: PDMS v1.1 or EPDMS v2.
        geometry: the scene's cached SceneGeometry, if the caller keeps one.
        human_filter: v2 only: sub-metrics the logged human fails are set to 1 (NAVSIM v2).
        previous_plans: v2 only, (K or 1, 8, 3) the plans made 0.5 s earlier (ego frame at that step), for
            extended comfort (EC); without them EC is 1.
        states: (K, 41, 11) `simulate_plans(scene, plans)` when the caller has them already (the ego's
            simulation does not depend on the other agents).
    """
    reference = reference_states(scene) if reference is None else reference
    geometry = geometry or SceneGeometry.from_scene(scene)
    config = ScorerConfig(version=version)
    states = simulate_plans(scene, plans) if states is None else states
    earlier = CURRENT_INDEX - PREVIOUS_PLAN_STEPS
    previous = None if previous_plans is None else simulate_plans(scene, previous_plans, at=earlier)
    scores = score_proposals(geometry, states, reference, config, previous)
    if version is MetricVersion.EPDMS_V2 and human_filter:
        human_previous = simulate_plans(scene, scene.expert_plan(at=earlier).poses[None], at=earlier)
        human = score_proposals(geometry, simulate_plans(scene, scene.expert_plan().poses[None]), reference,
                                config, human_previous)
        scores = apply_human_filter(scores, human, config)
    compact = states[..., [StateIndex.X, StateIndex.Y, StateIndex.HEADING, StateIndex.VELOCITY_X]]
    return PlanEvaluation(scores=scores, states=compact, reference_states=reference)
