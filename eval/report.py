"""Evaluation outputs: per-scene CSV, summary.json, a Markdown table, and BEVs of the worst scenes."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np

from eval.naming import run_label
from eval.results import SceneResult, Summary
from planners.pdm.scoring import SubMetrics
from scenes.store.layout import atomic_write_bytes


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
    columns, score_name = SubMetrics.table_names(v2), "EPDMS" if v2 else "PDMS"
    head = "| Method | " + " | ".join(SubMetrics.LABELS[name] for name in columns) + f" | {score_name} |"
    lines = [head, "|" + "---|" * (len(columns) + 2)]
    for method, summary in rows:
        values = [value for _, value in summary.sub_metrics(columns)] + [summary.score]
        lines.append(f"| {method} | " + " | ".join(f"{100 * v:.1f}" for v in values) + " |")
    return "\n".join(lines) + "\n"


def write_run(out: Path, planner: str, results: list[SceneResult], summary: Summary, extra: dict) -> None:
    """Write scenes.csv, summary.json and table.md into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "scenes.csv", results)
    failed = [{"index": r.index, "scene_id": r.scene_id, "error": r.error} for r in results if r.failed]
    body = {"planner": planner, **summary.as_json(), **extra, "failed_scenes": failed}
    _atomic_write_text(out / "summary.json", json.dumps(body, indent=2) + "\n")
    table = markdown_table([(run_label(out.resolve().name, bool(extra.get("oracle"))), summary)])
    subset = extra.get("benchmark", {}).get("subset", "")
    named = extra.get("metric_label", summary.metric)
    note = (f"\n{subset}; {named}, {summary.n_scenes} scenes, {summary.n_failed} failed"
            f"{' (dropped)' if summary.dropped_failed else ' (scored 0)'}; planner {planner}.\n")
    _atomic_write_text(out / "table.md", table + note)


def worst_scenes(results: list[SceneResult], count: int = 10) -> list[SceneResult]:
    """The `count` lowest-scoring scenes (failures first), ties by index."""
    return sorted(results, key=lambda r: (not r.failed, r.score, r.index))[:count]


_WORST_BEV_RADIUS = 30.0  # [m] view of the worst-scene BEVs (grown to hold the plan and the simulated path)


def _simulated_states(scene, result: SceneResult) -> np.ndarray:
    """The simulated ego states of `result` for drawing: (41, 4) x, y, heading, speed (map frame) from
    re-simulating its plan, as evaluation did; the stored (41, 2) positions when that does not reproduce
    them (headings and speeds are then derived from the positions)."""
    stored = np.asarray(result.simulated_xy, dtype=np.float64)
    try:
        from eval.scoring import simulate_plans
        from planners.pdm.states import StateIndex

        states = simulate_plans(scene, np.asarray(result.plan, dtype=np.float64)[None])[0]
        compact = states[:, [StateIndex.X, StateIndex.Y, StateIndex.HEADING, StateIndex.VELOCITY_X]]
    except Exception:  # noqa: BLE001 - the stored path is still worth drawing
        return stored
    same = compact.shape[0] == stored.shape[0] and np.allclose(compact[:, :2], stored, atol=1e-6)
    return compact if same else stored


def _status_line(result: SceneResult) -> str:
    """Score and sub-metrics; NAVSIM v2's extra sub-metrics when a v2-only one (TLC, LK, HC, EC) failed
    (they are all 1 under v1, where DDC has no weight)."""
    if result.failed:
        return f"FAILED: {result.error}"
    line = (f"score {result.score:.2f}  NC {result.nc:.1f} DAC {result.dac:.0f} TTC {result.ttc:.0f} "
            f"C {result.comfort:.0f} EP {result.ep:.2f}")
    v2 = result.sub_metrics(n for n in SubMetrics.SUMMARY_ORDER if n not in SubMetrics.V1_TABLE)
    if any(value < 1.0 for name, value in v2 if name in SubMetrics.V2_ONLY):
        line += "  " + " ".join(f"{SubMetrics.JSON_KEYS[name].upper()} {value:.1f}" for name, value in v2)
    return line


def save_worst_bevs(out: Path, dataset, results: list[SceneResult], count: int = 10) -> list[Path]:
    """BEV PNGs of the worst scenes in the ego frame: agents with their futures, the plan, the simulated
    ego path, and where NC, DAC and TTC failed (the ego footprint and agent involved, with the time)."""
    from scenes.render import render_bev, save_figure
    from scenes.render_failures import locate_failures

    folder = out / "worst"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for rank, result in enumerate(worst_scenes(results, count)):
        scene = dataset[result.index]
        plan = states = None
        marks = []
        if not result.failed and np.isfinite(result.plan).all():
            plan = result.plan
            states = _simulated_states(scene, result)
            marks = locate_failures(scene, states, nc=result.nc, dac=result.dac, ttc=result.ttc)
        fig = render_bev(scene, _WORST_BEV_RADIUS, plan=plan, simulated=states, failures=marks,
                         status=f"worst #{rank + 1}  ·  {_status_line(result)}")
        paths.append(save_figure(fig, folder / f"{rank:02d}_{result.scene_id}.png"))
    return paths
