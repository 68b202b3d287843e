"""Learned-planner checkpoints: a folder with `model.safetensors` and `config.json`, or one file.

    model.safetensors  every weight and normaliser buffer (the model's state_dict), on CPU
    config.json        {"format", "planner", "model" (the model's config dataclass, `ModelConfig.to_json`),
                        "spec" (features and targets), "diffplan_version"}

A single-file checkpoint `NAME.safetensors` (`export_single_file`) holds the same weights and the same
config JSON under the safetensors metadata key "diffplan_config". `load_checkpoint` reads either.

"model" holds every field of the model's config (planners.learned.config) under its name, as the constructor
keywords of earlier versions did; `ModelConfig.from_json` reads it back (lists as tuples, ints in float fields
as floats; a field missing from an older checkpoint takes its default).

`save_checkpoint` writes a temporary sibling folder and renames it into place, and `export_single_file` a
temporary sibling file, so a reader never sees a half-written checkpoint.
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
METADATA_KEY = "diffplan_config"  # single-file checkpoints: the config JSON in the safetensors metadata


class CheckpointError(UnknownPlannerError):
    """A checkpoint folder is missing, incomplete or does not fit the planner it names (one-line message)."""


def diffplan_version() -> str:
    """The installed diffplan's version, "unknown" when it is not installed."""
    try:
        return metadata.version("diffplan")
    except metadata.PackageNotFoundError:
        return "unknown"


def save_checkpoint(planner: Planner, folder: Path | str) -> Path:
    """Write `planner` (a LearnedPlanner) to `folder`, replacing any checkpoint there. Returns the folder."""
    folder = Path(folder)
    config, state = checkpoint_contents(planner)
    folder.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    temp.chmod(0o755)
    try:
        (temp / WEIGHTS).write_bytes(safetensors_bytes(state, {"planner": planner.name}))
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


def safetensors_bytes(state: dict[str, Any], metadata: dict[str, str]) -> bytes:
    """`state` (name -> CPU tensor) and `metadata` as safetensors bytes, the same for the same inputs.

    safetensors writes its metadata map in a random order; the header is rewritten with the metadata keys
    sorted (same length, same data offsets), so equal weights give equal files.
    """
    from safetensors.torch import save

    raw = save(state, metadata=metadata)
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + size])
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    if len(text) > size:  # cannot happen for safetensors' compact JSON; keep its bytes rather than fail
        return raw
    return raw[:8] + text.ljust(size) + raw[8 + size:]


def checkpoint_contents(planner: Planner) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config, CPU state_dict) of a LearnedPlanner."""
    from planners.learned import LearnedPlanner

    if not isinstance(planner, LearnedPlanner):
        raise CheckpointError(f"planner {planner.name!r} has no weights to save")
    model = planner.model
    config = {"format": FORMAT, "planner": planner.name, "model": model.config.to_json(),
              "spec": model.spec(),
              "diffplan_version": diffplan_version()}
    state = {key: value.detach().cpu().contiguous().clone() for key, value in model.state_dict().items()}
    return config, state


def export_single_file(planner: Planner, path: Path | str) -> Path:
    """Write `planner` (a LearnedPlanner) as one `.safetensors` file, the config JSON in its metadata.
    Replaces `path` atomically; returns it."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"{path}: a single-file checkpoint must end in .safetensors")
    config, state = checkpoint_contents(planner)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        metadata = {"planner": planner.name, METADATA_KEY: json.dumps(config, sort_keys=True)}
        temp.write_bytes(safetensors_bytes(state, metadata))
        temp.chmod(0o644)
        os.replace(temp, path)
    finally:
        if temp.exists():
            temp.unlink()
    return path


def read_single_file(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config, state_dict) of a single-file checkpoint; CheckpointError with one line otherwise."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (safe_open is no dict)
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path}: unreadable ({str(error).splitlines()[0] if str(error) else error})") from None
    if METADATA_KEY not in metadata:
        raise CheckpointError(f"{path}: not a diffplan checkpoint (no {METADATA_KEY!r} in its metadata)")
    try:
        config = json.loads(metadata[METADATA_KEY])
    except ValueError as error:
        raise CheckpointError(f"{path}: unreadable config metadata ({error})") from None
    return check_config(config, path), state


def check_config(config: Any, where: Path) -> dict[str, Any]:
    """`config` if it is a dict of this diffplan's checkpoint format; CheckpointError otherwise."""
    if not isinstance(config, dict) or not {"format", "planner", "model"} <= set(config):
        raise CheckpointError(f"{where}: expected config keys format, planner, model")
    if config["format"] != FORMAT:
        raise CheckpointError(f"{where}: checkpoint format {config['format']}, this diffplan reads {FORMAT}")
    return config


def read_config(folder: Path) -> dict[str, Any]:
    """The checked config.json of checkpoint folder `folder` (which must also hold the weights)."""
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
    return check_config(config, folder)


def load_checkpoint(path: Path | str) -> Planner:
    """The planner saved in checkpoint folder or single `.safetensors` file `path`, on CPU, in eval mode.
    Raises CheckpointError with one line."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(path)
    if folder.suffix == ".safetensors" and not folder.is_dir():
        config, state = read_single_file(folder)
        return build_planner(config, state, folder)
    config = read_config(folder)
    try:
        state = load_file(str(folder / WEIGHTS))
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{folder / WEIGHTS}: unreadable ({error})") from None
    return build_planner(config, state, folder)


def build_planner(config: dict[str, Any], state: dict[str, Any], folder: Path) -> Planner:
    """The planner a checked config names, with weights `state`; CheckpointError if they do not fit."""
    import torch

    from planners.learned import LearnedPlanner, ModelConfigError

    name = config["planner"]
    cls = planner_class(name)
    if not (isinstance(cls, type) and issubclass(cls, LearnedPlanner)):
        raise CheckpointError(f"{folder}: unknown learned planner {name!r}")
    if not isinstance(config["model"], dict):
        raise CheckpointError(f"{folder}: its model config is not a JSON object")
    try:
        model_config = cls.model_class.config_class.from_json(config["model"])
    except ModelConfigError as error:
        raise CheckpointError(f"{folder}: bad model config for {name}: {error.problem}") from None
    try:
        planner = cls(config=model_config)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{folder}: model config does not build a {name}: {error}") from None
    if config.get("spec") != planner.model.spec():
        raise CheckpointError(f"{folder}: its feature/target spec differs from this diffplan's {name}")
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
