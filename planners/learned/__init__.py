"""Learned planners: plain `nn.Module` models behind a `Planner` adapter (no Lightning in here).

Importing this package registers the learned planners ("ego-mlp"); it imports torch.
"""

from planners.learned.base import ExpertPlanTarget, LearnedPlanner, Normaliser, PlanningModel
from planners.learned.ego_mlp import EgoMLPPlanner, EgoStatusFeatures, EgoStatusMLP

__all__ = [
    "EgoMLPPlanner",
    "EgoStatusFeatures",
    "EgoStatusMLP",
    "ExpertPlanTarget",
    "LearnedPlanner",
    "Normaliser",
    "PlanningModel",
]
