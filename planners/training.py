"""Training learned planners with Lightning: a thin LightningModule and `train(...)`.

The only module in `planners` that imports Lightning; models stay plain `nn.Module`s. A run folder holds
    checkpoint/      the exported planner (model.safetensors + config.json), what `planners.load` reads
    lightning/       last.ckpt, the full training state for `resume`
    logs/version_N/  CSV metrics of run N (N > 0 after resuming), TensorBoard events if it is installed
"""

from __future__ import annotations

import datetime
import importlib.util
import sys
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from torch.utils.data import DataLoader, Dataset, Subset

from planners.checkpoint import CheckpointError, export_single_file, load_checkpoint, save_checkpoint
from planners.learned import LearnedPlanner, PlanningModel
from planners.registry import load, planner_class
from scenes.errors import DiffplanError

NORMALISER_SAMPLES = 4096  # scenes read to fit the normalisers


class TrainingError(DiffplanError, ValueError):
    """Bad training input (not a learned planner, bad numbers, empty split, nothing to resume)."""


class PlanningModule(L.LightningModule):
    """Forwards to the model's `loss`; the optimiser and schedule come from the model's `optimizer` hook."""

    def __init__(self, model: PlanningModel, lr: float = 1e-4, total_steps: int = 1):
        super().__init__()
        self.model, self.lr, self.total_steps = model, lr, total_steps

    def forward(self, features: Any) -> torch.Tensor:
        return self.model(features)

    def training_step(self, batch: tuple[Any, Any], batch_idx: int) -> torch.Tensor:
        features, targets = batch
        loss, logs = self.model.loss(features, targets)
        size = len(targets)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=size)
        self.log_dict({f"train/{k}": v for k, v in logs.items()}, on_epoch=True, batch_size=size)
        return loss

    def configure_optimizers(self) -> Any:
        total_steps = self.total_steps
        if self._trainer is not None:  # optimiser steps of the whole run, per process (DDP shards the data)
            total_steps = max(1, int(self.trainer.estimated_stepping_batches))
        optimiser, scheduler = self.model.optimizer(self.lr, total_steps)
        if scheduler is None:
            return optimiser
        return {"optimizer": optimiser, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def train(
    name: str,
    data: Path | str,
    out: Path | str,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float | None = 1e-4,
    devices: int | str = "auto",
    precision: str = "32-true",
    resume: bool = False,
    seed: int = 0,
    num_workers: int = 0,
    split: str | None = "train",
    accelerator: str = "auto",
    progress: bool = False,
    in_memory: bool = False,
    num_nodes: int = 1,
    strategy: str = "auto",
    hyperparameters: dict[str, Any] | None = None,
    export: Path | str | None = None,
    max_steps: int | None = None,
    max_minutes: float | None = None,
    init: Path | str | None = None,
) -> Path:
    """Train planner `name` on the scenes of dataset `data` (one split); returns `out`/checkpoint.

    With `resume`, training continues from `out`/lightning/last.ckpt (model, optimiser, epoch). With
    `in_memory`, features and targets are built once and kept (tensors or NamedTuples of tensors).
    `lr=None` takes the model's `default_lr` (e.g. DiffusionDrive's 6e-4), else 1e-4. `devices`,
    `num_nodes`, `strategy` (e.g. "ddp") and `precision` (e.g. "bf16-mixed") go to Lightning's Trainer.
    `max_steps` and `max_minutes` end training early (optimiser steps; wall-clock minutes of fitting).
    With `export`, the planner is also written as one `.safetensors` file there. Under DDP only global
    rank 0 writes; the other ranks wait for it. With `init` (a checkpoint folder or `.safetensors` file of
    planner `name`), training fine-tunes its weights and keeps its normalisers and hyperparameters.
    """
    if init is not None:
        planner = _initial(name, init, hyperparameters)
    else:
        planner = load(name) if not hyperparameters else _build(name, hyperparameters)
    if not isinstance(planner, LearnedPlanner):
        raise TrainingError(f"planner {name!r} is not a learned planner; it has nothing to train")
    if lr is None:
        lr = float(getattr(planner.model, "default_lr", 1e-4))
    if epochs < 1 or batch_size < 1 or lr <= 0 or num_workers < 0 or num_nodes < 1:
        raise TrainingError("epochs, batch size and num_nodes must be positive, lr > 0 and num_workers >= 0")
    out = Path(out)
    last = out / "lightning" / "last.ckpt"
    if resume and not last.is_file():
        raise TrainingError(f"resume: {last} does not exist")
    L.seed_everything(seed, workers=True, verbose=False)
    model = planner.model
    dataset: Dataset = model.training_dataset(data, split)
    if len(dataset) == 0:
        raise TrainingError(f"{data}: no scenes in split {split!r}")
    if not resume and init is None:  # resuming or fine-tuning keeps the normalisers with the weights
        sample = Subset(dataset, range(min(len(dataset), NORMALISER_SAMPLES)))
        try:
            model.fit_normalisers(DataLoader(sample, batch_size=256, num_workers=num_workers))
        except ValueError as error:  # e.g. fewer scenes than anchors, a bad anchors file
            raise TrainingError(str(error).splitlines()[0]) from None
    collate = None
    if in_memory:
        dataset = materialise(dataset, num_workers)
        num_workers, collate = 0, TensorTreeDataset.collate
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=num_workers,
                        persistent_workers=num_workers > 0, generator=torch.Generator().manual_seed(seed),
                        collate_fn=collate)
    loggers: list[Any] = [L.pytorch.loggers.CSVLogger(out, name="logs")]  # a new logs/version_N per run
    if importlib.util.find_spec("tensorboard") is not None:
        loggers.append(L.pytorch.loggers.TensorBoardLogger(out, name="logs", version=loggers[0].version))
    saver = L.pytorch.callbacks.ModelCheckpoint(dirpath=out / "lightning", save_last=True, save_top_k=0)
    callbacks: list[Any] = [saver]
    if progress:
        callbacks.append(progress_callback(sys.stderr.isatty()))
    try:
        trainer = L.Trainer(
            max_epochs=epochs, max_steps=max_steps or -1,
            max_time=datetime.timedelta(minutes=max_minutes) if max_minutes else None,
            accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy,
            precision=precision, logger=loggers,
            callbacks=callbacks, deterministic=True, default_root_dir=out, enable_progress_bar=progress,
            enable_model_summary=False, log_every_n_steps=max(1, min(50, len(loader))),
        )
    except (MisconfigurationException, ValueError, ImportError) as error:  # bad accelerator, devices or precision
        raise TrainingError(str(error).splitlines()[0]) from None
    model.train()
    total_steps = min(epochs * len(loader), max_steps or epochs * len(loader))
    trainer.fit(PlanningModule(model, lr, total_steps), loader, ckpt_path=last if resume else None)
    planner.model = model.cpu().eval()
    folder = out / "checkpoint"
    if trainer.is_global_zero:
        save_checkpoint(planner, folder)
        if export is not None:
            export_single_file(planner, export)
    trainer.strategy.barrier("diffplan-checkpoint")
    return folder


