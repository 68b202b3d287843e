"""The vanilla diffusion policy baseline on DiffusionDrive's encoder and data ("diffusion-policy").

TransfuserDP in DiffusionDrive's Table 1: DDPM training over all 1000 steps of the same scaled-linear
schedule, epsilon prediction, and 20-step DDIM sampling from pure Gaussian noise in the same normalised plan
space; no anchors, one plan per call. The denoiser follows Diffusion Policy's transformer variant (Chi et al.,
RSS 2023: `TransformerForDiffusion`, 8 layers by default): one token per waypoint (embedding of its noisy xy
plus a learned position), `decoder_layers` pre-norm layers of self-attention among waypoints,
cross-attention to the scene tokens and an FFN, each modulated by the timestep. The heading (not diffused)
is read from a head at the last step. DiffusionDrive's TransfuserDP likewise carries a much heavier denoiser
(101M parameters in all) than DiffusionDrive's 2-layer decoder (60M); with `decoder_layers=2` the two
decoders have equal depth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

from planners.learned.base import LearnedDrivePlanner
from planners.learned.config import ModelConfigError
from planners.learned.diffusion import (
    NUM_TRAIN_TIMESTEPS,
    add_noise,
    ddim_step,
    ddim_timesteps,
    predicted_x0,
    scaled_linear_alphas_cumprod,
)
from planners.learned.vector import (
    Attention,
    DriveFeatures,
    TimestepEmbedding,
    VectorModelConfig,
    VectorPlanningModel,
    denormalise_xy,
    normalise_xy,
)
from planners.registry import register_planner


@dataclass(frozen=True)
class DiffusionPolicyConfig(VectorModelConfig):
    """The diffusion policy's hyperparameters beyond the encoder's (`VectorModelConfig`): `decoder_layers`
    denoiser layers (8, Diffusion Policy's depth), `sampling_steps` DDIM steps (20; 1 to 1000) and the
    heading loss weight `heading_weight` (1)."""

    decoder_layers: int = 8
    sampling_steps: int = 20
    heading_weight: float = 1.0

    def validate(self) -> DiffusionPolicyConfig:
        """Self, or ModelConfigError naming the first bad field."""
        super().validate()
        if not 1 <= self.sampling_steps <= NUM_TRAIN_TIMESTEPS:
            raise ModelConfigError(f"sampling_steps={self.sampling_steps}: must be 1 to "
                                   f"{NUM_TRAIN_TIMESTEPS}")
        if self.decoder_layers < 0:
            raise ModelConfigError(f"decoder_layers={self.decoder_layers}: must be 0 or more")
        return self


class DenoiserLayer(nn.Module):
    """Pre-norm: self-attention over waypoints, cross-attention to the scene, FFN; then time scale/shift."""

    def __init__(self, d_model: int, heads: int, ffn_dim: int, dropout: float):
        super().__init__()
        self.self_attention = Attention(d_model, heads, dropout)
        self.cross_attention = Attention(d_model, heads, dropout)
        self.ffn = nn.Sequential(nn.Linear(d_model, ffn_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn_dim, d_model))
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(3))
        self.modulation = nn.Sequential(nn.Mish(), nn.Linear(d_model, 2 * d_model))

    def forward(self, x: torch.Tensor, memory: tuple[torch.Tensor, torch.Tensor], valid: torch.Tensor,
                time: torch.Tensor) -> torch.Tensor:
        """x (B, T, d) waypoint tokens; memory: the scene's keys/values (`cross_attention.memory`)."""
        h = self.norms[0](x)
        x = x + self.self_attention(h, self.self_attention.memory(h))
        x = x + self.cross_attention(self.norms[1](x), memory, valid)
        x = x + self.ffn(self.norms[2](x))
        scale, shift = self.modulation(time)[:, None].chunk(2, dim=-1)
        return x * (1 + scale) + shift


class DiffusionPolicyModel(VectorPlanningModel):
    """Vanilla DDIM diffusion policy (see the module docstring), built from a `DiffusionPolicyConfig`."""

    config_class = DiffusionPolicyConfig
    config: DiffusionPolicyConfig

    def __init__(self, config: DiffusionPolicyConfig | None = None):
        super().__init__(config)
        c = self.config
        d_model = c.d_model
        self.sampling_steps, self.heading_weight = c.sampling_steps, c.heading_weight
        self.alphas_cumprod = scaled_linear_alphas_cumprod()  # float64, CPU; fixed formula, not a buffer
        self.waypoint = nn.Linear(2, d_model)
        self.waypoint_position = nn.Parameter(torch.zeros(c.num_poses, d_model))
        nn.init.normal_(self.waypoint_position, std=0.02)
        self.time_embedding = TimestepEmbedding(d_model)
        self.layers = nn.ModuleList(DenoiserLayer(d_model, c.heads, c.ffn_dim, c.dropout)
                                    for _ in range(c.decoder_layers))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, 3)  # epsilon x, y and heading (tanh * pi)
    def denoise(self, x: torch.Tensor, t: torch.Tensor, memories: list[Any], valid: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Noisy normalised xy (B, T, 2) at timesteps t (B,) -> predicted noise (B, T, 2), heading (B, T).
        `memories`: each layer's scene keys/values, computed once per call."""
        time = self.time_embedding(t)
        h = self.waypoint(x) + self.waypoint_position
        for layer, memory in zip(self.layers, memories, strict=True):
            h = layer(h, memory, valid, time)
        out = self.head(self.norm(h))
        return out[..., :2], torch.tanh(out[..., 2]) * torch.pi

    def memories(self, tokens: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each layer's scene keys and values for tokens (B, N, d)."""
        return [cast(DenoiserLayer, layer).cross_attention.memory(tokens) for layer in self.layers]

    def loss(self, features: DriveFeatures, plan: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Epsilon MSE at a random t ~ U{0 .. 999} plus `heading_weight` * heading L1 [rad]."""
        tokens, valid = self.encoder(features)
        b = plan.shape[0]
        t = torch.randint(0, NUM_TRAIN_TIMESTEPS, (b,), device=plan.device)
        noise = torch.randn_like(plan[..., :2])
        x_t = add_noise(normalise_xy(plan[..., :2]), noise, self.alphas_cumprod.to(plan.device), t)
        eps, heading = self.denoise(x_t, t, self.memories(tokens), valid)
        mse = (eps.float() - noise).pow(2).mean()
        heading_l1 = (heading.float() - plan[..., 2]).abs().mean()
        return mse + self.heading_weight * heading_l1, {"eps_mse": float(mse.detach()),
                                                        "heading_l1": float(heading_l1.detach())}

    @torch.no_grad()
    def forward(self, features: DriveFeatures, generator: torch.Generator | None = None) -> torch.Tensor:
        """`sampling_steps` of DDIM from N(0, I) (drawn from `generator`) -> (B, T, 3) plans."""
        tokens, valid = self.encoder(features)
        b, device = tokens.shape[0], tokens.device
        x = torch.randn(b, self.num_poses, 2, generator=generator).to(device, tokens.dtype)
        steps = ddim_timesteps(self.sampling_steps)
        memories = self.memories(tokens)
        for i, t in enumerate(steps):
            eps, heading = self.denoise(x, torch.full((b,), t, device=device), memories, valid)
            x0 = predicted_x0(x, eps, self.alphas_cumprod, t)
            x = ddim_step(x, x0, self.alphas_cumprod, t, steps[i + 1] if i + 1 < len(steps) else -1)
        return torch.cat([denormalise_xy(x), heading[..., None]], dim=-1)

    def propose(self, features: DriveFeatures, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One sample per call: best (B, T, 3), candidates (B, 1, T, 3), scores (B, 1) of ones."""
        plan = self(features, generator)
        return plan, plan[:, None], plan.new_ones(plan.shape[0], 1)


@register_planner("diffusion-policy")
class DiffusionPolicyPlanner(LearnedDrivePlanner):
    """Vanilla 20-step DDIM diffusion policy on DiffusionDrive's encoder (a baseline)."""

    model_class = DiffusionPolicyModel
