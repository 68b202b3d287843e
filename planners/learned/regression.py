"""The regression baseline on DiffusionDrive's encoder and data ("regression"): TransFuser's planning head.

One learned query cross-attends to the scene tokens through `decoder_layers` transformer-decoder layers and
an MLP regresses the 8 poses; L1 loss over x, y [m] and heading [rad].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from planners.learned.base import LearnedDrivePlanner
from planners.learned.config import ModelConfigError
from planners.learned.vector import (
    DriveFeatures,
    VectorModelConfig,
    VectorPlanningModel,
    denormalise_xy,
    plan_l1,
)
from planners.registry import register_planner


@dataclass(frozen=True)
class RegressionConfig(VectorModelConfig):
    """The regression head's hyperparameters beyond the encoder's (`VectorModelConfig`): `decoder_layers`
    transformer-decoder layers (2)."""

    decoder_layers: int = 2

    def validate(self) -> RegressionConfig:
        """Self, or ModelConfigError naming the first bad field."""
        super().validate()
        if self.decoder_layers < 0:
            raise ModelConfigError(f"decoder_layers={self.decoder_layers}: must be 0 or more")
        return self


class RegressionModel(VectorPlanningModel):
    """TransFuser-style regression: a learned query decodes the 8 poses; L1 over x, y [m], heading [rad]."""

    config_class = RegressionConfig
    config: RegressionConfig

    def __init__(self, config: RegressionConfig | None = None):
        super().__init__(config)
        c = self.config
        self.query = nn.Parameter(torch.zeros(1, 1, c.d_model))
        nn.init.normal_(self.query, std=0.02)
        layer = nn.TransformerDecoderLayer(c.d_model, c.heads, c.ffn_dim, c.dropout, batch_first=True,
                                           norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, c.decoder_layers, norm=nn.LayerNorm(c.d_model))
        self.head = nn.Sequential(nn.Linear(c.d_model, c.d_model), nn.ReLU(),
                                  nn.Linear(c.d_model, c.num_poses * 3))

    def forward(self, features: DriveFeatures) -> torch.Tensor:
        """Batched features -> (B, T, 3): xy regressed in normalised units, heading tanh * pi."""
        tokens, valid = self.encoder(features)
        query = self.query.expand(tokens.shape[0], -1, -1)
        out = self.head(self.decoder(query, tokens, memory_key_padding_mask=~valid)[:, 0])
        out = out.reshape(-1, self.num_poses, 3)
        return torch.cat([denormalise_xy(out[..., :2]), torch.tanh(out[..., 2:]) * torch.pi], dim=-1)

    def loss(self, features: DriveFeatures, plan: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean L1 over x, y [m] and heading [rad]; logs the final xy L2 [m]."""
        predicted = self(features).float()
        loss = plan_l1(predicted, plan).mean()
        final = torch.linalg.vector_norm(predicted[:, -1, :2] - plan[:, -1, :2], dim=-1).mean()
        return loss, {"l1": float(loss.detach()), "final_xy_l2": float(final.detach())}


@register_planner("regression")
class RegressionPlanner(LearnedDrivePlanner):
    """TransFuser-style single-query regression on DiffusionDrive's encoder (a baseline)."""

    model_class = RegressionModel
