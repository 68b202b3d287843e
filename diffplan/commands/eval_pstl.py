"""`diffplan eval pstl`: pSTL's open-loop test (Table I): compliance, success, valid area, entropy, time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from diffplan.console import UserError, output_console, user_errors

console = output_console()
GUIDANCE = ("none", "last", "every")


def parse_theta(text: str) -> tuple[float, ...]:
    """"1,9,2.5,0.2,0.1" -> the five θ values; UserError naming --stl-params otherwise."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise UserError(f"--stl-params must be 5 comma-separated numbers v_min,v_max,d_lat,h_max,d_safe, "
                        f"got {text!r}") from None
    return values


def pstl(
    planner: Annotated[str, typer.Option(help="pstl, pstl-ctg, pstl-vae, or a checkpoint of one of them.")],
    scenes: Annotated[str, typer.Option(
        help="Open loop: a `diffplan datagen drive` dataset folder (its demonstrations give each window's modes "
             "and θ) or imported logs (a heuristic label and θ per log). --closed-loop: navtest-synth or a "
             "dataset folder of logs.")],
    closed_loop: Annotated[bool, typer.Option(
        "--closed-loop", help="pSTL's closed-loop test instead: re-plan every 0.5 s on --limit logs with "
                              "replayed agents and pSTL's fixed θ (or --stl-params), executing the candidate "
                              "of highest robustness on the observation; compliance, area, progress, "
                              "collision and off-road rates, time per step.")] = False,
    duration: Annotated[float, typer.Option(help="--closed-loop: simulated time per log [s].")] = 15.0,
    samples: Annotated[int, typer.Option(help="Samples per window and mode (pSTL: 64).")] = 64,
    split: Annotated[str, typer.Option(help="Dataset split to test on; 'all' for every scene.")] = "all",
    limit: Annotated[int | None, typer.Option(help="Test only the first K windows.")] = None,
    mode: Annotated[str | None, typer.Option(
        help="Test only this mode: keep, left, right or stop. Default: every mode a window has.")] = None,
    stl_params: Annotated[str | None, typer.Option(
        help="Fixed θ for every case, 'v_min,v_max,d_lat,h_max,d_safe' [m/s, m/s, m, rad, m]. Default: the θ "
             "of each window's demonstration of that mode.")] = None,
    sampler: Annotated[str | None, typer.Option(
        help="ddim (at most 10 steps) or ddpm (pSTL's 99 ancestral steps). Default: the planner's (pstl ddim, "
             "pstl-ctg ddpm).")] = None,
    steps: Annotated[int | None, typer.Option(help="DDIM steps (1 to 10). Default: the model's.")] = None,
    guidance: Annotated[str | None, typer.Option(
        help="STL guidance: none, last (the last --guide-steps steps, pSTL's '+guidance') or every (CTG). "
             "Default: none, every for pstl-ctg.")] = None,
    guide_steps: Annotated[int, typer.Option(help="Guided final steps with --guidance last (pSTL: 10).")] = 10,
    guide_iterations: Annotated[int | None, typer.Option(
        help="Adam iterations per guided step. Default: 1 (last), 3 (every: CTG).")] = None,
    guide_lr: Annotated[float, typer.Option(
        help="Adam learning rate of the guide, in the model's normalised sample units (controls: ω / 1 rad/s, "
             "a / 5 m/s^2; waypoints: DiffusionDrive's xy ranges).")] = 0.01,
    guide_margin: Annotated[float, typer.Option(
        help="The guide lowers mean ReLU(margin - smooth robustness) (pSTL: 0.01 open loop; 100 in closed loop, "
             "i.e. always raising the robustness).")] = 0.01,
    refine: Annotated[int | None, typer.Option(
        help="RefineNet rounds after sampling (pSTL's open loop: 3; one is best for the shipped checkpoint), for "
             "a checkpoint trained with `diffplan train-refinenet`. 0: none. Default: 1 when the checkpoint has "
             "a RefineNet, else 0.")] = None,
    seed: Annotated[int, typer.Option(help="Noise seed; case k uses seed + k.")] = 0,
    out: Annotated[Path | None, typer.Option(
        help="Run folder: summary.json, cases.csv, table.md and figures/ (samples coloured by robustness).")] = None,
    figures: Annotated[int, typer.Option(help="BEV pictures of the first K cases' samples (with --out).")] = 4,
    sweep_windows: Annotated[int, typer.Option(
        help="Controllability: sweep v_max on the lane-keeping case of this many windows and d_safe on as "
             "many whose gap a plan can change (among the --limit windows), report the fraction whose mean "
             "speed / least gap rise with them, and draw the sweeps and pSTL's case study (with --out). "
             "0: no sweeps.")] = 0,
    as_json: Annotated[bool, typer.Option(
        "--json", help="End with one JSON line: compliance, success, valid_area, entropy, time_per_sample_s, "
                       "n_windows, ...")] = False,
) -> None:
    """pSTL's open-loop test: per window and mode, sample the planner under the mode's θ and score every sample
    with the exact robustness of the mode's STL spec (speed band, lane keeping or change, safe distance).

    Compliance is the fraction of samples with robustness > 0, success the fraction of (window, mode) with
    one, valid area the area [m^2] of the 100 x 100 histogram cells the satisfying samples cover, entropy
    pSTL's 10-bin control entropy (ent_wa) [bit] of the satisfying samples, and time the sampling wall time
    per sample [s].
    """
    import planners
    from eval.pstl.figures import samples_by_robustness
    from eval.pstl.guide import stl_objective
    from eval.pstl.open_loop import evaluate_cases, per_mode, pstl_cases, summarize
    from eval.pstl.report import summary_table, write_open_loop_run
    from planners.pstl.condition import DrivingMode, STLCondition
    from planners.pstl.planner import GuidanceSettings, PstlPlanner, SamplingSettings
    from scenes.store import DriveDataset

    with user_errors():
        loaded = planners.load(planner)
        if not isinstance(loaded, PstlPlanner):
            raise UserError(f"--planner {planner!r} is not a pSTL planner (pstl, pstl-ctg, pstl-vae)")
        if samples < 1:
            raise UserError(f"--samples must be positive, got {samples}")
        if guidance is not None and guidance not in GUIDANCE:
            raise UserError(f"unknown --guidance {guidance!r}; expected one of {', '.join(GUIDANCE)}")
        modes = tuple(DrivingMode)
        if mode is not None:
            names = {m.name.lower(): m for m in DrivingMode}
            if mode not in names:
                raise UserError(f"unknown --mode {mode!r}; expected one of {', '.join(names)}")
            modes = (names[mode],)
        override = None
        if stl_params is not None:
            override = STLCondition(modes[0], np.array(parse_theta(stl_params))).validate()
        elif closed_loop:
            from eval.pstl.closed_loop import pstl_condition

            override = pstl_condition()
        kind = guidance or ("every" if loaded.default_guidance.last_steps is None else "none")
        iterations = 0 if kind == "none" else guide_iterations or (3 if kind == "every" else 1)
        sampling = SamplingSettings(sampler or loaded.default_sampling.sampler, steps, samples)
        if refine is None:
            refine = 1 if loaded.refinable else 0
        if refine < 0:
            raise UserError(f"--refine must be >= 0, got {refine}")
        if refine and not loaded.refinable:
            raise UserError(f"--refine {refine}: {planner} has no RefineNet (train one with `diffplan "
                            "train-refinenet`)")
        try:
            loaded.configure(sampling=sampling, guidance=GuidanceSettings(
                iterations, guide_lr, None if kind == "every" else guide_steps, guide_margin,
                refine_rounds=refine))
        except ValueError as error:
            raise UserError(str(error)) from None
        if kind != "none" or refine:
            if not loaded.guidable:
                raise UserError(f"--guidance {kind}: {loaded.name} has no denoising chain to guide")
            loaded.objective_builder = stl_objective
        if closed_loop:
            _closed_loop(loaded, scenes, limit or 26, duration, override, samples, seed, out, as_json)
            return
        data = DriveDataset.open(scenes)
        indices = data.indices(split=None if split == "all" else split)
        cases = pstl_cases(data, indices, modes, override)
        if limit is not None:
            windows = list(dict.fromkeys(case.window for case in cases))[:max(limit, 0)]
            cases = [case for case in cases if case.window in set(windows)]
        if not cases:
            raise UserError(f"{scenes}: no (window, mode) to test (split {split!r}, modes "
                            f"{', '.join(m.name.lower() for m in modes)})")
        from rich.progress import Progress

        with Progress(console=console, transient=True) as progress:
            task = progress.add_task(f"pSTL open loop {planner}", total=len(cases))
            results = evaluate_cases(loaded, data, cases, seed, lambda result: progress.advance(task))
        summary = summarize(results)
        controllability = None
        if sweep_windows > 0:
            from eval.pstl.sweeps import summarize_sweeps, write_pictures
            from eval.pstl.sweeps import sweep_windows as run_sweeps

            sweeps = run_sweeps(loaded, data, cases, sweep_windows, samples, seed)
            controllability = summarize_sweeps(sweeps)
            if out is not None:
                write_pictures(out / "figures", loaded, data, sweeps, samples, seed)
        name = Path(planner).stem if Path(planner).exists() else planner
        label = f"{name} ({sampling.sampler}, {kind}{f', refine x{refine}' if refine else ''})"
        if out is not None:
            write_open_loop_run(out, label, results, summary, per_mode(results),
                                None if controllability is None else controllability.as_json())
            for result in results[:max(figures, 0)]:
                c = result.case
                samples_by_robustness(data[c.index], result.samples, result.rho,
                                      out / "figures" / f"{c.window}_{c.condition.mode.name.lower()}.png",
                                      f"{label}: {c.window} {c.condition.mode.name.lower()}")
    console.print(summary_table([(label, summary)] + [(f"  {m.name.lower()}", s) for m, s in per_mode(results)]),
                  highlight=False, markup=False)
    if controllability is not None:
        rows = zip(controllability.fields, controllability.monotone_fraction, controllability.windows,
                   strict=True)
        for field, fraction, swept_windows in rows:
            where = " with a controllable gap" if field == "d_safe" else ""
            console.print(f"controllability: {field} sweep monotone in {fraction:.0%} of {swept_windows} "
                          f"windows{where}", highlight=False)
    if as_json:
        extra = {} if controllability is None else controllability.as_json()
        print(json.dumps({**summary.as_json(), **extra}))


