"""NAVSIM PDM scorer (PDMS v1.1 / EPDMS v2) on already simulated ego states, vectorised over proposals.

Each proposal k is scored as NAVSIM scores the 2-proposal set [reference (PDM-Closed), proposal k]: every
per-proposal metric is independent of the others, and EP normalises by max(progress_k, progress_ref), each
scaled by its own multiplicative metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from planners.pdm.scoring.areas import SceneGeometry, ego_areas, ego_coords
from planners.pdm.scoring.collisions import no_at_fault_collision, time_to_collision
from planners.pdm.scoring.comfort import comfort, extended_comfort, history_comfort
from planners.pdm.scoring.compliance import driving_direction, lane_keeping, traffic_light
from planners.pdm.scoring.config import MetricVersion, ProposalScores, ScorerConfig
from planners.pdm.scoring.progress import pairwise_progress, raw_progress
from planners.pdm.scoring.sub_metrics import SubMetrics, V
from planners.pdm.states import NUM_STATE_FIELDS
from scenes.drive import DriveScene


def _per_proposal(geometry: SceneGeometry, states: np.ndarray, config: ScorerConfig) -> dict[str, np.ndarray]:
    """Every metric that does not depend on the other proposals, each (K,)."""
    num = states.shape[0]
    ones = np.ones(num)
    coords = ego_coords(states)
    areas = ego_areas(geometry, states, coords)
    out = {
        "nc": no_at_fault_collision(geometry, states, coords, areas, config),
        "dac": np.where(areas.non_drivable.any(axis=1), 0.0, 1.0),
        "ddc": driving_direction(coords, areas, config),
        "ttc": time_to_collision(geometry, states, coords, areas, config),
        "raw_progress": raw_progress(geometry, coords),
    }
    if config.is_v2:
        history = geometry.history_states[: config.history_comfort_steps]  # from -1.5 s on
        out |= {
            "comfort": ones,
            "tlc": traffic_light(geometry, coords),
            "lk": lane_keeping(geometry, coords, areas, config),
            "hc": history_comfort(states, history, config),
        }
    else:
        out |= {"comfort": comfort(states, config), "tlc": ones, "lk": ones, "hc": ones}
    return out


def _multiplier(m: Mapping[str, V], config: ScorerConfig) -> V:
    base = m["nc"] * m["dac"]
    return base * m["ddc"] * m["tlc"] if config.is_v2 else base


def combine(m: dict[str, np.ndarray], config: ScorerConfig) -> np.ndarray:
    """(K,) PDMS (v1) or EPDMS (v2) from sub-metrics (each (K,)), `ep` included."""
    mult = _multiplier(m, config)
    if config.is_v2:
        weights = {
            "ep": config.progress_weight,
            "ttc": config.ttc_weight,
            "lk": config.lane_keeping_weight,
            "hc": config.history_comfort_weight,
            "ec": config.extended_comfort_weight,
        }
    else:
        weights = {
            "ep": config.progress_weight,
            "ttc": config.ttc_weight,
            "comfort": config.comfort_weight,
            "ddc": config.driving_direction_weight,
        }
    total = sum(w * m[key] for key, w in weights.items())
    return mult * total / sum(weights.values())


@dataclass(frozen=True, eq=False)
class ScoredReference:
    """The reference's own sub-metrics on one scene, computed once and reused for every proposal.

    Attributes:
        states: (41, 11) simulated reference states.
        metrics: each per-proposal metric of the reference, a float.
        version: the MetricVersion they were computed for.
    """

    states: np.ndarray
    metrics: dict[str, float]
    version: MetricVersion


def score_reference(
    scene: DriveScene | SceneGeometry, reference_states: np.ndarray, config: ScorerConfig | None = None
) -> ScoredReference:
    """Score the reference (41, 11) alone, to pass to `score_proposals` for many calls on one scene."""
    config = config or ScorerConfig()
    geometry = scene if isinstance(scene, SceneGeometry) else SceneGeometry.from_scene(scene)
    reference = _check(np.asarray(reference_states)[None], "reference_states")
    m = _per_proposal(geometry, reference, config)
    return ScoredReference(reference[0], {key: float(value[0]) for key, value in m.items()}, config.version)


def _check(states: np.ndarray, name: str) -> np.ndarray:
    states = np.asarray(states, dtype=np.float64)
    if states.ndim != 3 or states.shape[-1] != NUM_STATE_FIELDS:
        raise ValueError(f"{name}: expected (K, T, {NUM_STATE_FIELDS}), got {states.shape}")
    return states


def score_proposals(
    scene: DriveScene | SceneGeometry,
    states: np.ndarray,
    reference_states: np.ndarray | ScoredReference,
    config: ScorerConfig | None = None,
    previous_states: np.ndarray | None = None,
) -> ProposalScores:
    """Score proposals as NAVSIM does, each paired with the reference for EP.

    Args:
        scene: the DriveScene, or its cached `SceneGeometry.from_scene(scene)` (build it once per scene).
        states: (K, 41, 11) simulated ego states (StateIndex layout, map frame, state 0 = now).
        reference_states: (41, 11) the EP normaliser (PDM-Closed in NAVSIM), or its `score_reference`
            result for the same scene and version (then only the proposals are scored).
        config: ScorerConfig (default: PDMS v1.1); `config.version` picks PDMS v1.1 or EPDMS v2.
        previous_states: v2 only, (K or 1, 41, 11) the simulated plan made 0.5 s earlier (EC). Without it
            EC = 1. Ignored in v1.
    Returns:
        ProposalScores with (K,) arrays.
    """
    config = config or ScorerConfig()
    geometry = scene if isinstance(scene, SceneGeometry) else SceneGeometry.from_scene(scene)
    states = _check(states, "states")
    if isinstance(reference_states, ScoredReference):
        if reference_states.version is not config.version:
            raise ValueError(f"reference scored for {reference_states.version.value}, not {config.version.value}")
        ref = reference_states.metrics
        m = _per_proposal(geometry, states, config)
    else:
        reference = _check(np.asarray(reference_states)[None], "reference_states")
        m = _per_proposal(geometry, np.concatenate([reference, states], axis=0), config)
        ref = {key: value[0] for key, value in m.items()}
        m = {key: value[1:] for key, value in m.items()}
    m["ep"] = pairwise_progress(
        m["raw_progress"], _multiplier(m, config), ref["raw_progress"], _multiplier(ref, config), config
    )
    num = states.shape[0]
    if config.is_v2:
        prev = None
        if previous_states is not None:
            prev = _check(np.asarray(previous_states).reshape(-1, *states.shape[1:]), "previous_states")
        m["ec"] = extended_comfort(states, prev, config)
    else:
        m["ec"] = np.ones(num)
    return ProposalScores(
        **{name: m[name] for name in SubMetrics.NAMES},
        score=combine(m, config),
        raw_progress=m["raw_progress"],
        reference_progress=np.full(num, ref["raw_progress"]),
        version=config.version,
    )


def score_proposal_set(
    scene: DriveScene | SceneGeometry, states: np.ndarray, config: ScorerConfig | None = None
) -> ProposalScores:
    """Score K proposals against each other, as PDM-Closed's own scorer does: EP divides by the best
    NC*DAC-scaled progress of the whole set. states: (K, 41, 11) map frame."""
    config = config or ScorerConfig()
    geometry = scene if isinstance(scene, SceneGeometry) else SceneGeometry.from_scene(scene)
    states = _check(states, "states")
    m = _per_proposal(geometry, states, config)
    best = float(np.max(m["raw_progress"] * _multiplier(m, config)))
    m["ep"] = pairwise_progress(m["raw_progress"], _multiplier(m, config), best, 1.0, config)
    m["ec"] = np.ones(states.shape[0])
    return ProposalScores(**{k: m[k] for k in SubMetrics.NAMES}, score=combine(m, config),
                          raw_progress=m["raw_progress"], reference_progress=np.full(states.shape[0], best),
                          version=config.version)


def score_pdms(scene, states, reference_states, config: ScorerConfig | None = None) -> ProposalScores:
    """`score_proposals` with NAVSIM v1.1 PDMS (other fields of `config` kept)."""
    config = replace(config or ScorerConfig(), version=MetricVersion.PDMS_V1)
    return score_proposals(scene, states, reference_states, config)


def score_epdms(
    scene, states, reference_states, config: ScorerConfig | None = None, previous_states=None
) -> ProposalScores:
    """`score_proposals` with NAVSIM v2 EPDMS (other fields of `config` kept)."""
    config = replace(config or ScorerConfig(), version=MetricVersion.EPDMS_V2)
    return score_proposals(scene, states, reference_states, config, previous_states)


def apply_human_filter(
    agent_scores: ProposalScores, human_scores: ProposalScores, config: ScorerConfig | None = None
) -> ProposalScores:
    """NAVSIM v2 false-positive filter: every sub-metric on which the human's (logged) trajectory scores exactly
    0 is set to 1 for the agent, then the score is recomputed. human_scores: K or 1 proposals."""
    config = replace(config or ScorerConfig(), version=agent_scores.version)
    num = len(agent_scores)
    fields = {}
    for key in SubMetrics.NAMES:
        human = np.broadcast_to(getattr(human_scores, key), (num,))
        fields[key] = np.where(human == 0.0, 1.0, getattr(agent_scores, key))
    return replace(agent_scores, **fields, score=combine(fields, config))  # type: ignore[arg-type]
