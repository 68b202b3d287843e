"""pSTL's RefineNet (`nusc_model.py:rect_forward`, `--rect_head --multi_cands 5`): one learned correction of
the samples that break their STL spec.

After the denoising chain, each sample's input u_init is the candidate of highest smooth robustness ρ̃ among
the clean-sample predictions of the chain's last REFINE_CANDIDATES steps (the final sample is the last one).
The net sees the scene feature, the condition, u_init and a set feature: a per-sample `merge` MLP max-pooled
over shards of SHARD samples, which pSTL leaves at its random initialisation (it is frozen here too, and
saved with the weights). Its tanh output o is scaled into the control range that is left,

    u = u_init + o (1 - u_init)  where o > 0,      u = u_init + o (1 + u_init)  where o < 0,

so u stays in [-1, 1], and is added only to samples with ρ̃(u_init) < 0. Sampling may apply it several times
(pSTL's open loop: 3), each time to the samples still below 0.

Training (`train_refiner`, only the net's weights; the DDPM is frozen): pSTL's README run optimises only a
quality-weighted DPP diversity term -tr(I - (L + I)^-1), L = Q S Q, S_ij = exp(-|u_i - u_j|),
Q = diag(exp(ρ̃) 1[ρ̃ > 0]) (`diversity_weight`), with its STL term mean ReLU(margin - ρ̃) at weight 0; the
ablation "L_STL" uses the STL term alone. Both weights are settings here (`RefineTrainSettings`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from planners.pstl.condition import CONDITION_DIM
from planners.pstl.guidance import Objective

REFINE_CANDIDATES = 5  # pSTL's --multi_cands: the chain's last iterates RefineNet chooses its input from
SHARD = 16  # samples whose merge features are max-pooled together (pSTL's shards of 16)
MERGE_DIM = 64  # width of the frozen merge features
MAX_QUALITY_RHO = 5.0  # ρ̃ above this counts as this in exp(ρ̃) (the DPP quality), against overflow


class RefineNet(nn.Module):
    """The correction net (module docstring) for samples of `num_poses` x 2 normalised values."""

    def __init__(self, scene_dim: int, hidden_dim: int, num_poses: int):
        super().__init__()
        sample_dim = 2 * num_poses
        self.merge = nn.Sequential(nn.Linear(sample_dim, MERGE_DIM), nn.ReLU(),
                                   nn.Linear(MERGE_DIM, MERGE_DIM))
        self.merge.requires_grad_(False)  # pSTL optimises rect_net only
        width = scene_dim + CONDITION_DIM + sample_dim + MERGE_DIM
        self.net = nn.Sequential(nn.Linear(width, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, hidden_dim),
                                 nn.ReLU(), nn.Linear(hidden_dim, sample_dim))

    def forward(self, scene: torch.Tensor, condition: torch.Tensor, u: torch.Tensor, samples: int
                ) -> torch.Tensor:
        """Refined u (N, T, 2) of u (N, T, 2) in [-1, 1], given scene features (N, D) and conditions (N, 9);
        the rows are N / `samples` windows of `samples` consecutive samples, pooled in shards of SHARD."""
        flat = u.flatten(1)
        merged = self.merge(flat).view(-1, samples, MERGE_DIM)
        shards = merged.split(SHARD, dim=1)
        pooled = torch.cat([shard.amax(dim=1, keepdim=True).expand_as(shard) for shard in shards], dim=1)
        pooled = pooled.flatten(0, 1)
        out = torch.tanh(self.net(torch.cat([scene, condition, flat, pooled], dim=-1))).view_as(u)
        return u + torch.where(out > 0, out * (1.0 - u), out * (1.0 + u))


def best_candidates(candidates: torch.Tensor, rho: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(u (N, T, 2), ρ̃ (N,)): per sample, the candidate of highest ρ̃ among candidates (K, N, T, 2) with
    robustness rho (K, N); ties go to the later candidate (the chain's end)."""
    best = (rho.shape[0] - 1) - rho.flip(0).argmax(dim=0)
    rows = torch.arange(rho.shape[1])
    return candidates[best, rows], rho[best, rows]


def refine_rounds(net: RefineNet, scene: torch.Tensor, condition: torch.Tensor, u: torch.Tensor,
                  rho: torch.Tensor, score: Callable[[torch.Tensor], torch.Tensor], rounds: int, samples: int
                  ) -> torch.Tensor:
    """u (N, T, 2) after `rounds` rounds of RefineNet, each on the samples whose ρ̃ (`score`: u -> (N,)) is
    still below 0; `rho` (N,) is ρ̃ of the input; `samples` per window (`RefineNet.forward`)."""
    for _ in range(rounds):
        failing = rho < 0.0
        if not bool(failing.any()):
            break
        u = torch.where(failing[:, None, None], net(scene, condition, u, samples), u)
        rho = score(u)
    return u


