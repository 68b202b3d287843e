"""`diffplan anchors`: k-means trajectory anchors for anchor-based diffusion planners."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scenes._cli import UserError, output_console, user_errors
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
