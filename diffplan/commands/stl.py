"""`diffplan stl ...`: calibrate driving-rule parameters on a dataset and check satisfaction rates."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from diffplan.console import UserError, output_console, progress_bar, user_errors
from stl.rules import RULES

app = typer.Typer(help="Signal temporal logic driving rules.", no_args_is_help=True, add_completion=False,
                  rich_markup_mode="markdown")
console = output_console()

DataOpt = Annotated[Path, typer.Option("--data", help="Dataset folder (from `diffplan scenes generate`).")]


def dataset_windows(path: Path):
    """Expert windows of every scene of the dataset at `path`: Signals (N, 41, D) and scenario types."""
    import numpy as np

    from scenes.store import DriveDataset
    from stl.robustness import Signals
    from stl.signals import SIGNAL_NAMES, drive_signals

    if not path.exists():
        raise UserError(f"{path}: dataset not found")
    data = DriveDataset.open(path)
    values, types = [], []
    with progress_bar("scenes") as bar:
        task = bar.add_task("signals", total=len(data))
        for i in range(len(data)):
            scene = data[i]
            values.append(drive_signals(scene).values[0])
            types.append(scene.metadata.scenario_type.value)
            bar.advance(task)
    if not values:
        raise UserError(f"{path}: dataset has no scenes")
    return Signals(SIGNAL_NAMES, np.stack(values)), types


def _fmt(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


@app.command("calibrate")
def calibrate_cmd(
    data: DataOpt,
    out: Annotated[Path, typer.Option(help="Params JSON file to write (atomically).")] = Path("params.json"),
    rules: Annotated[str, typer.Option(help=f"Comma-separated rule names, or all: {', '.join(RULES)}.")
                     ] = "all",
    q: Annotated[float, typer.Option(help="Fraction of windows that must satisfy each rule, in (0, 1).")
                 ] = 0.95,
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line of the params.")] = False,
) -> None:
    """Calibrate rule parameters on the expert's 4 s windows so that a fraction q satisfies each rule."""
    from scenes.store import DatasetError
    from stl.calibrate import ParamsError, calibrate
    from stl.formula import FormulaError
    from stl.rules import UnknownRuleError, rule_set
    from stl.signals import HORIZON_S

    with user_errors(DatasetError, UnknownRuleError, ParamsError, FormulaError):
        chosen = rule_set(rules)
        if not (math.isfinite(q) and 0 < q < 1):
            raise UserError(f"--q must be in (0, 1), got {q}")
        signals, _ = dataset_windows(data)
        dt = HORIZON_S / (signals.values.shape[1] - 1)
        params = calibrate(chosen, signals, q, dataset=str(data), dt=dt)
        params.save(out)
    table = Table(title=f"{data}: {params.count} windows, q = {q}")
    for column in ("rule", "windows", "level", "parameters"):
        table.add_column(column)
    for name in chosen.names:
        bindings = params.rules.of(name).bindings()  # type: ignore[union-attr]  # (calibrated: not None)
        shown = ", ".join(f"{k} = {v:.3f}" for k, v in bindings.items())
        used = params.applicable[name]
        table.add_row(name, str(used), _fmt(params.levels[name]), shown + ("" if used else " (default)"))
    console.print(table)
    console.print(f"wrote {out}")
    if as_json:
        print(json.dumps(params.rules.to_json(), sort_keys=True))


@app.command()
def check(
    data: DataOpt,
    params: Annotated[Path, typer.Option("--params", help="Params JSON from `diffplan stl calibrate`.")],
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line of the rates.")] = False,
) -> None:
    """Satisfaction rates (robustness >= 0) of each rule, overall and per scenario type."""
    from scenes.store import DatasetError
    from stl.calibrate import CalibratedParams, ParamsError, satisfaction
    from stl.formula import FormulaError
    from stl.rules import rule_set

    with user_errors(DatasetError, ParamsError, FormulaError):
        calibrated = CalibratedParams.load(params)  # checks every rule and parameter name
        chosen = rule_set(calibrated.rules.names)
        signals, types = dataset_windows(data)
        rates = satisfaction(chosen, signals, calibrated, types)
    table = Table(title=f"{data}: satisfaction rate (applicable windows) under {params}")
    table.add_column("scenario")
    for name in chosen.names:
        table.add_column(name, justify="right")
    for group, row in rates.items():
        cells = [f"{_fmt(r['rate'])} ({r['n']})" if r["n"] else "-" for r in row.values()]
        table.add_row(group, *cells)
    console.print(table)
    if as_json:
        clean = {g: {k: {"rate": None if math.isnan(v["rate"]) else v["rate"], "n": v["n"]}
                     for k, v in row.items()} for g, row in rates.items()}
        print(json.dumps(clean, sort_keys=True))
