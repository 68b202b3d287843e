"""pSTL's DDPM noise schedule, its ancestral sampler and a few-step DDIM sampler.

pSTL (`nusc_train.py:get_diffusion_coeffs` with `--cos`, `diffusion_prep`, `diffusion_rollout`) uses T = 100
steps. With Nichol & Dhariwal's cosine f(s) = cos²((s + 0.008) / 1.008 · π/2) at s = k / T, k = 0 .. T:

    β_t = 0.2 · clip(1 - f((t + 1) / T) / f(t / T), 0, 0.999),   t = 0 .. T-1,
    α_t = 1 - β_t,   ᾱ_t = ∏_{s <= t} α_s.

So β, not ᾱ, is the cosine one scaled by 0.2, and ᾱ is the product of the scaled β: ᾱ_0 = 0.99987 and
ᾱ_99 = 0.195, so x_99 = 0.44 x_0 + 0.90 ε still carries signal; sampling starts from N(0, I) all the same, as
pSTL's does. Training noises x_0 to t ~ U{1 .. 99}: x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε.

Ancestral sampling (DDPM, Ho et al.): 99 steps t = 99 .. 1, each x_{t-1} = μ + σ_t z with the posterior mean
μ = (x_t - β_t / sqrt(1 - ᾱ_t) ε̂) / sqrt(α_t) and pSTL's σ_t² = β_t (not the posterior β̃_t); the last step
has no noise. One difference from pSTL: its last step (t = 1) lands on level 0 (ᾱ_0 < 1), which leaves
a residual of about 0.7 % of ε̂; here the last step goes to the data (ᾱ = 1, μ = the predicted x_0), so
level 0, never trained, is never visited. DDIM (η = 0) takes up to MAX_DDIM_STEPS steps of the same schedule.
Timestep -1 stands for the data (ᾱ = 1) throughout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

NUM_STEPS = 100  # pSTL's diffusion_steps
BETA_SCALE = 0.2
COSINE_OFFSET = 0.008  # Nichol & Dhariwal's s
MAX_BETA = 0.999
TRAIN_T_MIN, TRAIN_T_MAX = 1, NUM_STEPS - 1  # training t ~ U{1 .. 99}
MAX_DDIM_STEPS = 10
CLEAN = -1  # the timestep of the data (ᾱ = 1)


@dataclass(frozen=True)
class Schedule:
    """A discrete DDPM schedule: betas β_t and alphas_cumprod ᾱ_t, both (T,) float64 on CPU."""

    betas: torch.Tensor  # (T,)
    alphas_cumprod: torch.Tensor  # (T,)

    def validate(self) -> Schedule:
        """Self, or ValueError naming the bad field."""
        for name in ("betas", "alphas_cumprod"):
            value = getattr(self, name)
            if value.dtype != torch.float64 or value.dim() != 1 or len(value) < 2:
                raise ValueError(f"{name}: expected a (T,) float64 tensor with T >= 2, got {tuple(value.shape)} "
                                 f"{value.dtype}")
        if len(self.betas) != len(self.alphas_cumprod):
            raise ValueError(f"alphas_cumprod has {len(self.alphas_cumprod)} steps, betas {len(self.betas)}")
        if not bool(((self.betas > 0) & (self.betas < 1)).all()):
            raise ValueError("betas: every β_t must be in (0, 1)")
        return self

    @property
    def num_steps(self) -> int:
        """T."""
        return len(self.betas)

    def alpha_bar(self, t: int) -> float:
        """ᾱ_t; 1 at t = CLEAN (-1)."""
        if not CLEAN <= t < self.num_steps:
            raise ValueError(f"timestep {t} is outside [{CLEAN}, {self.num_steps - 1}]")
        return 1.0 if t == CLEAN else float(self.alphas_cumprod[t])


def pstl_schedule(num_steps: int = NUM_STEPS) -> Schedule:
    """pSTL's schedule (module docstring): cosine β scaled by BETA_SCALE, ᾱ their cumulative product."""
    s = torch.linspace(0.0, 1.0, num_steps + 1, dtype=torch.float64)
    f = torch.cos((s + COSINE_OFFSET) / (1.0 + COSINE_OFFSET) * math.pi / 2.0) ** 2
    betas = BETA_SCALE * (1.0 - f[1:] / f[:-1]).clamp(0.0, MAX_BETA)
    return Schedule(betas, torch.cumprod(1.0 - betas, dim=0)).validate()


