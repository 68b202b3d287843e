"""NavDP's networks: a depth encoder, goal tokens, and one transformer decoder shared by the denoiser and critic.

Shapes: B batch, S image side [px], M depth memory tokens, G = 1 goal token, P = NAV_PLAN_POSES action tokens,
d model width. The conditioning memory is [time embedding, goal token, M depth tokens] (1 + G + M tokens) with
a learned positional embedding; the 24 action tokens (Linear(3 -> d) of the scaled deltas, plus a learned
positional embedding) attend to it through a pre-norm GELU `nn.TransformerDecoder`.
- Denoiser: causal mask on the action tokens; LayerNorm -> Linear(d -> 3) predicts the noise.
- Critic: the same decoder without the causal mask, with the time and goal tokens masked out of the memory
  (it sees only depth and the trajectory); LayerNorm, mean over the 24 outputs, Linear(d -> 1).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from scenes.nav import DEPTH_MAX

NUM_GOAL_TOKENS = 1  # a point goal (NavDP has 3 slots: point, image, pixel goals; images are not used here)


def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """(B,) timesteps -> (B, dim) [sin | cos] embedding with frequencies 10000^(-k / (dim/2 - 1))."""
    half = dim // 2
    scale = math.log(10000) / max(half - 1, 1)
    freqs = torch.exp(-scale * torch.arange(half, device=t.device, dtype=torch.float32))
    angles = t.float()[:, None] * freqs[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class ConvDepthEncoder(nn.Module):
    """(B, 1, S, S) depth [m] -> (B, (S / 2^stages)^2, d) tokens: stride-2 3x3 convs, GroupNorm, GELU."""

    def __init__(self, d_model: int, image_size: int, width: int = 32, stages: int = 4):
        super().__init__()
        if image_size % (2 ** stages):
            raise ValueError(f"image_size {image_size} is not divisible by 2^{stages}")
        layers: list[nn.Module] = []
        channels = 1
        for stage in range(stages):
            out = d_model if stage == stages - 1 else width * 2 ** stage
            layers += [nn.Conv2d(channels, out, 3, stride=2, padding=1), nn.GroupNorm(min(8, out), out), nn.GELU()]
            channels = out
        self.net = nn.Sequential(*layers)
        self.num_tokens = (image_size // 2 ** stages) ** 2

    def forward(self, depth: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S) depth [m] -> (B, (S / 2^stages)^2, d) tokens."""
        return self.net(depth / DEPTH_MAX).flatten(2).transpose(1, 2)


class ViTDepthEncoder(nn.Module):
    """(B, 1, S, S) depth [m] -> (B, (S / patch)^2, d) tokens: a pre-norm ViT (NavDP: ViT-S, 384-d, patch 14,
    12 layers at 224 px) whose patch tokens are projected to the decoder width."""

    def __init__(self, d_model: int, image_size: int, patch: int = 16, width: int = 192, layers: int = 4,
                 heads: int = 4):
        super().__init__()
        if image_size % patch:
            raise ValueError(f"image_size {image_size} is not divisible by the patch size {patch}")
        self.num_tokens = (image_size // patch) ** 2
        self.patchify = nn.Conv2d(1, width, patch, stride=patch)
        self.position = nn.Parameter(torch.zeros(1, self.num_tokens, width))
        nn.init.trunc_normal_(self.position, std=0.02)
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.project = nn.Linear(width, d_model)

    def forward(self, depth: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S) depth [m] -> (B, (S / patch)^2, d) tokens."""
        tokens = self.patchify(depth / DEPTH_MAX).flatten(2).transpose(1, 2) + self.position
        return self.project(self.norm(self.blocks(tokens)))


class NavDPNetwork(nn.Module):
    """The denoiser and critic of NavDP around one shared decoder (see the module docstring)."""

    def __init__(self, d_model: int, num_layers: int, num_heads: int, dropout: float, num_poses: int,
                 encoder: ConvDepthEncoder | ViTDepthEncoder):
        super().__init__()
        self.d_model, self.num_poses = d_model, num_poses
        self.encoder = encoder
        self.goal_embed = nn.Linear(3, d_model)
        self.action_embed = nn.Linear(3, d_model)
        self.memory_position = nn.Parameter(torch.zeros(1, 1 + NUM_GOAL_TOKENS + encoder.num_tokens, d_model))
        self.action_position = nn.Parameter(torch.zeros(1, num_poses, d_model))
        for parameter in (self.memory_position, self.action_position):
            nn.init.trunc_normal_(parameter, std=0.02)
        layer = nn.TransformerDecoderLayer(d_model, num_heads, 4 * d_model, dropout=dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, num_layers)
        self.norm = nn.LayerNorm(d_model)
        self.noise_head = nn.Linear(d_model, 3)
        self.critic_head = nn.Linear(d_model, 1)
        causal = torch.triu(torch.ones(num_poses, num_poses, dtype=torch.bool), diagonal=1)
        self.register_buffer("causal_mask", causal, persistent=False)
        critic_memory = torch.zeros(num_poses, self.memory_position.shape[1], dtype=torch.bool)
        critic_memory[:, : 1 + NUM_GOAL_TOKENS] = True  # True = may not attend: time and goal tokens
        self.register_buffer("critic_memory_mask", critic_memory, persistent=False)

    def encode_depth(self, depth: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S) depth [m] -> (B, M, d) depth memory tokens."""
        return self.encoder(depth)

    def goal_tokens(self, goal: torch.Tensor | None, batch: int) -> torch.Tensor:
        """(B, 3) clipped point goals -> (B, 1, d); None gives NavDP's no-goal token (all zeros)."""
        if goal is None:
            return torch.zeros(batch, NUM_GOAL_TOKENS, self.d_model, device=self.memory_position.device)
        return self.goal_embed(goal)[:, None, :]

    def predict_noise(self, noisy: torch.Tensor, t: torch.Tensor, goal_tokens: torch.Tensor,
                      depth_tokens: torch.Tensor) -> torch.Tensor:
        """(B, P, 3) noisy scaled deltas, (B,) timesteps, (B, 1, d), (B, M, d) -> (B, P, 3) predicted noise."""
        time = sinusoidal_embedding(t, self.d_model)[:, None, :]
        memory = torch.cat([time, goal_tokens, depth_tokens], dim=1) + self.memory_position
        tokens = self.action_embed(noisy) + self.action_position
        out = self.decoder(tokens, memory, tgt_mask=self.causal_mask, tgt_is_causal=True)
        return self.noise_head(self.norm(out))

    def critic(self, actions: torch.Tensor, depth_tokens: torch.Tensor) -> torch.Tensor:
        """(B, P, 3) scaled deltas and (B, M, d) depth tokens -> (B,) values (higher is better)."""
        batch = actions.shape[0]
        blank = torch.zeros(batch, 1 + NUM_GOAL_TOKENS, self.d_model, device=actions.device)
        memory = torch.cat([blank, depth_tokens], dim=1) + self.memory_position
        tokens = self.action_embed(actions) + self.action_position
        out = self.decoder(tokens, memory, memory_mask=self.critic_memory_mask)
        return self.critic_head(self.norm(out).mean(dim=1))[:, 0]
