"""Planners by name, and `load(name_or_checkpoint)` to get a ready planner."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from planners.base import Domain, Planner
from planners.plan import PlanSpec
from scenes.errors import DiffplanError

_REGISTRY: dict[str, Callable[[], Planner]] = {}
# Every built-in planner's module: registered on first use, so `import planners` stays light (no torch,
# no scipy.signal).
_LAZY: dict[str, str] = {"constant-velocity": "planners.drive_reference", "human": "planners.drive_reference",
                         "pdm-closed": "planners.pdm.closed", "ego-mlp": "planners.learned", "diffusiondrive": "planners.learned",
                         "diffusion-policy": "planners.learned", "regression": "planners.learned",
                         "navdp": "planners.navdp", "pstl": "planners.pstl.planner",
                         "pstl-ctg": "planners.pstl.planner", "pstl-vae": "planners.pstl.planner",
                         "expert": "planners.nav_rule_based", "go-to-goal": "planners.nav_rule_based",
                         "dwa": "planners.nav_rule_based"}


class UnknownPlannerError(DiffplanError, ValueError):
    """`load` was given a name that is neither registered nor a checkpoint path."""


def register_planner(name: str) -> Callable[[type[Planner]], type[Planner]]:
    """Class decorator: make `name` loadable with `load(name)`, built with no arguments. The class must
    declare its domain and plan_spec (a domain base, e.g. DrivePlanner or NavPlanner, does)."""

    def add(cls: type[Planner]) -> type[Planner]:
        if name in _REGISTRY:
            raise ValueError(f"planner name {name!r} is registered twice")
        declared = getattr(cls, "domain", None), getattr(cls, "plan_spec", None)
        if not (isinstance(declared[0], Domain) and isinstance(declared[1], PlanSpec)):
            raise TypeError(f"planner {name!r}: {cls.__name__} declares no domain and plan_spec")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return add


def available_planners() -> list[str]:
    """Every registered or lazily registered planner name, sorted."""
    return sorted(set(_REGISTRY) | set(_LAZY))


def planner_class(name: str) -> Callable[[], Planner] | None:
    """What `register_planner` registered under `name` (importing lazy planners), or None."""
    if name not in _REGISTRY and name in _LAZY:
        importlib.import_module(_LAZY[name])
    return _REGISTRY.get(name)


def load(name_or_checkpoint: str | Path) -> Planner:
    """A planner by registered name, or from a checkpoint: a folder (safetensors + JSON config) or a single
    NAME.safetensors file (the config in its metadata)."""
    key = str(name_or_checkpoint)
    factory = planner_class(key)
    if factory is not None:
        return factory()
    if Path(key).exists() or key.endswith(".safetensors"):
        from planners.checkpoint import load_checkpoint

        return load_checkpoint(key)
    raise UnknownPlannerError(f"unknown planner {key!r}; expected a checkpoint path or one of "
                              f"{', '.join(available_planners())}")
