"""The planner contract, one for driving and navigation: `Planner[Observation, Privileged]` -> `Plan`.

Every planner declares its `domain` (DRIVING: DriveObservation in; NAVIGATION: NavObservation in), the
`plan_spec` its plans meet (planners.plan: poses, interval, frame; `Plan.validate` checks it) and
`privileged`. Oracles (privileged) plan from the observation plus a typed privileged context that evaluators
build (DrivePrivileged, NavPrivileged), through `plan_privileged`, and refuse `plan` with an OracleError.
Evaluators call `plan_privileged` for every planner; a non-oracle's ignores the context. Every planner has a
`seed`: stochastic planners restart their generator from it on `reset()`, deterministic ones ignore it.
Domain bases: `planners.drive_base.DrivePlanner` and `planners.nav_base.NavPlanner`.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar, Generic, TypeVar

from planners.plan import Plan, PlanFrame, PlanSpec
from scenes.errors import DiffplanError

__all__ = ["Domain", "OracleError", "Plan", "PlanFrame", "PlanSpec", "Planner", "WrongDomainError",
           "require_domain"]

ObservationT = TypeVar("ObservationT")
PrivilegedT = TypeVar("PrivilegedT")


class Domain(enum.Enum):
    """What a planner plans for: DRIVING (DriveObservation in) or NAVIGATION (NavObservation in)."""

    DRIVING = "driving"
    NAVIGATION = "navigation"


class OracleError(DiffplanError, TypeError):
    """An oracle (a privileged planner) was asked to plan without its privileged context."""


class WrongDomainError(DiffplanError, ValueError):
    """A planner of one domain was given to an evaluation of the other."""


class Planner(ABC, Generic[ObservationT, PrivilegedT]):
    """Maps an observation to a Plan. Subclasses set `name` (the registry does), `domain` and `plan_spec` (a
    domain base does) and implement `plan`; oracles set `privileged` and implement `plan_privileged`."""

    name: ClassVar[str]
    domain: ClassVar[Domain]
    plan_spec: ClassVar[PlanSpec]
    privileged: ClassVar[bool] = False
    _seed: int = 0

    @property
    def seed(self) -> int:
        """Seed of the planner's randomness (deterministic planners ignore it); setting it calls `reset()`."""
        return self._seed

    @seed.setter
    def seed(self, value: int) -> None:
        self._seed = int(value)
        self.reset()

    def reset(self) -> None:
        """Forget state kept between calls and restart any generator from `seed`; evaluators call it per
        scene or episode."""

    @abstractmethod
    def plan(self, observation: ObservationT) -> Plan:
        """Plan from what a planner may see; oracles raise OracleError (`oracle_error`)."""

    def plan_batch(self, observations: Sequence[ObservationT]) -> list[Plan]:
        """Plan for many observations, in order; learned planners override this to batch."""
        return [self.plan(observation) for observation in observations]

    def plan_privileged(self, observation: ObservationT, context: PrivilegedT) -> Plan:
        """Plan with the privileged `context` too (oracles); others ignore it and `plan(observation)`."""
        return self.plan(observation)

    def oracle_error(self) -> OracleError:
        """What an oracle's `plan` raises."""
        return OracleError(f"planner {self.name!r} is a privileged oracle: it plans only from an observation "
                           "with its privileged context (plan_privileged), not from the observation alone")


def require_domain(planner: Planner, domain: Domain, user: str) -> Planner:
    """`planner` when it plans for `domain`; else WrongDomainError naming it and `user` ("eval navsim")."""
    if planner.domain is not domain:
        raise WrongDomainError(f"planner {planner.name!r} plans for {planner.domain.value}; {user} needs a "
                               f"{domain.value} planner")
    return planner
