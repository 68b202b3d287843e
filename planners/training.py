"""Training learned planners with Lightning: a thin LightningModule and `train(name, data, out, config,
model)`.

`TrainConfig` says how to train (epochs, batch size, lr, Lightning's settings, ...); the model's
hyperparameters are its own config dataclass (planners.learned.config), e.g. `DiffusionDriveConfig`.

The only module in `planners` that imports Lightning; models stay plain `nn.Module`s. A run folder holds
    checkpoint/      the exported planner (model.safetensors + config.json), what `planners.load` reads
    lightning/       last.ckpt, the full training state for `resume`
    logs/version_N/  CSV metrics of run N (N > 0 after resuming), TensorBoard events if it is installed
"""

from __future__ import annotations

import datetime
import importlib.util
import math
import sys
from collections.abc import Mapping, Sequence, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import lightning as L
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset

from planners.base import Planner
from planners.checkpoint import CheckpointError, export_single_file, load_checkpoint, save_checkpoint
from planners.learned import LearnedPlanner, ModelConfig, PlanningModel
from planners.registry import load, planner_class
from scenes.errors import ConfigError, DiffplanError

NORMALISER_SAMPLES = 4096  # scenes read to fit the normalisers


class TrainingError(DiffplanError, ValueError):
    """Bad training input (not a learned planner, empty split, nothing to resume, a bad init checkpoint)."""


class TrainConfigError(TrainingError, ConfigError):
    """A `TrainConfig` field has a bad value; the message names the field."""


SEED_RANGE = (0, 2 ** 32 - 1)  # what numpy (and so Lightning's seed_everything) accepts