def progress_callback(interactive: bool) -> L.pytorch.callbacks.ProgressBar:
    """Rich's live bar in a terminal; in a log file (nohup, SLURM), where Rich draws nothing, tqdm lines
    every 50 steps."""
    if interactive:
        return L.pytorch.callbacks.RichProgressBar()
    return L.pytorch.callbacks.TQDMProgressBar(refresh_rate=50)


def _initial(name: str, init: Path | str, hyperparameters: dict[str, Any] | None) -> LearnedPlanner:
    """The planner saved at `init`, which must be a `name`, for fine-tuning."""
    if hyperparameters:
        raise TrainingError("--model and --init exclude each other: the checkpoint fixes the hyperparameters")
    try:
        planner = load_checkpoint(init)
    except CheckpointError as error:
        raise TrainingError(f"--init {error}") from None
    if planner.name != name:
        raise TrainingError(f"--init {init} holds a {planner.name} planner, not {name}")
    return planner


def _build(name: str, hyperparameters: dict[str, Any]) -> LearnedPlanner:
    """Planner `name` built with model hyperparameters (the model's constructor keywords)."""
    cls = planner_class(name)
    if cls is None or not isinstance(cls, type) or not issubclass(cls, LearnedPlanner):
        raise TrainingError(f"planner {name!r} is not a learned planner; it has no model hyperparameters")
    try:
        return cls(**hyperparameters)
    except (TypeError, ValueError) as error:
        raise TrainingError(f"{name}: bad model hyperparameters {hyperparameters}: {error}") from None


