"""Per-episode PointNav outcomes and their mean over a benchmark."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field, fields

import numpy as np


class Termination(enum.Enum):
    """How a PointNav episode ended: the robot called STOP, the time ran out, it stopped moving, or the planner
    failed (or the goal was unreachable)."""

    STOP = "stop"
    TIMEOUT = "timeout"
    STUCK = "stuck"
    ERROR = "error"


TERMINATIONS = tuple(t.value for t in Termination)  # the summary's and the CSV's order


@dataclass(frozen=True, eq=False)
class EpisodeResult:
    """One closed-loop PointNav episode. A planner that raises ends the episode as a failure with its error.

    Attributes:
        index: position in the episode list. termination: a Termination.
        success: habitat-lab's (STOP within 0.2 m, geodesic). success_navdp: within 1.0 m (Euclidean) at the end.
        spl, soft_spl: habitat-lab's SPL and SoftSPL in [0, 1].
        collisions: control steps whose move was refused because it would collide.
        time_s: simulated episode time [s]. start_distance, final_distance: geodesic d0 and d_T [m].
        final_euclidean: straight-line distance to the goal at the end [m]. path_length: L [m].
        n_plans: planner calls. latency_ms: mean planner wall time [ms].
        positions: (T + 1, 2) world-frame robot positions [m], one per control step (not in the CSV).
    """

    index: int
    episode_id: str
    world_id: str
    termination: Termination
    error: str = ""
    success: float = 0.0
    success_navdp: float = 0.0
    spl: float = 0.0
    soft_spl: float = 0.0
    collisions: int = 0
    time_s: float = 0.0
    start_distance: float = math.nan
    final_distance: float = math.nan
    final_euclidean: float = math.nan
    path_length: float = 0.0
    n_plans: int = 0
    latency_ms: float = math.nan
    positions: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))

    @property
    def failed(self) -> bool:
        """The planner raised or answered with a bad plan."""
        return bool(self.error)

    def csv_row(self) -> dict[str, object]:
        """Flat values for the per-episode CSV (positions left out; termination by its value)."""
        row = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "positions"}
        return {**row, "termination": self.termination.value}


@dataclass(frozen=True)
class PointNavSummary:
    """Means over episodes (failed episodes count as 0), as habitat-lab's benchmark aggregates them."""

    n_episodes: int
    n_failed: int
    success: float
    success_navdp: float
    spl: float
    soft_spl: float
    collisions_per_episode: float
    mean_time_s: float
    terminations: dict[str, int]

    @classmethod
    def from_json(cls, body: dict) -> PointNavSummary:
        """The summary a run's summary.json holds; KeyError when a field is missing."""
        return cls(**{name: body[name] for name in (
            "n_episodes", "n_failed", "success", "success_navdp", "spl", "soft_spl", "collisions_per_episode",
            "mean_time_s", "terminations")})

    def as_json(self) -> dict[str, object]:
        """The `--json` line: episode count and the means."""
        return {"n_episodes": self.n_episodes, "success": self.success, "success_navdp": self.success_navdp,
                "spl": self.spl, "soft_spl": self.soft_spl, "collisions_per_episode": self.collisions_per_episode}


def summarize(results: list[EpisodeResult]) -> PointNavSummary:
    """The means of `results` (failed episodes count as 0; NaN with none)."""
    def mean(name: str) -> float:
        return float(np.mean([getattr(r, name) for r in results])) if results else math.nan

    return PointNavSummary(
        n_episodes=len(results), n_failed=sum(r.failed for r in results), success=mean("success"),
        success_navdp=mean("success_navdp"), spl=mean("spl"), soft_spl=mean("soft_spl"),
        collisions_per_episode=mean("collisions"), mean_time_s=mean("time_s"),
        terminations={t.value: sum(r.termination is t for r in results) for t in Termination})
