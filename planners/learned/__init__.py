"""Learned planners: plain `nn.Module` models behind a `Planner` adapter (no Lightning in here).

Importing this package registers the learned planners ("ego-mlp", "diffusiondrive", "diffusion-policy",
"regression"); it imports torch.
"""

from planners.learned.base import (
    ExpertPlanTarget,
    LearnedDrivePlanner,
    LearnedPlanner,
    Normaliser,
    PlanningModel,
)
from planners.learned.baselines import (
    DiffusionPolicyModel,
    DiffusionPolicyPlanner,
    RegressionModel,
    RegressionPlanner,
)
from planners.learned.diffusiondrive import DiffusionDriveModel, DiffusionDrivePlanner
from planners.learned.ego_mlp import EgoMLPPlanner, EgoStatusFeatures, EgoStatusMLP
from planners.learned.vector import DriveFeatureBuilder, DriveFeatures, SceneEncoder

__all__ = [
    "DiffusionDriveModel",
    "DiffusionDrivePlanner",
    "DiffusionPolicyModel",
    "DiffusionPolicyPlanner",
    "DriveFeatureBuilder",
    "DriveFeatures",
    "EgoMLPPlanner",
    "EgoStatusFeatures",
    "EgoStatusMLP",
    "ExpertPlanTarget",
    "LearnedDrivePlanner",
    "LearnedPlanner",
    "Normaliser",
    "PlanningModel",
    "RegressionModel",
    "RegressionPlanner",
    "SceneEncoder",
]
