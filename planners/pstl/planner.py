"""pSTL planners: the STL-conditioned diffusion policy and its baselines as registered driving planners.

    pstl       PstlModel; DDIM in `sampling_steps` (<= 10) steps; with an objective, guided on the last steps
               and/or corrected by its RefineNet (`guidance.refine_rounds`)
    pstl-ctg   the same model and weights, sampled as CTG does: 99 ancestral steps, guided at every step
    pstl-vae   the conditional VAE baseline on the same encoder (`planners.pstl.vae`)

A planner samples `num_samples` plans under its `condition` (a mode and θ; default KEEP with DEFAULT_THETA)
and returns them all as candidates. STL lives outside `planners`, so the two things that need it come in as
callables, set by whoever evaluates or deploys the planner (`eval.pstl` builds both from the observation):

    objective_builder(observation, condition) -> Objective    smooth STL robustness ρ̃(xy) that guidance
                                                              (`guidance`, set by `configure`) follows
    scorer(observation, condition, plans (S, 8, 3) [m, m, rad]) -> (S,)  the plan is the best-scored sample

Without a scorer the plan is the first sample and every score is 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from planners.learned.base import LearnedDrivePlanner
from planners.pstl.condition import STLCondition, condition_tensor
from planners.pstl.guidance import GuidanceSettings, Guide, ObjectiveBuilder, batched_objective
from planners.pstl.model import PstlModel
from planners.pstl.vae import PstlVaeModel
from planners.registry import register_planner
from scenes.drive import DriveObservation


@dataclass(frozen=True)
class SamplingSettings:
    """How plans are drawn: `sampler` "ddim" (`steps` <= 10, None: the model's sampling_steps) or "ddpm"
    (pSTL's 99 ancestral steps), "vae" for the VAE (one decoder pass); `num_samples` candidates per call."""

    sampler: str = "ddim"
    steps: int | None = None
    num_samples: int = 16

    def validate(self) -> SamplingSettings:
        """Self, or ValueError naming the bad field."""
        if self.sampler not in ("ddpm", "ddim", "vae"):
            raise ValueError(f"sampler {self.sampler!r}: expected 'ddpm', 'ddim' or 'vae'")
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be positive, got {self.num_samples}")
        return self


CandidateScorer = Callable[[DriveObservation, STLCondition, np.ndarray], np.ndarray]


@register_planner("pstl")
class PstlPlanner(LearnedDrivePlanner):
    """pSTL's policy (module docstring); train it with `diffplan train pstl` on `datagen drive` data."""

    model_class: ClassVar[type[Any]] = PstlModel
    default_sampling: ClassVar[SamplingSettings] = SamplingSettings()
    default_guidance: ClassVar[GuidanceSettings] = GuidanceSettings()
    guidable: ClassVar[bool] = True  # whether a guide can act on its sampling (not the VAE's)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.condition = STLCondition.default()
        self.sampling = self.default_sampling
        self.guidance = self.default_guidance
        self.objective_builder: ObjectiveBuilder | None = None
        self.scorer: CandidateScorer | None = None
        self.last_network_steps: int | None = None

    @property
    def sampler_model(self) -> Any:
        """The model, as the PstlModel / PstlVaeModel whose `sample` and `timesteps` the planner calls."""
        return self.model

    @property
    def refinable(self) -> bool:
        """Whether its model has a RefineNet (`guidance.refine_rounds` > 0 needs one; the VAE has none)."""
        return getattr(self.model, "refiner", None) is not None

    @property
    def multimodal(self) -> bool:
        """Always: every call samples `num_samples` candidates."""
        return True

    def configure(self, condition: STLCondition | None = None, sampling: SamplingSettings | None = None,
                  guidance: GuidanceSettings | None = None) -> PstlPlanner:
        """Set any of the condition, sampling and guidance (validated); returns self."""
        if condition is not None:
            self.condition = condition.validate()
        if sampling is not None:
            self.sampling = sampling.validate()
            self.sampler_model.timesteps(sampling.sampler, sampling.steps)  # a bad step count fails here
        if guidance is not None:
            self.guidance = guidance.validate()
        return self

    def guide_for(self, observations: Sequence[DriveObservation]) -> Guide | None:
        """The guide over a batch's samples (None without an objective builder, or for the VAE)."""
        if self.objective_builder is None or not self.guidable:
            return None
        objectives = [self.objective_builder(obs, self.condition) for obs in observations]
        return Guide(batched_objective(objectives, self.sampling.num_samples), self.guidance)

    def propose(self, features: Any, observations: Sequence[DriveObservation]
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(best (B, 8, 3), candidates (B, S, 8, 3), scores (B, S)) under `condition`."""
        s = self.sampling
        guide = self.guide_for(observations)
        condition = condition_tensor([self.condition] * len(observations))
        plans = self.sampler_model.sample(features, condition, self._generator, sampler=s.sampler, steps=s.steps,
                                  num_samples=s.num_samples, guide=guide)
        self.last_network_steps = len(self.sampler_model.timesteps(s.sampler, s.steps))
        scores = torch.zeros(plans.shape[:2], dtype=torch.float64)
        if self.scorer is not None:
            poses = plans.to(torch.float64).cpu().numpy()
            scores = torch.from_numpy(np.stack([np.asarray(self.scorer(obs, self.condition, p), np.float64)
                                                for obs, p in zip(observations, poses, strict=True)]))
        best = plans[torch.arange(plans.shape[0]), scores.argmax(dim=1)]
        return best, plans, scores


@register_planner("pstl-ctg")
class PstlCtgPlanner(PstlPlanner):
    """CTG (Zhong et al. 2023) as pSTL's baseline: pSTL's DDPM sampled with 99 ancestral steps and guided at
    every step (3 iterations, lr 0.01). It trains, and loads weights, exactly as `pstl` does."""

    default_sampling = SamplingSettings(sampler="ddpm")
    default_guidance = GuidanceSettings(iterations=3, lr=0.01, last_steps=None)


@register_planner("pstl-vae")
class PstlVaePlanner(PstlPlanner):
    """pSTL's conditional VAE baseline (`planners.pstl.vae`): one decoder pass per sample; a guide is ignored
    (there is no denoising chain to guide)."""

    model_class = PstlVaeModel
    default_sampling = SamplingSettings(sampler="vae")
    guidable = False
