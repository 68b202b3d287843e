"""Trajectory anchors for anchor-based diffusion planners (DiffusionDrive): k-means over expert futures.

DiffusionDrive clusters the navtrain futures, 8 (x, y) waypoints at 0.5 s in the rear-axle frame flattened
to 16-D, into 20 anchors with scikit-learn's KMeans; its script was never released. This one runs on any
diffplan dataset.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans

from scenes import NUM_PLAN_POSES
from scenes.errors import ConfigError
from scenes.store import DriveDataset


@dataclass(frozen=True, eq=False)
class Anchors:
    """K anchors and how they were made.

    Attributes:
        points: (K, 8, 2) x, y [m] in the ego rear-axle frame, at 0.5 s steps.
        counts: (K,) training futures assigned to each anchor.
        inertia: k-means objective, the summed squared distance [m^2] to the nearest anchor.
    """

    points: np.ndarray
    counts: np.ndarray
    inertia: float


def expert_futures(dataset: DriveDataset, indices: list[int] | None = None) -> np.ndarray:
    """(N, 8, 2) the expert's future waypoints [m] of each scene, in its ego frame (privileged)."""
    rows = range(len(dataset)) if indices is None else indices
    return np.stack([dataset[i].expert_plan().poses[:, :2] for i in rows])


def fit_anchors(futures: np.ndarray, k: int = 20, seed: int = 0, n_init: int = 10) -> Anchors:
    """k-means (scikit-learn, k-means++ init, `n_init` restarts) on futures (N, 8, 2) flattened to 16-D.

    Anchors are sorted by their final x, then y, so the order is stable across runs.
    """
    futures = np.asarray(futures, dtype=np.float64)
    if futures.ndim != 3 or futures.shape[1:] != (NUM_PLAN_POSES, 2):
        raise ValueError(f"futures must be (N, {NUM_PLAN_POSES}, 2), got {futures.shape}")
    if not 1 <= k <= len(futures):
        raise ConfigError("k", f"{{field}} must be between 1 and the number of futures ({len(futures)}), got {k}")
    flat = futures.reshape(len(futures), -1)
    model = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(flat)
    centers = model.cluster_centers_.reshape(k, NUM_PLAN_POSES, 2)
    counts = np.bincount(model.labels_, minlength=k)
    order = np.lexsort((centers[:, -1, 1], centers[:, -1, 0]))
    return Anchors(centers[order], counts[order], float(model.inertia_))


def save_anchors(anchors: Anchors, path: Path) -> Path:
    """Write the (K, 8, 2) float32 array as .npy, atomically (no pickle)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as handle:
        np.save(handle, anchors.points.astype(np.float32), allow_pickle=False)
    os.replace(tmp, path)
    return path


def plot_anchors(anchors: Anchors, path: Path) -> Path:
    """A PNG of the anchors in the ego frame (x forward, up), line width by cluster size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 7), dpi=110)
    widths = 0.8 + 3.0 * anchors.counts / max(anchors.counts.max(), 1)
    for points, width in zip(anchors.points, widths):
        ax.plot(-points[:, 1], points[:, 0], "o-", ms=2.5, lw=width, alpha=0.8)
    ax.plot(0, 0, marker="s", color="#d62728", ms=9)
    ax.set_xlabel("-y [m] (right)")
    ax.set_ylabel("x [m] (forward)")
    ax.set_aspect("equal")
    ax.set_title(f"{len(anchors.points)} anchors (line width: cluster size)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
