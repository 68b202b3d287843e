"""`diffplan scenes import ...`: real driving logs into our Parquet store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from diffplan.console import (
    RayOption,
    ResumeOption,
    WorkersOption,
    output_console,
    quantity_table,
    run_with_bar,
    user_errors,
)

app = typer.Typer(help="Import real driving logs (OpenScene / NAVSIM) into a dataset.", no_args_is_help=True,
                  add_completion=False, rich_markup_mode="markdown")
console = output_console()


@app.command()
def openscene(
    logs: Annotated[Path, typer.Option(help="Folder of OpenScene / NAVSIM log pickles, `<log_name>.pkl` "
                                            "(NAVSIM's `navsim_logs/<split>`).")],
    out: Annotated[Path, typer.Option(help="Dataset folder to create (or to continue with --resume).")],
    maps: Annotated[Path | None, typer.Option(
        help="nuPlan maps root (`nuplan-maps-v1.0.json`, `<location>/<version>/map.gpkg`). Default: "
             "$NUPLAN_MAPS_ROOT.")] = None,
    filter: Annotated[Path | None, typer.Option(
        "--filter", help="A NAVSIM scene_filter YAML (e.g. navtest.yaml): log names, tokens, frames. Default: "
                         "NAVSIM's defaults (4 history + 10 future frames, windows with a route, every log).")
    ] = None,
    split: Annotated[str, typer.Option(help="The scenes' split in the dataset: train, val or test.")] = "test",
    map_radius: Annotated[float, typer.Option(help="Map kept around each scene's current pose [m].")] = 200.0,
    workers: WorkersOption = 1,
    ray: RayOption = None,
    resume: ResumeOption = False,
) -> None:
    """Import OpenScene / NAVSIM v1.1 logs and their nuPlan maps as driving scenes, one shard per log.

    Each log is cut into NAVSIM's windows (4 history + 10 future frames at 2 Hz); a window becomes a scene on
    our 10 Hz timeline, with the map around it and its route. Windows without a route, outside the filter's
    tokens or off the map are dropped and counted per log. Pickles are read with a restricted unpickler
    (builtins and numpy arrays only). Every command that takes a dataset (eval navsim, stl, anchors, train,
    scenes show) then works on the result.
    """
    from diffplan.jobs import RunOptions
    from scenes.adapters.import_job import OpenSceneImportConfig, OpenSceneImportJob

    kept, dropped = [0], dict[str, int]()

    def describe(report) -> str:  # a LogReport
        kept[0] += report.kept
        for reason, count in report.dropped.items():
            dropped[reason] = dropped.get(reason, 0) + count
        return f"{kept[0]} scenes, {sum(dropped.values())} windows dropped"

    with user_errors():
        config = OpenSceneImportConfig(str(logs), None if maps is None else str(maps),
                                       None if filter is None else str(filter), split, map_radius)
        job = OpenSceneImportJob(config)
        info, reports = run_with_bar(job, out, RunOptions(workers, ray, resume), "logs", job.num_units,
                                     "importing", describe)
    rows = [("logs", str(len(reports))), ("windows", str(sum(r.windows for r in reports))),
            ("scenes written", str(info.num_episodes))]
    totals: dict[str, int] = {}
    for report in reports:
        for reason, count in report.dropped.items():
            totals[reason] = totals.get(reason, 0) + count
    rows += [(f"dropped: {reason}", str(count)) for reason, count in sorted(totals.items())]
    console.print(quantity_table(f"scenes import openscene -> {out}", rows))
    console.print(f"per-log reports: {out}/meta/import/unit-NNNNN.json")
