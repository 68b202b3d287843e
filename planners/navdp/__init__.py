"""NavDP: a critic-ranked navigation diffusion policy (depth + point goal -> 16 sampled trajectories).

Importing this package registers the planner "navdp"; it imports torch.
"""

from planners.navdp.data import (
    NavDPFeatureBuilder,
    NavDPFeatures,
    NavDPTargets,
    NavDPTrainingSet,
    build_targets,
    deltas_to_poses,
    poses_to_deltas,
    resize_depth,
)
from planners.navdp.model import NavDPConfig, NavDPModel
from planners.navdp.planner import InferenceRules, NavDPPlanner, Selection, select_trajectory
from planners.navdp.schedule import DDPMSchedule, cosine_betas

__all__ = [
    "DDPMSchedule",
    "InferenceRules",
    "NavDPConfig",
    "NavDPFeatureBuilder",
    "NavDPFeatures",
    "NavDPModel",
    "NavDPPlanner",
    "NavDPTargets",
    "NavDPTrainingSet",
    "Selection",
    "build_targets",
    "cosine_betas",
    "deltas_to_poses",
    "poses_to_deltas",
    "resize_depth",
    "select_trajectory",
]
