"""habitat-lab's PointNav metrics (habitat/tasks/nav/nav.py) and NavDP's success rule, as pure functions, and
the scoring of an episode's trace (`score_episode`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from eval.pointnav.results import EpisodeResult, Termination

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


@dataclass(frozen=True, eq=False)
class EpisodeTrace:
    """What the closed loop recorded of one episode, before scoring.

    Attributes:
        termination: how it ended. error: the planner's failure ("" when none).
        positions: (T + 1, 2) world-frame robot positions [m], one per control step.
        start_distance, final_distance: geodesic d0 and d_T [m] (inf when unreachable).
        final_euclidean: straight-line distance to the goal at the end [m].
        collisions: control steps whose move hit an obstacle. time_s: episode time [s].
        latencies_ms: the planner's wall time per call [ms].
    """

    termination: Termination
    error: str
    positions: np.ndarray
    start_distance: float
    final_distance: float
    final_euclidean: float
    collisions: int
    time_s: float
    latencies_ms: tuple[float, ...]


def score_episode(trace: EpisodeTrace, index: int, episode_id: str, world_id: str,
                  success_distance: float = SUCCESS_DISTANCE,
                  navdp_success_distance: float = NAVDP_SUCCESS_DISTANCE) -> EpisodeResult:
    """habitat-lab's success, SPL and SoftSPL and NavDP's success of one episode (all 0 when it errored)."""
    failed = bool(trace.error)
    length = travelled_length(trace.positions)
    success = habitat_success(trace.termination is Termination.STOP, trace.final_distance, success_distance)
    reachable = math.isfinite(trace.final_distance)
    return EpisodeResult(
        index=index, episode_id=episode_id, world_id=world_id, termination=trace.termination, error=trace.error,
        success=0.0 if failed else success,
        success_navdp=0.0 if failed else navdp_success(trace.final_euclidean, navdp_success_distance),
        spl=0.0 if failed else spl(success, trace.start_distance, length),
        soft_spl=soft_spl(trace.start_distance, trace.final_distance, length) if reachable and not failed else 0.0,
        collisions=trace.collisions, time_s=trace.time_s, start_distance=trace.start_distance,
        final_distance=trace.final_distance, final_euclidean=trace.final_euclidean, path_length=length,
        n_plans=len(trace.latencies_ms),
        latency_ms=float(np.mean(trace.latencies_ms)) if trace.latencies_ms else math.nan,
        positions=trace.positions)
