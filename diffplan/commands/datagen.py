"""`diffplan datagen ...`: expert demonstration datasets (mounted by the lead as `diffplan datagen`).

Library modules are imported inside the commands, so `diffplan --help` starts without casadi or torch.
"""

from __future__ import annotations

import math
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

app = typer.Typer(help="Expert demonstration datasets.", no_args_is_help=True, add_completion=False,
                  rich_markup_mode="markdown")
console = output_console()


@app.callback()
def _group() -> None:
    """Expert demonstration datasets."""


def _describe(failures: dict[str, int]) -> str:
    if not failures:
        return "solving"
    return "solving (failed: " + ", ".join(f"{k} {v}" for k, v in sorted(failures.items())) + ")"


@app.command()
def drive(
    out: Annotated[Path, typer.Option(help="Dataset folder to create (or to continue with --resume).")],
    n: Annotated[int, typer.Option(help="Number of source scenes.")] = 100,
    demos_per_scene: Annotated[int, typer.Option(help="Targets (and so solves) per scene.")] = 1,
    stop_fraction: Annotated[float, typer.Option(
        help="Probability that a target after a scene's first is a stop in the lane (pSTL's mode 3); "
             "0 keeps the targets of datasets made without stops.")] = 0.0,
    gap_fraction: Annotated[float, typer.Option(
        help="Probability that a later target that is not a stop keeps the lane behind the nearest agent at "
             "a drawn d_safe, between the logged least gap and the gap now (trajopt only): the data then "
             "holds plans with different gaps per scene, which makes pSTL's d_safe a command; 0: none.")
    ] = 0.0,
    gap_scenes_only: Annotated[bool, typer.Option(
        "--gap-scenes-only", help="With --gap-fraction: solve only the scenes whose gap to an agent a plan can "
                                  "change (the logged ego closes in on it), leaving the others out. A dataset "
                                  "made for pSTL's d_safe: each scene then holds plans at several chosen gaps.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Dataset seed: scene seeds and per-shard target draws.")] = 0,
    split: Annotated[str, typer.Option(help="train, val or test seed range.")] = "train",
    shard_size: Annotated[int, typer.Option(help="Source scenes per shard (the unit of work).")] = 50,
    params: Annotated[Path | None, typer.Option(
        help="Calibrated STL params JSON (`diffplan stl calibrate`). "
             "Default: stl.rules.DEFAULT_PARAMS.")] = None,
    horizon: Annotated[int, typer.Option(help="Solver horizon [steps of 0.1 s].")] = 50,
    expert: Annotated[str, typer.Option(help="Expert: trajopt (the STL-constrained optimal control problem) or "
                                             "follow (route following).")] = "trajopt",
    compiled: Annotated[bool, typer.Option(
        help="Run the expert's NLP functions as C compiled once with gcc -O1 and cached in ~/.cache/diffplan "
             "(about 1.4x faster solves; the first use builds each NLP variant: 1-4 min each).")] = False,
    solver: Annotated[str, typer.Option(
        help="The expert's NLP solver: ipopt (MUMPS) or fatrop "
             "(structure-exploiting, faster iterations).")] = "ipopt",
    workers: WorkersOption = 1,
    ray: RayOption = None,
    resume: ResumeOption = False,
) -> None:
    """Solve expert demonstrations for N synthetic scenes into a Parquet dataset with privileged extras.

    Same options, same bytes: whatever --workers / --ray, and however often the job was interrupted.
    """
    from datagen.job import DriveDatagenConfig, DriveDatagenJob
    from diffplan.jobs import RunOptions
    from stl.calibrate import CalibratedParams

    with user_errors():
        rules = CalibratedParams.load(params).rules if params is not None else None
        config = DriveDatagenConfig(n=n, demos_per_scene=demos_per_scene, stop_fraction=stop_fraction,
                                    gap_fraction=gap_fraction, gap_scenes_only=gap_scenes_only, seed=seed,
                                    split=split,
                                    shard_size=shard_size, horizon=horizon, expert=expert, compiled=compiled,
                                    solver=solver, **({"params": rules}  # type: ignore[arg-type]
                                                      if rules is not None else {}))
        failures: dict[str, int] = {}

        def describe(report) -> str:
            for key, count in report.failures.items():
                failures[key] = failures.get(key, 0) + count
            return _describe(failures)

        summary = run_with_bar(DriveDatagenJob(config), out, RunOptions(workers, ray, resume), "demos",
                               config.n * config.demos_per_scene, "solving", describe)
    rows = [("scenes", str(summary.scenes))]
    if config.gap_scenes_only:
        rows.append(("scenes left out (no controllable gap)", str(summary.skipped)))
    rows += [("solves attempted", str(summary.attempts)), ("demos written", str(summary.demos))]
    rows += [(f"failed: {reason}", f"{count} ({100 * count / max(summary.attempts, 1):.1f}%)")
             for reason, count in summary.failures.items()]
    solve_ms = summary.mean_solve_ms
    rows += [("mean solve ms (this run)", "- (all shards were done)" if math.isnan(solve_ms) else f"{solve_ms:.1f}"),
             ("mean iterations", f"{summary.mean_iterations:.1f}"),
             ("shards", str(summary.info.num_shards))]
    table = quantity_table(f"datagen drive -> {out}", rows)
    console.print(table)


