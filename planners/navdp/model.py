"""NavDP as a `PlanningModel`: depth + point goal -> sampled (dx, dy, dyaw) trajectories and critic values.

Training (InternNav's navdp_trainer, restricted to point goals):
    action = 0.5 MSE(eps_hat(no goal), eps) + 0.5 MSE(eps_hat(point goal), eps)    same x_t and t for both
    critic = MSE(V(expert), target) + MSE(V(rotated negative), augmented target)
    loss   = 0.8 action + 0.2 critic;  Adam at lr with LinearLR 1.0 -> 0.5 over 10k steps.
Defaults are small for CPU (d 128, 4 layers, 64 px depth, a CNN encoder); NavDP's own sizes are d 384,
16 layers, 8 heads, 224 px and a ViT-S depth encoder (encoder="vit", vit_width=384, vit_layers=12, patch 14).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from planners.learned.base import PlanningModel
from planners.learned.config import ModelConfig, ModelConfigError, check_fraction, check_positive
from planners.navdp.data import (
    GOAL_X_RANGE,
    GOAL_Y_RANGE,
    NavDPFeatureBuilder,
    NavDPFeatures,
    NavDPTargets,
    NavDPTrainingSet,
    build_targets,
    deltas_to_poses,
    open_nav_samples,
)
from planners.navdp.network import ConvDepthEncoder, NavDPNetwork, ViTDepthEncoder
from planners.navdp.schedule import NAVDP_DIFFUSION_STEPS, DDPMSchedule
from scenes.nav import NAV_PLAN_DT, NAV_PLAN_POSES, NAVDP_ACTION_SCALE

ACTION_WEIGHT, CRITIC_WEIGHT = 0.8, 0.2
LR_DECAY_STEPS, LR_END_FACTOR = 10_000, 0.5
ENCODERS = ("cnn", "vit")


@dataclass(frozen=True)
class NavDPConfig(ModelConfig):
    """NavDP's hyperparameters (defaults small for CPU; see the module docstring for NavDP's own).

    Attributes:
        d_model, num_layers, num_heads, dropout: the shared transformer decoder (width, layers, heads).
        image_size: depth images are resized to image_size x image_size [px].
        encoder: the depth encoder, "cnn" (cnn_width channels, cnn_stages stride-2 stages) or "vit" (patch
            vit_patch [px], width vit_width, vit_layers layers, vit_heads heads).
        num_poses: planned poses (NAV_PLAN_DT apart).
    """

    d_model: int = 128
    num_layers: int = 4
    num_heads: int = 4
    dropout: float = 0.1
    image_size: int = 64
    encoder: str = "cnn"
    cnn_width: int = 32
    cnn_stages: int = 4
    vit_patch: int = 16
    vit_width: int = 192
    vit_layers: int = 4
    vit_heads: int = 4
    num_poses: int = NAV_PLAN_POSES

    def validate(self) -> NavDPConfig:
        """Self, or ModelConfigError naming the first bad field."""
        super().validate()
        if self.encoder not in ENCODERS:
            raise ModelConfigError(f"encoder={self.encoder!r}: expected one of {', '.join(ENCODERS)}")
        check_positive(self, "d_model", "num_heads", "image_size", "cnn_width", "vit_patch", "vit_width",
                       "vit_heads", "num_poses")
        check_fraction(self, "dropout")
        if self.d_model % self.num_heads or self.d_model % 2:
            raise ModelConfigError(f"d_model={self.d_model}: must be even and divisible by num_heads="
                                   f"{self.num_heads}")
        if self.encoder == "cnn" and (self.cnn_stages < 1 or self.image_size % 2 ** self.cnn_stages):
            raise ModelConfigError(f"cnn_stages={self.cnn_stages}: need at least 1 and image_size="
                                   f"{self.image_size} divisible by 2^cnn_stages")
        if self.encoder == "vit" and self.image_size % self.vit_patch:
            raise ModelConfigError(f"vit_patch={self.vit_patch}: image_size={self.image_size} is not "
                                   "divisible by it")
        if self.encoder == "vit" and self.vit_width % self.vit_heads:
            raise ModelConfigError(f"vit_width={self.vit_width}: must be divisible by vit_heads="
                                   f"{self.vit_heads}")
        return self


class NavDPModel(PlanningModel):
    """NavDP's diffusion policy and critic (see the module docstring and planners.navdp.network), built from
    a `NavDPConfig`."""

    config_class = NavDPConfig
    config: NavDPConfig

    def __init__(self, config: NavDPConfig | None = None):
        super().__init__(config)
        c = self.config
        self.image_size, self.num_poses = c.image_size, c.num_poses
        if c.encoder == "cnn":
            depth_encoder: ConvDepthEncoder | ViTDepthEncoder = ConvDepthEncoder(c.d_model, c.image_size, c.cnn_width, c.cnn_stages)
        else:
            depth_encoder = ViTDepthEncoder(c.d_model, c.image_size, c.vit_patch, c.vit_width, c.vit_layers,
                                            c.vit_heads)
        self.network = NavDPNetwork(c.d_model, c.num_layers, c.num_heads, c.dropout, c.num_poses,
                                    depth_encoder)
        self.schedule = DDPMSchedule(NAVDP_DIFFUSION_STEPS)

    def feature_builder(self) -> NavDPFeatureBuilder:
        """NavDPFeatureBuilder at this model's image size."""
        return NavDPFeatureBuilder(self.image_size)

    def target_builder(self) -> Any:
        """NavTrainingSample -> NavDPTargets (privileged: the expert's future, its negative, critic labels)."""
        return build_targets

    def spec(self) -> dict[str, Any]:
        """Shapes, dtypes and units of the depth and goal features and the targets."""
        return {
            "features": {
                "depth": {"shape": [1, self.image_size, self.image_size], "dtype": "float32", "unit": "m",
                          "resize": "nearest neighbour at pixel centres", "invalid": 0},
                "goal": {"shape": [3], "dtype": "float32", "fields": ["x [m]", "y [m]", "yaw [rad]"],
                         "frame": "robot", "clip": {"x": list(GOAL_X_RANGE), "y": list(GOAL_Y_RANGE)}},
            },
            "targets": {
                "actions": {"shape": [self.num_poses, 3], "dtype": "float32", "dt": NAV_PLAN_DT,
                            "fields": ["dx", "dy", "dyaw"], "scale": NAVDP_ACTION_SCALE, "clip": [-1.0, 1.0]},
                "critic": {"shape": [], "dtype": "float32", "labels": ["expert", "rotated negative"]},
            },
        }

    def propose(self, features: NavDPFeatures, generator: torch.Generator | None = None,
                num_samples: int = 16) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample `num_samples` trajectories per observation with the point goal and score them with the critic.

        Returns robot-frame poses cumsum(x0 / 4) (headings not wrapped): the critic's best (B, P, 3), every
        candidate (B, N, P, 3), and the critic values (B, N). No turn/stop rules (see NavDPPlanner).
        """
        depth_tokens = self.network.encode_depth(features.depth)
        batch = depth_tokens.shape[0]
        depth_tokens = depth_tokens.repeat_interleave(num_samples, dim=0)
        goal_tokens = self.network.goal_tokens(features.goal, batch).repeat_interleave(num_samples, dim=0)
        actions = self.sample(goal_tokens, depth_tokens, generator)
        values = self.network.critic(actions, depth_tokens).reshape(batch, num_samples)
        candidates = deltas_to_poses(actions).reshape(batch, num_samples, self.num_poses, 3)
        return candidates[torch.arange(batch), values.argmax(dim=1)], candidates, values

    def sample(self, goal_tokens: torch.Tensor, depth_tokens: torch.Tensor,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, P, 3) clean scaled deltas by the full 10-step reverse diffusion; noise drawn on CPU."""
        batch = depth_tokens.shape[0]
        x = torch.randn((batch, self.num_poses, 3), generator=generator).to(depth_tokens.device)
        for t in self.schedule.timesteps():
            steps = torch.full((batch,), t, dtype=torch.long, device=x.device)
            eps = self.network.predict_noise(x, steps, goal_tokens, depth_tokens)
            x = self.schedule.step(eps, t, x, generator)
        return x

    def forward(self, features: NavDPFeatures, generator: torch.Generator | None = None,
                num_samples: int = 16) -> torch.Tensor:
        """(B, P, 3) robot-frame poses of the critic's best sample (no turn/stop rules; see NavDPPlanner)."""
        return self.propose(features, generator, num_samples)[0]

    def loss(self, features: NavDPFeatures, targets: NavDPTargets) -> tuple[torch.Tensor, dict[str, float]]:
        """NavDP's 0.8 action + 0.2 critic loss (module docstring)."""
        depth_tokens = self.network.encode_depth(features.depth)
        batch = depth_tokens.shape[0]
        x0 = targets.actions
        noise = torch.randn_like(x0)
        t = torch.randint(0, self.schedule.num_steps, (batch,), device=x0.device)
        noisy = self.schedule.add_noise(x0, noise, t)
        eps_no_goal = self.network.predict_noise(noisy, t, self.network.goal_tokens(None, batch), depth_tokens)
        eps_goal = self.network.predict_noise(noisy, t, self.network.goal_tokens(features.goal, batch),
                                              depth_tokens)
        mse_no_goal, mse_goal = F.mse_loss(eps_no_goal, noise), F.mse_loss(eps_goal, noise)
        action = 0.5 * mse_no_goal + 0.5 * mse_goal
        critic_expert = F.mse_loss(self.network.critic(x0, depth_tokens), targets.critic_target)
        critic_negative = F.mse_loss(self.network.critic(targets.augmented_actions, depth_tokens),
                                     targets.augmented_critic_target)
        critic = critic_expert + critic_negative
        loss = ACTION_WEIGHT * action + CRITIC_WEIGHT * critic
        logs = {"eps_mse_no_goal": mse_no_goal, "eps_mse_goal": mse_goal, "critic_mse_expert": critic_expert,
                "critic_mse_negative": critic_negative}
        return loss, {key: float(value.detach()) for key, value in logs.items()}

    def training_dataset(self, data: Any, split: str | None) -> NavDPTrainingSet:
        """NavDP pairs over nav dataset folder `data` (or an in-memory sequence of NavTrainingSamples)."""
        return NavDPTrainingSet(open_nav_samples(data, split), self.image_size)

    def optimizer(self, lr: float, total_steps: int) -> tuple[torch.optim.Optimizer, Any]:
        """Adam at `lr`; LinearLR 1.0 -> 0.5 over 10k steps (NavDP), independent of `total_steps`."""
        optimiser = torch.optim.Adam(self.parameters(), lr=lr)
        scheduler = torch.optim.lr_scheduler.LinearLR(optimiser, start_factor=1.0, end_factor=LR_END_FACTOR,
                                                      total_iters=LR_DECAY_STEPS)
        return optimiser, scheduler