@dataclass(frozen=True)
class TrainConfig:
    """How to train a learned planner (its model's hyperparameters are the model's own config).

    Attributes:
        epochs: passes over the training scenes.
        batch_size: scenes per optimiser step.
        lr: learning rate; None takes the model's `default_lr` (DiffusionDrive and its baselines 6e-4), else
            1e-4.
        max_steps: stop after this many optimiser steps (None: no limit).
        max_minutes: stop after this much fitting time [min] (None: no limit; not reproducible across
            machines).
        split: the dataset split to train on; None for every scene.
        devices, num_nodes, strategy, accelerator, precision: Lightning Trainer settings (devices: "auto", a
            count, or a tuple of device ids; strategy e.g. "ddp"; precision e.g. "bf16-mixed").
        num_workers: DataLoader worker processes.
        in_memory: build every item's features and targets once and keep them (tensors or NamedTuples).
        resume: continue from `out`/lightning/last.ckpt (model, optimiser, epoch).
        seed: seeds shuffling, workers and training noise (0 .. 2^32 - 1).
        export: also write the planner as this one `.safetensors` file.
        init: fine-tune from this checkpoint folder or `.safetensors` file of the same planner, keeping its
            normalisers and model config.
        progress: draw a progress bar (Rich in a terminal, else tqdm lines).
    """

    epochs: int = 10
    batch_size: int = 64
    lr: float | None = None
    max_steps: int | None = None
    max_minutes: float | None = None
    split: str | None = "train"
    devices: int | str | tuple[int, ...] = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    accelerator: str = "auto"
    precision: str = "32-true"
    num_workers: int = 0
    in_memory: bool = False
    resume: bool = False
    seed: int = 0
    export: Path | None = None
    init: Path | None = None
    progress: bool = False

    def __post_init__(self) -> None:
        for name in ("export", "init"):  # paths may be given as strings
            if isinstance(getattr(self, name), str):
                object.__setattr__(self, name, Path(getattr(self, name)))
        if isinstance(self.devices, list):
            object.__setattr__(self, "devices", tuple(self.devices))

    def validate(self) -> TrainConfig:
        """Self, or TrainConfigError naming the first bad field."""
        for name, low in (("epochs", 1), ("batch_size", 1), ("num_nodes", 1), ("num_workers", 0)):
            check_int(name, getattr(self, name), low)
        if self.max_steps is not None:
            check_int("max_steps", self.max_steps, 1)
        for name in ("lr", "max_minutes"):
            value = getattr(self, name)
            if value is not None and not (is_number(value) and math.isfinite(value) and value > 0):
                raise config_error(name, f"must be positive, got {value!r}")
        check_int("seed", self.seed, SEED_RANGE[0], SEED_RANGE[1])
        if self.split is not None and not (isinstance(self.split, str) and self.split):
            raise config_error("split", f"must be a split name or None, got {self.split!r}")
        self.check_devices()
        for name in ("strategy", "accelerator", "precision"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise config_error(name, f"must be a non-empty string, got {getattr(self, name)!r}")
        for name in ("in_memory", "resume", "progress"):
            if not isinstance(getattr(self, name), bool):
                raise config_error(name, f"must be True or False, got {getattr(self, name)!r}")
        if self.export is not None and self.export.suffix != ".safetensors":
            raise config_error("export", f"{self.export}: expected a .safetensors file")
        return self

    def check_devices(self) -> None:
        """TrainConfigError unless `devices` is "auto" (or another name), a count or device ids."""
        devices = self.devices
        if isinstance(devices, tuple):
            ok = bool(devices) and all(is_number(d) and isinstance(d, int) and d >= 0 for d in devices)
        elif isinstance(devices, int) and not isinstance(devices, bool):
            ok = devices == -1 or devices >= 1
        else:
            ok = isinstance(devices, str) and bool(devices.strip())
        if not ok:
            raise config_error("devices", f"{devices!r}: expected 'auto', a count (-1: all) or a "
                                              "tuple of device ids")


def is_number(value: Any) -> bool:
    """Whether `value` is an int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_int(name: str, value: Any, low: int, high: int | None = None) -> None:
    """TrainConfigError unless field `name` is an int in [low, high]."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise config_error(name, f"must be an integer, got {value!r}")
    if value < low or high is not None and value > high:
        bounds = f"in {low} .. {high}" if high is not None else "positive" if low == 1 else f"{low} or more"
        raise config_error(name, f"must be {bounds}, got {value!r}")


def config_error(name: str, problem: str) -> TrainConfigError:
    """TrainConfigError "<name> <problem>" (on the command line "--<name> <problem>")."""
    return TrainConfigError(name, "{field} " + problem.replace("{", "{{").replace("}", "}}"))


class PlanningModule(L.LightningModule):
    """Forwards to the model's `loss`; the optimiser and schedule come from the model's `optimizer` hook."""

    def __init__(self, model: PlanningModel, lr: float = 1e-4, total_steps: int = 1):
        super().__init__()
        self.model, self.lr, self.total_steps = model, lr, total_steps

    def forward(self, features: Any) -> torch.Tensor:
        """The model's plans for batched features."""
        return self.model(features)

    def training_step(self, batch: tuple[Any, Any], batch_idx: int) -> torch.Tensor:
        """The model's loss on one batch; logs it and its diagnostics."""
        features, targets = batch
        loss, logs = self.model.loss(features, targets)
        size = len(targets)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=size)
        self.log_dict({f"train/{k}": v for k, v in logs.items()}, on_epoch=True, batch_size=size)
        return loss

    def configure_optimizers(self) -> Any:
        """The model's optimiser and per-step schedule over the run's optimiser steps."""
        total_steps = self.total_steps
        if self._trainer is not None:  # optimiser steps of the whole run, per process (DDP shards the data)
            total_steps = max(1, int(self.trainer.estimated_stepping_batches))
        optimiser, scheduler = self.model.optimizer(self.lr, total_steps)
        if scheduler is None:
            return optimiser
        return {"optimizer": optimiser, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def train(name: str, data: Path | str | Sequence[Path | str], out: Path | str, config: TrainConfig = TrainConfig(),
          model: ModelConfig | Mapping[str, Any] | None = None) -> Path:
    """Train planner `name` on the scenes of dataset `data` (one split), or of several datasets together, as
    `config` says; returns `out`/checkpoint. Several datasets train as their concatenation, in the order given.

    `model` is the model's config (e.g. a DiffusionDriveConfig), or typed values of some of its fields over
    its defaults ({"d_model": 64}); None: the defaults. It excludes `config.init`, whose checkpoint fixes the
    model config. Under DDP only global rank 0 writes; the other ranks wait for it.
    """
    config = config.validate()
    L.seed_everything(config.seed, workers=True, verbose=False)  # before the model: `seed` fixes its init
    planner: Planner
    if config.init is not None:
        planner = _initial(name, config.init, model)
    else:
        planner = load(name) if not model else _build(name, model)
    if not isinstance(planner, LearnedPlanner):
        raise TrainingError(f"planner {name!r} is not a learned planner; it has nothing to train")
    lr = config.lr if config.lr is not None else float(getattr(planner.model, "default_lr", 1e-4))
    epochs, max_steps, num_workers = config.epochs, config.max_steps, config.num_workers
    out = Path(out)
    last = out / "lightning" / "last.ckpt"
    if config.resume and not last.is_file():
        raise TrainingError(f"resume: {last} does not exist")
    planning_model = planner.model
    roots: list[Any] = [data]  # one dataset: a folder, or whatever the model's training_dataset takes
    if isinstance(data, (list, tuple)) and data and all(isinstance(root, (str, Path)) for root in data):
        roots = list(data)
    parts = [planning_model.training_dataset(root, config.split) for root in roots]
    for root, part in zip(roots, parts, strict=True):
        if len(cast(Sized, part)) == 0:
            raise TrainingError(f"{root}: no scenes in split {config.split!r}")
    dataset: Dataset = parts[0] if len(parts) == 1 else ConcatDataset(parts)
    if not config.resume and config.init is None:  # resuming or fine-tuning keeps the normalisers
        sample = Subset(dataset, range(min(len(cast(Sized, dataset)), NORMALISER_SAMPLES)))
        try:
            planning_model.fit_normalisers(DataLoader(sample, batch_size=256, num_workers=num_workers))
        except ValueError as error:  # e.g. fewer scenes than anchors, a bad anchors file
            raise TrainingError(str(error).splitlines()[0]) from None
    collate = None
    if config.in_memory:
        dataset = materialise(dataset, num_workers)
        num_workers, collate = 0, TensorTreeDataset.collate
    loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=True, num_workers=num_workers,
                        persistent_workers=num_workers > 0,
                        generator=torch.Generator().manual_seed(config.seed), collate_fn=collate)
    loggers: list[Any] = [L.pytorch.loggers.CSVLogger(out, name="logs")]  # a new logs/version_N per run
    if importlib.util.find_spec("tensorboard") is not None:
        loggers.append(L.pytorch.loggers.TensorBoardLogger(out, name="logs", version=loggers[0].version))
    saver = L.pytorch.callbacks.ModelCheckpoint(dirpath=out / "lightning", save_last=True, save_top_k=0)
    callbacks: list[Any] = [saver]
    if config.progress:
        callbacks.append(progress_callback(sys.stderr.isatty()))
    devices = list(config.devices) if isinstance(config.devices, tuple) else config.devices
    try:
        trainer = L.Trainer(
            max_epochs=epochs, max_steps=max_steps or -1,
            max_time=datetime.timedelta(minutes=config.max_minutes) if config.max_minutes else None,
            accelerator=config.accelerator, devices=devices, num_nodes=config.num_nodes,
            strategy=config.strategy, precision=cast(Any, config.precision), logger=loggers,  # Lightning checks it
            callbacks=callbacks, deterministic=True, default_root_dir=out,
            enable_progress_bar=config.progress,
            enable_model_summary=False, log_every_n_steps=max(1, min(50, len(loader))),
        )
    except (MisconfigurationException, ValueError, ImportError) as error:  # bad accelerator, devices or precision
        raise TrainingError(str(error).splitlines()[0]) from None
    planning_model.train()
    total_steps = min(epochs * len(loader), max_steps or epochs * len(loader))
    trainer.fit(PlanningModule(planning_model, lr, total_steps), loader,
                ckpt_path=last if config.resume else None)
    planner.model = planning_model.cpu().eval()
    folder = out / "checkpoint"
    if trainer.is_global_zero:
        save_checkpoint(planner, folder)
        if config.export is not None:
            export_single_file(planner, config.export)
    trainer.strategy.barrier("diffplan-checkpoint")
    return folder


