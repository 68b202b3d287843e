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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
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
    truncated_timesteps,
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
from planners.learned.warm_start import WarmStart, shifted_plan
from planners.registry import register_planner
from scenes import DriveObservation


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
    def forward(self, features: DriveFeatures, generator: torch.Generator | None = None,
                start: torch.Tensor | None = None, start_t: int = 0, steps: int = 1) -> torch.Tensor:
        """`sampling_steps` of DDIM from N(0, I) (drawn from `generator`) -> (B, T, 3) plans.

        A warm start (RTI-DP) noises `start` (B, T, 2) [m] to `start_t` instead, and takes `steps` DDIM steps
        evenly spaced from there."""
        tokens, valid = self.encoder(features)
        b, device = tokens.shape[0], tokens.device
        x = torch.randn(b, self.num_poses, 2, generator=generator).to(device, tokens.dtype)
        if start is None:
            timesteps = ddim_timesteps(self.sampling_steps)
        else:
            timesteps = truncated_timesteps(start_t, steps)
            clean = normalise_xy(start.to(device, tokens.dtype)).clamp(-1.0, 1.0)
            x = add_noise(clean, x, self.alphas_cumprod, torch.full((b,), start_t, device=device))
        steps_list = timesteps
        memories = self.memories(tokens)
        for i, t in enumerate(steps_list):
            eps, heading = self.denoise(x, torch.full((b,), t, device=device), memories, valid)
            x0 = predicted_x0(x, eps, self.alphas_cumprod, t)
            x = ddim_step(x, x0, self.alphas_cumprod, t, steps_list[i + 1] if i + 1 < len(steps_list) else -1)
        return torch.cat([denormalise_xy(x), heading[..., None]], dim=-1)

    def propose(self, features: DriveFeatures, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One sample per call: best (B, T, 3), candidates (B, 1, T, 3), scores (B, 1) of ones."""
        plan = self(features, generator)
        return plan, plan[:, None], plan.new_ones(plan.shape[0], 1)


@register_planner("diffusion-policy")
class DiffusionPolicyPlanner(LearnedDrivePlanner):
    """Vanilla 20-step DDIM diffusion policy on DiffusionDrive's encoder (a baseline).

    Set `warm_start` (a WarmStart with max_start_t 1000) to start each call after the first from the previous
    plan, shifted and noised to `start_t`, in `steps` DDIM steps (RTI-DP); `reset()` forgets the plan."""

    model_class = DiffusionPolicyModel
    warm_start: WarmStart | None = None
    max_warm_start_t = NUM_TRAIN_TIMESTEPS  # trained on every noise level
    last_network_steps: int | None = None  # denoising steps of the last call (closed-loop reports read it)

    def reset(self) -> None:
        """Restart the noise generator from `seed` and forget the previous plan."""
        super().reset()
        self._previous: tuple[np.ndarray, np.ndarray] | None = None  # (plan xy (T, 2), origin (3,))

    def propose(self, features: Any, observations: Sequence[DriveObservation]
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Cold, or warm-started from the previous plan (see WarmStart)."""
        model = cast(DiffusionPolicyModel, self.model)
        warm, previous = self.warm_start, getattr(self, "_previous", None)
        self.last_network_steps = model.sampling_steps
        if warm is None or len(observations) != 1 or previous is None:
            plan = model(features, self._generator)
        else:
            warm.validate()
            origin = np.asarray(observations[0].ego_pose_global, np.float64)
            start = torch.from_numpy(shifted_plan(previous[0], previous[1], origin, warm.replan_interval_s))
            plan = model(features, self._generator, start=start[None].float(), start_t=warm.start_t,
                         steps=warm.steps)
            self.last_network_steps = warm.steps
        if warm is not None and len(observations) == 1:
            self._previous = (plan[0, :, :2].to(torch.float64).cpu().numpy(),
                              np.asarray(observations[0].ego_pose_global, np.float64))
        return plan, plan[:, None], plan.new_ones(plan.shape[0], 1)
