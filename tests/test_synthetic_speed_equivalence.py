"""The synthetic generator's speed-ups keep its output: scene fingerprints recorded before them, and the
cached / vectorised helpers against their plain forms."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import shapely

from scenes import ScenarioType
from scenes.synthetic import generate_scene
from scenes.synthetic import polyline as pl
from scenes.synthetic.layouts import Crossing, Pedestrian
from scenes.synthetic.pedestrians import Walkers

S = ScenarioType

# sha256 prefixes of each scene's arrays and map geometry (floats rounded to 1e-6), recorded with the
# generator as of commit 251331f, before the traffic simulation was sped up
FINGERPRINTS = (
    (1000000007, S.STRAIGHT_ROAD, "fffb5529c001ae73"),
    (1000000008, S.CURVED_ROAD, "c36c1457371d6a96"),
    (1000000009, S.INTERSECTION_LEFT, "4c0fb683911a85cc"),
    (1000000010, S.INTERSECTION_RIGHT, "702d3f7022d4ecbe"),
    (1000000011, S.INTERSECTION_STRAIGHT, "c16cf62a1cc29b53"),
    (1000000012, S.MERGE, "baedcc9b3b9a94a6"),
    (1000000013, S.LANE_DROP, "ff98e6b6ba88bb86"),
    (1000000014, S.PARKED_VEHICLE, "8b9850facec1cf25"),
    (1000000015, S.SLOW_VEHICLE, "bef7c4506fcc8ff4"),
    (1000000016, S.PEDESTRIAN_CROSSING, "9d23e746b88d5a59"),
)


def _fingerprint(sc) -> str:
    e, a, m = sc.ego, sc.agents, sc.map
    h = hashlib.sha256()
    for x in (e.pose, e.velocity, e.acceleration, e.yaw_rate, e.steering, a.track_ids, a.category, a.size, a.xy,
              a.heading, a.velocity, a.valid, m.lane_ids, sc.traffic_lights.is_red):
        x = np.asarray(x)
        h.update(np.round(x, 6).tobytes() if x.dtype.kind == "f" else x.tobytes())
    for g in [*m.lane_centerlines, *m.drivable_polygons, sc.route.centerline]:
        h.update(np.round(shapely.get_coordinates(g), 6).tobytes())
    return h.hexdigest()[:16]


@pytest.mark.parametrize(("seed", "scenario", "digest"), FINGERPRINTS, ids=[s.name for _, s, _ in FINGERPRINTS])
def test_scene_matches_fingerprint_from_before_the_speedups(seed, scenario, digest):
    assert _fingerprint(generate_scene(seed, "val", scenario)) == digest


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