def _closed_loop(planner, scenes: str, limit: int, duration: float, condition, samples: int, seed: int,
                 out: Path | None, as_json: bool) -> None:
    """`eval pstl --closed-loop` (see its --help)."""
    from eval.closed_loop.job import LogSource
    from eval.pstl.closed_loop import PstlClosedLoopConfig, run_pstl_closed_loop
    from scenes.store.layout import atomic_write_bytes

    source = LogSource(scenes, duration).validate()
    config = PstlClosedLoopConfig(condition, duration, samples=samples, seed=seed).validate()
    summary = run_pstl_closed_loop(planner, source, range(min(limit, len(source))), config)
    body = summary.as_json()
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out / "summary.json", (json.dumps(body, indent=2, sort_keys=True) + "\n").encode())
    console.print("| Compl. | Area [m^2] | Progress [m] | Coll. | at fault | OOL | Time / step [s] | logs |\n"
                  "|---|---|---|---|---|---|---|---|\n"
                  f"| {summary.compliance:.3f} | {summary.area:.3f} | {summary.progress_m:.1f} | "
                  f"{summary.collision_rate:.3f} | {summary.at_fault_collision_rate:.3f} | "
                  f"{summary.offroad_rate:.3f} | {summary.time_per_step_s:.4f} | "
                  f"{summary.n_scenarios} |", highlight=False, markup=False)
    if as_json:
        print(json.dumps(body))
