"""pSTL's STL-conditioned diffusion policy on diffplan's vector scene encoder ("pstl", issue 24).

pSTL (`nusc_model.py:Net`) denoises controls with one MLP over [scene feature, noisy sample, sinusoidal t
embedding (32), mode, θ] plus a residual skip from the noisy input, predicting ε. Here the sample is the plan
xy instead of controls: 8 poses x 2, normalised to [-1, 1] by DiffusionDrive's ranges (`normalise_xy`).

    scene feature  the SceneEncoder's ego token and the masked mean of all valid tokens, (B, 2 d_model)
    condition      mode one-hot (4) and θ normalised to [-1, 1] (5): `condition.condition_tensor`
    ε̂              MLP([scene, x_t (16), sin/cos(t) (time_dim), condition (9)]) + x_t
    plan           (8, 3) ego frame: x, y [m] from the sample, headings from the xy differences

Training: ε-MSE at t ~ U{1 .. 99} of pSTL's schedule (`schedule`). Sampling: pSTL's 99 ancestral steps or DDIM
in at most 10 steps from N(0, I), then clipping to [-1, 1]; an optional `guide` (`guidance`) moves the
posterior mean on the last steps by Adam steps on the smooth STL robustness of the decoded plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import torch
from torch import nn

from planners.learned.config import ModelConfigError, check_positive
from planners.learned.vector import (
    STATUS_FIELDS,
    DriveFeatures,
    VectorModelConfig,
    VectorPlanningModel,
    denormalise_xy,
    normalise_xy,
    sinusoidal_embedding,
)
from planners.pstl.actions import controls_to_plan, plan_to_controls
from planners.pstl.condition import (
    CONDITION_DIM,
    THETA_FIELDS,
    THETA_RANGE,
    THETA_UNITS,
    DrivingMode,
    STLCondition,
    condition_tensor,
    free_v_min,
    relax_conditions,
)
from planners.pstl.guidance import Guide, guided_mean
from planners.pstl.refine import REFINE_CANDIDATES, RefineNet, best_candidates, refine_rounds
from planners.pstl.schedule import (
    CLEAN,
    MAX_DDIM_STEPS,
    ancestral_mean,
    ancestral_timesteps,
    ddim_step,
    ddim_timesteps,
    predict_x0,
    pstl_schedule,
    q_sample,
    sample_timesteps,
)

ACTION_SPACES = ("xy", "controls")
MIN_STEP = 0.05  # [m] a pose closer than this to the previous one keeps the previous heading


@dataclass(frozen=True)
class PstlConfig(VectorModelConfig):
    """pSTL's hyperparameters beyond the encoder's (`VectorModelConfig`): the denoiser MLP's `hidden_layers`
    layers of width `hidden_dim` (pSTL: 2 x 256), the sinusoidal timestep embedding's width `time_dim` (32, even)
    and the DDIM steps `sampling_steps` of `forward` (10; 1 to 10). `action_space`: what is denoised, "xy"
    (the plan's waypoints) or "controls" (pSTL's (ω, a) per step, rolled out by a unicycle: `actions`).
    `refine_hidden`: width of RefineNet's two hidden layers (`refine`; pSTL 256), 0 for none.
    `relabel_fraction`: share of training rows whose θ is relaxed to a looser one the demonstration still
    meets (`condition.relax_conditions`), v_max too with `relabel_v_max`; 0 trains on the data's θ only.
    `free_v_min_fraction`: share of training rows whose v_min is lowered to 0 m/s, d_safe kept
    (`condition.free_v_min`: what makes d_safe a command)."""

    hidden_dim: int = 256
    hidden_layers: int = 2
    time_dim: int = 32
    sampling_steps: int = 10
    action_space: str = "xy"
    refine_hidden: int = 0
    relabel_fraction: float = 0.0
    relabel_v_max: bool = False
    free_v_min_fraction: float = 0.0

    def validate(self) -> PstlConfig:
        """Self, or ModelConfigError naming the first bad field."""
        super().validate()
        check_positive(self, "hidden_dim", "hidden_layers", "time_dim")
        if self.time_dim % 2:
            raise ModelConfigError(f"time_dim={self.time_dim}: must be even (sin and cos halves)")
        if not 1 <= self.sampling_steps <= MAX_DDIM_STEPS:
            raise ModelConfigError(f"sampling_steps={self.sampling_steps}: must be 1 to {MAX_DDIM_STEPS}")
        if self.refine_hidden < 0:
            raise ModelConfigError(f"refine_hidden={self.refine_hidden}: must be >= 0 (0: no RefineNet)")
        for name in ("relabel_fraction", "free_v_min_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ModelConfigError(f"{name}={getattr(self, name)}: must be in [0, 1]")
        if self.action_space not in ACTION_SPACES:
            raise ModelConfigError(f"action_space={self.action_space!r}: expected one of "
                                   f"{', '.join(ACTION_SPACES)}")
        return self


class SampleChain(NamedTuple):
    """A denoising chain's N = B S rows: scene features (N, 2 d_model), conditions (N, 9), current speeds v0
    (N,) [m/s] and candidates (K, N, 8, 2), the clean-sample predictions of its last K <= REFINE_CANDIDATES
    steps, normalised and clipped to [-1, 1]; the last one is the chain's sample."""

    scene: torch.Tensor
    condition: torch.Tensor
    v0: torch.Tensor
    candidates: torch.Tensor


