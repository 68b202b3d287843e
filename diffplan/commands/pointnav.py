"""`diffplan eval pointnav`: closed-loop PointNav with habitat-lab's metrics (mounted by diffplan.commands.eval)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

import planners
from diffplan.console import (
    RayOption,
    ResumeOption,
    UserError,
    WorkersOption,
    output_console,
    run_with_bar,
    user_errors,
)
from eval.naming import run_label, run_name

BENCHMARKS = ("pointnav-synth",)  # eval.pointnav.benchmark.BENCHMARKS (checked below)

console = output_console()


def pointnav(
    planner: Annotated[str, typer.Option(help="Planner name (expert, go-to-goal, dwa, navdp, ...) or checkpoint "
                                              "folder.")],
    episodes: Annotated[str, typer.Option(help=f"PointNav-v1 episode file (.json.gz) or a benchmark: "
                                               f"{', '.join(BENCHMARKS)} (generated and cached on first use).")],
    limit: Annotated[int | None, typer.Option(help="Evaluate only the first K episodes (with --spread: K spread "
                                                   "evenly over the set).")] = None,
    spread: Annotated[bool, typer.Option(help="With --limit, take episodes spread evenly over the set (for "
                                              "pointnav-synth: both cluttered worlds and rooms).")] = False,
    workers: WorkersOption = 1,
    ray: RayOption = None,
    resume: ResumeOption = False,
    out: Annotated[Path | None, typer.Option(help="Run folder for episodes.csv, summary.json, table.md and "
                                                  "failures/*.png (and the job's units, so --resume continues "
                                                  "it).")] = None,
    robot: Annotated[str | None, typer.Option(help="wheeled or quadruped (default: each episode's robot).")] = None,
    tracker: Annotated[str, typer.Option(help="mpc (NavDP's) or pure-pursuit.")] = "mpc",
    seed: Annotated[int, typer.Option(help="Seed for stochastic planners (per episode: seed and index).")] = 0,
    failures: Annotated[int, typer.Option(help="Top-down pictures of this many failed episodes (with --out).")
                        ] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line of the summary.")] = False,
    no_critic: Annotated[bool, typer.Option("--no-critic", help="NavDP ablation: execute a random sample "
                                                                "instead of the critic's best.")] = False,
    sliding: Annotated[bool, typer.Option(help="Moves into obstacles slide along them (habitat-lab's default "
                                               "allow_sliding); --no-sliding stops them.")] = True,
) -> None:
    """Drive each episode in closed loop and score it as habitat-lab's PointNav: success (STOP within 0.2 m),
    SPL, SoftSPL, collisions; plus NavDP's success (within 1 m at the end).

    Every 0.3 s the planner sees depth and the goal in the robot frame; the tracker follows its plan at 10 Hz on
    a unicycle; moves into obstacles count as collisions and slide along them (habitat's allow_sliding).
    STOP is a command below 0.025 m/s and 1 deg/s.
    Episodes end on STOP, after 120 s, or when stuck (< 0.1 m in 9 s). With --out the run is a resumable job:
    --resume continues it; a run finished with the same planner, episodes, options and code is reported again.
    """
    import tempfile

    from diffplan.jobs import RunOptions
    from eval.pointnav import benchmark as synth
    from eval.pointnav.episodes import read_episodes
    from eval.pointnav.loop import LoopConfig
    from eval.pointnav.report import collisions_note, markdown_table, save_failure_pictures, write_run
    from eval.pointnav.results import PointNavSummary, summarize
    from eval.pointnav.runner import PointNavConfig, PointNavEvaluation, WorldCache
    from eval.reuse import finished_run, planner_fingerprint, run_key
    from planners.control import TRACKERS
    from scenes.nav import ROBOTS

    assert BENCHMARKS == synth.BENCHMARKS
    with user_errors():
        options = RunOptions(workers, ray, resume).validate()
        if limit is not None and limit < 1:
            raise UserError(f"--limit must be positive, got {limit}")
        if robot is not None and robot not in ROBOTS:
            raise UserError(f"unknown --robot {robot!r}; expected one of {', '.join(ROBOTS)}")
        if tracker not in TRACKERS:
            raise UserError(f"unknown --tracker {tracker!r}; expected one of {', '.join(TRACKERS)}")
        loaded = planners.load(planner)  # fail early on an unknown planner or one for driving
        planners.require_domain(loaded, planners.Domain.NAVIGATION, "eval pointnav")
        oracle = loaded.privileged
        if no_critic and not hasattr(loaded, "use_critic"):
            raise UserError(f"--no-critic: planner {planner!r} has no critic (it is for navdp)")
        if episodes in BENCHMARKS:
            if not synth.benchmark_path(episodes, robot or "wheeled").is_file():
                console.print(f"generating {episodes} into {synth.benchmark_path(episodes, robot or 'wheeled')} "
                              "...", highlight=False)
            items = synth.load_benchmark(episodes, robot or "wheeled")
            benchmark = episodes
        elif episodes.endswith((".json", ".json.gz")) or Path(episodes).exists():
            items = read_episodes(Path(episodes))
            benchmark = None
        else:
            raise UserError(f"--episodes {episodes!r}: neither a .json.gz episode file nor one of "
                            f"{', '.join(BENCHMARKS)}")
        selected = synth.select_episodes(len(items), limit, spread)
        identity = synth.episodes_identity(benchmark, robot or "wheeled", items, selected, spread)
        items = [items[i] for i in selected]
        key = run_key(planner, identity.evaluated_hash, {"tracker": tracker, "robot": robot, "seed": seed,
                                                         "sliding": sliding, "no_critic": no_critic})
        label = run_label(run_name(planner, out), oracle, no_critic)
        previous = finished_run(out, key, "episodes.csv")
        if previous is not None:
            summary = PointNavSummary.from_json(previous)
            console.print(f"{out}: finished before with the same planner, episodes, options and code; not run "
                          "again (choose another --out to rerun)", highlight=False)
            console.print(markdown_table([(label, summary)]) + f"\n{identity.subset}", highlight=False)
            if as_json:
                print(json.dumps(summary.as_json()))
            return
        config = PointNavConfig(planner=planner, tracker=tracker, robot=robot, seed=seed,
                                use_critic=not no_critic, loop=LoopConfig(allow_sliding=sliding))
        job = PointNavEvaluation(tuple(enumerate(items)), config, planner_fingerprint(planner),
                                 identity.evaluated_hash)
        with tempfile.TemporaryDirectory(prefix="diffplan-pointnav-") as scratch:
            folder = out if out is not None else Path(scratch) / "run"
            results = run_with_bar(job, folder, options, "episodes", len(items), f"pointnav {planner}")
        summary = summarize(results)
        if out is not None:
            extra = {"oracle": oracle, "episodes": episodes, "tracker": tracker, "robot": robot, "seed": seed,
                     "sliding": sliding, "no_critic": no_critic, "benchmark": identity.as_json(), "run_key": key}
            write_run(out, planner, results, summary, extra)
            if failures > 0:
                worlds = WorldCache(config.worlds)
                save_failure_pictures(out, items, results, worlds.get,
                                      lambda e: ROBOTS[robot or e.robot], failures)
    console.print(markdown_table([(label, summary)]) + collisions_note(sliding), highlight=False)
    console.print(f"{identity.subset}; {summary.n_episodes} episodes, {summary.n_failed} failed; terminations "
                  + ", ".join(f"{k} {v}" for k, v in summary.terminations.items())
                  + (f"; outputs in {out}" if out else ""), highlight=False)
    for result in results:
        if result.failed:
            console.print(f"[red]failed[/] {result.episode_id}: {result.error}", highlight=False)
    if as_json:
        print(json.dumps(summary.as_json()))
