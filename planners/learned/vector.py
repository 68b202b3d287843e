"""Vectorised scene features and the transformer scene encoder shared by the vector planners.

DiffusionDrive, the vanilla diffusion policy and the regression baseline all read the same `DriveFeatures`
(built from the observation only) and encode them with the same `SceneEncoder`, so their comparison
isolates the trajectory decoder. NAVSIM's TransFuser encodes camera and LiDAR; diffplan's scenes are
vector maps, so the tokens here are vectors (VectorNet / PlanTF style), one per element:

    ego      1 token   status: command one-hot (4), velocity vx, vy [m/s], acceleration ax, ay [m/s^2]
    agents   A tokens  current box plus a short history (x, y, cos, sin, vx, vy, length, width per frame)
    map      M tokens  polylines: lane centerlines, road edges, stop lines, crosswalks (see
                       `planners.learned.features.MapPolylineBuilder`)
    route    1 token   the route centerline ahead, resampled every 2 m

Coordinates are in the ego rear-axle frame at now (x forward, y left). Inputs are scaled by fixed
constants (`POSITION_SCALE` ...), so the encoder needs no fitted normaliser. The planners' xy outputs use
DiffusionDrive's fixed normalisation of the plan to [-1, 1] (`normalise_xy`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from planners.learned.base import PlanningModel
from planners.learned.config import ModelConfig, ModelConfigError, check_fraction, check_positive
from planners.learned.features import MAP_ATTRIBUTES, MapPolylineBuilder, ObservationFeatureBuilder
from scenes import NUM_PLAN_POSES, PLAN_DT, DriveObservation

# DiffusionDrive's plan normalisation (norm_odo): x in [-1.2, 55.7] m, y in [-20, 26] m map to [-1, 1].
X_RANGE = (-1.2, 55.7)  # [m]
Y_RANGE = (-20.0, 26.0)  # [m]
POSITION_SCALE = 20.0  # [m] encoder inputs: positions / 20 m
VELOCITY_SCALE = 10.0  # [m/s]
ACCELERATION_SCALE = 3.0  # [m/s^2]
SIZE_SCALE = 5.0  # [m]
SPEED_LIMIT_SCALE = 20.0  # [m/s]
AGENT_STRIDE = 5  # history frames every 0.5 s (NAVSIM's 2 Hz): -1.5, -1.0, -0.5, 0 s
STATUS_FIELDS = ("cmd_left", "cmd_straight", "cmd_right", "cmd_unknown", "vx", "vy", "ax", "ay")


class DriveFeatures(NamedTuple):
    """Vector features of one observation (batched: a leading B). A = agents, H = agent frames,
    M = map polylines, Q = points per polyline, R = route points."""

    status: torch.Tensor  # (8,) command one-hot, vx, vy [m/s], ax, ay [m/s^2]
    agents: torch.Tensor  # (A, H, 8) x, y [m], cos, sin, vx, vy [m/s], length, width [m]; oldest first
    agents_mask: torch.Tensor  # (A, H) bool
    agents_category: torch.Tensor  # (A,) int64 AgentCategory, -1 for padding
    map_points: torch.Tensor  # (M, Q, 4) x, y [m], unit direction dx, dy
    map_attributes: torch.Tensor  # (M, 8) see MAP_ATTRIBUTES
    map_mask: torch.Tensor  # (M,) bool
    route: torch.Tensor  # (R, 2) [m]
    route_mask: torch.Tensor  # (R,) bool


class DriveFeatureBuilder:
    """DriveObservation -> DriveFeatures; reuses `ObservationFeatureBuilder` and `MapPolylineBuilder`."""

    def __init__(self, max_agents: int = 16, agent_frames: int = 4, max_polylines: int = 64,
                 polyline_points: int = 10, route_points: int = 32):
        self.agent_frames = agent_frames
        self.observation = ObservationFeatureBuilder(max_agents=max_agents, route_points=route_points)
        self.map = MapPolylineBuilder(max_polylines=max_polylines, points=polyline_points)

    def __call__(self, obs: DriveObservation) -> DriveFeatures:
        """The DriveFeatures of `obs`."""
        base = self.observation(obs)
        frames = slice(-1 - AGENT_STRIDE * (self.agent_frames - 1), None, AGENT_STRIDE)
        polylines = self.map(obs)
        ego = obs.ego
        status = np.concatenate([obs.command.one_hot(), ego.velocity, ego.acceleration]).astype(np.float32)
        return DriveFeatures(
            status=torch.from_numpy(status),
            agents=base.agents[:, frames].contiguous(),
            agents_mask=base.agents_mask[:, frames].contiguous(),
            agents_category=base.agents_category,
            map_points=polylines.map_points,
            map_attributes=polylines.map_attributes,
            map_mask=polylines.map_mask,
            route=base.route,
            route_mask=base.route_mask,
        )


def normalise_xy(xy: torch.Tensor) -> torch.Tensor:
    """(..., 2) [m] -> [-1, 1] over DiffusionDrive's ranges X_RANGE, Y_RANGE (not clamped)."""
    low, high = xy.new_tensor([X_RANGE[0], Y_RANGE[0]]), xy.new_tensor([X_RANGE[1], Y_RANGE[1]])
    return 2.0 * (xy - low) / (high - low) - 1.0