def _per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, ...) broadcastable over `like`, in its dtype and device."""
    return values.to(like.device, like.dtype).reshape(-1, *([1] * (like.dim() - 1)))


def sample_timesteps(batch: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None
                     ) -> torch.Tensor:
    """(batch,) int64 training timesteps t ~ U{TRAIN_T_MIN .. TRAIN_T_MAX} (drawn on CPU)."""
    return torch.randint(TRAIN_T_MIN, TRAIN_T_MAX + 1, (batch,), generator=generator).to(device)


def q_sample(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """x_t = sqrt(ᾱ_t) x0 + sqrt(1 - ᾱ_t) noise; x0, noise (B, ...), t (B,) int64 in [0, T)."""
    a = _per_sample(schedule.alphas_cumprod[t.cpu()], x0)
    return a.sqrt() * x0 + (1.0 - a).sqrt() * noise


def predict_x0(x_t: torch.Tensor, eps: torch.Tensor, t: int, schedule: Schedule) -> torch.Tensor:
    """The clean sample implied by noise prediction `eps` at step t: (x_t - sqrt(1 - ᾱ_t) eps) / sqrt(ᾱ_t)."""
    a = schedule.alpha_bar(t)
    return (x_t - math.sqrt(1.0 - a) * eps) / math.sqrt(a)


def previous_timestep(t: int) -> int:
    """The ancestral step after t: t - 1 for t >= 2, CLEAN after t = 1 (module docstring)."""
    if t < 1:
        raise ValueError(f"an ancestral step starts at t >= 1, got {t}")
    return t - 1 if t >= 2 else CLEAN


def posterior_mean_variance(x0: torch.Tensor, x_t: torch.Tensor, t: int, schedule: Schedule
                            ) -> tuple[torch.Tensor, float]:
    """q(x_s | x_t, x0) for s = previous_timestep(t): its mean (shape of x_t) and variance β̃ = (1 - ᾱ_s) /
    (1 - ᾱ_t) · (1 - ᾱ_t / ᾱ_s); the mean is sqrt(ᾱ_s) β' / (1 - ᾱ_t) x0 + sqrt(α') (1 - ᾱ_s) / (1 - ᾱ_t) x_t
    with α' = ᾱ_t / ᾱ_s, β' = 1 - α' (x0 itself, variance 0, when s is CLEAN)."""
    a_t, a_s = schedule.alpha_bar(t), schedule.alpha_bar(previous_timestep(t))
    alpha = a_t / a_s
    mean = (math.sqrt(a_s) * (1.0 - alpha) * x0 + math.sqrt(alpha) * (1.0 - a_s) * x_t) / (1.0 - a_t)
    return mean, (1.0 - a_s) / (1.0 - a_t) * (1.0 - alpha)


def ancestral_mean(x_t: torch.Tensor, eps: torch.Tensor, t: int, schedule: Schedule
                   ) -> tuple[torch.Tensor, float]:
    """(μ, σ) of one ancestral step from t: μ the posterior mean given the predicted x0, σ = sqrt(β_t) (pSTL),
    0 on the last step (t = 1)."""
    mean, _ = posterior_mean_variance(predict_x0(x_t, eps, t, schedule), x_t, t, schedule)
    sigma = math.sqrt(float(schedule.betas[t])) if previous_timestep(t) != CLEAN else 0.0
    return mean, sigma


def ancestral_step(x_t: torch.Tensor, eps: torch.Tensor, t: int, schedule: Schedule, noise: torch.Tensor
                   ) -> torch.Tensor:
    """DDPM from t to previous_timestep(t): μ + σ noise (`ancestral_mean`); `noise` ~ N(0, I) like x_t."""
    mean, sigma = ancestral_mean(x_t, eps, t, schedule)
    return mean + sigma * noise if sigma > 0.0 else mean


def ancestral_timesteps(schedule: Schedule) -> list[int]:
    """The ancestral sampler's steps: T-1 .. 1 (99 for pSTL's schedule)."""
    return list(range(schedule.num_steps - 1, 0, -1))


def ddim_step(x_t: torch.Tensor, eps: torch.Tensor, t: int, t_prev: int, schedule: Schedule) -> torch.Tensor:
    """Deterministic DDIM (η = 0) from t to t_prev < t: sqrt(ᾱ_prev) x̂0 + sqrt(1 - ᾱ_prev) eps; the predicted
    x̂0 at t_prev = CLEAN."""
    if not CLEAN <= t_prev < t:
        raise ValueError(f"DDIM steps down: need {CLEAN} <= t_prev < t, got t={t}, t_prev={t_prev}")
    a_prev = schedule.alpha_bar(t_prev)
    return math.sqrt(a_prev) * predict_x0(x_t, eps, t, schedule) + math.sqrt(1.0 - a_prev) * eps


def ddim_timesteps(num_steps: int, schedule_steps: int = NUM_STEPS) -> list[int]:
    """`num_steps` (1 to MAX_DDIM_STEPS) timesteps evenly spaced from T-1 down, none below 1: 10 steps ->
    [99, 89, 79, 69, 59, 50, 40, 30, 20, 10]; each goes to the next, the last to CLEAN."""
    if not 1 <= num_steps <= MAX_DDIM_STEPS:
        raise ValueError(f"DDIM takes 1 to {MAX_DDIM_STEPS} steps, got {num_steps}")
    top = schedule_steps - 1
    return [math.floor(top * (num_steps - i) / num_steps + 0.5) for i in range(num_steps)]