def model_config_class(name: str) -> type[ModelConfig]:
    """The config class of learned planner `name`'s model; TrainingError if it is not a learned planner."""
    return learned_planner_class(name).model_class.config_class


def learned_planner_class(name: str) -> type[LearnedPlanner]:
    """The class of learned planner `name`; TrainingError if it is not a learned planner."""
    cls = planner_class(name)
    if not (isinstance(cls, type) and issubclass(cls, LearnedPlanner)):
        raise TrainingError(f"planner {name!r} is not a learned planner; it has no model config")
    return cls


def progress_callback(interactive: bool) -> L.pytorch.callbacks.ProgressBar:
    """Rich's live bar in a terminal; in a log file (nohup, SLURM), where Rich draws nothing, tqdm lines
    every 50 steps."""
    if interactive:
        return L.pytorch.callbacks.RichProgressBar()
    return L.pytorch.callbacks.TQDMProgressBar(refresh_rate=50)


def _initial(name: str, init: Path, model: ModelConfig | Mapping[str, Any] | None) -> Planner:
    """The planner saved at `init`, which must be a `name`, for fine-tuning."""
    if model:
        raise TrainingError("init and model exclude each other: the checkpoint fixes the model config")
    try:
        planner = load_checkpoint(init)
    except CheckpointError as error:
        raise config_error("init", f"{error}") from None
    if planner.name != name:
        raise config_error("init", f"{init} holds a {planner.name} planner, not {name}")
    return planner


def _build(name: str, model: ModelConfig | Mapping[str, Any]) -> LearnedPlanner:
    """Planner `name` built from a model config, or from typed values of its fields over the defaults."""
    config_class = model_config_class(name)
    if isinstance(model, ModelConfig):
        if type(model) is not config_class:
            raise TrainingError(f"{name}'s model is built from {config_class.__name__}, not "
                                f"{type(model).__name__}")
        config = model.validate()
    else:
        config = config_class().with_values(**model)
    try:
        return learned_planner_class(name)(config=config)
    except (TypeError, ValueError) as error:
        if isinstance(error, DiffplanError):
            raise
        raise TrainingError(f"{name}: the model config does not build a model: {error}") from None


def materialise(dataset: Dataset, num_workers: int) -> TensorTreeDataset:
    """All items of a dataset, built once: items are tensors or (named) tuples of them, nested.

    The first batch fixes every leaf's shape and dtype; the full tensors are allocated then and filled
    batch by batch, so memory peaks at the dataset's size plus one batch.
    """
    total, filled, tree = len(cast(Sized, dataset)), 0, None
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
