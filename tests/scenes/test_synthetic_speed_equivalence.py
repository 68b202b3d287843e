"""The synthetic generator's cached / vectorised helpers equal their plain forms bit for bit (scene fingerprints:
tests/scenes/test_portability.py)."""

from __future__ import annotations

import numpy as np
import shapely

from scenes.synthetic import polyline as pl
from scenes.synthetic.layouts import Crossing, Pedestrian
from scenes.synthetic.pedestrians import Walkers


def test_project_with_precomputed_segments_is_bit_identical():
    rng = np.random.default_rng(3)
    line = np.cumsum(rng.normal(size=(60, 2)), axis=0)
    points = rng.uniform(-10.0, 10.0, size=(25, 2))
    s0, d0 = pl.project(points, line)
    s1, d1 = pl.project(points, None, pl.segments(line))
    assert s0.tobytes() == s1.tobytes() and d0.tobytes() == d1.tobytes()


def test_walker_states_over_all_steps_equal_the_per_step_states():
    rng = np.random.default_rng(5)
    crossings = [Crossing(shapely.box(0, 0, 1, 1), rng.normal(size=2), rng.normal(size=2) * 8.0, 1.5,
                          np.array([0.6, 0.8])) for _ in range(2)]
    peds = [Pedestrian(k % 2, (k // 2) % 2, rng.uniform(-2, 2), rng.uniform(1.0, 1.6), rng.uniform(-0.5, 0.5))
            for k in range(5)]
    w = Walkers(crossings, peds)
    us, walking, per_step = [], [], []
    for k in range(80):
        us.append(w.u.copy())
        walking.append(w.walking.copy())
        per_step.append(w.state())
        w.step(-3.0 + 0.1 * k, 0.1, np.array([k % 7 == 0, False]), True)
    together = w.state(np.stack(us), np.stack(walking))
    for i in range(3):
        assert np.stack([s[i] for s in per_step]).tobytes() == together[i].tobytes()
