"""pSTL's conditional VAE baseline (Table I/II "VAE") on the same scene encoder and condition as `PstlModel`.

pSTL (`nusc_model.py`, `--vae`) encodes the expert controls into a Gaussian code, decodes [scene feature,
z, mode, θ] with the policy MLP and trains on MSE plus a KL term; here the sample is the plan xy, normalised
to [-1, 1] like the DDPM's (`normalise_xy`), and the encoder also sees the scene and condition (a CVAE).

    scene feature  the SceneEncoder's ego token and the masked mean of all valid tokens, (B, 2 d_model)
    condition      mode one-hot (4) and θ normalised to [-1, 1] (5): `condition.condition_tensor`
    q(z | ...)     MLP([scene, condition, x0 (16)]) -> mean, log-variance (latent_dim each)
    p(x0 | ...)    tanh(MLP([scene, condition, z])) -> normalised xy (16); prior z ~ N(0, I)
    plan           (8, 3) ego frame: x, y [m] from the decoder, headings from the xy differences

Training: MSE of the reconstruction on the normalised xy + kl_weight · KL(q || N(0, I)) (summed over the
latent, averaged over the batch). Sampling: one decoder pass per z ~ N(0, I); there is no chain to guide.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from planners.learned.config import ModelConfigError, check_positive
from planners.learned.vector import DriveFeatures, VectorModelConfig, denormalise_xy, normalise_xy
from planners.pstl.condition import CONDITION_DIM, STLCondition, condition_tensor
from planners.pstl.guidance import Guide
from planners.pstl.model import PstlSceneModel, PstlTarget, headings_from_xy

SAMPLER = "vae"  # the only sampler: one decoder pass
LOGVAR_RANGE = (-20.0, 10.0)  # the encoder's log-variance is clamped here (std 4.5e-5 to 148)


@dataclass(frozen=True)
class PstlVaeConfig(VectorModelConfig):
    """The VAE's hyperparameters beyond the encoder's (`VectorModelConfig`): the latent width `latent_dim`
    (pSTL's `--vae_dim` 64), encoder and decoder MLPs of `hidden_layers` layers of width `hidden_dim` (pSTL:
    2 x 256), and the KL weight β `kl_weight`.

    β = 0.01, near pSTL's (its KL weight 1.0 is on the mean over its 64 latent dimensions: 1/64 on the sum).
    With the MSE averaged over the 16 normalised coordinates, the ELBO of a Gaussian decoder of std σ is, up
    to a factor, MSE + (σ² / 8) KL: β = 0.01 is σ ≈ 0.28 normalised units (≈ 8 m in x, 6.5 m in y), so z
    keeps plan differences of that size (which path), not metre-level detail. At β = 1e-3 z carries the
    whole plan: on a toy where the condition fixes the plan, prior samples still ignore v_max after 2000
    steps, while β = 0.01 follows it within 600 (tests/planners/test_pstl_vae.py)."""

    latent_dim: int = 64
    hidden_dim: int = 256
    hidden_layers: int = 2
    kl_weight: float = 0.01

    def validate(self) -> PstlVaeConfig:
        """Self, or ModelConfigError naming the first bad field."""
        super().validate()
        check_positive(self, "latent_dim", "hidden_dim", "hidden_layers")
        if self.kl_weight < 0.0:
            raise ModelConfigError(f"kl_weight={self.kl_weight}: must be 0 or more")
        return self


def relu_mlp(in_dim: int, hidden_dim: int, layers: int, out_dim: int) -> nn.Sequential:
    """`layers` x (Linear, ReLU) of width `hidden_dim`, then Linear to `out_dim` (pSTL's build_relu_nn)."""
    modules: list[nn.Module] = []
    for _ in range(layers):
        modules += [nn.Linear(in_dim, hidden_dim), nn.ReLU()]
        in_dim = hidden_dim
    return nn.Sequential(*modules, nn.Linear(in_dim, out_dim))


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) of (..., Z) codes -> (...): ½ Σ (μ² + σ² − 1 − log σ²)."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=-1)