def denormalise_xy(z: torch.Tensor) -> torch.Tensor:
    """Inverse of `normalise_xy`: (..., 2) in [-1, 1] -> [m]."""
    low, high = z.new_tensor([X_RANGE[0], Y_RANGE[0]]), z.new_tensor([X_RANGE[1], Y_RANGE[1]])
    return (z + 1.0) * (high - low) / 2.0 + low


def xy_half_range(reference: torch.Tensor) -> torch.Tensor:
    """(2,) metres per normalised unit in x and y."""
    return reference.new_tensor([(X_RANGE[1] - X_RANGE[0]) / 2.0, (Y_RANGE[1] - Y_RANGE[0]) / 2.0])


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(B,) diffusion timesteps -> (B, dim) sin/cos features (DDPM's embedding)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.to(torch.float32)[:, None] * freqs[None]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


def sine_point_embedding(z: torch.Tensor, feats: int, temperature: float = 10000.0) -> torch.Tensor:
    """DAB-DETR's sine embedding of normalised points (..., T, 2) in [-1, 1] -> (..., T * 2 * feats)."""
    scale = 2 * math.pi
    dim_t = torch.arange(feats, device=z.device, dtype=torch.float32)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / feats)
    pos = (z.to(torch.float32) + 1.0) / 2.0 * scale  # [0, 2 pi]
    angles = pos[..., None] / dim_t  # (..., T, 2, feats)
    emb = torch.stack([angles[..., 0::2].sin(), angles[..., 1::2].cos()], dim=-1).flatten(-2)
    return emb.flatten(-3)


class TimestepEmbedding(nn.Module):
    """DiffusionDrive's time embedding: sinusoidal(d) -> Linear(d, 4d) -> Mish -> Linear(4d, d)."""

    def __init__(self, d_model: int):
        super().__init__()
        self.d_model = d_model
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.Mish(), nn.Linear(4 * d_model, d_model))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """(B,) timesteps -> (B, d)."""
        return self.mlp(sinusoidal_embedding(t, self.d_model))


class Attention(nn.Module):
    """Multi-head attention whose keys and values can be projected once and reused (`memory`), e.g. over the
    scene tokens across denoising steps. Same maths as `nn.MultiheadAttention` (scaled dot product)."""

    def __init__(self, d_model: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model {d_model} is not divisible by heads {heads}")
        self.heads, self.dropout = heads, dropout
        self.query = nn.Linear(d_model, d_model)
        self.key_value = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, d) -> (B, heads, L, d / heads)."""
        return x.unflatten(-1, (self.heads, -1)).transpose(1, 2)

    def memory(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of tokens (B, N, d), each (B, heads, N, d / heads)."""
        key, value = self.key_value(tokens).chunk(2, dim=-1)
        return self.split(key), self.split(value)

    def forward(self, x: torch.Tensor, memory: tuple[torch.Tensor, torch.Tensor], valid: torch.Tensor | None = None
                ) -> torch.Tensor:
        """Queries x (B, L, d) attend to `memory`; valid (B, N) bool masks keys out where False."""
        mask = None if valid is None else valid[:, None, None, :]
        out = nn.functional.scaled_dot_product_attention(self.split(self.query(x)), *memory, attn_mask=mask,
                                                         dropout_p=self.dropout if self.training else 0.0)
        return self.out(out.transpose(1, 2).flatten(-2))


