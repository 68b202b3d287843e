"""A signalised 4-way intersection: arms, connectors, stop lines, crosswalks and a protected phase plan."""

from __future__ import annotations

import numpy as np
import shapely

from scenes import portable
from scenes.drive import DrivingCommand, ScenarioType
from scenes.geometry import wrap_angle
from scenes.portable import PortableRandom
from scenes.synthetic import polyline as pl
from scenes.synthetic.layouts import Crossing, Layout, Pedestrian, SpawnGroup
from scenes.synthetic.roads import MapBuilder

AMBER_STEPS = 30  # [steps] vehicles treat a light turning red within 3 s as red when they can stop
ALL_RED = 2.0  # [s] clearance after every phase
MOVES = {"left": -1, "straight": 2, "right": 1}  # exit arm = (approach + offset) % 4


def _straight(p0: np.ndarray, p1: np.ndarray) -> np.ndarray:
    n = max(2, int(np.ceil(portable.norm(p1 - p0) / pl.STEP)) + 1)
    return np.linspace(p0, p1, n)


def intersection_layout(rng: PortableRandom, scenario: ScenarioType, sim_times: np.ndarray,
                        extension: float = 0.0) -> Layout:
    """INTERSECTION_LEFT / RIGHT / STRAIGHT; `sim_times` (T,) [s] relative to the current time; arms `extension`
    [m] longer than a DriveScene needs."""
    move = {ScenarioType.INTERSECTION_LEFT: "left", ScenarioType.INTERSECTION_RIGHT: "right"}.get(
        scenario, "straight")
    nl = int(rng.choice([1, 2, 2, 3]))
    width, speed = rng.uniform(3.0, 3.6), rng.uniform(8.0, 14.0)
    road = nl * width
    box = road + rng.uniform(2.0, 5.0)
    cw = rng.uniform(3.0, 4.5)
    stop = box + cw + 1.0
    arm_len = rng.uniform(140, 170) + extension
    b = MapBuilder(rng)
    axis = [np.array([c, s]) for s, c in zip(*portable.sincos(-np.pi / 2 + np.pi / 2 * np.arange(4)))]
    normal = [np.array([-a[1], a[0]]) for a in axis]
    incoming: list[list[int]] = []
    outgoing: list[list[int]] = []
    for k in range(4):
        a, n = axis[k], normal[k]
        blk_in, blk_out = b.new_roadblock(), b.new_roadblock()
        incoming.append([b.add_lane(_straight(a * arm_len + (j + 0.5) * width * n, a * stop + (j + 0.5) * width * n),
                                    width, speed, blk_in) for j in range(nl)])
        outgoing.append([b.add_lane(_straight(a * stop - (j + 0.5) * width * n, a * arm_len - (j + 0.5) * width * n),
                                    width, speed, blk_out) for j in range(nl)])
        for lane in incoming[k]:
            b.add_stop_line(lane)
        half_cw = cw / 2
        mid = a * (box + half_cw)
        b.crosswalks.append(shapely.Polygon([mid - a * half_cw - n * road, mid + a * half_cw - n * road,
                                             mid + a * half_cw + n * road, mid - a * half_cw + n * road]))
    crossings = [Crossing(poly, axis[k] * (box + cw / 2) + normal[k] * (road + 1.5),
                          axis[k] * (box + cw / 2) - normal[k] * (road + 1.5), cw / 2, axis[k])
                 for k, poly in enumerate(b.crosswalks)]
    # connectors: (approach, move, lane id); straight from every lane, turns from the outer lanes
    connectors: list[tuple[int, str, int, int]] = []
    for k in range(4):
        for name, off in MOVES.items():
            m = (k + off) % 4
            pairs = [(j, j) for j in range(nl)] if name == "straight" else [(0, 0)] if name == "left" else [
                (nl - 1, nl - 1)]
            block = b.new_roadblock()
            for j_in, j_out in pairs:
                src, dst = b.lanes[incoming[k][j_in]], b.lanes[outgoing[m][j_out]]
                h0 = float(portable.arctan2(-axis[k][1], -axis[k][0]))
                h1 = float(portable.arctan2(axis[m][1], axis[m][0]))
                xy = hermite_or_line(src.xy[-1], h0, dst.xy[0], h1)
                limit = speed if name == "straight" else min(speed, rng.uniform(6.0, 9.0))
                cid = b.add_lane(xy, width, limit, block, connector=True)
                b.link(src.id, cid)
                b.link(cid, dst.id)
                connectors.append((k, name, cid, src.id))
    area = [shapely.box(-box, -box, box, box)]
    for k in range(4):
        a, n = axis[k], normal[k]
        area.append(shapely.Polygon([a * box - n * road, a * stop - n * road, a * stop + n * road, a * box + n * road]))
    area += [b.lanes[c].polygon() for _, _, c, _ in connectors]
    poly = shapely.union_all(np.array(area, dtype=object))
    if not isinstance(poly, shapely.Polygon):
        poly = poly.convex_hull
    b.intersections.append((b.new_roadblock(), poly))
    lay = _traffic_and_ego(rng, b, incoming, outgoing, connectors, move)
    lay.crossings = crossings
    _signals(rng, lay, connectors, sim_times)
    for _ in range(int(rng.integers(0, 4))):
        lay.pedestrians.append(Pedestrian(int(rng.integers(0, 4)), int(rng.integers(0, 2)),
                                          rng.uniform(-8.0, 3.0), rng.uniform(1.0, 1.6),
                                          rng.uniform(-0.6, 0.6) * cw / 2))
    return lay


def hermite_or_line(p0: np.ndarray, h0: float, p1: np.ndarray, h1: float) -> np.ndarray:
    """A straight connector when headings agree, else a smooth cubic turn."""
    if abs(wrap_angle(h1 - h0)) < 1e-3:
        return _straight(p0, p1)
    return pl.hermite(p0, h0, p1, h1)


def _traffic_and_ego(rng: PortableRandom, b: MapBuilder, incoming: list[list[int]],
                     outgoing: list[list[int]], connectors: list[tuple[int, str, int, int]], move: str) -> Layout:
    paths: list[tuple[int, ...]] = []
    groups: list[SpawnGroup] = []
    weights = {"straight": 0.5, "left": 0.25, "right": 0.25}
    ego_path = -1
    nl = len(incoming[0])
    ego_lane = incoming[0][0 if move == "left" else nl - 1 if move == "right" else int(rng.integers(0, nl))]
    for k in range(4):
        for src in incoming[k]:
            cand, w = [], []
            for _, name, cid, s_id in connectors:
                if s_id != src:
                    continue
                out = b.lanes[cid].successors[0]
                if src == ego_lane and name == move:
                    ego_path = len(paths)
                cand.append(len(paths))
                w.append(weights[name])
                paths.append((src, cid, out))
            groups.append(SpawnGroup(cand, list(np.array(w) / sum(w)), b.lanes[src].length - 4.0))
    for k in range(4):
        for out in outgoing[k]:
            groups.append(SpawnGroup([len(paths)], [1.0], b.lanes[out].length, inflow=False, s_min=8.0))
            paths.append((out,))
    command = {"left": DrivingCommand.LEFT, "right": DrivingCommand.RIGHT}.get(move, DrivingCommand.STRAIGHT)
    s_now = b.lanes[ego_lane].length - rng.uniform(8.0, 45.0)
    return Layout(b, paths, groups, ego_path, s_now, command, density=rng.uniform(0.8, 1.5))


def _signals(rng: PortableRandom, lay: Layout, connectors: list[tuple[int, str, int, int]],
             sim_times: np.ndarray) -> None:
    """Protected phases, one approach at a time, then an all-walk pedestrian phase; each + all-red."""
    first = int(rng.integers(0, 4))
    phases: list[tuple[int, float, float]] = []  # (approach or -1 for pedestrians, start, end)
    t = 0.0
    for i in range(4):
        green = rng.uniform(7.0, 11.0)
        phases.append(((first + i) % 4, t, t + green))
        t += green + ALL_RED
    walk = rng.uniform(7.0, 10.0)
    phases.append((-1, t, t + walk))
    cycle = t + walk + ALL_RED
    ego_start = next(start for k, start, _ in phases if k == 0)
    onset = rng.uniform(-5.0, 3.0)  # [s] when the ego's approach turns green, relative to now
    times = np.concatenate([sim_times, sim_times[-1] + 0.1 * np.arange(1, AMBER_STEPS + 1)])
    tau = np.mod(times - onset + ego_start, cycle)
    green = {k: (tau >= s) & (tau < e) for k, s, e in phases}
    lay.lights = [cid for _, _, cid, _ in connectors]
    lay.signal_red = np.stack([~green[k] for k, _, _, _ in connectors])
    lay.ped_green = green[-1][: len(sim_times)]
