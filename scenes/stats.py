"""Dataset statistics from the episode table (no scene is decoded)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from rich.table import Table


@dataclass(frozen=True)
class GroupStats:
    """Statistics of the episodes of one scenario type (or of all of them)."""

    name: str
    count: int
    ego_speed_mean: float  # [m/s] now
    ego_speed_max: float  # [m/s] now
    agents_mean: float
    agents_max: int
    future_distance_mean: float  # [m] the expert drives in the 5 s future


def _group(name: str, speed: np.ndarray, agents: np.ndarray, distance: np.ndarray) -> GroupStats:
    return GroupStats(name, int(speed.size), float(speed.mean()), float(speed.max()), float(agents.mean()),
                      int(agents.max()), float(distance.mean()))


def dataset_stats(episodes: pa.Table) -> list[GroupStats]:
    """One row per scenario type, sorted by name, then an "all" row."""
    kinds = np.asarray(episodes.column("scenario_type").to_pylist())
    speed = episodes.column("ego_speed_now").to_numpy()
    agents = episodes.column("num_agents").to_numpy()
    distance = episodes.column("ego_future_distance").to_numpy()
    rows = [_group(k, speed[kinds == k], agents[kinds == k], distance[kinds == k]) for k in sorted(set(kinds))]
    return [*rows, _group("all", speed, agents, distance)]


def stats_table(rows: list[GroupStats], title: str) -> Table:
    """A rich table of `dataset_stats` rows."""
    table = Table(title=title, title_justify="left", caption="speeds are the ego's now; distance is what "
                  "the expert drives in the next 5 s", caption_justify="left")
    table.add_column("scenario type", no_wrap=True)
    for column in ("scenes", "speed mean\n[m/s]", "speed max\n[m/s]", "agents\nmean", "agents\nmax",
                   "5 s dist\n[m]"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            row.name, str(row.count), f"{row.ego_speed_mean:.2f}", f"{row.ego_speed_max:.2f}",
            f"{row.agents_mean:.1f}", str(row.agents_max), f"{row.future_distance_mean:.1f}",
            style="bold" if row.name == "all" else None, end_section=row.name != "all" and row is rows[-2],
        )
    return table
