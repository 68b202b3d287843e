"""How runs are named in tables: after their run folder, the same in a run's own output and in `eval table`."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def run_name(planner: str, out: Path | None) -> str:
    """A run's name: its folder's name, else the planner's name (a checkpoint's file or folder name)."""
    if out is not None:
        return out.resolve().name
    return Path(planner).stem if planner.endswith(".safetensors") else Path(planner).name


def run_label(name: str, oracle: bool, no_critic: bool = False) -> str:
    """The row label of a run, the same in a run's own output and in `eval table`."""
    return name + (" (privileged oracle)" if oracle else "") + (" (no critic)" if no_critic else "")


NUSCENES_GENERATOR_PREFIX = "nuscenes/"  # generator_version of scenes imported from nuScenes


def metric_label(metric: str, generator_versions: Iterable[str]) -> str:
    """The metric as reports name it. On scenes imported from nuScenes it is ours, NAVSIM's pseudo-simulation
    on nuScenes logs and maps, not any paper's metric: "nuscenes-pdms-v1" (likewise for epdms)."""
    versions = set(generator_versions)
    if versions and all(v.startswith(NUSCENES_GENERATOR_PREFIX) for v in versions):
        return f"nuscenes-{metric}"
    return metric
