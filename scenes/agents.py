"""Other traffic participants as a struct of arrays over (agent N, time T) with a valid mask."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from scenes._checks import ShapeChecker
from scenes.geometry import points_to_local, vectors_to_local, wrap_angle


class AgentCategory(enum.IntEnum):
    """Agent category (NAVSIM's tracked object types)."""

    VEHICLE = 0
    PEDESTRIAN = 1
    BICYCLE = 2
    STATIC_OBJECT = 3


@dataclass(frozen=True, eq=False)
class AgentTracks:
    """N agents over T time steps. Entries where `valid` is False hold zeros and mean nothing.

    Attributes:
        track_ids: (N,) int64, unique within a scene.
        category: (N,) int8 `AgentCategory`.
        size: (N, 2) box length, width [m].
        xy: (N, T, 2) box centre [m] in the frame the owner states.
        heading: (N, T) [rad].
        velocity: (N, T, 2) [m/s] in the same frame as `xy`.
        valid: (N, T) bool.
    """

    track_ids: np.ndarray
    category: np.ndarray
    size: np.ndarray
    xy: np.ndarray
    heading: np.ndarray
    velocity: np.ndarray
    valid: np.ndarray

    def validate(self) -> AgentTracks:
        """The tracks themselves; ValidationError naming the field on a bad shape, dtype or value."""
        check = ShapeChecker("AgentTracks")
        check.array("track_ids", self.track_ids, ("N",), "i")
        check.array("category", self.category, ("N",), "i")
        check.array("size", self.size, ("N", 2), "f")
        check.array("xy", self.xy, ("N", "T", 2), "f")
        check.array("heading", self.heading, ("N", "T"), "f")
        check.array("velocity", self.velocity, ("N", "T", 2), "f")
        check.array("valid", self.valid, ("N", "T"), "b")
        if len(np.unique(self.track_ids)) != len(self.track_ids):
            check.fail("track_ids", "ids are not unique")
        known = [c.value for c in AgentCategory]
        if not np.isin(self.category, known).all():
            check.fail("category", f"values must be in {known}")
        if (self.size <= 0).any():
            check.fail("size", "lengths and widths must be positive")
        return self

    @classmethod
    def empty(cls, num_steps: int) -> AgentTracks:
        """No agents, over `num_steps` steps."""
        return cls(
            track_ids=np.zeros(0, np.int64),
            category=np.zeros(0, np.int8),
            size=np.zeros((0, 2)),
            xy=np.zeros((0, num_steps, 2)),
            heading=np.zeros((0, num_steps)),
            velocity=np.zeros((0, num_steps, 2)),
            valid=np.zeros((0, num_steps), bool),
        )

    @property
    def num_agents(self) -> int:
        """Agents N."""
        return self.track_ids.shape[0]

    @property
    def num_steps(self) -> int:
        """Steps T."""
        return self.xy.shape[1]

    @property
    def speed(self) -> np.ndarray:
        """(N, T) [m/s]."""
        return np.linalg.norm(self.velocity, axis=-1)

    def select(self, agents: np.ndarray | slice = slice(None), steps: np.ndarray | slice = slice(None)) -> AgentTracks:
        """A subset of agents (index or mask) and time steps (slice)."""
        return AgentTracks(
            track_ids=self.track_ids[agents],
            category=self.category[agents],
            size=self.size[agents],
            xy=self.xy[agents][:, steps],
            heading=self.heading[agents][:, steps],
            velocity=self.velocity[agents][:, steps],
            valid=self.valid[agents][:, steps],
        )

    def to_local(self, origin: np.ndarray) -> AgentTracks:
        """The same tracks in the frame of pose `origin` (3,); invalid entries stay zero."""
        mask = self.valid[..., None]
        return AgentTracks(
            track_ids=self.track_ids,
            category=self.category,
            size=self.size,
            xy=np.where(mask, points_to_local(self.xy, origin), 0.0),
            heading=np.where(self.valid, wrap_angle(self.heading - origin[2]), 0.0),
            velocity=np.where(mask, vectors_to_local(self.velocity, origin), 0.0),
            valid=self.valid,
        )
