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
    from scenes.adapters.import_job import OpenSceneImportConfig, OpenSceneImportJob

    with user_errors():
        config = OpenSceneImportConfig(str(logs), None if maps is None else str(maps),
                                       None if filter is None else str(filter), split, map_radius)
        _run_import(OpenSceneImportJob(config), out, workers, ray, resume, "logs", "log")


@app.command()
def nuscenes(
    dataroot: Annotated[Path, typer.Option(help="nuScenes root: `<version>/` tables, `maps/expansion/` (map "
                                                "expansion >= 1.3) and, if present, `can_bus/`.")],
    out: Annotated[Path, typer.Option(help="Dataset folder to create (or to continue with --resume).")],
    version: Annotated[str, typer.Option(help="v1.0-mini, v1.0-trainval or v1.0-test.")] = "v1.0-mini",
    split: Annotated[str, typer.Option(help="A nuScenes split of the version: mini_train, mini_val, train, "
                                            "val, test, ...")] = "mini_val",
    map_radius: Annotated[float, typer.Option(help="Map kept around each scene's current pose [m].")] = 200.0,
    workers: WorkersOption = 1,
    ray: RayOption = None,
    resume: ResumeOption = False,
) -> None:
    """Import nuScenes scenes through nuscenes-devkit as driving scenes, one shard per nuScenes scene.

    Every keyframe with 1.5 s of past and 5 s of future keyframes in its scene becomes a scene on our 10 Hz
    timeline: ego from `ego_pose`, speed and acceleration from the CAN bus (from pose differences for scenes
    on the devkit's CAN blacklist or without CAN data; each scene's report says which), agents from
    `sample_annotation`, the map from the map expansion, the route and command (VAD's +-2 m rule) from the
    future ego path. nuScenes has no traffic lights. Then `eval nuscenes`, `eval navsim` (reported as
    nuscenes-pdms), anchors and train work on the result.
    """
    from scenes.adapters.nuscenes_job import NuScenesImportConfig, NuScenesImportJob

    with user_errors():
        config = NuScenesImportConfig(str(dataroot), version, split, map_radius)
        _run_import(NuScenesImportJob(config), out, workers, ray, resume, "scenes", "scene")


def _run_import(job, out: Path, workers: int, ray: str | None, resume: bool, units: str, unit: str) -> None:
    """Run an import job with a progress bar, then print its totals: windows, scenes written, drops by
    reason (and, where the job reports it, the source of the ego speeds)."""
    from diffplan.jobs import RunOptions

    kept, dropped = [0], dict[str, int]()

    def describe(report) -> str:  # a LogReport or SceneReport
        kept[0] += report.kept
        for reason, count in report.dropped.items():
            dropped[reason] = dropped.get(reason, 0) + count
        return f"{kept[0]} scenes, {sum(dropped.values())} windows dropped"

    info, reports = run_with_bar(job, out, RunOptions(workers, ray, resume), units, job.num_units, "importing",
                                 describe)
    rows = [(units, str(len(reports))), ("windows", str(sum(r.windows for r in reports))),
            ("scenes written", str(info.num_episodes))]
    totals: dict[str, int] = {}
    for report in reports:
        for reason, count in report.dropped.items():
            totals[reason] = totals.get(reason, 0) + count
    rows += [(f"dropped: {reason}", str(count)) for reason, count in sorted(totals.items())]
    sources: dict[str, int] = {}
    for report in reports:
        if getattr(report, "can_source", ""):
            sources[report.can_source] = sources.get(report.can_source, 0) + 1
    rows += [(f"ego speed from: {source}", f"{count} {units}") for source, count in sorted(sources.items())]
    console.print(quantity_table(f"{job.command} -> {out}", rows))
    console.print(f"per-{unit} reports: {out}/meta/import/unit-NNNNN.json")
