"""NAVSIM's EgoStatusMLP: an 8-D ego status -> 3 x 512 ReLU MLP -> 8 poses, trained with L1 (Adam 1e-4).

Status (8,) float32: command one-hot (left, straight, right, unknown), velocity vx, vy [m/s] and
acceleration ax, ay [m/s^2], in the ego body frame (forward, left), at now. Target: the expert plan (8, 3).
Unlike NAVSIM, the status and plan are normalised with buffers fitted on the training data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from planners.learned.base import LearnedDrivePlanner, Normaliser, PlanningModel
from planners.learned.config import ModelConfig, check_positive
from planners.registry import register_planner
from scenes import NUM_PLAN_POSES, PLAN_DT, DriveObservation

STATUS_FIELDS = ("cmd_left", "cmd_straight", "cmd_right", "cmd_unknown", "vx", "vy", "ax", "ay")


class EgoStatusFeatures:
    """DriveObservation -> (8,) float32 status (see the module docstring)."""

    def __call__(self, obs: DriveObservation) -> torch.Tensor:
        """The (8,) float32 ego status of `obs`."""
        ego = obs.ego
        status = np.concatenate([obs.command.one_hot(), ego.velocity, ego.acceleration])
        return torch.from_numpy(status.astype(np.float32))


@dataclass(frozen=True)
class EgoMLPConfig(ModelConfig):
    """EgoStatusMLP's hyperparameters: `hidden_dim` h (NAVSIM: 512), `num_poses` planned poses."""

    hidden_dim: int = 512
    num_poses: int = NUM_PLAN_POSES

    def validate(self) -> EgoMLPConfig:
        """Self, or ModelConfigError naming the first bad field."""
        super().validate()
        check_positive(self, "hidden_dim", "num_poses")
        return self


class EgoStatusMLP(PlanningModel):
    """Linear(8, h) ReLU Linear(h, h) ReLU Linear(h, h) ReLU Linear(h, 8 * 3), as in NAVSIM."""

    config_class = EgoMLPConfig
    config: EgoMLPConfig

    def __init__(self, config: EgoMLPConfig | None = None):
        super().__init__(config)
        hidden_dim, num_poses = self.config.hidden_dim, self.config.num_poses
        self.num_poses = num_poses
        self.status_norm = Normaliser((len(STATUS_FIELDS),))
        self.plan_norm = Normaliser((num_poses, 3))
        self.mlp = nn.Sequential(
            nn.Linear(len(STATUS_FIELDS), hidden_dim), nn.ReLU(),
            nn.Linear(hidden_dim, hidden_dim), nn.ReLU(),
            nn.Linear(hidden_dim, hidden_dim), nn.ReLU(),
            nn.Linear(hidden_dim, num_poses * 3),
        )

    def feature_builder(self) -> EgoStatusFeatures:
        """EgoStatusFeatures: observation -> (8,) status."""
        return EgoStatusFeatures()

    def spec(self) -> dict[str, Any]:
        """The (8,) status feature and the (num_poses, 3) plan target."""
        return {
            "features": {"status": {"shape": [len(STATUS_FIELDS)], "dtype": "float32",
                                    "fields": list(STATUS_FIELDS), "frame": "ego body"}},
            "targets": {"plan": {"shape": [self.num_poses, 3], "dtype": "float32", "dt": PLAN_DT,
                                 "fields": ["x [m]", "y [m]", "heading [rad]"], "frame": "ego"}},
        }

    def forward(self, status: torch.Tensor) -> torch.Tensor:
        """(B, 8) status -> (B, num_poses, 3) plan, ego frame."""
        z = self.mlp(self.status_norm(status)).reshape(-1, self.num_poses, 3)
        return self.plan_norm.inverse(z)

    def loss(self, status: torch.Tensor, plan: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """NAVSIM's L1 over x, y, heading, in metres and radians."""
        error = (self(status) - plan).abs()
        loss = error.mean()
        return loss, {"l1": float(loss.detach()), "final_xy_l1": float(error[:, -1, :2].mean().detach())}

    def fit_normalisers(self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Fit the status and plan normalisers on (status, plan) batches."""
        statuses, plans = zip(*batches, strict=True)
        self.status_norm.fit(torch.cat(statuses))
        self.plan_norm.fit(torch.cat(plans))


@register_planner("ego-mlp")
class EgoMLPPlanner(LearnedDrivePlanner):
    """NAVSIM's EgoStatusMLP agent; `load("ego-mlp")` gives an untrained one, train it with `diffplan train`."""

    model_class = EgoStatusMLP
