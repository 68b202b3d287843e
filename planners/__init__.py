"""Planners: one contract for driving and navigation (planners.base), a registry, learned and rule-based
planners.

Importing this package is light: every planner registers when its module is first imported, which `load`
(or `available_planners`' lazy table) does on demand. Navigation's base and privileged context are in
planners.nav_base (it imports scenes.nav).
"""

from planners.base import Domain, OracleError, Planner, WrongDomainError, require_domain
from planners.drive_base import DRIVE_PLAN, DrivePlanner, DrivePrivileged
from planners.plan import Plan, PlanFrame, PlanSpec
from planners.registry import UnknownPlannerError, available_planners, load, register_planner

__all__ = ["DRIVE_PLAN", "Domain", "DrivePlanner", "DrivePrivileged", "OracleError", "Plan", "PlanFrame",
           "PlanSpec", "Planner", "UnknownPlannerError", "WrongDomainError", "available_planners", "load",
           "register_planner", "require_domain"]
