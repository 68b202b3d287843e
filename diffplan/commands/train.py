"""`diffplan anchors` (k-means trajectory anchors for anchor-based diffusion planners) and `diffplan train`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from diffplan.console import UserError, output_console, user_errors
from scenes.store import DatasetError, DriveDataset

console = output_console()


def anchors(
    data: Annotated[Path, typer.Option(help="Dataset whose expert futures are clustered (e.g. a train split).")],
    out: Annotated[Path, typer.Option(help="Output .npy file: (K, 8, 2) float32 x, y [m], ego frame.")],
    k: Annotated[int, typer.Option(help="Number of anchors (DiffusionDrive uses 20).")] = 20,
    seed: Annotated[int, typer.Option(help="k-means seed.")] = 0,
    plot: Annotated[Path | None, typer.Option(help="Also draw the anchors into this PNG.")] = None,
) -> None:
    """Cluster the expert's 4 s futures (8 waypoints at 0.5 s) into K anchors with k-means.

    DiffusionDrive never released its anchor script; this one works on any diffplan dataset.
    """
    from planners.anchors import expert_futures, fit_anchors, plot_anchors, save_anchors

    with user_errors(DatasetError):
        if k < 1:
            raise UserError(f"--k must be positive, got {k}")
        if out.suffix != ".npy":
            raise UserError(f"--out {out}: expected a .npy file")
        dataset = DriveDataset.open(data)
        futures = expert_futures(dataset)
        if k > len(futures):
            raise UserError(f"--k {k} is more than the {len(futures)} futures in {data}")
        result = fit_anchors(futures, k, seed)
        save_anchors(result, out)
        if plot is not None:
            plot_anchors(result, plot)
    console.print(f"{k} anchors from {len(futures)} futures -> {out}; inertia {result.inertia:.1f} m^2; "
                  f"cluster sizes {result.counts.min()}..{result.counts.max()}")


def train(
    name: Annotated[str, typer.Argument(help="Learned planner to train, e.g. ego-mlp, diffusiondrive.")],
    data: Annotated[list[Path], typer.Option(
        help="Dataset folder to train on (its train split by default); repeat it to train on several "
             "datasets together.")],
    out: Annotated[Path, typer.Option(help="Run folder: checkpoint/, lightning/last.ckpt and logs/ go here.")],
    epochs: Annotated[int, typer.Option(help="Passes over the training scenes.")] = 10,
    max_steps: Annotated[int | None, typer.Option(
        help="Stop after this many optimiser steps (before --epochs ends).")] = None,
    max_minutes: Annotated[float | None, typer.Option(
        help="Stop after this much training time [min] (a CPU budget; not reproducible across "
             "machines).")] = None,
    batch_size: Annotated[int, typer.Option(help="Scenes per optimiser step.")] = 64,
    lr: Annotated[float | None, typer.Option(
        help="Learning rate; default: the model's (ego-mlp 1e-4, DiffusionDrive and its baselines 6e-4).")] = None,
    split: Annotated[str, typer.Option(help="Dataset split to train on; 'all' for every scene.")] = "train",
    devices: Annotated[str, typer.Option(help="Lightning devices: 'auto', a count, or ids such as '0,1'.")] = "auto",
    num_nodes: Annotated[int, typer.Option(help="Lightning num_nodes (multi-node DDP).")] = 1,
    strategy: Annotated[str, typer.Option(help="Lightning strategy: auto, ddp, ddp_spawn, fsdp, ...")] = "auto",
    accelerator: Annotated[str, typer.Option(help="Lightning accelerator: auto, cpu, gpu.")] = "auto",
    precision: Annotated[str, typer.Option(help="Lightning precision: 32-true, bf16-mixed, 16-mixed.")] = "32-true",
    num_workers: Annotated[int, typer.Option(help="DataLoader worker processes.")] = 0,
    in_memory: Annotated[bool, typer.Option(help="Build all features once and keep them in memory.")] = False,
    resume: Annotated[bool, typer.Option(help="Continue from OUT/lightning/last.ckpt.")] = False,
    seed: Annotated[int, typer.Option(help="Seed for initialisation, shuffling and workers.")] = 0,
    export: Annotated[Path | None, typer.Option(
        help="Also write the trained planner as one NAME.safetensors file (weights + config metadata).")] = None,
    init: Annotated[Path | None, typer.Option(
        help="Fine-tune: start from this checkpoint folder or .safetensors file (same planner) and keep its "
             "normalisers and hyperparameters.")] = None,
    model: Annotated[list[str] | None, typer.Option(
        "--model", help="A model hyperparameter KEY=VALUE, repeatable (e.g. --model d_model=64 --model "
        "num_layers=3): KEY a field of the planner's model config, VALUE converted to its type (int, float, "
        "bool true/false, string, none, comma-separated tuple). Default: the model's defaults.")] = None,
) -> None:
    """Train a learned planner with Lightning and export a checkpoint that `--planner OUT/checkpoint` loads."""
    from planners.registry import UnknownPlannerError, available_planners
    from planners.training import TrainConfig, TrainingError, model_config_class
    from planners.training import train as run_training

    with user_errors(DatasetError, UnknownPlannerError, TrainingError):
        if name not in available_planners():
            raise UserError(f"unknown planner {name!r}; expected one of {', '.join(available_planners())}")
        if out.is_dir() and not resume and any(out.iterdir()):
            raise UserError(f"--out {out} is not empty; pass --resume to continue it or choose a new folder")
        config = TrainConfig(
            epochs=epochs, batch_size=batch_size, lr=lr, max_steps=max_steps, max_minutes=max_minutes,
            split=None if split == "all" else split, devices=parse_devices(devices), num_nodes=num_nodes,
            strategy=strategy, accelerator=accelerator, precision=precision, num_workers=num_workers,
            in_memory=in_memory, resume=resume, seed=seed, export=export, init=init, progress=True,
        ).validate()
        model_config = model_config_class(name).from_text(model) if model else None
        folder = run_training(name, data, out, config, model_config)
    limits = [f"{epochs} epoch(s)"] + ([f"at most {max_steps} steps"] if max_steps else []) \
        + ([f"at most {max_minutes:g} min"] if max_minutes else [])
    console.print(f"{name} trained for {', '.join(limits)} -> {folder}; metrics in {out / 'logs'}"
                  + (f"; exported {export}" if export is not None else ""))


def parse_devices(devices: str) -> int | str | tuple[int, ...]:
    """'auto' stays; '2' is a count; '0,1' lists device ids."""
    text = devices.strip()
    if text == "auto":
        return text
    try:
        if "," in text:
            return tuple(int(part) for part in text.split(",") if part.strip())
        return int(text)
    except ValueError:
        raise UserError(f"--devices {devices!r}: expected 'auto', a count or ids such as '0,1'") from None
