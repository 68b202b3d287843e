"""Learned planners: plain `nn.Module` models behind a `Planner` adapter (no Lightning in here).

Importing this package registers the learned planners ("ego-mlp", "diffusiondrive", "diffusion-policy",
"regression"); it imports torch. Each model is built from a frozen config dataclass of its hyperparameters
(planners.learned.config: EgoMLPConfig, DiffusionDriveConfig, DiffusionPolicyConfig, RegressionConfig).
"""

from planners.learned.base import (
    ExpertPlanTarget,
    LearnedDrivePlanner,
    LearnedPlanner,
    Normaliser,
    PlanningModel,
)
from planners.learned.config import ModelConfig, ModelConfigError
from planners.learned.diffusion_policy import (
    DiffusionPolicyConfig,
    DiffusionPolicyModel,
    DiffusionPolicyPlanner,
)
from planners.learned.diffusiondrive import DiffusionDriveConfig, DiffusionDriveModel, DiffusionDrivePlanner
from planners.learned.ego_mlp import EgoMLPConfig, EgoMLPPlanner, EgoStatusFeatures, EgoStatusMLP
from planners.learned.regression import RegressionConfig, RegressionModel, RegressionPlanner
from planners.learned.vector import DriveFeatureBuilder, DriveFeatures, SceneEncoder, VectorModelConfig

__all__ = [
    "DiffusionDriveConfig",
    "DiffusionDriveModel",
    "DiffusionDrivePlanner",
    "DiffusionPolicyConfig",
    "DiffusionPolicyModel",
    "DiffusionPolicyPlanner",
    "DriveFeatureBuilder",
    "DriveFeatures",
    "EgoMLPConfig",
    "EgoMLPPlanner",
    "EgoStatusFeatures",
    "EgoStatusMLP",
    "ExpertPlanTarget",
    "LearnedDrivePlanner",
    "LearnedPlanner",
    "ModelConfig",
    "ModelConfigError",
    "Normaliser",
    "PlanningModel",
    "RegressionConfig",
    "RegressionModel",
    "RegressionPlanner",
    "SceneEncoder",
    "VectorModelConfig",
]
