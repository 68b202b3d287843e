"""`diffplan train-refinenet`: pSTL's RefineNet on a trained pSTL checkpoint (`planners.pstl.refine`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from diffplan.console import UserError, output_console, user_errors
from scenes.store import DatasetError

console = output_console()


def train_refinenet(
    planner: Annotated[Path, typer.Option(help="A trained pSTL checkpoint (.safetensors or folder); its DDPM "
                                               "stays frozen. One with a RefineNet trains that further.")],
    data: Annotated[Path, typer.Option(
        help="`datagen drive` dataset (with target.mode and flex/stl extras).")],
    export: Annotated[Path, typer.Option(help="Write the planner with its RefineNet here (.safetensors).")],
    split: Annotated[str, typer.Option(help="Dataset split to train on; 'all' for every scene.")] = "train",
    limit: Annotated[int | None, typer.Option(help="Use only the first K demonstrations.")] = None,
    samples: Annotated[int, typer.Option(help="Samples per demonstration window (pSTL's shards: 16).")] = 16,
    epochs: Annotated[int, typer.Option(help="Passes over the windows.")] = 20,
    batch_windows: Annotated[int, typer.Option(help="Windows per Adam step.")] = 8,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-3,
    hidden: Annotated[int, typer.Option(help="Width of RefineNet's two hidden layers (pSTL: 256).")] = 256,
    stl_weight: Annotated[float, typer.Option(
        help="Weight of mean ReLU(0.01 - smooth robustness) (pSTL's README run: 0; its 'L_STL' ablation: "
             "1).")] = 1.0,
    diversity_weight: Annotated[float, typer.Option(
        help="Weight of pSTL's quality-weighted DPP diversity term (its README run's only term).")] = 0.1,
    seed: Annotated[int, typer.Option(
        help="Seed of RefineNet's initialisation, the samples and the order.")] = 0,
) -> None:
    """Train pSTL's RefineNet: a learned correction, applied after sampling, of the samples whose smooth STL
    robustness (from the observation only) is below 0. `diffplan eval pstl` applies one round by default."""
    import torch
    from rich.progress import Progress

    import planners
    from eval.pstl.guide import stl_objective
    from planners.checkpoint import export_single_file
    from planners.pstl.data import PstlDemoDataset
    from planners.pstl.model import PstlModel
    from planners.pstl.planner import PstlPlanner
    from planners.pstl.refine_training import RefineTrainSettings, refine_windows, train_refiner

    with user_errors(DatasetError):
        loaded = planners.load(str(planner))
        if not isinstance(loaded, PstlPlanner) or not isinstance(loaded.model, PstlModel):
            raise UserError(f"--planner {planner}: not a pSTL diffusion checkpoint (pstl or pstl-ctg)")
        if export.suffix != ".safetensors":
            raise UserError(f"--export {export}: must end in .safetensors")
        if samples < 1 or hidden < 1:
            raise UserError(f"--samples ({samples}) and --hidden ({hidden}) must be positive")
        try:
            settings = RefineTrainSettings(epochs, batch_windows, lr, stl_weight, diversity_weight).validate()
        except ValueError as error:
            raise UserError(str(error)) from None
        old = loaded.model
        if old.config.refine_hidden not in (0, hidden):
            raise UserError(f"--planner {planner} has a RefineNet of width {old.config.refine_hidden}; pass "
                            f"--hidden {old.config.refine_hidden} to train it further")
        torch.manual_seed(seed)
        model = PstlModel(old.config.with_values(refine_hidden=hidden))
        missing, unexpected = model.load_state_dict(old.state_dict(), strict=False)
        if unexpected or any(not key.startswith("refiner.") for key in missing):
            raise UserError(f"--planner {planner}: its weights do not fit a pSTL model")
        model.requires_grad_(False)
        assert model.refiner is not None
        model.refiner.net.requires_grad_(True)
        dataset = PstlDemoDataset(data, model.feature_builder(), split=None if split == "all" else split)
        if len(dataset) == 0:
            raise UserError(f"--data {data}: no demonstrations in split {split!r}")
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("sampling the frozen DDPM", total=min(limit or len(dataset), len(dataset)))
            windows = refine_windows(model, dataset, stl_objective, samples, seed=seed, limit=limit,
                                     progress=lambda done, total: bar.update(task, completed=done))
            task = bar.add_task("training RefineNet", total=epochs)

            def report(epoch: int, totals: dict[str, float]) -> None:
                bar.update(task, completed=epoch + 1)
                console.print(f"epoch {epoch + 1}: loss {totals['loss']:.4f}, stl {totals['stl']:.4f}, "
                              f"diversity {totals['diversity']:.3f}, surrogate compliance "
                              f"{totals['compliance']:.3f}")

            history = train_refiner(model.refiner, windows, model.decode_xy, settings,
                                    torch.Generator().manual_seed(seed), report)
        model.requires_grad_(True)
        model.eval()
        out = export_single_file(type(loaded)(model=model), export)
    console.print(f"RefineNet trained on {len(windows)} windows x {samples} samples for {epochs} epochs; "
                  f"surrogate compliance {history[-1]['input_compliance']:.3f} without it, "
                  f"{history[-1]['compliance']:.3f} with it; exported {out}")
