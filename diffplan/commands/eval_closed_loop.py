"""`diffplan eval closed-loop`: nuPlan-style closed-loop simulation with re-planning, CLS-NR / CLS-R."""

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

console = output_console()
AGENT_MODES = ("replay", "idm", "sim")


def closed_loop(
    planner: Annotated[str, typer.Option(help=f"Planner name ({', '.join(planners.available_planners())}) or "
                                              "checkpoint folder.")],
    scenes: Annotated[str, typer.Option(
        help="`navtest-synth` (its seeds and scenario mix simulated for the "
             "whole duration, on longer roads) or a dataset folder of driving "
             "scenes (imported logs: the simulation stops where the log does).")] = "navtest-synth",
    agents: Annotated[str, typer.Option(
        help="replay: the log's agents (CLS-NR); idm: nuPlan's IDM agents, "
             "reacting to the ego (CLS-R); sim: our traffic simulator's own "
             "agents reacting to the ego (navtest-synth only; scored as CLS-R).")] = "replay",
    replan_every: Annotated[int, typer.Option(
        help="Call the planner every K steps of 0.1 s (nuPlan: 1).")] = 1,
    duration: Annotated[float, typer.Option(help="Simulated time [s] per scenario (nuPlan: 15).")] = 15.0,
    limit: Annotated[int | None, typer.Option(help="Simulate only the first K scenarios.")] = None,
    workers: WorkersOption = 2,
    ray: RayOption = None,
    resume: ResumeOption = False,
    out: Annotated[Path | None, typer.Option(
        help="Run folder for scenes.csv, summary.json, table.md and "
             "worst/*.gif (and the job's units, so --resume continues it).")] = None,
    worst: Annotated[int, typer.Option(
        help="Animated BEV roll-outs of this many worst scenarios (with --out).")] = 3,
    as_json: Annotated[bool, typer.Option(
        "--json", help="End with one JSON line: metric, cls, n_scenes, "
                       "n_failed, every sub-metric, latency_ms_p95, ...")] = False,
    seed: Annotated[int, typer.Option(
        help="Seed of stochastic (diffusion) planners, reset at every scenario.")] = 0,
    warm_start: Annotated[str | None, typer.Option(
        help="START_T:STEPS, e.g. 4:1: a diffusion planner (diffusiondrive, diffusion-policy) starts each "
             "call after the first from its previous plan, shifted by the re-plan interval and noised to "
             "START_T (diffusiondrive 0-49, diffusion-policy 0-999), then takes STEPS denoising steps "
             "(RTI-DP). Default: cold start every call.")] = None,
) -> None:
    """Closed-loop simulation as nuPlan runs it, scored with nuPlan's closed-loop score (CLS-NR or CLS-R).

    Every 0.1 s (or every --replan-every steps) the planner sees the observation of the *simulated* world,
    plans, and the ego tracks the plan with an LQR controller on a kinematic bicycle. Agents replay the log
    or follow their lanes with IDM, reacting to the ego. Per scenario: NC x DAC x DDC x MP x (5 EP + 5 TTC +
    4 SLC + 2 C) / 16; CLS is the mean x 100. Also reported: EC (consistency of plans 0.5 s apart), planner
    latency p50/p95 [ms] and denoising steps per call. A planner that raises or returns NaN ends its
    scenario with score 0, and the scenario is listed.
    """
    import tempfile

    from diffplan.jobs import RunOptions
    from eval.closed_loop.job import (
        ClosedLoopConfig,
        ClosedLoopEvaluation,
        LogSource,
        run_identity,
        summarize,
    )
    from eval.closed_loop.report import markdown_table, save_worst_animations, write_run
    from eval.closed_loop.simulation import AgentMode, SimulationConfig
    from eval.naming import run_label, run_name
    from eval.reuse import planner_fingerprint

    with user_errors():
        if agents not in AGENT_MODES:
            raise UserError(f"unknown --agents {agents!r}; expected one of {', '.join(AGENT_MODES)}")
        if limit is not None and limit < 1:
            raise UserError(f"--limit must be positive, got {limit}")
        options = RunOptions(workers, ray, resume).validate()
        simulation = SimulationConfig(duration, replan_every, AgentMode(agents), seed).validate()
        loaded = planners.load(planner)
        planners.require_domain(loaded, planners.Domain.DRIVING, "eval closed-loop")
        source = LogSource(scenes, duration).validate()
        count = len(source) if limit is None else min(limit, len(source))
        config = ClosedLoopConfig(planner, simulation, _warm_start(warm_start))
        config.load_planner()  # a planner without a warm start fails here, in one line
        job = ClosedLoopEvaluation(source, config, tuple(range(count)), planner_fingerprint(planner))
        with tempfile.TemporaryDirectory(prefix="diffplan-closed-loop-") as scratch:
            folder = out if out is not None else Path(scratch) / "run"
            records = run_with_bar(job, folder, options, "scenarios", count, f"closed loop {planner}")
        summary = summarize(records)
        label = run_label(run_name(planner, out), loaded.privileged)
        identity = run_identity(source, records)
        subset = identity.subset
        if out is not None:
            write_run(out, label, config, records, summary, {"oracle": loaded.privileged, "scenes": scenes,
                                                             "subset": subset, "benchmark": identity.as_json()})
            if worst > 0:
                save_worst_animations(out, source, config, records, worst)
    console.print(markdown_table([(label, summary)]), highlight=False, markup=False)
    console.print(f"{subset}; {summary.metric.upper()}: {summary.n_scenes} scenarios, "
                  f"{summary.n_failed} failed" + (f"; outputs in {out}" if out else ""), highlight=False)
    for record in records:
        if record.failed:
            console.print(f"[red]failed[/] {record.scene_id}: {record.error}", highlight=False)
    if as_json:
        print(json.dumps(summary.as_json()))


def _warm_start(text: str | None) -> tuple[int, int] | None:
    """"4:1" -> (4, 1); UserError naming --warm-start on anything else."""
    if text is None:
        return None
    parts = text.split(":")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise UserError(f"--warm-start must be START_T:STEPS, e.g. 4:1, got {text!r}")
    return int(parts[0]), int(parts[1])