def materialise(dataset: Dataset, num_workers: int) -> TensorTreeDataset:
    """All items of a dataset, built once: items are tensors or (named) tuples of them, nested.

    The first batch fixes every leaf's shape and dtype; the full tensors are allocated then and filled
    batch by batch, so memory peaks at the dataset's size plus one batch.
    """
    total, filled, tree = len(dataset), 0, None
    for batch in DataLoader(dataset, batch_size=256, num_workers=num_workers):
        try:
            if tree is None:
                tree = allocate_like(batch, total)
            filled = fill(tree, batch, filled)
        except TypeError:
            raise TrainingError("in-memory training needs features and targets made of tensors and (named) "
                                "tuples of tensors") from None
    if tree is None or filled != total:
        raise TrainingError(f"in-memory training: the dataset gave {filled} items, it has {total}")
    return TensorTreeDataset(tree)


def allocate_like(batch: Any, total: int) -> Any:
    """Empty tensors for `total` items shaped as `batch`'s leaves (tensors or nested (named) tuples)."""
    if isinstance(batch, torch.Tensor):
        return torch.empty((total, *batch.shape[1:]), dtype=batch.dtype)
    if isinstance(batch, (tuple, list)):  # default_collate turns an item's (features, targets) into a list
        parts = [allocate_like(part, total) for part in batch]
        return type(batch)(*parts) if hasattr(batch, "_fields") else tuple(parts)
    raise TypeError(f"cannot materialise a {type(batch).__name__}")


def fill(tree: Any, batch: Any, start: int) -> int:
    """Copy `batch` into `tree` from item `start`; returns the next free item."""
    if isinstance(tree, torch.Tensor):
        if not isinstance(batch, torch.Tensor):
            raise TypeError(f"cannot materialise a {type(batch).__name__}")
        tree[start:start + len(batch)] = batch
        return start + len(batch)
    ends = {fill(part, item, start) for part, item in zip(tree, batch, strict=True)}
    if len(ends) != 1:
        raise TypeError("items whose parts have different lengths")
    return ends.pop()


def select(tree: Any, index: Any) -> Any:
    """`tree` (tensor or nested (named) tuples of tensors) indexed along dim 0."""
    if isinstance(tree, torch.Tensor):
        return tree[index]
    parts = [select(part, index) for part in tree]
    return type(tree)(*parts) if hasattr(tree, "_fields") else tuple(parts)


class TensorTreeDataset(Dataset):
    """Items of a materialised dataset: `tree` holds every item stacked along dim 0.

    `__getitems__` slices a whole batch at once (no per-item collation); use `collate` as the DataLoader's
    `collate_fn` with it.
    """

    def __init__(self, tree: Any):
        self.tree = tree
        leaf = tree
        while not isinstance(leaf, torch.Tensor):
            leaf = leaf[0]
        self.length = len(leaf)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> Any:
        return select(self.tree, i)

    def __getitems__(self, indices: list[int]) -> Any:
        return select(self.tree, torch.as_tensor(indices, dtype=torch.long))

    @staticmethod
    def collate(batch: Any) -> Any:
        """The batch `__getitems__` already built."""
        return batch
