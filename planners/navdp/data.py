"""NavDP features (observation only) and targets (privileged), and the torch Dataset over a nav dataset.

Action representation (NavDP): 24 robot-frame steps (dx, dy, dyaw), the consecutive differences of the
waypoints with the start at the origin, times NAVDP_ACTION_SCALE (4), clipped to [-1, 1]; a step is therefore
at most 0.25 m per axis and 0.25 rad. `deltas_to_poses` inverts it: poses = cumsum(actions / 4).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple, cast

import numpy as np
import torch
from torch.utils.data import Dataset

from scenes.geometry import wrap_angle
from scenes.nav import NAVDP_ACTION_SCALE, NavObservation, NavTrainingSample

GOAL_X_RANGE = (0.0, 10.0)  # [m] NavDP clips point goals to x in [0, 10], y in [-10, 10]
GOAL_Y_RANGE = (-10.0, 10.0)


class NavDPFeatures(NamedTuple):
    """depth: (1, S, S) float32 [m], 0 = invalid; goal: (3,) float32 clipped x [m], y [m], yaw [rad]."""

    depth: torch.Tensor
    goal: torch.Tensor


class NavDPTargets(NamedTuple):
    """actions, augmented_actions: (24, 3) float32 scaled deltas in [-1, 1]; critic_target,
    augmented_critic_target: () float32 NavDP values of the expert's future and of its rotated negative."""

    actions: torch.Tensor
    augmented_actions: torch.Tensor
    critic_target: torch.Tensor
    augmented_critic_target: torch.Tensor


def resize_depth(depth: np.ndarray, size: int) -> np.ndarray:
    """(H, W) depth [m] -> (size, size) by nearest-neighbour sampling at pixel centres.

    Nearest neighbour keeps invalid pixels (0) from blending into valid depths, as averaging would; a
    non-square image is stretched to the square (the camera's intrinsics are fixed per model).
    """
    height, width = depth.shape
    rows = np.minimum(((np.arange(size) + 0.5) * height / size).astype(np.int64), height - 1)
    cols = np.minimum(((np.arange(size) + 0.5) * width / size).astype(np.int64), width - 1)
    return depth[rows[:, None], cols[None, :]]


def clip_goal(goal: np.ndarray) -> np.ndarray:
    """(3,) robot-frame point goal with x, y clipped to NavDP's ranges; yaw unchanged."""
    clipped = np.array(goal, dtype=np.float32, copy=True)
    clipped[0] = np.clip(clipped[0], *GOAL_X_RANGE)
    clipped[1] = np.clip(clipped[1], *GOAL_Y_RANGE)
    return clipped


def poses_to_deltas(poses: np.ndarray) -> np.ndarray:
    """(T, 3) robot-frame waypoints -> (T, 3) NavDP labels: scaled consecutive differences, clipped to [-1, 1].

    The yaw difference is wrapped to [-pi, pi) before scaling, so a heading crossing +-pi is a small step.
    """
    previous = np.concatenate([np.zeros((1, 3)), poses[:-1]], axis=0)
    steps = poses - previous
    steps[:, 2] = wrap_angle(steps[:, 2])
    return np.clip(steps * NAVDP_ACTION_SCALE, -1.0, 1.0).astype(np.float32)


def deltas_to_poses(actions: torch.Tensor) -> torch.Tensor:
    """(..., T, 3) scaled deltas -> (..., T, 3) robot-frame poses cumsum(actions / 4); yaw not wrapped."""
    return torch.cumsum(actions / NAVDP_ACTION_SCALE, dim=-2)


class NavDPFeatureBuilder:
    """NavObservation -> NavDPFeatures at `image_size` px (picklable)."""

    def __init__(self, image_size: int):
        self.image_size = image_size

    def __call__(self, obs: NavObservation) -> NavDPFeatures:
        """Resized depth (1, S, S) [m] and the clipped goal (3,) of `obs`."""
        depth = resize_depth(np.asarray(obs.depth, dtype=np.float32), self.image_size)
        return NavDPFeatures(torch.from_numpy(np.ascontiguousarray(depth))[None],
                             torch.from_numpy(clip_goal(obs.goal)))


def build_targets(sample: NavTrainingSample) -> NavDPTargets:
    """The privileged NavDP labels of one demonstration frame."""
    return NavDPTargets(
        torch.from_numpy(poses_to_deltas(np.asarray(sample.future, dtype=np.float64))),
        torch.from_numpy(poses_to_deltas(np.asarray(sample.augmented_future, dtype=np.float64))),
        torch.tensor(sample.critic_target, dtype=torch.float32),
        torch.tensor(sample.augmented_critic_target, dtype=torch.float32),
    )


class NavDPTrainingSet(Dataset):
    """(NavDPFeatures, NavDPTargets) pairs over a sequence of NavTrainingSamples (e.g. a NavDataset)."""

    def __init__(self, samples: Sequence[NavTrainingSample], image_size: int):
        self.samples = samples
        self.features = NavDPFeatureBuilder(image_size)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[NavDPFeatures, NavDPTargets]:
        sample = self.samples[index]
        return self.features(sample.observation), build_targets(sample)


def open_nav_samples(data: Any, split: str | None) -> Sequence[NavTrainingSample]:
    """Every frame of nav dataset folder `data` (scenes.store.nav), or an in-memory sequence of samples as given.

    Nav datasets have no splits (evaluation uses separate PointNav episodes): `split` must be None or "train",
    the CLI's default; anything else is a ConfigError naming `split`.
    """
    if not isinstance(data, str | Path):
        return data
    from scenes.errors import ConfigError
    from scenes.store.nav import NavDataset

    if split not in (None, "train"):
        raise ConfigError("split", f"{data}: nav datasets have no splits; {{field}} must be 'train' (all frames), "
                                   f"not {split!r}")
    return cast(Sequence[NavTrainingSample], NavDataset.open(data))
