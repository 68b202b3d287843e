"""Learned-planner checkpoints: a folder with `model.safetensors` and `config.json`.

    model.safetensors  every weight and normaliser buffer (the model's state_dict), on CPU
    config.json        {"format", "planner", "model" (constructor hyperparameters), "spec" (features and
                        targets), "diffplan_version"}

`save_checkpoint` writes a temporary sibling folder and renames it into place, so a reader never sees a
half-written checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from planners.base import Planner
from planners.registry import UnknownPlannerError, planner_class

FORMAT = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"


class CheckpointError(UnknownPlannerError):
    """A checkpoint folder is missing, incomplete or does not fit the planner it names (one-line message)."""


def diffplan_version() -> str:
    try:
        return metadata.version("diffplan")
    except metadata.PackageNotFoundError:
        return "unknown"


def save_checkpoint(planner: Planner, folder: Path | str) -> Path:
    """Write `planner` (a LearnedPlanner) to `folder`, replacing any checkpoint there. Returns the folder."""
    from safetensors.torch import save_file

    from planners.learned import LearnedPlanner

    if not isinstance(planner, LearnedPlanner):
        raise CheckpointError(f"planner {planner.name!r} has no weights to save")
    folder = Path(folder)
    model = planner.model
    config = {"format": FORMAT, "planner": planner.name, "model": model.config, "spec": model.spec(),
              "diffplan_version": diffplan_version()}
    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    folder.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    temp.chmod(0o755)
    try:
        save_file(state, str(temp / WEIGHTS), metadata={"planner": planner.name})
        (temp / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
            folder.rename(old)
            temp.rename(folder)
            shutil.rmtree(old)
        else:
            temp.rename(folder)
    finally:
        if temp.exists():
            shutil.rmtree(temp)
    return folder


def read_config(folder: Path) -> dict[str, Any]:
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: not a checkpoint folder")
    for name in (CONFIG, WEIGHTS):
        if not (folder / name).is_file():
            raise CheckpointError(f"{folder}: not a checkpoint, {name} is missing")
    try:
        config = json.loads((folder / CONFIG).read_text())
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{folder / CONFIG}: unreadable ({error})") from None
    if not isinstance(config, dict) or not {"format", "planner", "model"} <= set(config):
        raise CheckpointError(f"{folder / CONFIG}: expected keys format, planner, model")
    if config["format"] != FORMAT:
        raise CheckpointError(f"{folder}: checkpoint format {config['format']}, this diffplan reads {FORMAT}")
    return config


def load_checkpoint(folder: Path | str) -> Planner:
    """The planner saved in `folder`, on CPU, in eval mode. Raises CheckpointError with one line."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from planners.learned import LearnedPlanner

    folder = Path(folder)
    config = read_config(folder)
    name = config["planner"]
    cls = planner_class(name)
    if cls is None or not issubclass(cls, LearnedPlanner):
        raise CheckpointError(f"{folder}: unknown learned planner {name!r}")
    try:
        planner = cls(**config["model"])
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{folder}: bad hyperparameters for {name}: {error}") from None
    if config.get("spec") != planner.model.spec():
        raise CheckpointError(f"{folder}: its feature/target spec differs from this diffplan's {name}")
    try:
        state = load_file(str(folder / WEIGHTS))
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{folder / WEIGHTS}: unreadable ({error})") from None
    expected = planner.model.state_dict()
    missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or extra:
        raise CheckpointError(f"{folder}: weights do not fit {name}: missing {missing[:3]}, unexpected {extra[:3]}")
    for key, value in expected.items():
        if state[key].shape != value.shape or state[key].dtype != value.dtype:
            raise CheckpointError(f"{folder}: {key} has shape {tuple(state[key].shape)} {state[key].dtype}, "
                                  f"{name} expects {tuple(value.shape)} {value.dtype}")
    with torch.no_grad():
        planner.model.load_state_dict(state, strict=True)
    planner.model.eval()
    return planner
