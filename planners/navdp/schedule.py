"""NavDP's DDPM noise schedule: 10 steps, the cosine ("squaredcos_cap_v2") betas, clipped samples, epsilon.

This restates diffusers' `DDPMScheduler(num_train_timesteps=10, beta_schedule="squaredcos_cap_v2",
clip_sample=True, prediction_type="epsilon")` with its defaults (variance "fixed_small", clip range 1), used
with all 10 steps at inference:

    alpha_bar(s) = cos^2((s + 0.008) / 1.008 * pi / 2),   s in [0, 1]
    beta_t = min(1 - alpha_bar((t + 1) / T) / alpha_bar(t / T), 0.999),   t = 0 .. T-1
    alphas_cumprod_t = prod_{j <= t} (1 - beta_j)

Forward:  x_t = sqrt(acp_t) x_0 + sqrt(1 - acp_t) eps.
Reverse step t -> t-1 (acp_{-1} = 1): x0_hat = clip((x_t - sqrt(1 - acp_t) eps_hat) / sqrt(acp_t), -1, 1);
    mean = sqrt(acp_{t-1}) beta_t / (1 - acp_t) x0_hat + sqrt(1 - beta_t) (1 - acp_{t-1}) / (1 - acp_t) x_t;
    x_{t-1} = mean + sqrt(var_t) z for t > 0, var_t = max((1 - acp_{t-1}) / (1 - acp_t) beta_t, 1e-20).
"""

from __future__ import annotations

import math

import torch

NAVDP_DIFFUSION_STEPS = 10
MAX_BETA = 0.999
CLIP_RANGE = 1.0


def cosine_alpha_bar(s: float) -> float:
    """The squared-cosine cumulative signal level at normalised time s in [0, 1]."""
    return math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2


def cosine_betas(num_steps: int = NAVDP_DIFFUSION_STEPS, max_beta: float = MAX_BETA) -> torch.Tensor:
    """(num_steps,) float32 betas of the capped cosine schedule (computed in float64, stored float32)."""
    betas = [min(1 - cosine_alpha_bar((t + 1) / num_steps) / cosine_alpha_bar(t / num_steps), max_beta)
             for t in range(num_steps)]
    return torch.tensor(betas, dtype=torch.float32)


class DDPMSchedule:
    """The 10-step cosine DDPM of NavDP on CPU float32 tensors (moved to the sample's device on use)."""

    def __init__(self, num_steps: int = NAVDP_DIFFUSION_STEPS):
        if num_steps < 1:
            raise ValueError(f"num_steps must be positive, got {num_steps}")
        self.num_steps = num_steps
        self.betas = cosine_betas(num_steps)
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)

    def timesteps(self) -> list[int]:
        """Inference timesteps, noisiest first: T-1, ..., 0 (all training steps, as NavDP)."""
        return list(range(self.num_steps - 1, -1, -1))

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t for clean samples x0 (B, ...), noise like x0 and integer timesteps t (B,)."""
        acp = self.alphas_cumprod.to(x0.device)[t].reshape(-1, *([1] * (x0.dim() - 1)))
        return acp.sqrt() * x0 + (1 - acp).sqrt() * noise

    def step(self, eps: torch.Tensor, t: int, x_t: torch.Tensor,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """x_{t-1} from the predicted noise `eps` at step t (see the module docstring); noise drawn on CPU."""
        acp_t = float(self.alphas_cumprod[t])
        acp_prev = float(self.alphas_cumprod[t - 1]) if t > 0 else 1.0
        beta_t = float(self.betas[t])
        x0_hat = ((x_t - math.sqrt(1 - acp_t) * eps) / math.sqrt(acp_t)).clamp(-CLIP_RANGE, CLIP_RANGE)
        mean = (math.sqrt(acp_prev) * beta_t / (1 - acp_t)) * x0_hat \
            + (math.sqrt(1 - beta_t) * (1 - acp_prev) / (1 - acp_t)) * x_t
        if t == 0:
            return mean
        variance = max((1 - acp_prev) / (1 - acp_t) * beta_t, 1e-20)
        z = torch.randn(x_t.shape, generator=generator, dtype=x_t.dtype).to(x_t.device)
        return mean + math.sqrt(variance) * z