class PstlTarget(NamedTuple):
    """A training target: the expert plan (B, 8, 3) [m, m, rad] and its condition (B, 9) (`condition_tensor`)."""

    plan: torch.Tensor
    condition: torch.Tensor


def current_speed(features: DriveFeatures) -> torch.Tensor:
    """(B,) the ego's current forward speed [m/s] (the status' vx, at least 0)."""
    return features.status[:, STATUS_FIELDS.index("vx")].clamp(min=0.0)


def headings_from_xy(xy: torch.Tensor) -> torch.Tensor:
    """(..., T, 2) [m] ego-frame poses -> (..., T) headings [rad] of the steps from the previous pose (the
    first from the origin); a step shorter than MIN_STEP keeps the previous heading (0 at the origin)."""
    previous = torch.cat([torch.zeros_like(xy[..., :1, :]), xy[..., :-1, :]], dim=-2)
    step = xy - previous
    raw = torch.atan2(step[..., 1], step[..., 0])
    moving = step.norm(dim=-1) >= MIN_STEP
    headings, last = [], torch.zeros_like(raw[..., 0])
    for k in range(xy.shape[-2]):
        last = torch.where(moving[..., k], raw[..., k], last)
        headings.append(last)
    return torch.stack(headings, dim=-1)


class PstlSceneModel(VectorPlanningModel):
    """What pSTL's policies share (this DDPM and the VAE baseline, `planners.pstl.vae`): the scene feature,
    the condition's check, CPU-drawn noise and the spec with the condition's layout."""

    def loss_inputs(self, features: DriveFeatures, plan: torch.Tensor | PstlTarget,
                    condition: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(scene feature (B, 2 d_model), plan (B, 8, 3), checked condition (B, 9)) of a loss call given a plan
        and its condition, or a PstlTarget holding both; ValueError naming the loss when the condition is
        missing."""
        if isinstance(plan, PstlTarget):
            plan, condition = plan
        if condition is None:
            raise ValueError(f"{type(self).__name__}.loss needs a condition (B, 9): pass one or a PstlTarget")
        scene = self.scene_feature(features)
        return scene, plan, self.check_condition(condition, plan.shape[0]).to(scene)

    def training_dataset(self, data: Any, split: str | None) -> Any:
        """(features, PstlTarget) per `datagen drive` demonstration of dataset folder `data` (`pstl.data`)."""
        from planners.pstl.data import PstlDemoDataset

        return PstlDemoDataset(data, self.feature_builder(), split=split)

    def scene_feature(self, features: DriveFeatures) -> torch.Tensor:
        """(B, 2 d_model): the encoder's ego token, then the mean of its valid tokens."""
        tokens, valid = self.encoder(features)
        weights = valid.to(tokens.dtype)[..., None]
        mean = (tokens * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        return torch.cat([tokens[:, 0], mean], dim=-1)

    def check_condition(self, condition: torch.Tensor, batch: int) -> torch.Tensor:
        """`condition` if it is (batch, 9); ValueError naming its shape otherwise."""
        if tuple(condition.shape) != (batch, CONDITION_DIM):
            raise ValueError(f"condition has shape {tuple(condition.shape)}, expected "
                             f"({batch}, {CONDITION_DIM}) (condition_tensor)")
        return condition

    @staticmethod
    def noise(shape: Any, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
        """N(0, I) of `shape`, drawn on CPU from `generator`, in `like`'s dtype and device."""
        return torch.randn(tuple(shape), generator=generator).to(like.device, like.dtype)

    def spec(self) -> dict[str, Any]:
        """The vector planners' spec plus the condition's layout."""
        spec = super().spec()
        spec["conditions"] = {
            "condition": {"shape": [CONDITION_DIM], "dtype": "float32",
                          "fields": [f"mode_{mode.name.lower()}" for mode in DrivingMode]
                          + [f"{name} [{unit}]"
                             for name, unit in zip(THETA_FIELDS, THETA_UNITS, strict=True)],
                          "theta_range": [list(bounds) for bounds in THETA_RANGE],
                          "theta_normalisation": "2 (theta - low) / (high - low) - 1"}}
        return spec


class PstlModel(PstlSceneModel):
    """pSTL's conditioned DDPM policy (module docstring), built from a `PstlConfig`."""

    config_class = PstlConfig
    config: PstlConfig
    default_lr = 3e-4  # pSTL's Adam learning rate

    def __init__(self, config: PstlConfig | None = None):
        super().__init__(config)
        c = self.config
        self.time_dim, self.sampling_steps, self.action_space = c.time_dim, c.sampling_steps, c.action_space
        self.schedule = pstl_schedule()  # float64, CPU; a fixed formula, not a buffer
        layers: list[nn.Module] = []
        width = 2 * c.d_model + 2 * c.num_poses + c.time_dim + CONDITION_DIM
        for _ in range(c.hidden_layers):
            layers += [nn.Linear(width, c.hidden_dim), nn.ReLU()]
            width = c.hidden_dim
        self.denoiser = nn.Sequential(*layers, nn.Linear(width, 2 * c.num_poses))
        self.refiner = RefineNet(2 * c.d_model, c.refine_hidden, c.num_poses) if c.refine_hidden else None

    def denoise(self, scene: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, condition: torch.Tensor
                ) -> torch.Tensor:
        """Predicted ε (N, T, 2) of noisy normalised xy x_t (N, T, 2) at timesteps t (N,), given the scene
        feature (N, 2 d_model) and condition (N, 9)."""
        inputs = [scene, x_t.flatten(1), sinusoidal_embedding(t, self.time_dim).to(x_t.dtype), condition]
        return self.denoiser(torch.cat(inputs, dim=-1)).view_as(x_t) + x_t

    def loss(self, features: DriveFeatures, plan: torch.Tensor | PstlTarget, condition: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, dict[str, float]]:
        """ε-MSE on the normalised plan xy at t ~ U{1 .. 99}. `plan` (B, 8, 3) with `condition` (B, 9), or a
        PstlTarget holding both (what a training loop passes as its targets). In training mode a
        `relabel_fraction` of the conditions is relaxed first (`relax_conditions`), and a
        `free_v_min_fraction` has its v_min freed (`free_v_min`)."""
        scene, plan, condition = self.loss_inputs(features, plan, condition)
        if self.training:
            condition = relax_conditions(condition, self.config.relabel_fraction,
                                         relax_v_max=self.config.relabel_v_max)
            condition = free_v_min(condition, self.config.free_v_min_fraction)
        x0 = self.encode_plan(plan.to(scene.dtype), current_speed(features).to(scene.dtype))
        t = sample_timesteps(plan.shape[0], plan.device)
        noise = torch.randn_like(x0)
        eps = self.denoise(scene, q_sample(x0, noise, t, self.schedule), t, condition)
        mse = (eps - noise).pow(2).mean()
        return mse, {"eps_mse": float(mse.detach())}

    @torch.no_grad()
    def sample(self, features: DriveFeatures, condition: torch.Tensor, generator: torch.Generator | None = None,
               sampler: Literal["ddpm", "ddim"] = "ddpm", steps: int | None = None, num_samples: int = 1,
               guide: Guide | None = None) -> torch.Tensor:
        """(B, S, 8, 3) plans, S = `num_samples` per scene, conditioned on `condition` (B, 9).

        sampler "ddpm": pSTL's 99 ancestral steps (`steps` None or 99); "ddim": `steps` (default
        `sampling_steps`, at most 10) deterministic steps. All noise is drawn on CPU from `generator` (the global
        generator when None), so a seeded generator gives the same plans.

        `guide` (B S rows: scene b's samples are rows b S .. b S + S - 1): with `settings.iterations` > 0, on
        its last `settings.last_steps` steps the step's mean (DDPM posterior mean, DDIM update) is moved by
        `guidance.guided_mean`, Adam on the normalised sample (waypoints or controls) through the decoded
        plan's smooth robustness; with `settings.refine_rounds` > 0, RefineNet (`refine`) corrects the samples
        still below 0 (ValueError if this model has none).
        """
        refine = guide is not None and guide.settings.refine_rounds > 0
        if refine and self.refiner is None:
            raise ValueError("refine_rounds > 0, but this model has no RefineNet (train one with "
                             "`diffplan train-refinenet`)")
        chain = self.chain(features, condition, generator, sampler, steps, num_samples, guide,
                           candidates=refine)
        u = chain.candidates[-1]
        if guide is not None and self.refiner is not None and refine:
            objective = guide.objective

            def score(z: torch.Tensor) -> torch.Tensor:
                return objective(self.decode_xy(z, chain.v0)).to(z.dtype)

            u, rho = best_candidates(chain.candidates, torch.stack([score(c) for c in chain.candidates]))
            u = refine_rounds(self.refiner, chain.scene, chain.condition, u, rho, score,
                              guide.settings.refine_rounds, num_samples)
        b = features.status.shape[0]
        return self.decode(u, chain.v0).view(b, num_samples, self.num_poses, 3)

    def chain(self, features: DriveFeatures, condition: torch.Tensor, generator: torch.Generator | None,
              sampler: str, steps: int | None, num_samples: int, guide: Guide | None, candidates: bool = True
              ) -> SampleChain:
        """The denoising chain behind `sample` (its docstring), keeping what RefineNet needs; with
        `candidates` False only the final sample is kept (K = 1)."""
        timesteps = self.timesteps(sampler, steps)
        if num_samples < 1:
            raise ValueError(f"need num_samples >= 1, got {num_samples}")
        guided = guide.settings.guided_steps(len(timesteps)) if guide and guide.settings.iterations else 0
        scene = self.scene_feature(features)
        b, device = scene.shape[0], scene.device
        condition = self.check_condition(condition, b).to(scene)
        n = b * num_samples
        scene, condition = scene.repeat_interleave(num_samples, 0), condition.repeat_interleave(num_samples, 0)
        v0 = current_speed(features).to(scene).repeat_interleave(num_samples, 0)
        x = self.noise((n, self.num_poses, 2), generator, scene)
        kept = []
        for i, t in enumerate(timesteps):
            eps = self.denoise(scene, x, torch.full((n,), t, device=device, dtype=torch.int64), condition)
            if candidates and i + REFINE_CANDIDATES >= len(timesteps) and i + 1 < len(timesteps):
                kept.append(predict_x0(x, eps, t, self.schedule).clamp(-1.0, 1.0))
            if sampler == "ddpm":
                mean, sigma = ancestral_mean(x, eps, t, self.schedule)
            else:
                mean, sigma = ddim_step(x, eps, t, timesteps[i + 1] if i + 1 < len(timesteps) else CLEAN,
                                        self.schedule), 0.0
            if guide is not None and i >= len(timesteps) - guided:
                mean = guided_mean(mean, lambda z: self.decode_xy(z, v0), guide)
            x = mean + sigma * self.noise(x.shape, generator, x) if sigma > 0.0 else mean
        kept.append(x.clamp(-1.0, 1.0))
        return SampleChain(scene, condition, v0, torch.stack(kept))

    def encode_plan(self, plan: torch.Tensor, v0: torch.Tensor) -> torch.Tensor:
        """(B, 8, 3) plans -> (B, 8, 2) normalised samples: xy, or controls (clipped to [-1, 1]) from speeds
        v0 (B,) [m/s]."""
        if self.action_space == "controls":
            return plan_to_controls(plan, v0).clamp(-1.0, 1.0)
        return normalise_xy(plan[..., :2])

    def decode(self, x: torch.Tensor, v0: torch.Tensor) -> torch.Tensor:
        """(N, 8, 2) normalised samples -> (N, 8, 3) plans [m, m, rad] (controls rolled out from v0 (N,))."""
        if self.action_space == "controls":
            return controls_to_plan(x, v0)
        xy = denormalise_xy(x)
        return torch.cat([xy, headings_from_xy(xy)[..., None]], dim=-1)

    def decode_xy(self, x: torch.Tensor, v0: torch.Tensor) -> torch.Tensor:
        """(N, 8, 2) normalised samples -> (N, 8, 2) plan xy [m], differentiably: what STL objectives read
        (`decode` without the waypoint model's headings)."""
        if self.action_space == "controls":
            return controls_to_plan(x, v0.to(x))[..., :2]
        return denormalise_xy(x)

    def timesteps(self, sampler: str, steps: int | None) -> list[int]:
        """The sampler's timesteps; ValueError naming a bad sampler or step count."""
        if sampler == "ddpm":
            timesteps = ancestral_timesteps(self.schedule)
            if steps not in (None, len(timesteps)):
                raise ValueError(f"the ancestral sampler takes {len(timesteps)} steps, got steps={steps}")
            return timesteps
        if sampler == "ddim":
            return ddim_timesteps(self.sampling_steps if steps is None else steps, self.schedule.num_steps)
        raise ValueError(f"sampler {sampler!r}: expected 'ddpm' or 'ddim'")

    def forward(self, features: DriveFeatures, generator: torch.Generator | None = None,
                condition: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 8, 3): one DDIM sample of `sampling_steps` steps; `condition` None: KEEP with DEFAULT_THETA."""
        if condition is None:
            condition = condition_tensor([STLCondition.default()] * features.status.shape[0])
        return self.sample(features, condition, generator, sampler="ddim")[:, 0]
