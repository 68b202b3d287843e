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

Training (`refine_training.train_refiner`, only the net's weights; the DDPM is frozen): pSTL's README run
optimises only a quality-weighted DPP diversity term -tr(I - (L + I)^-1), L = Q S Q, S_ij = exp(-|u_i - u_j|),
Q = diag(exp(ρ̃) 1[ρ̃ > 0]) (`diversity_weight`), with its STL term mean ReLU(margin - ρ̃) at weight 0; the
ablation "L_STL" uses the STL term alone. Both weights are settings here (`RefineTrainSettings`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from planners.pstl.condition import CONDITION_DIM

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
        if not bool((rho < 0.0).any()):
            break
        u = refine_once(net, scene, condition, u, rho, samples)
        rho = score(u)
    return u


def refine_once(net: RefineNet, scene: torch.Tensor, condition: torch.Tensor, u: torch.Tensor,
                rho: torch.Tensor, samples: int) -> torch.Tensor:
    """u (N, T, 2) with RefineNet's correction on the samples whose ρ̃ `rho` (N,) is below 0, the others as
    they are (`RefineNet.forward` for the arguments)."""
    return torch.where((rho < 0.0)[:, None, None], net(scene, condition, u, samples), u)


def dpp_diversity_loss(u: torch.Tensor, rho: torch.Tensor) -> torch.Tensor:
    """pSTL's quality-weighted DPP term -tr(I - (L + I)^-1) of one shard: u (S, T, 2), ρ̃ (S,); L = Q S Q,
    S_ij = exp(-|u_i - u_j|), Q = diag(exp(ρ̃) 1[ρ̃ > 0]). Lower is better (more diverse satisfying samples)."""
    flat = u.flatten(1).to(torch.float64)
    similarity = torch.exp(-torch.cdist(flat, flat))
    rho = rho.to(torch.float64)
    quality = torch.exp(rho.clamp(max=MAX_QUALITY_RHO)) * (rho > 0.0).to(rho.dtype)
    kernel = quality[:, None] * similarity * quality[None, :]
    eye = torch.eye(len(flat), dtype=kernel.dtype)
    return -torch.diagonal(eye - torch.linalg.inv(kernel + eye)).sum()