def dpp_diversity_loss(u: torch.Tensor, rho: torch.Tensor) -> torch.Tensor:
    """pSTL's quality-weighted DPP term -tr(I - (L + I)^-1) of one shard: u (S, T, 2), ρ̃ (S,); L = Q S Q,
    S_ij = exp(-|u_i - u_j|), Q = diag(exp(ρ̃) 1[ρ̃ > 0]). Lower is better (more diverse satisfying samples)."""
    flat = u.flatten(1).to(torch.float64)
    similarity = torch.exp(-torch.cdist(flat, flat))
    quality = torch.exp(rho.clamp(max=MAX_QUALITY_RHO)) * (rho > 0.0).to(rho.dtype)
    kernel = quality[:, None] * similarity * quality[None, :]
    eye = torch.eye(len(flat), dtype=kernel.dtype)
    return -torch.diagonal(eye - torch.linalg.inv(kernel + eye)).sum()


@dataclass(frozen=True)
class RefineTrainSettings:
    """RefineNet training: `epochs` passes over the windows, `batch_windows` windows per Adam step of rate
    `lr`; loss `stl_weight` mean ReLU(`margin` - ρ̃) + `diversity_weight` DPP term (module docstring)."""

    epochs: int = 20
    batch_windows: int = 8
    lr: float = 1e-3
    stl_weight: float = 1.0
    diversity_weight: float = 0.1
    margin: float = 0.01

    def validate(self) -> RefineTrainSettings:
        """Self, or ValueError naming the bad field."""
        for name in ("epochs", "batch_windows"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} = {getattr(self, name)} must be positive")
        if not self.lr > 0.0:
            raise ValueError(f"lr = {self.lr} must be positive")
        weights = (self.stl_weight, self.diversity_weight)
        if min(weights) < 0.0 or sum(weights) == 0.0:
            raise ValueError(f"stl_weight = {self.stl_weight}, diversity_weight = {self.diversity_weight}: "
                             "both >= 0, not both 0")
        return self


@dataclass(frozen=True)
class RefineWindow:
    """One training window: the frozen DDPM's samples and what scoring them needs.

    Attributes:
        scene: (D,) scene feature; condition: (9,); v0: [] current speed [m/s].
        candidates: (K, S, T, 2) the chain's last K clean-sample predictions of S samples (normalised).
        objective: ρ̃ of plans xy (S, T, 2) [m] of this window.
    """

    scene: torch.Tensor
    condition: torch.Tensor
    v0: torch.Tensor
    candidates: torch.Tensor
    objective: Objective


def train_refiner(net: RefineNet, windows: Sequence[RefineWindow],
                  decode: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], settings: RefineTrainSettings,
                  generator: torch.Generator | None = None,
                  progress: Callable[[int, dict[str, float]], None] | None = None) -> list[dict[str, float]]:
    """Train `net` on `windows` (module docstring); decode(u (S, T, 2), v0 (S,)) -> xy (S, T, 2) [m] is the
    model's differentiable decoder. Returns per epoch {"loss", "stl", "diversity", "compliance"}, compliance
    being the fraction of refined samples with ρ̃ > 0; `progress(epoch, that)` after each epoch."""
    settings.validate()
    inputs = []
    with torch.no_grad():
        for w in windows:
            v0 = w.v0.expand(w.candidates.shape[1])
            rho = torch.stack([w.objective(decode(c, v0)) for c in w.candidates]).to(torch.float32)
            u, rho_u = best_candidates(w.candidates, rho)
            inputs.append((u, rho_u, v0))
    optimiser = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=settings.lr)
    history = []
    for epoch in range(settings.epochs):
        order = torch.randperm(len(windows), generator=generator).tolist()
        totals = {"loss": 0.0, "stl": 0.0, "diversity": 0.0, "compliance": 0.0}
        for start in range(0, len(order), settings.batch_windows):
            batch = order[start:start + settings.batch_windows]
            optimiser.zero_grad()
            loss = torch.zeros((), dtype=torch.float64)
            for k in batch:
                w, (u, rho_u, v0) = windows[k], inputs[k]
                s = len(u)
                refined = net(w.scene.expand(s, -1), w.condition.expand(s, -1), u, s)
                refined = torch.where((rho_u < 0.0)[:, None, None], refined, u)
                rho = w.objective(decode(refined, v0))
                stl = torch.relu(settings.margin - rho).mean()
                diversity = dpp_diversity_loss(refined, rho)
                loss = loss + (settings.stl_weight * stl + settings.diversity_weight * diversity) / len(batch)
                totals["stl"] += float(stl) / len(order)
                totals["diversity"] += float(diversity) / len(order)
                totals["compliance"] += float((rho > 0).to(torch.float64).mean()) / len(order)
            loss.backward()
            optimiser.step()
            totals["loss"] += float(loss) * len(batch) / len(order)
        history.append(totals)
        if progress is not None:
            progress(epoch, totals)
    return history
