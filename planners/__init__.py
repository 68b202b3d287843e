"""Planners: a small abstract base, a registry, and learned and rule-based planners.

Importing this package is light: every planner registers when its module is first imported, which `load`
(or `available_planners`' lazy table) does on demand.
"""

from planners.base import Plan, Planner
from planners.registry import UnknownPlannerError, available_planners, load, register_planner

__all__ = ["Plan", "Planner", "UnknownPlannerError", "available_planners", "load", "register_planner"]