def mlp(in_dim: int, out_dim: int) -> nn.Sequential:
    """Linear(in, out) ReLU Linear(out, out)."""
    return nn.Sequential(nn.Linear(in_dim, out_dim), nn.ReLU(), nn.Linear(out_dim, out_dim))


class SceneEncoder(nn.Module):
    """DriveFeatures -> scene tokens (B, N, d) and their validity (B, N); token 0 is the ego.

    Each element is flattened and embedded by a two-layer MLP, a learned type embedding is added, and a
    pre-norm transformer encoder of `depth` layers (width `d_model`, `heads` heads, FFN `ffn_dim`) lets
    the tokens attend to each other. N = 1 + A + M + 1.
    """

    TOKEN_TYPES = ("ego", "agent", "map", "route")

    def __init__(self, d_model: int = 128, depth: int = 2, heads: int = 4, ffn_dim: int = 256,
                 dropout: float = 0.0, agent_frames: int = 4, polyline_points: int = 10, route_points: int = 32):
        super().__init__()
        self.ego = mlp(len(STATUS_FIELDS), d_model)
        self.agent = mlp(agent_frames * 9, d_model)
        self.agent_category = nn.Embedding(5, d_model)  # AgentCategory + 1; 0 is padding
        self.map = mlp(polyline_points * 4 + len(MAP_ATTRIBUTES), d_model)
        self.route = mlp(route_points * 3, d_model)
        self.token_type = nn.Embedding(len(self.TOKEN_TYPES), d_model)
        layer = nn.TransformerEncoderLayer(d_model, heads, ffn_dim, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, f: DriveFeatures) -> tuple[torch.Tensor, torch.Tensor]:
        """Scene tokens (B, N, d), N = 1 + A + M + 1, and their validity (B, N)."""
        status = f.status / f.status.new_tensor([1, 1, 1, 1] + [VELOCITY_SCALE] * 2 + [ACCELERATION_SCALE] * 2)
        scale = f.agents.new_tensor([POSITION_SCALE] * 2 + [1, 1] + [VELOCITY_SCALE] * 2 + [SIZE_SCALE] * 2)
        agent_mask = f.agents_mask.to(f.agents.dtype)[..., None]
        agents = torch.cat([f.agents / scale * agent_mask, agent_mask], dim=-1).flatten(-2)
        map_points = f.map_points / f.map_points.new_tensor([POSITION_SCALE, POSITION_SCALE, 1, 1])
        attributes = f.map_attributes / f.map_attributes.new_tensor([1.0] * 7 + [SPEED_LIMIT_SCALE])
        route_mask = f.route_mask.to(f.route.dtype)[..., None]
        route = torch.cat([f.route / POSITION_SCALE * route_mask, route_mask], dim=-1).flatten(-2)
        types = self.token_type.weight
        tokens = torch.cat([
            (self.ego(status) + types[0])[:, None],
            self.agent(agents) + self.agent_category(f.agents_category + 1) + types[1],
            self.map(torch.cat([map_points.flatten(-2), attributes], dim=-1)) + types[2],
            (self.route(route) + types[3])[:, None],
        ], dim=1)
        valid = torch.cat([
            torch.ones_like(f.route_mask[:, :1]),
            f.agents_mask[:, :, -1],
            f.map_mask,
            f.route_mask.any(dim=1, keepdim=True),
        ], dim=1)
        return self.norm(self.encoder(tokens, src_key_padding_mask=~valid)), valid


def warmup_cosine(optimiser: torch.optim.Optimizer, lr: float, total_steps: int, warmup_fraction: float = 0.03,
                  final_lr: float = 1e-6) -> torch.optim.lr_scheduler.LambdaLR:
    """DiffusionDrive's schedule per step: linear warm-up over the first 3 % (its 3 of 100 epochs), then
    cosine from `lr` down to `final_lr` at `total_steps`."""
    warmup = max(1, round(warmup_fraction * total_steps))
    floor = final_lr / lr

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimiser, factor)


@dataclass(frozen=True)
class VectorModelConfig(ModelConfig):
    """The vector planners' shared hyperparameters. SceneEncoder: width `d_model`, `depth` layers, `heads`
    attention heads, FFN width `ffn_dim`, `dropout`; features: at most `max_agents` agents and
    `max_polylines` map polylines; `num_poses` planned poses (0.5 s apart)."""

    d_model: int = 128
    depth: int = 2
    heads: int = 4
    ffn_dim: int = 256
    dropout: float = 0.0
    max_agents: int = 16
    max_polylines: int = 64
    num_poses: int = NUM_PLAN_POSES

    def validate(self) -> VectorModelConfig:
        """Self, or ModelConfigError naming the first bad field."""
        super().validate()
        check_positive(self, "d_model", "heads", "ffn_dim", "max_agents", "max_polylines", "num_poses")
        check_fraction(self, "dropout")
        if self.depth < 0:
            raise ModelConfigError(f"depth={self.depth}: must be 0 or more")
        if self.d_model % self.heads:
            raise ModelConfigError(f"d_model={self.d_model}: must be divisible by heads={self.heads}")
        return self


class VectorPlanningModel(PlanningModel):
    """A `PlanningModel` on `DriveFeatures` with a `SceneEncoder`; subclasses add the trajectory decoder and
    their config class (a `VectorModelConfig`).

    Trained with DiffusionDrive's optimiser (AdamW, lr 6e-4 by default, weight decay 1e-4, warm-up then
    cosine). Targets are the expert plan (8, 3).
    """

    config_class = VectorModelConfig
    config: VectorModelConfig
    default_lr = 6e-4
    weight_decay = 1e-4

    def __init__(self, config: VectorModelConfig | None = None):
        super().__init__(config)
        c = self.config
        self.d_model, self.num_poses = c.d_model, c.num_poses
        self.max_agents, self.max_polylines = c.max_agents, c.max_polylines
        self.encoder = SceneEncoder(c.d_model, c.depth, c.heads, c.ffn_dim, c.dropout)

    def feature_builder(self) -> DriveFeatureBuilder:
        """DriveFeatureBuilder with this model's agent and polyline limits."""
        return DriveFeatureBuilder(max_agents=self.max_agents, max_polylines=self.max_polylines)

    def spec(self) -> dict[str, Any]:
        """Shapes, dtypes and units of the DriveFeatures and the plan target."""
        a, m = self.max_agents, self.max_polylines
        return {
            "features": {
                "status": {"shape": [8], "dtype": "float32", "fields": list(STATUS_FIELDS), "frame": "ego body"},
                "agents": {"shape": [a, 4, 8], "dtype": "float32", "dt": 0.5,
                           "fields": ["x [m]", "y [m]", "cos", "sin", "vx [m/s]", "vy [m/s]", "length [m]",
                                      "width [m]"], "frame": "ego"},
                "agents_mask": {"shape": [a, 4], "dtype": "bool"},
                "agents_category": {"shape": [a], "dtype": "int64"},
                "map_points": {"shape": [m, 10, 4], "dtype": "float32", "fields": ["x [m]", "y [m]", "dx", "dy"],
                               "segment_length_m": 20.0, "radius_m": 60.0, "frame": "ego"},
                "map_attributes": {"shape": [m, len(MAP_ATTRIBUTES)], "dtype": "float32",
                                   "fields": list(MAP_ATTRIBUTES)},
                "map_mask": {"shape": [m], "dtype": "bool"},
                "route": {"shape": [32, 2], "dtype": "float32", "spacing_m": 2.0, "frame": "ego"},
                "route_mask": {"shape": [32], "dtype": "bool"},
            },
            "targets": {"plan": {"shape": [self.num_poses, 3], "dtype": "float32", "dt": PLAN_DT,
                                 "fields": ["x [m]", "y [m]", "heading [rad]"], "frame": "ego"}},
            "normalisation": {"x_m": list(X_RANGE), "y_m": list(Y_RANGE)},
        }

    def optimizer(self, lr: float, total_steps: int) -> tuple[torch.optim.Optimizer, Any]:
        """AdamW (weight decay 1e-4), linear warm-up then cosine to 1e-6 (DiffusionDrive)."""
        optimiser = torch.optim.AdamW(self.parameters(), lr=lr, weight_decay=self.weight_decay)
        return optimiser, warmup_cosine(optimiser, lr, total_steps)

    def fit_normalisers(self, batches: Iterable[tuple[Any, Any]]) -> None:
        """Nothing to fit: inputs and plans use fixed scales."""


def plan_l1(plan: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean L1 over x, y [m] and heading [rad] (NAVSIM's trajectory loss), per sample: (B, T, 3) -> (B,)."""
    return (plan - target).abs().mean(dim=(-1, -2))
