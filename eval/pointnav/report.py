"""PointNav run outputs: episodes.csv, summary.json, table.md and top-down PNGs of failed episodes."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from eval.naming import run_label
from eval.pointnav.results import EpisodeResult, PointNavSummary
from scenes.nav import NavEpisode, NavWorldInterface, RobotProfile
from scenes.store.layout import atomic_write_bytes

COLUMNS = (("SR", "success"), ("SR@1m (NavDP)", "success_navdp"), ("SPL", "spl"), ("SoftSPL", "soft_spl"))


def collisions_note(sliding: bool) -> str:
    """What the Collisions/ep column counts, with sliding on or off."""
    if sliding:
        return ("Collisions/ep: control steps (10 Hz) whose move hit an obstacle; with sliding on (habitat-lab's "
                "allow_sliding) the robot then slides along it, so one long contact counts once per step.")
    return "Collisions/ep: control steps (10 Hz) whose move into an obstacle was refused (sliding off)."


def markdown_table(rows: list[tuple[str, PointNavSummary]]) -> str:
    """Episodes, success (habitat, STOP within 0.2 m), NavDP's 1 m success, SPL, SoftSPL in percent, and
    collisions per episode."""
    head = "| Method | Episodes | " + " | ".join(name for name, _ in COLUMNS) + " | Collisions/ep |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 3)]
    for method, s in rows:
        values = " | ".join(f"{100 * getattr(s, key):.1f}" for _, key in COLUMNS)
        lines.append(f"| {method} | {s.n_episodes} | {values} | {s.collisions_per_episode:.2f} |")
    return "\n".join(lines) + "\n"


def write_run(out: Path, planner: str, results: list[EpisodeResult], summary: PointNavSummary, extra: dict) -> None:
    """Write episodes.csv, summary.json and table.md into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    rows = [r.csv_row() for r in results]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["index"])
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(out / "episodes.csv", buffer.getvalue().encode())
    failed = [{"index": r.index, "episode_id": r.episode_id, "error": r.error} for r in results if r.failed]
    body = {"planner": planner, **summary.as_json(), "n_failed": summary.n_failed,
            "mean_time_s": summary.mean_time_s, "terminations": summary.terminations, **extra,
            "failed_episodes": failed}
    atomic_write_bytes(out / "summary.json", (json.dumps(body, indent=2) + "\n").encode())
    subset = extra.get("benchmark", {}).get("subset", "")
    note = (f"\n{subset}; {summary.n_episodes} episodes; terminations: "
            + ", ".join(f"{k} {v}" for k, v in summary.terminations.items()) + f"; planner {planner}.\n")
    label = run_label(out.resolve().name, bool(extra.get("oracle")), bool(extra.get("no_critic")))
    atomic_write_bytes(out / "table.md", (markdown_table([(label, summary)]) + note).encode())


def save_failure_pictures(out: Path, episodes: list[NavEpisode], results: list[EpisodeResult], world_of,
                          robot_of, count: int = 10) -> list[Path]:
    """Top-down PNGs of the first `count` unsuccessful episodes: obstacles, the driven path, start and goal.

    `world_of(world_id)` gives the NavWorldInterface, `robot_of(episode)` its RobotProfile.
    """
    import matplotlib.pyplot as plt
    import shapely

    folder = out / "failures"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for result in [r for r in results if not r.success][:count]:
        episode = episodes[result.index]
        world: NavWorldInterface = world_of(episode.world_id)
        robot: RobotProfile = robot_of(episode)
        fig, ax = plt.subplots(figsize=(7, 7), dpi=100)
        for polygon in world.obstacle_footprints(robot):
            for part in getattr(polygon, "geoms", [polygon]):
                if isinstance(part, shapely.Polygon):
                    ax.fill(*part.exterior.xy, color="0.55", lw=0)
        x0, y0, x1, y1 = world.bounds
        ax.plot([x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0], color="0.3", lw=1)
        ax.plot(*result.positions.T, color="#1f77b4", lw=1.8, label="driven")
        ax.plot(*episode.start[:2], "o", color="#2ca02c", ms=8, label="start")
        ax.add_patch(plt.Circle(tuple(episode.goal), 0.2, color="#d62728", fill=False, lw=1.5))
        ax.plot(*episode.goal, "*", color="#d62728", ms=12, label="goal")
        ax.set_aspect("equal")
        ax.legend(fontsize=8, loc="upper right")
        ax.set_title(f"{episode.episode_id} ({episode.world_id}): {result.termination.value}, "
                     f"{result.collisions} collisions, d_T {result.final_distance:.2f} m"
                     + (f"\n{result.error[:100]}" if result.error else ""), fontsize=9)
        path = folder / f"{result.index:04d}_{episode.episode_id}.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths
