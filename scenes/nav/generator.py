"""Seeded procedural navigation worlds: rooms with doors and corridors, cluttered fields, narrow passages.

`generate_world(kind, seed)` is a pure function of its arguments (bit-identical worlds for the same seed),
and `world_from_id("cluttered-123")` rebuilds the world a dataset names. Worlds are embodiment-aware:
tables (a slab at 0.6-0.85 m on four legs) block the tall wheeled robot and let the quadruped walk under.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from scenes.nav.world import NavWorld, ObstacleKind, boundary_walls, make_world
from scenes.portable import PortableRandom

NAV_GENERATOR_VERSION = "synthetic-nav/2"  # 2: portable float math (scenes.portable)
WORLD_KINDS = ("rooms", "cluttered", "passages")
WALL_THICKNESS = 0.12  # [m] interior walls
DOOR_WIDTH = (1.1, 1.5)  # [m] doors and passage gaps: both robots fit through with a margin
HELD_OUT_WORLD_SEED = 900_000  # world seeds from here on are reserved for evaluation; training data stays below


def training_world_seed(dataset_seed: int, index: int) -> int:
    """Seed of world `index` of a training dataset: distinct for 900,000 consecutive indices, always below
    HELD_OUT_WORLD_SEED (so no evaluation world is ever trained on)."""
    return (int(dataset_seed) * 100_003 + int(index)) % HELD_OUT_WORLD_SEED


def world_id(kind: str, seed: int) -> str:
    """The id of the world of `kind` and `seed`, e.g. 'rooms-3'."""
    return f"{kind}-{int(seed)}"


def parse_world_id(text: str) -> tuple[str, int]:
    """("cluttered", 123) from "cluttered-123"; ValueError naming the id when malformed."""
    kind, _, seed = str(text).rpartition("-")
    if kind not in WORLD_KINDS or not seed.isdigit():
        raise ValueError(f"{text!r} is not a world id (expected <kind>-<seed>, kind one of {', '.join(WORLD_KINDS)})")
    return kind, int(seed)


def world_from_id(text: str) -> NavWorld:
    """The world a world id names."""
    return generate_world(*parse_world_id(text))


def generate_world(kind: str, seed: int) -> NavWorld:
    """A validated world of `kind` for `seed` (non-negative)."""
    if kind not in WORLD_KINDS:
        raise ValueError(f"unknown world kind {kind!r}; expected one of {', '.join(WORLD_KINDS)}")
    if int(seed) < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    rng = PortableRandom([int(seed), WORLD_KINDS.index(kind), 7])
    bounds, obstacles, walls = _BUILDERS[kind](rng)
    return make_world(world_id(kind, seed), bounds, obstacles, walls)


def _reach(row: tuple) -> float:
    kind, _, _, length, width = row[:5]
    return length / 2 if kind == ObstacleKind.CYLINDER else _hypot(length, width) / 2


def _hypot(x: float, y: float) -> float:
    return math.sqrt(x * x + y * y)


def _random_obstacle(rng: PortableRandom, p_table: float = 0.25) -> tuple:
    """(kind, 0, 0, length, width, yaw, z_bottom, z_top) of a random box, cylinder or table."""
    u = rng.random()
    yaw = rng.uniform(-math.pi, math.pi)
    if u < p_table:
        return (ObstacleKind.TABLE, 0.0, 0.0, rng.uniform(1.3, 2.2), rng.uniform(0.9, 1.5), yaw, 0.0,
                rng.uniform(0.6, 0.85))
    if u < p_table + (1 - p_table) * 0.4:
        d = rng.uniform(0.15, 0.8)
        return (ObstacleKind.CYLINDER, 0.0, 0.0, d, d, 0.0, 0.0, rng.uniform(0.3, 2.0))
    return (ObstacleKind.BOX, 0.0, 0.0, rng.uniform(0.3, 1.5), rng.uniform(0.3, 1.2), yaw, 0.0,
            rng.uniform(0.15, 1.6))


def _scatter(rng: PortableRandom, count: int, region: tuple, placed: list[tuple],
             keep_out: Sequence[tuple] = (), p_table: float = 0.25, tries: int = 30) -> None:
    """Add up to `count` random obstacles inside region (xmin, ymin, xmax, ymax), apart from `placed` and
    from keep-out discs (x, y, r)."""
    xmin, ymin, xmax, ymax = region
    for _ in range(count):
        row = _random_obstacle(rng, p_table)
        r = _reach(row)
        gap = rng.uniform(0.1, 1.2)
        if xmax - xmin <= 2 * r or ymax - ymin <= 2 * r:
            continue
        for _ in range(tries):
            x, y = rng.uniform(xmin + r, xmax - r), rng.uniform(ymin + r, ymax - r)
            if all(_hypot(x - o[1], y - o[2]) > r + _reach(o) + gap for o in placed) and all(
                    _hypot(x - kx, y - ky) > r + kr for kx, ky, kr in keep_out):
                placed.append((row[0], x, y, *row[3:]))
                break


def _cluttered(rng: PortableRandom):
    sx, sy = rng.uniform(12.0, 20.0, 2)
    bounds = (0.0, 0.0, sx, sy)
    obstacles: list[tuple] = []
    _scatter(rng, round(rng.uniform(0.05, 0.12) * sx * sy), (0.1, 0.1, sx - 0.1, sy - 0.1), obstacles)
    return bounds, obstacles, boundary_walls(bounds, 0.1, rng.uniform(1.0, 2.5))


def _wall_with_doors(a: np.ndarray, b: np.ndarray, doors: int, rng: PortableRandom, height: float,
                     walls: list[tuple], door_centres: list[tuple]) -> None:
    """Wall a -> b with `doors` gaps of DOOR_WIDTH, at least 0.3 m from its ends and from each other."""
    length = _hypot(*(b - a))
    cuts: list[tuple[float, float]] = []
    for _ in range(doors):
        width = rng.uniform(*DOOR_WIDTH)
        if length < width + 0.6:
            break
        for _ in range(20):
            s = rng.uniform(0.3 + width / 2, length - 0.3 - width / 2)
            if all(abs(s - c) > (width + w) / 2 + 0.3 for c, w in cuts):
                cuts.append((s, width))
                break
    edges, pos = [], 0.0
    for s, width in sorted(cuts):
        edges.append((pos, s - width / 2))
        pos = s + width / 2
        door_centres.append((*(a + (b - a) * s / length), width))
    edges.append((pos, length))
    for s0, s1 in edges:
        if s1 - s0 > 0.05:
            p, q = a + (b - a) * s0 / length, a + (b - a) * s1 / length
            walls.append((*p, *q, WALL_THICKNESS, height))


def _rooms(rng: PortableRandom):
    nx, ny = int(rng.integers(2, 5)), int(rng.integers(2, 4))
    widths = rng.uniform(3.5, 6.0, nx)
    heights = rng.uniform(3.5, 6.0, ny)
    corridor = int(rng.integers(1, ny)) if ny > 1 and rng.random() < 0.6 else -1
    if corridor >= 0:
        heights = np.insert(heights, corridor, rng.uniform(1.6, 2.4))
        ny += 1
    xs, ys = np.concatenate([[0], np.cumsum(widths)]), np.concatenate([[0], np.cumsum(heights)])
    bounds = (0.0, 0.0, float(xs[-1]), float(ys[-1]))
    height = rng.uniform(2.0, 2.6)
    # Walls between neighbouring cells; a random spanning tree of doors keeps every room reachable.
    cell = {(i, j): i * nx + j for i in range(ny) for j in range(nx)}
    parent = list(range(nx * ny))

    def find(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    edges = [((i, j), (i, j + 1)) for i in range(ny) for j in range(nx - 1)] + \
            [((i, j), (i + 1, j)) for i in range(ny - 1) for j in range(nx)]
    doors: list[tuple[float, float, float]]  # door centre x, y [m] and width [m]
    walls, doors = boundary_walls(bounds, 0.1, height), []
    for e in rng.permutation(len(edges)):
        (i0, j0), (i1, j1) = edges[e]
        if i0 == i1 == corridor:
            parent[find(cell[(i0, j0)])] = find(cell[(i1, j1)])
            continue  # the corridor is one open strip
        joined = find(cell[(i0, j0)]) != find(cell[(i1, j1)])
        if joined:
            parent[find(cell[(i0, j0)])] = find(cell[(i1, j1)])
        n_doors = 1 if joined or rng.random() < 0.35 else 0
        if i0 == i1:
            a, b = np.array([xs[j1], ys[i0]]), np.array([xs[j1], ys[i0 + 1]])
        else:
            a, b = np.array([xs[j0], ys[i1]]), np.array([xs[j0 + 1], ys[i1]])
        _wall_with_doors(a, b, n_doors, rng, height, walls, doors)
    obstacles: list[tuple] = []
    keep_out = [(x, y, w / 2 + 0.9) for x, y, w in doors]
    for i in range(ny):
        if i == corridor:
            continue
        for j in range(nx):
            region = (xs[j] + 0.15, ys[i] + 0.15, xs[j + 1] - 0.15, ys[i + 1] - 0.15)
            _scatter(rng, int(rng.integers(0, 4)), region, obstacles, keep_out, p_table=0.4)
    return bounds, obstacles, walls


def _passages(rng: PortableRandom):
    length, width = rng.uniform(16.0, 24.0), rng.uniform(6.0, 10.0)
    bounds = (0.0, 0.0, length, width)
    height = rng.uniform(1.8, 2.6)
    doors: list[tuple[float, float, float]]  # door centre x, y [m] and width [m]
    walls, doors = boundary_walls(bounds, 0.1, height), []
    count = int(rng.integers(2, 5))
    xs = (np.arange(1, count + 1) + rng.uniform(-0.2, 0.2, count)) * length / (count + 1)
    for x in xs:
        _wall_with_doors(np.array([x, 0.0]), np.array([x, width]), int(rng.integers(1, 3)), rng, height, walls,
                         doors)
    obstacles: list[tuple] = []
    keep_out = [(x, y, w / 2 + 1.0) for x, y, w in doors]
    edges = np.concatenate([[0.0], xs, [length]])
    for x0, x1 in itertools.pairwise(edges):
        region = (x0 + 0.15, 0.1, x1 - 0.15, width - 0.1)
        _scatter(rng, round(rng.uniform(0.02, 0.06) * (x1 - x0) * width), region, obstacles, keep_out)
    return bounds, obstacles, walls


_BUILDERS = {"rooms": _rooms, "cluttered": _cluttered, "passages": _passages}
