"""Scenario maps for roads, merges and lane drops: the lanes plus where traffic, ego and specials go."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely

from scenes import portable
from scenes.drive import DrivingCommand, ScenarioType
from scenes.portable import PortableRandom
from scenes.synthetic import polyline as pl
from scenes.synthetic.roads import MapBuilder, reference_line


@dataclass
class SpawnGroup:
    """Initial and inflow vehicles on candidate paths that share their first lanes up to `s_max` [m]."""

    paths: list[int]
    weights: list[float]
    s_max: float
    inflow: bool = True
    s_min: float = 0.0


@dataclass
class Crossing:
    """A crosswalk: polygon, curb waiting points a, b (2,) [m] and the sidewalk direction (2,) beyond b."""

    polygon: shapely.Polygon
    a: np.ndarray
    b: np.ndarray
    half_width: float
    walk_dir: np.ndarray


@dataclass
class Pedestrian:
    """A pedestrian waiting at crossing `crossing` side `side` (0 at a, 1 at b), leaving at `start` [s]."""

    crossing: int
    side: int
    start: float
    speed: float
    jitter: float


@dataclass
class Layout:
    """A scenario world before simulation, in the local build frame.

    paths: lane-id sequences vehicles drive; ego_s_now: ego centre station [m] wanted at CURRENT_INDEX;
    neighbours: path -> (left path, right path) for ego lane changes; specials: (kind, path, station [m],
    speed [m/s]) with kind "parked" or "slow"; clear: (path, s_lo, s_hi) kept free of initial traffic.
    """

    builder: MapBuilder
    paths: list[tuple[int, ...]]
    groups: list[SpawnGroup]
    ego_path: int
    ego_s_now: float
    command: DrivingCommand
    neighbours: dict[int, tuple[int | None, int | None]] = field(default_factory=dict)
    yield_lanes: list[int] = field(default_factory=list)
    crossings: list[Crossing] = field(default_factory=list)
    pedestrians: list[Pedestrian] = field(default_factory=list)
    specials: list[tuple[str, int, float, float]] = field(default_factory=list)
    clear: list[tuple[int, float, float]] = field(default_factory=list)
    lights: list[int] = field(default_factory=list)
    signal_red: np.ndarray | None = None  # (K, T_sim) bool per light, over the simulated steps
    ped_green: np.ndarray | None = None  # (T_sim,) bool, pedestrians may start crossing
    density: float = 1.0  # multiplies the vehicle spacing


def _cuts(rng: PortableRandom, n: int) -> list[int]:
    """1-2 segment boundaries (sample indices) on a reference line of n samples."""
    k = int(rng.integers(1, 3))
    return sorted({int(c) for c in rng.uniform(70, n - 70, size=k)})


def road_layout(rng: PortableRandom, scenario: ScenarioType, extension: float = 0.0) -> Layout:
    """STRAIGHT_ROAD, CURVED_ROAD, PARKED_VEHICLE, SLOW_VEHICLE, PEDESTRIAN_CROSSING; roads `extension` [m]
    longer than a DriveScene needs (for longer logs)."""
    S = ScenarioType
    curved = scenario is S.CURVED_ROAD or (scenario is not S.STRAIGHT_ROAD and rng.random() < 0.3)
    if scenario is S.PARKED_VEHICLE:
        n = int(rng.choice([1, 2, 2, 3, 3, 4]))
    elif scenario is S.PEDESTRIAN_CROSSING:
        n = int(rng.integers(1, 3))
    else:
        n = int(rng.integers(1, 5))
    width = rng.uniform(3.0, 3.8)
    speed = rng.uniform(8.0, 13.0) if scenario is S.PEDESTRIAN_CROSSING else rng.uniform(11.0, 20.0)
    ref = reference_line(rng, rng.uniform(300, 380) + extension, curved)
    b = MapBuilder(rng)
    fwd = b.add_road(ref, n, width, speed, _cuts(rng, len(ref)))
    paths = [tuple(seg[k] for seg in fwd) for k in range(n)]
    n_opp = 0
    if rng.random() < (0.85 if scenario is S.PEDESTRIAN_CROSSING else 0.6):
        n_opp = int(rng.integers(1, 3))
        opp = b.add_road(ref, n_opp, width, speed, _cuts(rng, len(ref)), side=1.0)
        paths += [tuple(seg[k] for seg in opp) for k in range(n_opp)]
    lengths = [sum(b.lanes[i].length for i in p) for p in paths]
    groups = [SpawnGroup([i], [1.0], lengths[i]) for i in range(len(paths))]
    ego = int(rng.integers(0, n))
    lay = Layout(b, paths, groups, ego, rng.uniform(90, 130), DrivingCommand.STRAIGHT,
                 neighbours={k: (k - 1 if k > 0 else None, k + 1 if k < n - 1 else None) for k in range(n)},
                 density=rng.uniform(0.7, 1.6))
    if scenario is S.PARKED_VEHICLE:
        s_park = lay.ego_s_now + rng.uniform(28, 55)
        lay.specials.append(("parked", ego, s_park, 0.0))
        lay.clear.append((ego, 0.0, s_park + 12))
        groups[ego].inflow = False
    elif scenario is S.SLOW_VEHICLE:
        v_slow = rng.uniform(2.5, 0.45 * speed)
        s_slow = lay.ego_s_now + rng.uniform(25, 45)
        lay.specials.append(("slow", ego, s_slow, v_slow))
        lay.clear.append((ego, lay.ego_s_now - 20, s_slow + 15))
    elif scenario is S.PEDESTRIAN_CROSSING:
        _add_midblock_crossing(rng, lay, ref, n * width, n_opp * width)
    return lay


def _add_midblock_crossing(rng: PortableRandom, lay: Layout, ref: np.ndarray, right: float,
                           left: float) -> None:
    """A crosswalk across the whole road some 15-40 m ahead of the ego's current position, and walkers."""
    path_xy = pl.concat([lay.builder.lanes[i].xy for i in lay.paths[lay.ego_path]])
    s_path = pl.arc_length(path_xy)
    target = path_xy[np.searchsorted(s_path, lay.ego_s_now + rng.uniform(15, 40))]
    off = ref - target
    i = int(np.argmin((off * off).sum(-1)))
    p, h = ref[i], pl.headings(ref)[i]
    sin, cos = portable.sincos(h)
    t, n = np.array([cos, sin]), np.array([-sin, cos])
    half = rng.uniform(1.5, 2.5)
    corners = [p - n * right - t * half, p - n * right + t * half, p + n * left + t * half, p + n * left - t * half]
    walk = t * rng.choice([-1.0, 1.0])
    lay.builder.crosswalks.append(shapely.Polygon(corners))
    lay.crossings.append(Crossing(lay.builder.crosswalks[-1], p - n * (right + 1.5), p + n * (left + 1.5), half, walk))
    for _ in range(int(rng.integers(1, 5))):
        lay.pedestrians.append(Pedestrian(0, int(rng.integers(0, 2)), rng.uniform(-4.0, 1.5),
                                          rng.uniform(1.0, 1.6), rng.uniform(-0.7, 0.7) * half))