@app.command()
def nav(
    out: Annotated[Path, typer.Option(help="Dataset folder to create (or to continue with --resume).")],
    n: Annotated[int, typer.Option(help="Number of expert trajectories (PointNav episodes).")] = 100,
    robot: Annotated[str, typer.Option(help="Robot profile: wheeled or quadruped.")] = "wheeled",
    seed: Annotated[int, typer.Option(help="Dataset seed: world seeds, episode draws and negatives.")] = 0,
    world_kind: Annotated[str, typer.Option(
        help="World kinds to cycle through, comma-separated: rooms, cluttered, passages, or 'mixed' (all).")
    ] = "mixed",
    camera: Annotated[str, typer.Option(
        help="Depth camera WIDTHxHEIGHT in pixels, 64..640 each.")] = "160x120",
    shard_size: Annotated[int, typer.Option(help="Trajectories per shard (the unit of work).")] = 8,
    episodes_per_world: Annotated[int, typer.Option(
        help="Trajectories sampled in each generated world.")] = 4,
    critic_label: Annotated[str, typer.Option(
        help="Critic targets: 'points' (NavDP's released code: the robot's centre to obstacle surface "
             "points) or 'esdf' (the same formula on the robot footprint's clearance, so driving into a wall "
             "scores below the -3 rotate threshold; it scored lower in closed loop).")] = "points",
    workers: WorkersOption = 1,
    ray: RayOption = None,
    resume: ResumeOption = False,
) -> None:
    """Roll out the privileged navigation expert in procedural MuJoCo worlds: depth frames, point goals,
    24-step futures and NavDP critic targets, into a Parquet nav dataset.

    Same options, same bytes: whatever --workers / --ray, and however often the job was interrupted.
    """
    import time

    from datagen.nav import NavDatagenConfig, NavDatagenJob
    from diffplan.jobs import RunOptions
    from scenes.nav.generator import WORLD_KINDS

    with user_errors():
        kinds = (WORLD_KINDS if world_kind == "mixed"
                 else tuple(k.strip() for k in world_kind.split(",") if k.strip()))
        config = NavDatagenConfig(n=n, robot=robot, seed=seed, world_kinds=kinds, camera=camera,
                                  shard_size=shard_size, episodes_per_world=episodes_per_world,
                                  critic_label=critic_label)
        frames = [0]

        def describe(report) -> str:
            frames[0] += report.frames
            return f"rolling out ({frames[0]} frames)"

        start = time.perf_counter()
        summary = run_with_bar(NavDatagenJob(config), out, RunOptions(workers, ray, resume), "trajectories",
                               config.n, "rolling out", describe)
        elapsed = time.perf_counter() - start
    new = summary.new_trajectories
    rows = [("trajectories", str(summary.trajectories)), ("frames", str(summary.frames)),
            ("episode attempts", str(summary.attempts))]
    rows += [(f"failed: {reason}", str(count)) for reason, count in summary.failures.items()]
    rows += [("world kinds", ", ".join(f"{k} {v}" for k, v in summary.info["world_kinds"].items())),
             ("trajectories/s (this run)", f"{new / elapsed:.2f}" if new else "- (all shards were done)"),
             ("shards", str(summary.info["num_shards"]))]
    table = quantity_table(f"datagen nav -> {out}", rows)
    console.print(table)


if __name__ == "__main__":
    app()
