"""`diffplan eval ...`: evaluation of driving (NAVSIM pseudo-simulation) and navigation (PointNav) planners.

Library modules (planners, the simulator, the scorer) are imported inside the commands, so that
`diffplan --help` answers quickly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

import planners
from diffplan.commands.eval_closed_loop import closed_loop
from diffplan.commands.eval_nuscenes import nuscenes
from diffplan.commands.eval_pstl import pstl
from diffplan.commands.pointnav import pointnav
from diffplan.console import (
    RayOption,
    ResumeOption,
    UserError,
    WorkersOption,
    output_console,
    run_with_bar,
    user_errors,
)
from eval.naming import metric_label, run_label, run_name
from scenes.manifest import BenchmarkIdentity
from scenes.store import DriveDataset

app = typer.Typer(help="Closed-loop evaluation.", no_args_is_help=True, add_completion=False,
                  rich_markup_mode="markdown")
app.command()(pointnav)
app.command()(nuscenes)
app.command(name="closed-loop")(closed_loop)
app.command()(pstl)
console = output_console()
METRICS = {"pdms": "pdms-v1", "epdms": "epdms-v2"}  # CLI name -> planners.pdm.scoring.MetricVersion value


@app.command()
def navsim(
    planner: Annotated[str, typer.Option(help=f"Planner name ({', '.join(planners.available_planners())}) or "
                                              "checkpoint folder.")],
    scenes: Annotated[Path, typer.Option(help="Dataset of driving scenes, e.g. from "
                                              "`diffplan scenes generate --benchmark navtest-synth`.")],
    limit: Annotated[int | None, typer.Option(help="Evaluate only the first K scenes.")] = None,
    metric: Annotated[str, typer.Option(help="pdms (NAVSIM v1.1) or epdms (NAVSIM v2).")] = "pdms",
    workers: WorkersOption = 2,
    ray: RayOption = None,
    resume: ResumeOption = False,
    out: Annotated[Path | None, typer.Option(help="Run folder for scenes.csv, summary.json, table.md and "
                                                  "worst/*.png (and the job's units, so --resume continues "
                                                  "it).")] = None,
    reactive: Annotated[bool, typer.Option(help="Reactive IDM agents instead of log replay.")] = False,
    drop_failed: Annotated[bool, typer.Option(
        help="Leave failed scenes out of the mean, as NAVSIM silently does (for comparison only).")] = False,
    worst: Annotated[int, typer.Option(help="BEV pictures of this many worst scenes (with --out).")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line of the summary.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of stochastic (diffusion) planners, reset at every scene.")] = 0,
) -> None:
    """Score a planner with NAVSIM's non-reactive pseudo-simulation: PDM Score (v1.1) or EPDMS (v2).

    Each plan (8 poses at 0.5 s) is tracked by an LQR controller on a kinematic bicycle for 4 s at 10 Hz, without
    re-planning, and scored against PDM-Closed, whose trajectories are cached next to the dataset. A planner
    that raises or returns NaN scores 0 on that scene, and the scene is listed. With --out the run is a
    resumable job: --resume continues it; a run finished with the same planner, scenes, options and code is
    reported again instead of being rerun.
    """
    import tempfile

    from diffplan.jobs import RunOptions
    from eval.report import markdown_table, save_worst_bevs, write_run
    from eval.results import Summary, summarize
    from eval.reuse import finished_run, planner_fingerprint, run_key
    from eval.runner import EvalConfig, NavsimEvaluation
    from planners.pdm.scoring import MetricVersion
    from scenes.generate import dataset_identity

    with user_errors():
        if metric not in METRICS:
            raise UserError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
        if limit is not None and limit < 1:
            raise UserError(f"--limit must be positive, got {limit}")
        options = RunOptions(workers, ray, resume).validate()
        loaded = planners.load(planner)  # fails early on an unknown planner or one for navigation
        planners.require_domain(loaded, planners.Domain.DRIVING, "eval navsim")
        oracle = loaded.privileged
        data = DriveDataset.open(scenes)
        indices = list(range(len(data) if limit is None else min(limit, len(data))))
        identity = dataset_identity(data, len(indices))  # a benchmark's scenes are checked against its manifest
        key = run_key(planner, identity.evaluated_hash, {"metric": metric, "reactive": reactive, "seed": seed,
                                                         "drop_failed": drop_failed})
        label = run_label(run_name(planner, out), oracle)
        named = metric_label(METRICS[metric], data.episodes.column("generator_version").to_pylist()[:len(indices)])
        previous = finished_run(out, key, "scenes.csv")
        if previous is not None:
            summary = _read(out, previous, Summary)  # type: ignore[arg-type]  # (found only under an --out)
            console.print(f"{out}: finished before with the same planner, scenes, options and code; not run "
                          "again (choose another --out to rerun)", highlight=False)
            console.print(markdown_table([(label, summary)]) + f"\n{identity.subset}; {named}", highlight=False)
            if as_json:
                print(json.dumps(summary.as_json()))
            return
        config = EvalConfig(planner=planner, version=MetricVersion(METRICS[metric]), reactive_agents=reactive,
                            seed=seed)
        job = NavsimEvaluation(str(scenes), config, tuple(indices), planner_fingerprint(planner))
        with tempfile.TemporaryDirectory(prefix="diffplan-eval-") as scratch:
            folder = out if out is not None else Path(scratch) / "run"
            results = run_with_bar(job, folder, options, "scenes", len(indices), f"eval {planner}")
        summary = summarize(results, config.version, drop_failed)
        if out is not None:
            extra = {"oracle": oracle, "reactive_agents": reactive, "dataset": str(scenes), "seed": seed,
                     "benchmark": identity.as_json(), "run_key": key, "metric_label": named}
            write_run(out, planner, results, summary, extra)
            if worst > 0:
                save_worst_bevs(out, data, results, worst)
    console.print(markdown_table([(label, summary)]), highlight=False)
    console.print(f"{identity.subset}; {named}: {summary.n_scenes} scenes, {summary.n_failed} failed"
                  + (f"; outputs in {out}" if out else ""), highlight=False)
    for result in results:
        if result.failed:
            console.print(f"[red]failed[/] {result.scene_id}: {result.error}", highlight=False)
    if as_json:
        print(json.dumps(summary.as_json()))


@app.command()
def table(
    runs: Annotated[list[Path], typer.Argument(
        help="Run folders written by `diffplan eval navsim --out`, `eval closed-loop --out` or `eval pointnav "
             "--out`.")],
    allow_mixed: Annotated[bool, typer.Option(
        help="Put runs on different scene or episode sets in one table anyway; their rows are marked.")] = False,
) -> None:
    """One Markdown table of several evaluation runs of one kind: NAVSIM runs (NC, DAC, TTC, Comf, EP, PDMS in
    percent), closed-loop runs (nuPlan's CLS sub-metrics, CLS, EC, latency) or PointNav runs (success, NavDP's
    1 m success, SPL, SoftSPL in percent, collisions/episode).

    Rows are named after their run folders. Runs must have evaluated the same scenes or episodes (the same
    benchmark, version and subset, compared by content hash); --allow-mixed shows them anyway, marked.
    """
    from eval.pointnav.report import collisions_note
    from eval.pointnav.report import markdown_table as pointnav_table
    from eval.pointnav.results import PointNavSummary
    from eval.report import markdown_table
    from eval.results import Summary

    with user_errors():
        bodies = [_read_summary(run) for run in runs]
        kinds = {"pointnav" if "spl" in body else "closed-loop" if "cls" in body else "navsim" for body in bodies}
        if len(kinds) > 1:
            raise UserError(f"cannot mix {' and '.join(sorted(kinds))} runs in one table")
        labels = [run_label(run.resolve().name, bool(body.get("oracle")), bool(body.get("no_critic")))
                  for run, body in zip(runs, bodies, strict=True)]
        identities = [BenchmarkIdentity.from_json(body.get("benchmark")) for body in bodies]
        labels, caption = _mark_mixed(runs, labels, identities, allow_mixed)
        if kinds == {"closed-loop"}:
            from eval.closed_loop.job import ClosedLoopSummary
            from eval.closed_loop.report import markdown_table as closed_loop_table

            loop_rows = [(label, _read(run, body, ClosedLoopSummary))
                         for run, label, body in zip(runs, labels, bodies, strict=True)]
            if len({summary.metric for _, summary in loop_rows}) > 1:
                raise UserError("the runs use different metrics: " + ", ".join(s.metric for _, s in loop_rows))
            console.print(caption + "\n\n" + closed_loop_table(loop_rows), highlight=False, soft_wrap=True,
                          markup=False)
            return
        if kinds == {"pointnav"}:
            rows = [(label, _read(run, body, PointNavSummary)) for run, label, body in zip(runs, labels, bodies,
                                                                                     strict=True)]
            console.print(caption + "\n\n" + pointnav_table(rows), highlight=False, soft_wrap=True)
            sliding = {body.get("sliding", True) for body in bodies}
            console.print(collisions_note(sliding != {False}), highlight=False, soft_wrap=True)
            return
        rows = [(label, _read(run, body, Summary)) for run, label, body in zip(runs, labels, bodies, strict=True)]
        if len({summary.metric for _, summary in rows}) > 1:
            raise UserError("the runs use different metrics: " + ", ".join(s.metric for _, s in rows))
    console.print(caption + f" ({rows[0][1].metric})\n\n" + markdown_table(rows), highlight=False, soft_wrap=True)
    console.print(", ".join(f"{label}: {s.n_scenes} scenes, {s.n_failed} failed" for label, s in rows),
                  highlight=False, soft_wrap=True)


def _mark_mixed(runs: list[Path], labels: list[str], identities: list[BenchmarkIdentity | None],
                allow_mixed: bool) -> tuple[list[str], str]:
    """(labels, caption): one caption naming the benchmark and subset, or, with --allow-mixed, marked labels
    and a caption listing each run's set; UserError when the sets differ without --allow-mixed."""
    keys = [None if i is None else (i.name, i.version, i.evaluated_hash) for i in identities]
    if len(set(keys)) == 1:
        return labels, identities[0].subset if identities[0] else "scene set unknown (runs made before summaries " \
            "recorded their benchmark)"
    described = [i.subset if i is not None else "unknown set (run made before benchmark hashes)"
                 for i in identities]
    if not allow_mixed:
        first = next(k for k in range(len(keys)) if keys[k] != keys[0])
        raise UserError(f"{runs[0]} ({described[0]}) and {runs[first]} ({described[first]}) evaluated different "
                        "sets; pass --allow-mixed to put them in one table anyway")
    marks = {key: "*" * (n + 1) for n, key in enumerate(dict.fromkeys(keys))}
    labels = [f"{label} {marks[key]}" for label, key in zip(labels, keys, strict=True)]
    legend = "; ".join(f"{mark} {described[keys.index(key)]}" for key, mark in marks.items())
    return labels, f"MIXED SETS (--allow-mixed): {legend}"


def _read_summary(run: Path) -> dict:
    path = run / "summary.json"
    try:
        body = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: not found (is {run} an eval run folder?)") from None
    except json.JSONDecodeError as error:
        raise UserError(f"{path}: not a diffplan eval summary ({error})") from None
    if not isinstance(body, dict):
        raise UserError(f"{path}: not a diffplan eval summary (not a JSON object)")
    return body


def _read(run: Path, body: dict, kind):
    """`kind.from_json(body)` (Summary, ClosedLoopSummary or PointNavSummary) with a one-line error naming the
    file."""
    try:
        return kind.from_json(body)
    except (KeyError, TypeError) as error:
        raise UserError(f"{run / 'summary.json'}: not a diffplan {kind.__name__} (missing {error})") from None
