"""How runs are named in tables: after their run folder, the same in a run's own output and in `eval table`."""

from __future__ import annotations

from pathlib import Path


def run_name(planner: str, out: Path | None) -> str:
    """A run's name: its folder's name, else the planner's name (a checkpoint's file or folder name)."""
    if out is not None:
        return out.resolve().name
    return Path(planner).stem if planner.endswith(".safetensors") else Path(planner).name


def run_label(name: str, oracle: bool, no_critic: bool = False) -> str:
    """The row label of a run, the same in a run's own output and in `eval table`."""
    return name + (" (privileged oracle)" if oracle else "") + (" (no critic)" if no_critic else "")
