"""Test-time STL guidance of pSTL's denoising chain (pSTL §1.5 "Guidance"), in the model's own sample space.

pSTL takes Adam steps on the posterior mean μ of its controls against ReLU(ε - ρ̃(rollout(μ))), on the last
denoising steps ("+guidance") or on every step (CTG). Here the model does the same in whatever it denoises:
`guided_mean` optimises a copy of the normalised mean z (waypoints, or controls rolled out by the unicycle)
through the model's differentiable `decode` (z -> xy [m]) and an `Objective`, the smooth robustness
ρ̃(xy) of the condition's STL spec. STL lives outside `planners`, so the objective comes in as a callable
(`eval.pstl.guide.stl_objective` builds one from the observation only).

The step is kept signed: pSTL's code adds clip(|Δμ|, β_t), which drops the sign (a plan too far left would be
pushed further left); that bug is not copied. `clip` bounds |Δz| per coordinate by a constant, not by β_t.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from planners.pstl.condition import STLCondition
from scenes.drive import DriveObservation

Objective = Callable[[torch.Tensor], torch.Tensor]  # xy (N, 8, 2) [m] -> ρ̃ (N,), differentiable in xy
ObjectiveBuilder = Callable[[DriveObservation, STLCondition], Objective]  # one observation's objective
Decoder = Callable[[torch.Tensor], torch.Tensor]  # normalised samples (N, 8, 2) -> xy (N, 8, 2) [m]


@dataclass(frozen=True)
class GuidanceSettings:
    """How sampling follows the STL objective. Gradient guidance: `iterations` Adam steps (0: none) of rate
    `lr` on the normalised posterior mean z per guided denoising step, on the last `last_steps` steps (None:
    every step), lowering mean ReLU(`margin` - ρ̃) [robustness units]; `clip` bounds |Δz| per coordinate
    (None: no bound). pSTL: last 10 steps, 1 iteration, lr 0.01 (0.04 in closed loop), margin 0.01; CTG: every
    step, 3 iterations, lr 0.01. `refine_rounds`: RefineNet passes after the chain (`refine`; pSTL's open
    loop: 3), for a model that has one."""

    iterations: int = 1
    lr: float = 0.01
    last_steps: int | None = 10
    margin: float = 0.01
    clip: float | None = None
    refine_rounds: int = 0

    def validate(self) -> GuidanceSettings:
        """Self, or ValueError naming the bad field."""
        if isinstance(self.iterations, bool) or not isinstance(self.iterations, int) or self.iterations < 0:
            raise ValueError(f"guidance iterations = {self.iterations!r} must be an integer >= 0")
        if isinstance(self.refine_rounds, bool) or not isinstance(self.refine_rounds, int) \
                or self.refine_rounds < 0:
            raise ValueError(f"guidance refine_rounds = {self.refine_rounds!r} must be an integer >= 0")
        if not (isinstance(self.lr, int | float) and math.isfinite(self.lr) and self.lr > 0.0):
            raise ValueError(f"guidance lr = {self.lr!r} must be a positive finite number")
        if self.last_steps is not None and self.last_steps < 0:
            raise ValueError(f"guidance last_steps = {self.last_steps} must be >= 0 or None (every step)")
        if not (isinstance(self.margin, int | float) and math.isfinite(self.margin)):
            raise ValueError(f"guidance margin = {self.margin!r} must be a finite number")
        if self.clip is not None and not (isinstance(self.clip, int | float) and math.isfinite(self.clip)
                                          and self.clip > 0.0):
            raise ValueError(f"guidance clip = {self.clip!r} must be None or a positive finite number")
        return self

    def guided_steps(self, steps: int) -> int:
        """How many of a chain's final `steps` steps are guided."""
        return steps if self.last_steps is None else min(self.last_steps, steps)


@dataclass(frozen=True)
class Guide:
    """An objective and how to follow it: what `PstlModel.sample` takes as `guide`."""

    objective: Objective
    settings: GuidanceSettings = GuidanceSettings()


def guided_mean(mean: torch.Tensor, decode: Decoder, guide: Guide) -> torch.Tensor:
    """The mean (N, 8, 2) after `guide.settings.iterations` Adam steps on a float64 copy against
    mean ReLU(margin - ρ̃(decode(z))); detached, in `mean`'s dtype. Samples with ρ̃ >= margin do not move."""
    s = guide.settings
    z0 = mean.detach().to(torch.float64)
    z = z0.clone().requires_grad_(True)
    optimiser = torch.optim.Adam([z], lr=s.lr)
    with torch.enable_grad():
        for _ in range(s.iterations):
            optimiser.zero_grad()
            rho = guide.objective(decode(z))
            torch.relu(s.margin - rho).mean().backward()
            optimiser.step()
    delta = z.detach() - z0
    if s.clip is not None:
        delta = delta.clamp(-s.clip, s.clip)
    return (z0 + delta).to(mean.dtype)


def batched_objective(objectives: Sequence[Objective], num_samples: int) -> Objective:
    """One objective over B observations' samples (B S, 8, 2): block b of `num_samples` rows goes to
    objectives[b]."""
    def objective(xy: torch.Tensor) -> torch.Tensor:
        blocks = xy.split(num_samples)
        return torch.cat([f(block) for f, block in zip(objectives, blocks, strict=True)])

    return objective