class PstlVaeModel(PstlSceneModel):
    """pSTL's conditional VAE baseline (module docstring), built from a `PstlVaeConfig`."""

    config_class = PstlVaeConfig
    config: PstlVaeConfig
    default_lr = 3e-4  # pSTL's Adam learning rate, as for the DDPM

    def __init__(self, config: PstlVaeConfig | None = None):
        super().__init__(config)
        c = self.config
        self.latent_dim, self.kl_weight = c.latent_dim, c.kl_weight
        context = 2 * c.d_model + CONDITION_DIM
        self.posterior = relu_mlp(context + 2 * c.num_poses, c.hidden_dim, c.hidden_layers, 2 * c.latent_dim)
        self.decoder = relu_mlp(context + c.latent_dim, c.hidden_dim, c.hidden_layers, 2 * c.num_poses)

    def encode(self, scene: torch.Tensor, condition: torch.Tensor, x0: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z | scene (N, 2 d_model), condition (N, 9), normalised xy x0 (N, T, 2)): mean and log-variance,
        each (N, latent_dim); the log-variance is clamped to LOGVAR_RANGE."""
        mean, logvar = self.posterior(torch.cat([scene, condition, x0.flatten(1)], dim=-1)).chunk(2, dim=-1)
        return mean, logvar.clamp(*LOGVAR_RANGE)

    def decode(self, scene: torch.Tensor, condition: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """p(x0 | scene (N, 2 d_model), condition (N, 9), z (N, latent_dim)): normalised xy (N, T, 2) in
        [-1, 1] (tanh)."""
        out = self.decoder(torch.cat([scene, condition, z], dim=-1))
        return torch.tanh(out).view(z.shape[0], self.num_poses, 2)

    def timesteps(self, sampler: str | None, steps: int | None) -> list[int]:
        """[0]: the one decoder pass (`PstlModel.timesteps`' interface); ValueError naming a bad sampler or
        step count."""
        if sampler not in (None, SAMPLER):
            raise ValueError(f"sampler {sampler!r}: the VAE has a single decoder pass, "
                             f"expected None or {SAMPLER!r}")
        if steps not in (None, 1):
            raise ValueError(f"steps={steps}: the VAE has a single decoder pass, expected None or 1")
        return [0]

    def loss(self, features: DriveFeatures, plan: torch.Tensor | PstlTarget,
             condition: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """MSE of the reconstructed normalised xy + kl_weight · KL. `plan` (B, 8, 3) with `condition` (B, 9),
        or a PstlTarget holding both (as for `PstlModel.loss`); diagnostics "recon" and "kl" (unweighted)."""
        scene, plan, condition = self.loss_inputs(features, plan, condition)
        x0 = normalise_xy(plan[..., :2].to(scene.dtype))
        mean, logvar = self.encode(scene, condition, x0)
        z = mean + (0.5 * logvar).exp() * torch.randn_like(mean)
        recon = (self.decode(scene, condition, z) - x0).pow(2).mean()
        kl = gaussian_kl(mean, logvar).mean()
        return recon + self.kl_weight * kl, {"recon": float(recon.detach()), "kl": float(kl.detach())}

    @torch.no_grad()
    def sample(self, features: DriveFeatures, condition: torch.Tensor,
               generator: torch.Generator | None = None, sampler: Literal["vae"] | None = "vae",
               steps: int | None = None, num_samples: int = 1, guide: Guide | None = None
               ) -> torch.Tensor:
        """(B, S, 8, 3) plans, S = `num_samples` per scene, conditioned on `condition` (B, 9): one decoder
        pass per z ~ N(0, I), drawn on CPU from `generator` (the global generator when None).

        `sampler` (None or "vae") and `steps` (None or 1) are there for `PstlModel.sample`'s
        signature; a `guide` raises ValueError, as there is no denoising chain to guide."""
        self.timesteps(sampler, steps)
        if guide is not None:
            raise ValueError("guide is unsupported: a VAE has no denoising chain to guide")
        if num_samples < 1:
            raise ValueError(f"need num_samples >= 1, got {num_samples}")
        scene = self.scene_feature(features)
        b = scene.shape[0]
        condition = self.check_condition(condition, b).to(scene)
        scene = scene.repeat_interleave(num_samples, 0)
        condition = condition.repeat_interleave(num_samples, 0)
        z = self.noise((b * num_samples, self.latent_dim), generator, scene)
        xy = denormalise_xy(self.decode(scene, condition, z).clamp(-1.0, 1.0))
        plans = torch.cat([xy, headings_from_xy(xy)[..., None]], dim=-1)
        return plans.view(b, num_samples, self.num_poses, 3)

    def forward(self, features: DriveFeatures, generator: torch.Generator | None = None,
                condition: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 8, 3): one sample; `condition` None: KEEP with DEFAULT_THETA."""
        if condition is None:
            condition = condition_tensor([STLCondition.default()] * features.status.shape[0])
        return self.sample(features, condition, generator)[:, 0]
