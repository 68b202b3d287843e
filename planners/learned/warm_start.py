"""RTI-DP's warm start (reference closed_loop_driving.md §4) for the diffusion planners: each call after the
first starts from the previous plan, moved into the current ego frame and shifted by the re-plan interval,
noised to an intermediate step, and takes fewer denoising steps. The reference's contraction condition for
choosing that step was not available in any source, so `start_t` is a setting (RTI-DP hand-picks it per task).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scenes import NUM_PLAN_POSES, PLAN_DT
from scenes.geometry import points_to_global, points_to_local


@dataclass(frozen=True)
class WarmStart:
    """RTI-DP's warm start for DiffusionDrive (reference closed_loop_driving.md §4, mapped to anchors).

    Each call after the first takes the previous plan, moves it into the current ego frame, shifts it by
    `replan_interval_s` (the previous plan's pose at t + interval becomes the first waypoint; the tail is
    extended along its last segment) and puts it in the place of the previously chosen mode's anchor. All
    modes are then noised at `start_t` (inside the trained range 0..49) and denoised in `steps` DDIM steps;
    the other anchors keep the plan multimodal and the classifier still picks.

    The DDIM baseline (diffusion-policy) takes the same warm start with one mode: its previous sample,
    noised at `start_t` of its 1000 trained steps.

    Attributes:
        start_t: noise level of the warm start (DiffusionDrive's cold start uses 8).
        steps: DDIM steps of a warm-started call (DiffusionDrive cold: 2; diffusion-policy cold: 20).
        replan_interval_s: [s] between calls.
        max_start_t: the trained noise levels are 0 .. max_start_t - 1 (DiffusionDrive 50,
            diffusion-policy 1000).
    """

    start_t: int = 4
    steps: int = 1
    replan_interval_s: float = 0.1
    max_start_t: int = 50

    def validate(self) -> WarmStart:
        """The settings themselves; ValueError naming the field when one is out of range."""
        if not 1 <= self.steps <= max(self.start_t, 1):
            raise ValueError(f"steps must be in 1..start_t, got steps={self.steps}, start_t={self.start_t}")
        if not 0 <= self.start_t < self.max_start_t:
            raise ValueError(f"start_t must be in the trained range 0..{self.max_start_t - 1}, "
                             f"got {self.start_t}")
        if not 0.0 <= self.replan_interval_s <= NUM_PLAN_POSES * PLAN_DT:
            raise ValueError(f"replan_interval_s must be in [0, {NUM_PLAN_POSES * PLAN_DT}] s, "
                             f"got {self.replan_interval_s}")
        return self


def shifted_plan(previous_xy: np.ndarray, previous_origin: np.ndarray, origin: np.ndarray, interval_s: float,
                 dt: float = PLAN_DT) -> np.ndarray:
    """(T, 2) [m] the previous plan's waypoints (T, 2) (ego frame of `previous_origin` (3,), map frame)
    `interval_s` later, in the ego frame of `origin` (3,): linear between waypoints (the previous origin at
    t = 0), extended along the last segment past the end."""
    times = dt * np.arange(previous_xy.shape[0] + 1)
    knots = np.concatenate([np.zeros((1, 2)), previous_xy])
    query = dt * np.arange(1, previous_xy.shape[0] + 1) + interval_s
    out = np.empty((len(query), 2))
    for axis in range(2):
        out[:, axis] = np.interp(query, times, knots[:, axis])
    beyond = query > times[-1]
    if beyond.any():
        slope = (knots[-1] - knots[-2]) / dt
        out[beyond] = knots[-1] + (query[beyond] - times[-1])[:, None] * slope
    return points_to_local(points_to_global(out, previous_origin), origin)


