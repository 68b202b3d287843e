"""The contract between learned models, training and planning.

A `PlanningModel` is a plain `nn.Module` (it never imports Lightning) that also says how to build its
features (from the observation only) and targets (privileged), and how to score itself (`loss`).
`LearnedPlanner[Observation, Privileged]` wraps one as a `Planner` of either domain (model, seeded generator,
batched features); `LearnedDrivePlanner` is the driving one: features -> forward -> a validated ego-frame
`Plan` (navigation: planners.navdp.NavDPPlanner). Normalisers are registered buffers, so they travel with
the weights in the checkpoint.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar, cast

import numpy as np
import torch
from torch import nn
from torch.utils.data import default_collate

from planners.base import Domain, ObservationT, Planner, PrivilegedT
from planners.drive_base import DRIVE_PLAN, DrivePrivileged
from planners.learned.config import ModelConfig
from planners.plan import Plan
from scenes import NUM_PLAN_POSES, PLAN_DT, DriveObservation, DriveScene, Frame, Trajectory
from scenes.geometry import wrap_angle


class Normaliser(nn.Module):
    """x -> (x - mean) / std over the trailing `shape`; identity until `fit`. Buffers: mean, std."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, shape: Sequence[int]):
        super().__init__()
        self.register_buffer("mean", torch.zeros(*shape))
        self.register_buffer("std", torch.ones(*shape))

    @torch.no_grad()
    def fit(self, samples: torch.Tensor) -> None:
        """Set mean and std from (N, *shape) samples; constant entries keep std 1."""
        samples = samples.to(torch.float64)
        std = samples.std(0, unbiased=False) if len(samples) > 1 else torch.ones_like(samples[0])
        self.mean.copy_(samples.mean(0))
        self.std.copy_(torch.where(std < 1e-6, torch.ones_like(std), std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., *shape) -> normalised (x - mean) / std."""
        return (x - self.mean) / self.std

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """Undo `forward`: z * std + mean."""
        return z * self.std + self.mean


class ExpertPlanTarget:
    """(DriveScene, DriveObservation) -> (8, 3) float32 expert plan: x, y [m], heading [rad], ego frame."""

    def __init__(self, num_poses: int = NUM_PLAN_POSES, dt: float = PLAN_DT):
        self.num_poses, self.dt = num_poses, dt

    def __call__(self, scene: DriveScene, obs: DriveObservation) -> torch.Tensor:
        """The expert plan (num_poses, 3) float32 of `scene` from now."""
        return torch.from_numpy(scene.expert_plan(self.num_poses, self.dt).poses.astype(np.float32))


class PlanningModel(nn.Module, ABC):
    """A trainable planning model, built from its hyperparameters: a `config_class` instance, kept in `config`
    (a checkpoint stores it). Subclasses take `config: <their config class> | None` (None: the defaults)."""

    config_class: ClassVar[type[ModelConfig]]
    config: ModelConfig

    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        config = self.config_class() if config is None else config
        if type(config) is not self.config_class:
            raise TypeError(f"{type(self).__name__} is built from {self.config_class.__name__}, "
                            f"not {type(config).__name__}")
        self.config = config.validate()

    @abstractmethod
    def feature_builder(self) -> Callable[[Any], Any]:
        """A picklable callable: observation -> features (a tensor or NamedTuple of tensors), unbatched."""

    def target_builder(self) -> Callable[[DriveScene, DriveObservation], Any]:
        """A picklable callable: (scene, observation) -> targets, unbatched. Default: the expert plan."""
        return ExpertPlanTarget()

    @abstractmethod
    def spec(self) -> dict[str, Any]:
        """JSON description of features and targets (names, shapes, dtypes, units), kept in checkpoints."""

    @abstractmethod
    def forward(self, features: Any) -> torch.Tensor:
        """Batched features -> (B, 8, 3) plans: x, y [m], heading [rad] in the ego frame."""

    @abstractmethod
    def loss(self, features: Any, targets: Any) -> tuple[torch.Tensor, dict[str, float]]:
        """The training loss and scalar diagnostics for logging."""

    def fit_normalisers(self, batches: Iterable[tuple[Any, Any]]) -> None:
        """Set input/target normalisers from (features, targets) batches; default: nothing to fit."""

    def training_dataset(self, data: Any, split: str | None) -> Any:
        """A torch Dataset of (features, targets) pairs from dataset folder `data`; default: driving scenes."""
        from planners.learned.features import SceneWindowDataset

        return SceneWindowDataset(data, self.feature_builder(), self.target_builder(), split=split)

    def optimizer(self, lr: float, total_steps: int) -> tuple[torch.optim.Optimizer, Any]:
        """(optimiser, per-step LR scheduler or None); default: Adam at `lr`, constant (NAVSIM)."""
        return torch.optim.Adam(self.parameters(), lr=lr), None


class LearnedPlanner(Planner[ObservationT, PrivilegedT]):
    """Adapter: runs a `PlanningModel` on observations of one domain. Subclasses set `model_class`, `domain`
    and `plan_spec`, and implement `plan_batch` (batched: one forward pass); `plan` is a batch of one.

    The model is `model`, else one built from `config` (default: the model's defaults) with `overrides`, typed
    values of its fields, applied: `DiffusionDrivePlanner(d_model=64)`.

    Stochastic models (diffusion) draw their noise from a torch.Generator seeded with `seed` and restarted by
    `reset()` (and when `seed` is set), so the same seed and calls give the same plans.
    """

    model_class: ClassVar[type[PlanningModel]]

    def __init__(self, model: PlanningModel | None = None, seed: int = 0, *,
                 config: ModelConfig | None = None, **overrides: Any):
        if model is None:
            config = self.model_class.config_class() if config is None else config
            model = self.model_class(config.with_values(**overrides) if overrides else config)
        elif config is not None or overrides:
            raise TypeError(f"{type(self).__name__}: give a model or its config, not both")
        self.model = model
        self.model.eval()
        self._features = self.model.feature_builder()
        self.seed = seed

    def reset(self) -> None:
        """Restart the noise generator from `seed`."""
        self._generator = torch.Generator().manual_seed(self.seed)

    def plan(self, observation: ObservationT) -> Plan:
        """The plan of one observation (a batch of one)."""
        return self.plan_batch([observation])[0]

    @abstractmethod
    def plan_batch(self, observations: Sequence[ObservationT]) -> list[Plan]:
        """One plan per observation, from one batched forward pass."""

    def batched_features(self, observations: Sequence[ObservationT]) -> Any:
        """The observations' features, collated into a batch on the model's device."""
        device = next(self.model.parameters()).device
        features = default_collate([self._features(obs) for obs in observations])
        return features.to(device) if isinstance(features, torch.Tensor) else type(features)(
            *(f.to(device) for f in features))


class LearnedDrivePlanner(LearnedPlanner[DriveObservation, DrivePrivileged]):
    """A learned driving planner: features -> forward -> DRIVE_PLAN plans, one batched pass.

    A model with a `propose(features, generator=...)` method (multi-modal, stochastic) returns
    (best, candidates, scores); the plan then carries all candidates and their scores.
    """

    domain = Domain.DRIVING
    plan_spec = DRIVE_PLAN

    @torch.no_grad()
    def plan_batch(self, observations: Sequence[DriveObservation]) -> list[Plan]:
        """One validated DRIVE_PLAN plan per observation, from one forward pass."""
        if not observations:
            return []
        start = time.perf_counter()
        features = self.batched_features(observations)
        self.model.eval()
        candidates: np.ndarray | None = None
        scores: np.ndarray | None = None
        if not self.multimodal:
            poses = as_numpy(self.model(features))
        else:  # multi-modal models: (best (B, T, 3), candidates (B, K, T, 3), scores (B, K))
            best, modes, mode_scores = self.propose(features, observations)
            poses, candidates = as_numpy(best), as_numpy(modes)
            scores = mode_scores.to(torch.float64).cpu().numpy()
        latency = 1e3 * (time.perf_counter() - start) / len(observations)
        return [Plan(Trajectory(p, PLAN_DT, Frame.EGO), info={"latency_ms": latency},
                     candidates=None if candidates is None else candidates[i],
                     scores=None if scores is None else scores[i], spec=DRIVE_PLAN).validate()
                for i, p in enumerate(poses)]

    @property
    def multimodal(self) -> bool:
        """Whether plans come from `propose` (best, candidates, scores): models with a `propose` method."""
        return getattr(self.model, "propose", None) is not None

    def propose(self, features: Any, observations: Sequence[DriveObservation]
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The model's (best, candidates, scores) for `features` of `observations`; planners that keep state
        between calls (warm starts) override it."""
        propose = cast(Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]], self.model.propose)
        return propose(features, generator=self._generator)


def as_numpy(poses: torch.Tensor) -> np.ndarray:
    """(..., 3) poses as float64 numpy with headings wrapped to [-pi, pi)."""
    out = poses.to(torch.float64).cpu().numpy()
    out[..., 2] = wrap_angle(out[..., 2])
    return out
