"""Training pSTL's RefineNet (`refine`) on `datagen drive` demonstrations, the DDPM frozen.

Each training window (a demonstration's observation under its (mode, θ)) is sampled once by the frozen chain
(`refine_windows`); its input candidates and their ρ̃ are fixed, so an epoch costs only RefineNet passes and
the smooth robustness of the refined samples. The STL objective comes in as a callable (`eval.pstl.guide`), as
for guidance.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from planners.pstl.condition import condition_tensor
from planners.pstl.data import PstlDemoDataset
from planners.pstl.guidance import Objective, ObjectiveBuilder
from planners.pstl.model import PstlModel
from planners.pstl.refine import RefineNet, best_candidates, dpp_diversity_loss, refine_once


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


def refine_windows(model: PstlModel, data: PstlDemoDataset, objective_for: ObjectiveBuilder, samples: int,
                   sampler: str = "ddim", seed: int = 0, limit: int | None = None,
                   progress: Callable[[int, int], None] | None = None) -> list[RefineWindow]:
    """One RefineWindow per demonstration of `data` (the first `limit`): `samples` samples of the frozen
    `model`'s chain, demo k drawn with seed + k; `progress(done, total)` after each."""
    count = len(data) if limit is None else min(limit, len(data))
    windows = []
    model.eval()
    with torch.no_grad():
        for k in range(count):
            scene = data.data[int(data.index[k])]
            observation, condition = scene.observation(), data.condition(k)
            features = data.feature_builder(observation)
            features = type(features)(*(f[None] for f in features))
            generator = torch.Generator().manual_seed(seed + k)
            chain = model.chain(features, condition_tensor([condition]), generator, sampler, None, samples,
                                guide=None)
            windows.append(RefineWindow(chain.scene[0], chain.condition[0], chain.v0[0], chain.candidates,
                                        objective_for(observation, condition)))
            if progress is not None:
                progress(k + 1, count)
    return windows


def train_refiner(net: RefineNet, windows: Sequence[RefineWindow],
                  decode: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], settings: RefineTrainSettings,
                  generator: torch.Generator | None = None,
                  progress: Callable[[int, dict[str, float]], None] | None = None) -> list[dict[str, float]]:
    """Train `net` on `windows` (module docstring); decode(u (S, T, 2), v0 (S,)) -> xy (S, T, 2) [m] is the
    model's differentiable decoder. Returns per epoch {"loss", "stl", "diversity", "compliance",
    "input_compliance"}: the fractions of refined and of input samples with ρ̃ > 0; `progress(epoch, that)`
    after each epoch."""
    settings.validate()
    inputs = []
    input_compliance = 0.0
    with torch.no_grad():
        for w in windows:
            v0 = w.v0.expand(w.candidates.shape[1])
            rho = torch.stack([w.objective(decode(c, v0)) for c in w.candidates]).to(torch.float32)
            u, rho_u = best_candidates(w.candidates, rho)
            inputs.append((u, rho_u, v0))
            input_compliance += float((rho_u > 0).to(torch.float64).mean()) / len(windows)
    optimiser = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=settings.lr)
    history = []
    for epoch in range(settings.epochs):
        order = torch.randperm(len(windows), generator=generator).tolist()
        totals = {"loss": 0.0, "stl": 0.0, "diversity": 0.0, "compliance": 0.0,
                  "input_compliance": input_compliance}
        for start in range(0, len(order), settings.batch_windows):
            batch = order[start:start + settings.batch_windows]
            optimiser.zero_grad()
            loss = torch.zeros((), dtype=torch.float64)
            for k in batch:
                w, (u, rho_u, v0) = windows[k], inputs[k]
                s = len(u)
                refined = refine_once(net, w.scene.expand(s, -1), w.condition.expand(s, -1), u, rho_u, s)
                rho = w.objective(decode(refined, v0))
                stl = torch.relu(settings.margin - rho).mean()
                diversity = dpp_diversity_loss(refined, rho)
                loss = loss + (settings.stl_weight * stl + settings.diversity_weight * diversity) / len(batch)
                totals["stl"] += float(stl.detach()) / len(order)
                totals["diversity"] += float(diversity.detach()) / len(order)
                totals["compliance"] += float((rho > 0).to(torch.float64).mean()) / len(order)
            loss.backward()
            optimiser.step()
            totals["loss"] += float(loss.detach()) * len(batch) / len(order)
        history.append(totals)
        if progress is not None:
            progress(epoch, totals)
    return history
