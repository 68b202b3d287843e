"""Pedestrians that wait at a crosswalk curb, cross when it is safe (and signals allow), then walk on."""

from __future__ import annotations

import numpy as np

from scenes import portable
from scenes.synthetic.layouts import Crossing, Pedestrian

PED_SIZE = (0.6, 0.7)  # [m] box length, width


class Walkers:
    """K pedestrians on crossings. progress u [m] runs from the start curb across (0..length) then along
    the sidewalk; status 0 waiting, 1 walking."""

    def __init__(self, crossings: list[Crossing], peds: list[Pedestrian]):
        self.crossings = crossings
        k = len(peds)
        self.crossing = np.array([p.crossing for p in peds], np.int64)
        self.side = np.array([p.side for p in peds], np.int64)
        self.start = np.array([p.start for p in peds], float)
        self.speed = np.array([p.speed for p in peds], float)
        self.jitter = np.array([p.jitter for p in peds], float)
        self.u = np.zeros(k)
        self.walking = np.zeros(k, bool)
        a = np.array([c.a for c in crossings]).reshape(-1, 2)
        b = np.array([c.b for c in crossings]).reshape(-1, 2)
        self.length = portable.norm(b - a)  # (C,)
        self.origin = np.where(self.side[:, None] == 0, a[self.crossing], b[self.crossing]) if k else a[:0]
        across = (b - a) / np.maximum(self.length, 1e-9)[:, None]
        self.across = across[self.crossing] * np.where(self.side == 0, 1.0, -1.0)[:, None] if k else a[:0]
        self.along = np.array([c.walk_dir for c in crossings]).reshape(-1, 2)[self.crossing] if k else a[:0]

    @property
    def count(self) -> int:
        """Pedestrians W."""
        return len(self.u)

    def positions_from_a(self) -> np.ndarray:
        """(K,) distance [m] of each walking pedestrian from curb `a` along the crossing; NaN if not on it."""
        on = self.walking & (self.u <= self.length[self.crossing])
        from_a = np.where(self.side == 0, self.u, self.length[self.crossing] - self.u)
        return np.where(on, from_a, np.nan)

    def ready(self, t: float) -> np.ndarray:
        """(K,) pedestrians at the curb who want to cross now (time t [s])."""
        return ~self.walking & (t >= self.start)

    def step(self, t: float, dt: float, unsafe: np.ndarray, green: bool) -> None:
        """Advance by dt [s] at time t [s]; `unsafe` (C,) marks crossings with vehicles too close."""
        go = ~self.walking & (t >= self.start) & ~unsafe[self.crossing] & green
        self.walking |= go
        self.u = self.u + np.where(self.walking, self.speed * dt, 0.0)

    def state(self, u: np.ndarray | None = None, walking: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Centre xy (..., K, 2) [m], heading (..., K) [rad] and velocity (..., K, 2) [m/s] at progress u
        (..., K) [m] and walking flags (..., K); now when not given."""
        u = self.u if u is None else u
        walking = self.walking if walking is None else walking
        length = self.length[self.crossing]
        cross = np.minimum(u, length)
        beyond = np.maximum(u - length, 0.0)
        side = np.stack([-self.across[:, 1], self.across[:, 0]], axis=-1)
        xy = (self.origin + self.across * cross[..., None] + self.along * beyond[..., None]
              + side * self.jitter[:, None])
        forward = u < length
        direction = np.where(forward[..., None], self.across, self.along)
        velocity = direction * np.where(walking, self.speed, 0.0)[..., None]
        # each row of `direction` is a row of `across` or `along`: their headings, taken once
        heading = np.where(forward, portable.arctan2(self.across[:, 1], self.across[:, 0]),
                           portable.arctan2(self.along[:, 1], self.along[:, 0]))
        return xy, heading, velocity
