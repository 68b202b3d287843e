"""Vectorised re-implementation of NAVSIM's PDM scorer: PDMS (v1.1) and EPDMS (v2).

Usage: `geometry = SceneGeometry.from_scene(scene)` once per scene, then
`score_proposals(geometry, states, reference_states, ScorerConfig(version=...))`.
"""

from planners.pdm.scoring.areas import EgoAreas, SceneGeometry, ego_areas, ego_coords
from planners.pdm.scoring.config import MetricVersion, ProposalScores, ScorerConfig
from planners.pdm.scoring.scorer import (
    ScoredReference,
    apply_human_filter,
    combine,
    score_epdms,
    score_pdms,
    score_proposal_set,
    score_proposals,
    score_reference,
)
from planners.pdm.scoring.sub_metrics import SubMetrics

__all__ = [
    "EgoAreas",
    "MetricVersion",
    "ProposalScores",
    "SceneGeometry",
    "ScoredReference",
    "ScorerConfig",
    "SubMetrics",
    "apply_human_filter",
    "combine",
    "ego_areas",
    "ego_coords",
    "score_epdms",
    "score_pdms",
    "score_proposal_set",
    "score_proposals",
    "score_reference",
]
