"""`diffplan eval nuscenes`: open-loop nuScenes planning metrics (L2, collision rate) under a named definition."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

import planners
from diffplan.console import UserError, output_console, progress_bar, user_errors
from scenes.store import DriveDataset

console = output_console()
PRESET_NAMES = ("stp3", "vad", "uniad", "sparsedrive")


def nuscenes(
    planner: Annotated[str, typer.Option(help="Planner name or checkpoint (a driving planner).")],
    scenes: Annotated[Path, typer.Option(help="Dataset of driving scenes, e.g. from `diffplan scenes import "
                                              "nuscenes`.")],
    preset: Annotated[str, typer.Option(help="Metric definition: stp3, vad, uniad, sparsedrive, or all (side by "
                                             "side).")] = "all",
    limit: Annotated[int | None, typer.Option(help="Evaluate only the first K scenes.")] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder for summary.json and table.md.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line: the preset's figures, or one "
                                                         "object per preset keyed by preset with `all`.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of stochastic (diffusion) planners, reset at every scene.")] = 0,
) -> None:
    """Open-loop L2 and collision rate at 1, 2 and 3 s, as the nuScenes planning papers report them.

    Four incompatible definitions are in use, and every table here names the one it computes:

    - stp3: ST-P3's, mean over the steps up to t, axis-aligned ego box on a 0.5 m occupancy grid;
    - vad: VAD's, the same averaging, occupancy drawn from the GT boxes, incomplete futures dropped;
    - uniad: UniAD's default, the value at step t only, missing steps masked;
    - sparsedrive: SparseDrive's (also DiffusionDrive's nuScenes numbers), rotated box against GT boxes.

    Collisions where the logged ego itself collides are not counted. Plans are 8 poses at 0.5 s; these
    metrics read the first 6 (3 s). A scene the planner fails on is listed and left out.
    """
    from eval.nuscenes.runner import PLAN_NOTE, plan_scenes

    with user_errors():
        if preset != "all" and preset not in PRESET_NAMES:
            raise UserError(f"unknown --preset {preset!r}; expected one of {', '.join(PRESET_NAMES)} or all")
        if limit is not None and limit < 1:
            raise UserError(f"--limit must be positive, got {limit}")
        loaded = planners.load(planner)
        planners.require_domain(loaded, planners.Domain.DRIVING, "eval nuscenes")
        data = DriveDataset.open(scenes)
        indices = list(range(len(data) if limit is None else min(limit, len(data))))
        with progress_bar("scenes") as bar:
            task = bar.add_task(f"plan {planner}", total=len(indices))
            run = plan_scenes(str(scenes), loaded, indices, seed, lambda: bar.advance(task), planner)
        names = PRESET_NAMES if preset == "all" else (preset,)
        metrics = {name: run.metrics(name) for name in names}
    lines = ["| preset | L2 1s [m] | L2 2s | L2 3s | L2 avg | CR 1s [%] | CR 2s | CR 3s | CR avg | scenes |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, m in metrics.items():
        lines.append(f"| {name} | {m.l2_1s:.2f} | {m.l2_2s:.2f} | {m.l2_3s:.2f} | {m.l2_avg:.2f} | "
                     f"{100 * m.collision_1s:.2f} | {100 * m.collision_2s:.2f} | {100 * m.collision_3s:.2f} | "
                     f"{100 * m.collision_avg:.2f} | {m.n_used} |")
    table = "\n".join(lines)
    header = f"{planner} on {scenes}: {len(indices)} scenes, {len(run.failures)} failed; {PLAN_NOTE}"
    console.print(header, highlight=False)
    console.print(table, highlight=False, markup=False)
    for failure in run.failures:
        console.print(f"[red]failed[/] {failure.scene_id}: {failure.error}", highlight=False)
    records = {name: m.to_json() for name, m in metrics.items()}
    if out is not None:
        from scenes.store.layout import atomic_write_bytes

        out.mkdir(parents=True, exist_ok=True)
        summary = {"planner": planner, "dataset": str(scenes), "seed": seed, "note": PLAN_NOTE,
                   "failed": [{"index": f.index, "scene_id": f.scene_id, "error": f.error} for f in run.failures],
                   "presets": records}
        atomic_write_bytes(out / "summary.json", (json.dumps(summary, indent=2) + "\n").encode())
        atomic_write_bytes(out / "table.md", (header + "\n\n" + table + "\n").encode())
    if as_json:
        print(json.dumps(records[preset] if preset != "all" else records))