def merge_layout(rng: PortableRandom, extension: float = 0.0) -> Layout:
    """MERGE: an on-ramp (yielding) joins the rightmost lane of a 1-3 lane main road (`extension` [m] longer
    after the merge)."""
    n = int(rng.integers(1, 4))
    width, speed = rng.uniform(3.2, 3.8), rng.uniform(14.0, 20.0)
    ref = reference_line(rng, rng.uniform(300, 360) + extension, rng.random() < 0.4)
    im = int(rng.uniform(170, 210))
    b = MapBuilder(rng)
    seg_a, seg_b = b.add_road(ref, n, width, speed, [im])
    main = b.lanes[seg_a[-1]].xy
    to_end = pl.arc_length(main)[-1] - pl.arc_length(main)
    taper, par, appr = rng.uniform(30, 45), rng.uniform(40, 80), rng.uniform(50, 70)
    far = rng.uniform(14, 22)
    o = np.where(to_end <= taper, width * pl.smoothstep(to_end / taper),
                 width + (far - width) * pl.smoothstep((to_end - taper - par) / appr))
    o += 0.3 * np.maximum(to_end - taper - par - appr, 0.0)  # the ramp arrives at an angle
    ramp = b.add_lane(pl.resample(pl.offset(main, -o)), width, 0.8 * speed, b.new_roadblock())
    b.lanes[ramp].xy[-1] = main[-1]
    b.link(ramp, seg_b[-1])
    paths: list[tuple[int, ...]] = [(seg_a[k], seg_b[k]) for k in range(n)]
    paths.append((ramp, seg_b[-1]))
    lengths = [sum(b.lanes[i].length for i in p) for p in paths]
    groups = [SpawnGroup([i], [1.0], lengths[i]) for i in range(len(paths))]
    on_ramp = rng.random() < 0.5
    ego = n if on_ramp else int(rng.integers(0, n))
    s_now = b.lanes[paths[ego][0]].length - rng.uniform(30, 80)
    return Layout(b, paths, groups, ego, s_now, DrivingCommand.STRAIGHT, yield_lanes=[ramp],
                  density=rng.uniform(0.8, 1.5))


def lane_drop_layout(rng: PortableRandom, extension: float = 0.0) -> Layout:
    """LANE_DROP: the rightmost of n + 1 lanes tapers into its neighbour; its traffic yields and merges (`extension`
    [m] longer after the drop)."""
    n = int(rng.integers(1, 4))
    width, speed = rng.uniform(3.0, 3.8), rng.uniform(12.0, 18.0)
    ref = reference_line(rng, rng.uniform(300, 360) + extension, rng.random() < 0.35)
    i_drop = int(rng.uniform(170, 210))
    b = MapBuilder(rng)
    seg_a, seg_b = b.add_road(ref, n, width, speed, [i_drop])
    part = ref[: i_drop + 1]
    to_end = pl.arc_length(part)[-1] - pl.arc_length(part)
    taper = rng.uniform(35, 60)
    shift = width * (1.0 - pl.smoothstep(to_end / taper))
    centre = pl.offset(part, -(n + 0.5) * width + shift)
    edge = pl.offset(part, -(n + 1.0) * width + shift)
    drop = b.add_lane(centre, width, speed, b.lanes[seg_a[0]].roadblock, left=pl.offset(part, -n * width + shift),
                      right=edge)
    b.link(drop, seg_b[-1])
    paths: list[tuple[int, ...]] = [(seg_a[k], seg_b[k]) for k in range(n)]
    paths.append((drop, seg_b[-1]))
    if rng.random() < 0.5:
        opp = b.add_road(ref, int(rng.integers(1, 3)), width, speed, [i_drop], side=1.0)
        paths += [tuple(seg[k] for seg in opp) for k in range(len(opp[0]))]
    lengths = [sum(b.lanes[i].length for i in p) for p in paths]
    groups = [SpawnGroup([i], [1.0], lengths[i]) for i in range(len(paths))]
    ego = n if rng.random() < 0.5 else int(rng.integers(0, n))
    s_now = b.lanes[paths[ego][0]].length - rng.uniform(30, 80)
    return Layout(b, paths, groups, ego, s_now, DrivingCommand.STRAIGHT, yield_lanes=[drop],
                  density=rng.uniform(0.8, 1.5))
