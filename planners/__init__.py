"""Planners: a small abstract base, a registry, and learned and rule-based planners."""

from planners import baselines as _baselines  # noqa: F401  (registers the built-in planners)
from planners.base import Plan, Planner
from planners.pdm import closed as _pdm_closed  # noqa: F401
from planners.registry import UnknownPlannerError, available_planners, load, register_planner

__all__ = ["Plan", "Planner", "UnknownPlannerError", "available_planners", "load", "register_planner"]
