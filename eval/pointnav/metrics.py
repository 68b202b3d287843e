"""habitat-lab's PointNav metrics (habitat/tasks/nav/nav.py) and NavDP's success rule, as pure functions."""

from __future__ import annotations

import numpy as np

SUCCESS_DISTANCE = 0.2  # [m] habitat-lab's default success_distance: STOP must be called this close
NAVDP_SUCCESS_DISTANCE = 1.0  # [m] NavDP's paper: within 1 m at termination, STOP or not


def habitat_success(stop_called: bool, distance_to_goal: float, success_distance: float = SUCCESS_DISTANCE
                    ) -> float:
    """1.0 if STOP was called with the geodesic `distance_to_goal` [m] below `success_distance` [m], else 0."""
    return float(bool(stop_called) and distance_to_goal < success_distance)


def navdp_success(final_distance: float, success_distance: float = NAVDP_SUCCESS_DISTANCE) -> float:
    """1.0 if the robot ended the episode (any termination) within `success_distance` [m] of the goal."""
    return float(final_distance < success_distance)


def travelled_length(positions: np.ndarray) -> float:
    """L [m]: the sum of Euclidean step displacements of the positions (T, 2 or 3), as habitat-lab's SPL."""
    positions = np.asarray(positions, dtype=np.float64)
    if len(positions) < 2:
        return 0.0
    return float(np.linalg.norm(np.diff(positions, axis=0), axis=1).sum())


def spl(success: float, start_distance: float, length: float) -> float:
    """Success weighted by path length: success * d0 / max(d0, L); d0 = geodesic distance at reset [m]."""
    return float(success) * start_distance / max(start_distance, length)


def soft_spl(start_distance: float, final_distance: float, length: float) -> float:
    """habitat-lab's SoftSPL: max(0, 1 - d_T / d0) * d0 / max(d0, L), with d_T the final geodesic distance."""
    progress = max(0.0, 1.0 - final_distance / start_distance)
    return progress * start_distance / max(start_distance, length)
