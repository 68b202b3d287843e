"""Evaluation outputs: per-scene CSV, summary.json, a Markdown table, and BEVs of the worst scenes."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np

from eval.results import SceneResult, Summary
from scenes.store.layout import atomic_write_bytes

TABLE_COLUMNS = (("NC", "nc"), ("DAC", "dac"), ("TTC", "ttc"), ("Comf", "comfort"), ("EP", "ep"))
V2_TABLE_COLUMNS = (("NC", "nc"), ("DAC", "dac"), ("DDC", "ddc"), ("TLC", "tlc"), ("EP", "ep"), ("TTC", "ttc"),
                    ("LK", "lk"), ("HC", "hc"), ("EC", "ec"))


def _atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_csv(path: Path, results: list[SceneResult]) -> None:
    """One row per scene with every sub-metric, the score, progress, latency and error."""
    rows = [r.csv_row() for r in results]
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["index"])
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def markdown_table(rows: list[tuple[str, Summary]]) -> str:
    """The DiffusionDrive paper's layout (NC, DAC, TTC, Comf, EP, PDMS), or NAVSIM v2's sub-metrics for
    EPDMS, in percent."""
    v2 = bool(rows) and rows[0][1].metric.startswith("epdms")
    columns, score_name = (V2_TABLE_COLUMNS, "EPDMS") if v2 else (TABLE_COLUMNS, "PDMS")
    head = "| Method | " + " | ".join(name for name, _ in columns) + f" | {score_name} |"
    lines = [head, "|" + "---|" * (len(columns) + 2)]
    for method, summary in rows:
        values = [getattr(summary, key) for _, key in columns] + [summary.score]
        lines.append(f"| {method} | " + " | ".join(f"{100 * v:.1f}" for v in values) + " |")
    return "\n".join(lines) + "\n"


def write_run(out: Path, planner: str, results: list[SceneResult], summary: Summary, extra: dict) -> None:
    """Write scenes.csv, summary.json and table.md into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "scenes.csv", results)
    failed = [{"index": r.index, "scene_id": r.scene_id, "error": r.error} for r in results if r.failed]
    body = {"planner": planner, **summary.as_json(), **extra, "failed_scenes": failed}
    _atomic_write_text(out / "summary.json", json.dumps(body, indent=2) + "\n")
    table = markdown_table([(planner, summary)])
    note = (f"\n{summary.metric}, {summary.n_scenes} scenes, {summary.n_failed} failed"
            f"{' (dropped)' if summary.dropped_failed else ' (scored 0)'}.\n")
    _atomic_write_text(out / "table.md", table + note)


def worst_scenes(results: list[SceneResult], count: int = 10) -> list[SceneResult]:
    """The `count` lowest-scoring scenes (failures first), ties by index."""
    return sorted(results, key=lambda r: (not r.failed, r.score, r.index))[:count]


def save_worst_bevs(out: Path, dataset, results: list[SceneResult], count: int = 10) -> list[Path]:
    """BEV PNGs of the worst scenes with the plan (map frame) and the simulated rear-axle path."""
    import matplotlib.pyplot as plt

    from scenes.geometry import poses_to_global
    from scenes.render import render_bev

    folder = out / "worst"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for rank, result in enumerate(worst_scenes(results, count)):
        scene = dataset[result.index]
        fig = render_bev(scene)
        ax = fig.axes[0]
        if np.isfinite(result.plan).all():
            plan = poses_to_global(result.plan, scene.current_pose)
            ax.plot(plan[:, 0], plan[:, 1], "o-", color="#ff7f0e", lw=1.5, ms=4, zorder=9, label="plan")
            ax.plot(*result.simulated_xy.T, color="#9467bd", lw=2.0, zorder=9, label="simulated (LQR)")
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
        status = f"FAILED: {result.error}" if result.failed else (
            f"score {result.score:.2f}  NC {result.nc:.1f} DAC {result.dac:.0f} TTC {result.ttc:.0f} "
            f"C {result.comfort:.0f} EP {result.ep:.2f}")
        ax.set_title(f"{ax.get_title()}\n{status[:110]}", fontsize=9)
        path = folder / f"{rank:02d}_{result.scene_id}.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths
