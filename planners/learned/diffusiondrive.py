"""DiffusionDrive (Liao et al., CVPR 2025): truncated diffusion from 20 k-means anchors, on vector tokens.

Pipeline (constants from hustvl/DiffusionDrive, see shared/reference/diffusiondrive_navsim.md section 1):

    features --SceneEncoder--> tokens (B, N, d), token 0 = ego
    anchors (K, 8, 2) [m] --normalise_xy--> [-1, 1] --add_noise(t)--> clamp [-1, 1] --> noisy points
    for each denoising step (weights shared across steps):
        query q_k = MLP(sine embedding of mode k's noisy points)
        cascade layer 1 and 2 (separate weights); layer 2 starts from layer 1's refined xy, detached
        each layer: cross-attention to the scene tokens, attention to the ego token, FFN, timestep
        modulation, then heads: score (B, K) and plan (B, K, 8, 3) with xy = points + offset and an
        absolute heading tanh * pi
        DDIM step to the next timestep using layer 2's xy as the clean-sample prediction
    output: every mode of the final pass (raw regression, as DiffusionDrive) and its score

Training: one t ~ U{0 .. 49} per sample, shared by its K anchors. The positive mode is the one whose
CLEAN anchor is nearest the expert (mean L2 over waypoints); per layer the loss is
10 * sigmoid focal (alpha 0.25, gamma 2, one-hot over K, normalised by the number of positives as in
RetinaNet) + 8 * L1 of the positive mode's (x, y, heading), summed over both layers and weighted 12.
Inference noises the anchors at t = 8 and takes `inference_steps` DDIM steps at timesteps spaced evenly
from 8 down to 0 (2 steps: t = 8 and 4; 1 to 4 allowed), the last pass's regression being the output, with
noise from a seeded generator. (DiffusionDrive's code evaluates at k = 10 and 0 after noising at 8; see
the reference's section 1.5.)

Deviations, for vector inputs and for small models trained on a CPU in minutes:
- DiffusionDrive samples a BEV feature map bilinearly at each mode's 8 waypoints (deformable attention).
  diffplan's scenes are vector tokens, so each layer cross-attends from the mode's query to the scene
  tokens, with an embedding of the mode's current waypoints (noisy, then layer 1's refinement) added to
  the query: the attention is conditioned on where the trajectory is, as the BEV sampling is. Separate
  agent attention is folded into it (agents are scene tokens here).
- The FFN has a residual connection (DiffusionDrive's has none), so a narrow FFN whose ReLUs die does not
  erase the mode's features.
- The regression head also reads each mode's displacement from its own clean anchor (normalised units
  / 0.1, about the noise std at t = 49), and the waypoint embedding adds the raw normalised coordinates
  to the sine features. Cancelling the noise is then a near-linear map; from the sine embedding alone a
  small model had not started to denoise after 600 full-batch steps on 32 scenes. Offsets are regressed in normalised units
  (x [m] = offset * 28.45, y [m] = offset * 23), headings absolute (tanh * pi).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from planners.learned.base import LearnedDrivePlanner
from planners.learned.config import ModelConfigError, check_positive
from planners.learned.diffusion import add_noise, ddim_step, scaled_linear_alphas_cumprod, truncated_timesteps
from planners.learned.vector import (
    Attention,
    DriveFeatures,
    TimestepEmbedding,
    VectorModelConfig,
    VectorPlanningModel,
    denormalise_xy,
    normalise_xy,
    sine_point_embedding,
    xy_half_range,
)
from planners.learned.warm_start import WarmStart, shifted_plan
from planners.registry import register_planner
from scenes import NUM_PLAN_POSES, PLAN_DT, DriveObservation

NUM_MODES = 20
TRAIN_TRUNCATION = 50  # t ~ U{0 .. 49}
INFERENCE_START = 8  # noise the anchors at t = 8
INFERENCE_STEPS = 2
CLS_PRIOR_BIAS = -4.595  # log(0.01 / 0.99)
POINT_FEATS = 16  # sine features per coordinate and waypoint
DEVIATION_SCALE = 0.1  # normalised units: about the noise std at t = 49 (0.094)


def default_anchors(k: int = NUM_MODES, num_poses: int = NUM_PLAN_POSES, dt: float = PLAN_DT) -> torch.Tensor:
    """(k, T, 2) [m] a fan of constant-speed, constant-yaw-rate arcs: placeholder anchors until
    `fit_normalisers` clusters the training futures (or reads an anchors.npy)."""
    rates = np.linspace(-0.3, 0.3, 5)  # [rad/s]
    speeds = np.linspace(2.0, 14.0, max(1, -(-k // len(rates))))  # [m/s]
    t = dt * np.arange(1, num_poses + 1)
    arcs = []
    for v in speeds:
        for w in rates:
            if abs(w) < 1e-9:
                arcs.append(np.stack([v * t, np.zeros_like(t)], -1))
            else:
                arcs.append(np.stack([v / w * np.sin(w * t), v / w * (1 - np.cos(w * t))], -1))
    return torch.tensor(np.array(arcs[:k]), dtype=torch.float32)


def assign_modes(anchors: torch.Tensor, target_xy: torch.Tensor) -> torch.Tensor:
    """(B,) index of the clean anchor (K, T, 2) nearest each target (B, T, 2): argmin of the mean L2 [m]."""
    distance = torch.linalg.vector_norm(target_xy[:, None] - anchors[None], dim=-1).mean(-1)
    return distance.argmin(dim=1)


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0
                       ) -> torch.Tensor:
    """Sigmoid focal loss (Lin et al.) of logits (B, K) against one-hot targets, summed over the K modes and
    averaged over the batch: normalised by the number of positives (one per sample), as RetinaNet does."""
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    return (alpha_t * ce * (1 - p_t) ** gamma).sum(-1).mean()


def mode_diversity(candidates: np.ndarray) -> float:
    """Mean pairwise distance [m] between the final points of K candidates (K, T, >=2)."""
    final = np.asarray(candidates)[:, -1, :2]
    k = len(final)
    if k < 2:
        return 0.0
    distance = np.linalg.norm(final[:, None] - final[None], axis=-1)
    return float(distance.sum() / (k * (k - 1)))


class TrajectoryEmbedding(nn.Module):
    """Points (..., T, 2) [m] -> (..., d): DAB-DETR sine embedding of the normalised points, plus the
    normalised points themselves, through Linear-ReLU-LN-Linear."""

    def __init__(self, d_model: int, num_poses: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(num_poses * 2 * (POINT_FEATS + 1), d_model), nn.ReLU(), nn.LayerNorm(d_model),
                                 nn.Linear(d_model, d_model))

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """Points (..., T, 2) [m] -> (..., d)."""
        z = normalise_xy(points)
        return self.mlp(torch.cat([sine_point_embedding(z, POINT_FEATS), z.flatten(-2)], dim=-1))


class CascadeLayer(nn.Module):
    """One DiffusionDrive decoder layer on vector tokens (see the module docstring).

    Attention to the ego token is attention over a single key: its softmax weight is 1, so the output is
    out_proj(v_proj(ego)) whatever the query; `context` computes it once per call, with the keys and values
    of the scene tokens, and every denoising step reuses them.
    """

    def __init__(self, d_model: int, heads: int, ffn_dim: int, dropout: float, num_poses: int):
        super().__init__()
        self.num_poses = num_poses
        self.position = TrajectoryEmbedding(d_model, num_poses)
        self.cross_attention = Attention(d_model, heads, dropout)
        self.dropout = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.ego_value = nn.Linear(d_model, d_model)
        self.ego_out = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(nn.Linear(d_model, ffn_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn_dim, d_model))
        self.norm3 = nn.LayerNorm(d_model)
        self.modulation = nn.Sequential(nn.Mish(), nn.Linear(d_model, 2 * d_model))
        score = nn.Linear(d_model, 1)
        self.cls_head = nn.Sequential(
            nn.Linear(d_model, d_model), nn.ReLU(), nn.LayerNorm(d_model),
            nn.Linear(d_model, d_model), nn.ReLU(), nn.LayerNorm(d_model),
            score,
        )
        self.reg_head = nn.Sequential(nn.Linear(d_model + 2 * num_poses, d_model), nn.ReLU(),
                                      nn.Linear(d_model, d_model), nn.ReLU(), nn.Linear(d_model, num_poses * 3))
        nn.init.constant_(score.bias, CLS_PRIOR_BIAS)

    def context(self, tokens: torch.Tensor) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        """What does not change across modes and steps: scene keys/values, and the ego attention (B, 1, d)."""
        return self.cross_attention.memory(tokens), self.ego_out(self.ego_value(tokens[:, :1]))

    def forward(self, query: torch.Tensor, points: torch.Tensor, anchors: torch.Tensor, context: Any,
                valid: torch.Tensor, time: torch.Tensor, scores: bool = True
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """query (B, K, d), points (B, K, T, 2) [m], the clean anchors (K, T, 2) [m], context of the scene
        tokens, valid (B, N), time (B, d) -> plans (B, K, T, 3) [m, m, rad] and score logits (B, K) (None
        unless `scores`)."""
        b, k = query.shape[:2]
        memory, ego = context
        attended = self.cross_attention(query + self.position(points), memory, valid)
        f = self.norm1(query + self.dropout(attended))
        f = self.norm2(f + ego)
        f = self.norm3(f + self.ffn(f))  # residual; DiffusionDrive has none (see the module docstring)
        scale, shift = self.modulation(time)[:, None].chunk(2, dim=-1)
        f = f * (1 + scale) + shift
        deviation = (normalise_xy(points) - normalise_xy(anchors)) / DEVIATION_SCALE
        reg = self.reg_head(torch.cat([f, deviation.flatten(-2)], dim=-1)).reshape(b, k, self.num_poses, 3)
        xy = points + reg[..., :2] * xy_half_range(reg)  # offsets in normalised units
        heading = torch.tanh(reg[..., 2:]) * torch.pi
        return torch.cat([xy, heading], dim=-1), self.cls_head(f).squeeze(-1) if scores else None


@dataclass(frozen=True)
class DiffusionDriveConfig(VectorModelConfig):
    """DiffusionDrive's hyperparameters beyond the encoder's (`VectorModelConfig`).

    Attributes:
        num_modes: anchors K (20).
        decoder_layers: cascade layers (2).
        train_truncation: training draws t ~ U{0 .. train_truncation - 1} (50).
        inference_start: inference noises the anchors at t = 8.
        inference_steps: DDIM steps at inference (2; 1 to 4).
        anchors: an anchors .npy (K, T, 2) [m] from `diffplan anchors`; None: k-means on the training
            targets with `kmeans_seed`.
        cls_weight, reg_weight, trajectory_weight: loss weights 10, 8, 12.
        focal_alpha, focal_gamma: the focal loss's 0.25 and 2.
    """

    num_modes: int = NUM_MODES
    decoder_layers: int = 2
    train_truncation: int = TRAIN_TRUNCATION
    inference_start: int = INFERENCE_START
    inference_steps: int = INFERENCE_STEPS
    anchors: str | None = None
    kmeans_seed: int = 0
    cls_weight: float = 10.0
    reg_weight: float = 8.0
    trajectory_weight: float = 12.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0

    def validate(self) -> DiffusionDriveConfig:
        """Self, or ModelConfigError naming the first bad field."""
        super().validate()
        check_positive(self, "num_modes", "decoder_layers")
        if not 1 <= self.inference_steps <= 4:
            raise ModelConfigError(f"inference_steps={self.inference_steps}: must be 1 to 4")
        if not 0 <= self.inference_start < self.train_truncation <= 1000:
            raise ModelConfigError(f"inference_start={self.inference_start}, train_truncation="
                                   f"{self.train_truncation}: need 0 <= inference_start < train_truncation "
                                   "<= 1000")
        return self


class DiffusionDriveModel(VectorPlanningModel):
    """DiffusionDrive's truncated diffusion decoder on the shared vector `SceneEncoder`, built from a
    `DiffusionDriveConfig`. Buffer `anchors` (K, T, 2) [m] travels with the weights.
    """

    config_class = DiffusionDriveConfig
    config: DiffusionDriveConfig
    anchors: torch.Tensor

    def __init__(self, config: DiffusionDriveConfig | None = None):
        super().__init__(config)
        c = self.config
        d_model, num_poses = c.d_model, c.num_poses
        self.num_modes, self.train_truncation = c.num_modes, c.train_truncation
        self.inference_start, self.inference_steps = c.inference_start, c.inference_steps
        self.anchors_path, self.kmeans_seed = c.anchors, c.kmeans_seed
        self.cls_weight, self.reg_weight = c.cls_weight, c.reg_weight
        self.trajectory_weight = c.trajectory_weight
        self.focal_alpha, self.focal_gamma = c.focal_alpha, c.focal_gamma
        self.register_buffer("anchors", default_anchors(c.num_modes, num_poses))
        self.alphas_cumprod = scaled_linear_alphas_cumprod()  # float64, CPU; not a buffer (fixed formula)
        self.query = TrajectoryEmbedding(d_model, num_poses)
        self.time_embedding = TimestepEmbedding(d_model)
        self.layers = nn.ModuleList(CascadeLayer(d_model, c.heads, c.ffn_dim, c.dropout, num_poses)
                                    for _ in range(c.decoder_layers))

    def cascade(self) -> list[CascadeLayer]:
        """The decoder's cascade layers, in order."""
        return cast("list[CascadeLayer]", list(self.layers))

    def spec(self) -> dict[str, Any]:
        """The vector features' spec plus the anchors' shape (K, T, 2) [m]."""
        spec = super().spec()
        spec["anchors"] = {"shape": [self.num_modes, self.num_poses, 2], "frame": "ego", "unit": "m"}
        return spec

    def decode(self, contexts: list[Any], valid: torch.Tensor, points: torch.Tensor, t: torch.Tensor,
               scores: bool = True) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """One denoising pass: noisy points (B, K, T, 2) [m] at timesteps t (B,) -> per cascade layer
        (plans (B, K, T, 3), score logits (B, K)); `contexts` from each layer's `context(tokens)`.
        Without `scores`, only the last layer scores its modes."""
        query = self.query(points)
        time = self.time_embedding(t)
        outputs = []
        for i, (layer, context) in enumerate(zip(self.cascade(), contexts, strict=True)):
            plans, logits = layer(query, points, self.anchors, context, valid, time,
                                  scores or i == len(self.layers) - 1)
            outputs.append((plans, logits))
            points = plans[..., :2].detach()
        return outputs

    def noisy_anchors(self, noise: torch.Tensor, t: torch.Tensor, start: torch.Tensor | None = None) -> torch.Tensor:
        """The anchors (or the clean samples `start` (B, K, T, 2) [m] in their place) noised at timesteps t (B,)
        in normalised space, clamped to [-1, 1]: (B, K, T, 2)."""
        x0 = normalise_xy(self.anchors if start is None else start).expand(noise.shape)
        return add_noise(x0, noise, self.alphas_cumprod.to(noise.device), t).clamp(-1.0, 1.0)

    def loss(self, features: DriveFeatures, plan: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """DiffusionDrive's focal + L1 loss over both cascade layers (see the module docstring)."""
        b = plan.shape[0]
        tokens, valid = self.encoder(features)
        t = torch.randint(0, self.train_truncation, (b,), device=plan.device)
        noise = torch.randn(b, *self.anchors.shape, device=plan.device)
        contexts = [layer.context(tokens) for layer in self.cascade()]
        outputs = self.decode(contexts, valid, denormalise_xy(self.noisy_anchors(noise, t)), t)
        positive = assign_modes(self.anchors, plan[..., :2])
        one_hot = F.one_hot(positive, self.num_modes).to(plan.dtype)
        rows = torch.arange(b, device=plan.device)
        total, logs = plan.new_zeros(()), {}
        for i, (plans, logits) in enumerate(outputs, start=1):
            assert logits is not None  # decode scores every layer by default
            focal = sigmoid_focal_loss(logits.float(), one_hot, self.focal_alpha, self.focal_gamma)
            l1 = (plans[rows, positive].float() - plan).abs().mean()
            total = total + self.cls_weight * focal + self.reg_weight * l1
            logs[f"layer{i}_focal"], logs[f"layer{i}_l1"] = float(focal.detach()), float(l1.detach())
        final = outputs[-1][0][rows, positive, -1, :2].float()
        logs["final_xy_l2"] = float(torch.linalg.vector_norm(final - plan[:, -1, :2], dim=-1).mean().detach())
        return self.trajectory_weight * total, logs

    @torch.no_grad()
    def propose(self, features: DriveFeatures, generator: torch.Generator | None = None,
                start: torch.Tensor | None = None, start_t: int | None = None, steps: int | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Truncated DDIM from the noised anchors -> best plan (B, T, 3), candidates (B, K, T, 3), scores (B, K)
        (sigmoid of the mode logits). Noise comes from `generator` (CPU) when given.

        A warm start (RTI-DP, reference closed_loop_driving.md §4) noises `start` (B, K, T, 2) [m] instead of the
        anchors, at `start_t` (default `inference_start`), and takes `steps` DDIM steps (default
        `inference_steps`); each mode keeps its anchor as its identity. With `start` equal to the anchors and
        the defaults, it is the cold start, bit for bit.
        """
        tokens, valid = self.encoder(features)
        b, device = tokens.shape[0], tokens.device
        timesteps = truncated_timesteps(self.inference_start if start_t is None else start_t,
                                        self.inference_steps if steps is None else steps)
        noise = torch.randn(b, *self.anchors.shape, generator=generator).to(device, tokens.dtype)
        x = self.noisy_anchors(noise, torch.full((b,), timesteps[0], device=device),
                               None if start is None else start.to(device, tokens.dtype))
        contexts = [layer.context(tokens) for layer in self.cascade()]
        for i, t in enumerate(timesteps):
            plans, logits = self.decode(contexts, valid, denormalise_xy(x.clamp(-1.0, 1.0)),
                                        torch.full((b,), t, device=device), scores=False)[-1]
            if i + 1 < len(timesteps):
                x = ddim_step(x, normalise_xy(plans[..., :2]), self.alphas_cumprod, t, timesteps[i + 1])
        assert logits is not None  # decode always scores the last layer
        scores = logits.sigmoid()
        best = plans[torch.arange(b, device=device), scores.argmax(dim=-1)]
        return best, plans, scores

    def forward(self, features: DriveFeatures, generator: torch.Generator | None = None) -> torch.Tensor:
        """Batched features -> (B, T, 3) the best-scored plan."""
        return self.propose(features, generator)[0]

    def fit_normalisers(self, batches: Iterable[tuple[Any, torch.Tensor]]) -> None:
        """Set the anchors: from the `anchors` .npy when given, else k-means (`kmeans_seed`) on the targets."""
        if self.anchors_path is not None:
            anchors = load_anchors(self.anchors_path, tuple(self.anchors.shape))
        else:
            from planners.anchors import fit_anchors

            futures = torch.cat([plan[..., :2] for _, plan in batches]).to(torch.float64).numpy()
            if len(futures) < self.num_modes:
                raise ValueError(f"k-means needs at least {self.num_modes} training scenes for {self.num_modes} "
                                 f"anchors, got {len(futures)}")
            anchors = torch.from_numpy(fit_anchors(futures, self.num_modes, self.kmeans_seed).points)
        self.anchors.copy_(anchors.to(self.anchors.dtype))


def load_anchors(path: str | Path, shape: tuple[int, ...]) -> torch.Tensor:
    """A (K, T, 2) anchors .npy (as `diffplan anchors` writes), checked against `shape`."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"anchors {path}: unreadable ({error})") from None
    if array.shape != shape or not np.isfinite(array).all():
        raise ValueError(f"anchors {path}: expected finite values of shape {shape}, got {array.shape}")
    return torch.from_numpy(array.astype(np.float32))


@register_planner("diffusiondrive")
class DiffusionDrivePlanner(LearnedDrivePlanner):
    """DiffusionDrive; `load("diffusiondrive")` gives an untrained one, train it with `diffplan train`.

    Set `warm_start` (a WarmStart) to start each call after the first from the previous plan (RTI-DP); it
    applies to one observation per call, and `reset()` forgets the previous plan.
    """

    model_class = DiffusionDriveModel
    warm_start: WarmStart | None = None
    max_warm_start_t = 50  # trained on noise levels 0..49 (truncated diffusion)
    last_network_steps: int | None = None  # denoising steps of the last call (closed-loop reports read it)

    def reset(self) -> None:
        """Restart the noise generator from `seed` and forget the previous plan."""
        super().reset()
        self._previous: tuple[np.ndarray, np.ndarray, int] | None = None  # (plan xy (T, 2), origin (3,), mode)

    def propose(self, features: Any, observations: Sequence[DriveObservation]
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Cold, or warm-started from the previous plan (see WarmStart)."""
        model = self.model
        assert isinstance(model, DiffusionDriveModel)
        warm = self.warm_start
        self.last_network_steps = model.inference_steps
        if warm is None or len(observations) != 1:
            return model.propose(features, generator=self._generator)
        origin = np.asarray(observations[0].ego_pose_global, np.float64)
        previous = getattr(self, "_previous", None)
        if previous is None:
            best, plans, scores = model.propose(features, generator=self._generator)
        else:
            self.last_network_steps = warm.steps
            xy, previous_origin, mode = previous
            start = model.anchors.detach().clone().to(torch.float64)
            start[mode] = torch.from_numpy(shifted_plan(xy, previous_origin, origin, warm.validate().replan_interval_s))
            best, plans, scores = model.propose(features, generator=self._generator, start=start[None].float(),
                                                start_t=warm.start_t, steps=warm.steps)
        chosen = int(scores[0].argmax())
        self._previous = (best[0, :, :2].to(torch.float64).cpu().numpy(), origin, chosen)
        return best, plans, scores
