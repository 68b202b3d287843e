"""Ego progress (EP), as NAVSIM's `_calculate_progress` and the pairwise normalisation of `_aggregate_scores`."""

from __future__ import annotations

import numpy as np
import shapely

from planners.pdm.scoring.areas import CENTER, SceneGeometry
from planners.pdm.scoring.config import ScorerConfig


def raw_progress(geometry: SceneGeometry, coords: np.ndarray) -> np.ndarray:
    """(K,) [m] box-centre progress along the route centreline from the first to the last state, clipped >= 0.

    coords: `ego_coords` (K, T, 5, 2)."""
    ends = coords[:, [0, -1], CENTER]  # (K, 2, 2)
    with np.errstate(invalid="ignore"):
        along = shapely.line_locate_point(geometry.centerline, shapely.points(ends.reshape(-1, 2)))
    along = along.reshape(-1, 2)
    return np.clip(along[:, 1] - along[:, 0], 0.0, None)


def pairwise_progress(
    raw: np.ndarray, multiplier: np.ndarray, raw_ref: float, multiplier_ref: float, config: ScorerConfig
) -> np.ndarray:
    """(K,) EP of each proposal scored as the 2-proposal set [reference, proposal k].

    raw, multiplier: (K,) raw progress [m] and product of multiplicative metrics (v1: NC*DAC; v2:
    NC*DAC*DDC*TLC); raw_ref, multiplier_ref: the same for the reference.
    v1: EP = raw*mult / max(...) if that max > threshold, else 1 (0 where mult == 0).
    v2: EP = clip(raw / max(...), 0, 1) if that max > threshold, else 1 (the numerator is not masked).
    """
    masked = raw * multiplier
    norm = np.maximum(masked, raw_ref * multiplier_ref)
    far = norm > config.progress_distance_threshold
    safe = np.where(far, norm, 1.0)
    if config.is_v2:
        return np.where(far, np.clip(raw / safe, 0.0, 1.0), 1.0)
    near_value = np.where(multiplier == 0.0, 0.0, 1.0)
    return np.where(far, masked / safe, near_value)
