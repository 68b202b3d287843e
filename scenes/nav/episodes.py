"""PointNav episodes on a world, with Habitat's generator rules (habitat-lab `pointnav_generator.py`).

Start and goal lie on cells the robot can occupy and on one island; the geodesic distance is 1-30 m;
"easy" pairs, whose geodesic/Euclidean ratio r is below 1.1, are kept only with probability
20 (r - 0.98)^2; the start yaw is uniform.
"""

from __future__ import annotations

import math
from typing import cast

import numpy as np

from scenes import portable
from scenes.nav.grid import path_length, trace
from scenes.nav.mujoco_world import MujocoNavWorld
from scenes.nav.types import NavEpisode, RobotProfile
from scenes.portable import PortableRandom

GEODESIC_RANGE = (1.0, 30.0)  # [m]
EASY_RATIO = 1.1  # geodesic / Euclidean below this is "easy"
GOAL_TRIES = 40  # goal draws per start
START_TRIES = 8  # starts per episode


def keep_probability(ratio: float) -> float:
    """Habitat's chance of keeping a start/goal pair with geodesic/Euclidean `ratio`."""
    return 1.0 if ratio >= EASY_RATIO else min(1.0, 20.0 * (ratio - 0.98) * (ratio - 0.98))


def sample_episode(world: MujocoNavWorld, robot: RobotProfile, rng: PortableRandom,
                   episode_id: str) -> NavEpisode | None:
    """A PointNav episode for `robot`, or None when no pair passes the rules in the allowed draws."""
    rmap = world.robot_map(robot)
    free = np.flatnonzero(rmap.traversable.ravel())
    if len(free) < 2:
        return None
    res = rmap.grid.resolution
    lo, hi = GEODESIC_RANGE
    for _ in range(START_TRIES):
        start_node = int(free[rng.integers(len(free))])
        start = rmap.centres(np.array([start_node]))[0] + rng.uniform(-0.4, 0.4, 2) * res
        dist, pred = rmap.field(False, start_node)
        # Grid distances over-estimate taut lengths by at most ~8 % (octile vs Euclidean).
        candidates = np.flatnonzero((dist >= lo) & (dist <= hi * 1.09))
        if len(candidates) == 0:
            continue
        for _ in range(GOAL_TRIES):
            goal_node = int(candidates[rng.integers(len(candidates))])
            goal = rmap.centres(np.array([goal_node]))[0] + rng.uniform(-0.4, 0.4, 2) * res
            euclid = float(portable.norm(goal - start))
            keep = rng.random()
            # The grid distance (+ the jitter) bounds the geodesic from above, so most easy pairs are
            # rejected before the (costlier) taut path: keep_probability grows with the ratio.
            if euclid < 1e-6 or keep > keep_probability((dist[goal_node] + 2 * res) / euclid):
                continue
            nodes = cast(np.ndarray, trace(pred, start_node, goal_node))  # goal_node is reachable
            cells = np.vstack([goal[None], rmap.centres(nodes), start[None]])[::-1]
            geodesic = path_length(rmap.taut(cells, rmap.need))
            if not (lo <= geodesic <= hi) or keep > keep_probability(geodesic / euclid):
                continue
            yaw = rng.uniform(-math.pi, math.pi)
            return NavEpisode(episode_id, world.world_id, np.array([start[0], start[1], yaw]), goal.copy(),
                              geodesic, robot.name).validate()
    return None
