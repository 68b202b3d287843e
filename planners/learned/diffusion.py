"""The noise schedule and DDIM sampler shared by DiffusionDrive and the vanilla diffusion policy.

Both use diffusers' DDIM settings from DiffusionDrive: T = 1000 training steps, the "scaled_linear" schedule

    beta_t = (sqrt(beta_start) + t / (T - 1) * (sqrt(beta_end) - sqrt(beta_start)))^2,  t = 0 .. T-1,
    alpha_bar_t = prod_{s <= t} (1 - beta_s),

with beta_start = 1e-4 and beta_end = 0.02, eta = 0 (deterministic DDIM), clip_sample to [-1, 1], and
alpha_bar = 1 past the last step (set_alpha_to_one). Samples live in the normalised plan space [-1, 1].
"""

from __future__ import annotations

import torch

NUM_TRAIN_TIMESTEPS = 1000
BETA_START = 1e-4
BETA_END = 0.02


def scaled_linear_alphas_cumprod(num_steps: int = NUM_TRAIN_TIMESTEPS, beta_start: float = BETA_START,
                                 beta_end: float = BETA_END) -> torch.Tensor:
    """(num_steps,) float64 alpha_bar_t of diffusers' "scaled_linear" schedule (see the module docstring)."""
    betas = torch.linspace(beta_start ** 0.5, beta_end ** 0.5, num_steps, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0)


def alpha_bar(alphas_cumprod: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """alpha_bar at integer timesteps `t` (any shape); 1 where t < 0 (the clean end of DDIM)."""
    t = torch.as_tensor(t, device=alphas_cumprod.device)
    values = alphas_cumprod[t.clamp(min=0)]
    return torch.where(t < 0, torch.ones_like(values), values)


def add_noise(x0: torch.Tensor, noise: torch.Tensor, alphas_cumprod: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """q(x_t | x_0) = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) noise; `t` (B,) broadcasts over x0's rest."""
    a = alpha_bar(alphas_cumprod, t).to(x0.dtype).reshape(-1, *([1] * (x0.dim() - 1)))
    return a.sqrt() * x0 + (1.0 - a).sqrt() * noise


def ddim_step(x_t: torch.Tensor, x0: torch.Tensor, alphas_cumprod: torch.Tensor, t: int, t_prev: int
              ) -> torch.Tensor:
    """Deterministic DDIM (eta = 0) from step t to t_prev < t given the predicted clean sample x0 (clipped to
    [-1, 1], as clip_sample does); t_prev = -1 returns x0."""
    a_t = float(alpha_bar(alphas_cumprod, torch.tensor(t)))
    a_prev = float(alpha_bar(alphas_cumprod, torch.tensor(t_prev)))
    x0 = x0.clamp(-1.0, 1.0)
    eps = (x_t - a_t ** 0.5 * x0) / (1.0 - a_t) ** 0.5
    return a_prev ** 0.5 * x0 + (1.0 - a_prev) ** 0.5 * eps


def predicted_x0(x_t: torch.Tensor, eps: torch.Tensor, alphas_cumprod: torch.Tensor, t: int) -> torch.Tensor:
    """The clean sample implied by a noise prediction at step t."""
    a_t = float(alpha_bar(alphas_cumprod, torch.tensor(t)))
    return (x_t - (1.0 - a_t) ** 0.5 * eps) / a_t ** 0.5


def truncated_timesteps(start: int, steps: int) -> list[int]:
    """DiffusionDrive's truncated inference: `steps` denoising steps from t = `start`, evenly spaced down to 0
    (exclusive), e.g. start 8, 2 steps -> [8, 4]; 1 step -> [8]; 4 steps -> [8, 6, 4, 2]."""
    if not 1 <= steps <= max(start, 1):
        raise ValueError(f"need 1 <= steps <= start, got steps={steps}, start={start}")
    return [round(start * (steps - i) / steps) for i in range(steps)]


def ddim_timesteps(steps: int, num_train_timesteps: int = NUM_TRAIN_TIMESTEPS) -> list[int]:
    """diffusers' DDIM "leading" spacing: 20 steps -> [950, 900, ..., 50, 0]."""
    ratio = num_train_timesteps // steps
    return [i * ratio for i in reversed(range(steps))]
