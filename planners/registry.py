"""Planners by name, and `load(name_or_checkpoint)` to get a ready planner."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from planners.base import Planner

_REGISTRY: dict[str, Callable[[], Planner]] = {}


class UnknownPlannerError(ValueError):
    """`load` was given a name that is neither registered nor a checkpoint path."""


def register_planner(name: str) -> Callable[[type[Planner]], type[Planner]]:
    """Class decorator: make `name` loadable with `load(name)`, built with no arguments."""

    def add(cls: type[Planner]) -> type[Planner]:
        if name in _REGISTRY:
            raise ValueError(f"planner name {name!r} is registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return add


def available_planners() -> list[str]:
    return sorted(_REGISTRY)


def load(name_or_checkpoint: str | Path) -> Planner:
    """A planner by registered name, or from a checkpoint folder (safetensors + JSON config)."""
    key = str(name_or_checkpoint)
    if key in _REGISTRY:
        return _REGISTRY[key]()
    if Path(key).exists():
        raise UnknownPlannerError(f"{key}: checkpoints are not supported yet (learned planners come with "
                                  "DiffusionDrive, issue 6)")
    raise UnknownPlannerError(f"unknown planner {key!r}; expected a checkpoint path or one of "
                              f"{', '.join(available_planners())}")
