"""One synthetic scene: layout -> traffic -> simulation -> DriveScene in a random global map frame."""

from __future__ import annotations

import dataclasses

import numpy as np
import shapely

from scenes import portable
from scenes.agents import AgentCategory, AgentTracks
from scenes.drive import (
    CURRENT_INDEX,
    NUM_STEPS,
    SIM_DT,
    DriveLog,
    DriveScene,
    Route,
    ScenarioType,
    SceneMetadata,
    TrafficLights,
)
from scenes.ego import PACIFICA, EgoState
from scenes.geometry import wrap_angle
from scenes.maps import MapLayers, boundary_polygons
from scenes.portable import PortableRandom
from scenes.synthetic import polyline as pl
from scenes.synthetic.intersection import intersection_layout
from scenes.synthetic.layouts import Layout, lane_drop_layout, merge_layout, road_layout
from scenes.synthetic.paths import PathTable
from scenes.synthetic.pedestrians import PED_SIZE, Walkers
from scenes.synthetic.traffic import T_SIM, WARMUP, Fleet, Simulation, simulated_steps

AGENT_RANGE = 100.0  # [m] agents farther from the ego are not observed (valid=False)
S = ScenarioType


def make_layout(rng: PortableRandom, scenario: ScenarioType, sim_steps: int = T_SIM, extension: float = 0.0
                ) -> Layout:
    """The road layout, traffic lights and pedestrians of a `scenario` scene simulated for `sim_steps` steps,
    with roads `extension` [m] longer than a DriveScene needs."""
    sim_times = (np.arange(sim_steps) - WARMUP - CURRENT_INDEX) * SIM_DT
    if scenario in (S.INTERSECTION_LEFT, S.INTERSECTION_RIGHT, S.INTERSECTION_STRAIGHT):
        return intersection_layout(rng, scenario, sim_times, extension)
    if scenario is S.MERGE:
        return merge_layout(rng, extension)
    if scenario is S.LANE_DROP:
        return lane_drop_layout(rng, extension)
    return road_layout(rng, scenario, extension)


def _vehicle(rng: PortableRandom, path: int, s: float, v: float, spawn: int = 0, **over) -> dict:
    truck = rng.random() < 0.08
    length = rng.uniform(7.0, 10.0) if truck else rng.uniform(4.2, 5.2)
    row = {"path": path, "s": s, "v": v, "length": length, "width": 2.5 if truck else rng.uniform(1.75, 2.05),
           "a": rng.uniform(1.0, 2.0), "b": rng.uniform(1.5, 2.5), "T": rng.uniform(1.0, 1.8),
           "s0": rng.uniform(2.0, 3.0), "factor": rng.uniform(0.85, 1.1), "cap": np.inf, "static": False,
           "spawn": spawn, "category": int(AgentCategory.VEHICLE)}
    row.update(over)
    row["half"] = row["length"] / 2
    return row


def _start_speed(tab: PathTable, p: int, s: float, v: float) -> float:
    """Initial speed [m/s] that can still stop for a light or yield point ahead."""
    for limit in (tab.stop_s[p], tab.yield_s[p]):
        if s < limit:
            v = min(v, np.sqrt(2 * 2.0 * max(limit - s - 8.0, 0.0)))
    return float(v)


def make_fleet(rng: PortableRandom, lay: Layout, tab: PathTable, sim_steps: int = T_SIM) -> Fleet:
    """The vehicles: the ego, the layout's parked or slow vehicles, initial traffic and inflow over `sim_steps`
    steps, as a Fleet."""
    t_pre = (WARMUP + CURRENT_INDEX) * SIM_DT
    pe = lay.ego_path
    v_e = tab.vmax[pe, int(lay.ego_s_now)] * rng.uniform(0.75, 0.95)
    s_e = max(3.0, lay.ego_s_now - v_e * t_pre)
    v_e = _start_speed(tab, pe, s_e, v_e)
    rows = [_vehicle(rng, pe, s_e, v_e, length=PACIFICA.length, width=PACIFICA.width, a=1.5, b=2.0, T=1.4,
                     s0=2.5, factor=rng.uniform(0.9, 1.0))]
    taken = [(pe, s_e, 22.0)]
    for kind, p, s, speed in lay.specials:
        if kind == "parked":
            cat = AgentCategory.STATIC_OBJECT if rng.random() < 0.3 else AgentCategory.VEHICLE
            rows.append(_vehicle(rng, p, s, 0.0, static=True, category=int(cat), cap=0.0))
            taken.append((p, s, 15.0))
        else:
            s0 = max(s - speed * t_pre, s_e + 25.0)
            rows.append(_vehicle(rng, p, s0, speed, cap=speed, factor=1.0))
            taken.append((p, s0, 15.0))
    occupied = []
    for p, s, radius in taken:
        lane_row, s_in = tab.locate(np.array([p]), np.array([s]))
        occupied.append((int(lane_row[0]), float(s_in[0]), radius))
    for g in lay.groups:
        pos = g.s_min + rng.uniform(0.0, 20.0) * lay.density
        while pos < g.s_max:
            p = int(rng.choice(g.paths, p=g.weights))
            v = tab.vmax[p, int(pos)] * rng.uniform(0.75, 0.95)
            row = _vehicle(rng, p, pos, _start_speed(tab, p, pos, v))
            r, s_in = tab.locate(np.array([p]), np.array([pos]))
            free = all(not (int(r[0]) == o_r and abs(s_in[0] - o_s) < rad) for o_r, o_s, rad in occupied)
            free &= all(not (q == p and lo <= pos <= hi) for q, lo, hi in lay.clear)
            if free:
                rows.append(row)
            pos += row["length"] + lay.density * (rng.uniform(6.0, 20.0) + v * rng.uniform(0.9, 1.8))
        if g.inflow:
            t = lay.density * rng.exponential(2.0)
            while t < (sim_steps - 20) * SIM_DT:
                p = int(rng.choice(g.paths, p=g.weights))
                v = tab.vmax[p, int(g.s_min)] * rng.uniform(0.75, 0.95)
                rows.append(_vehicle(rng, p, g.s_min, v, spawn=int(t / SIM_DT) + 1))
                t += lay.density * (1.5 + rng.exponential(2.0))
    return Fleet(rows)


def _ego_state(sim: Simulation, tab: PathTable, rear_on_path: bool = False
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ego rear-axle arrays over the simulated steps: pose (T, 3), body velocity (T, 2), body accel (T, 2), yaw
    rate, steer. The vehicle's centre follows the lane path (DriveScenes), or with `rear_on_path` its rear axle
    does: then the rear axle moves along its heading, as a kinematic bicycle's does (the centre on the path gives
    the rear axle a sideslip of -1.67 m x yaw rate, which closed-loop tracking of the log turns into drift)."""
    xy, h, kappa = tab.sample(sim.h_path[:, 0], sim.h_s[:, 0])
    sin_h, cos_h = portable.sincos(h)
    centre = xy + np.stack([-sin_h, cos_h], -1) * sim.ego_d[:, None]
    heading = h + portable.arctan(sim.ego_dd)
    sin, cos = portable.sincos(heading)
    direction = np.stack([cos, sin], -1)
    rear = centre if rear_on_path else centre - PACIFICA.rear_axle_to_center * direction
    vel = np.gradient(rear, SIM_DT, axis=0)
    acc = np.gradient(vel, SIM_DT, axis=0)
    yaw_rate = np.gradient(np.unwrap(heading), SIM_DT)

    def body(vec):
        return np.stack([(vec * direction).sum(-1), vec[:, 1] * direction[:, 0] - vec[:, 0] * direction[:, 1]], -1)

    v_body = body(vel)
    speed = portable.norm(vel)
    curv = np.where(speed > 0.5, yaw_rate / np.maximum(speed, 0.5), kappa)
    steering = portable.arctan(PACIFICA.wheelbase * curv)
    return np.stack([rear[:, 0], rear[:, 1], heading], -1), v_body, body(acc), yaw_rate, steering


def generate(seed: int, split: str, scenario: ScenarioType, version: str) -> DriveScene:
    """The `scenario` DriveScene of `seed`: a layout and its simulated traffic (the ego drives as the expert),
    in a random map frame; `split` and `version` go into its metadata."""
    log = generate_log(seed, split, scenario, version, NUM_STEPS, 0.0, rear_on_path=False)
    return DriveScene(log.metadata, log.ego, log.agents, log.map, log.route, log.command, log.traffic_lights)


def traffic_simulation(seed: int, scenario: ScenarioType, num_steps: int, extension: float
                       ) -> tuple[PortableRandom, Layout, PathTable, Fleet, Walkers, Simulation]:
    """The generator's random stream, layout, path table, fleet, walkers and traffic Simulation (not yet run)
    for a log of `num_steps` steps of scene `seed`, on roads `extension` [m] longer."""
    rng = PortableRandom([seed, 2])
    sim_steps = simulated_steps(num_steps)
    lay = make_layout(rng, scenario, sim_steps, extension)
    tab = PathTable(lay)
    fleet = make_fleet(rng, lay, tab, sim_steps)
    walkers = Walkers(lay.crossings, lay.pedestrians)
    lane_change = scenario in (S.PARKED_VEHICLE, S.SLOW_VEHICLE)
    order = (0, 1) if rng.random() < 0.7 else (1, 0)
    sim = Simulation(tab, fleet, walkers, lay.signal_red, lay.ped_green, lay.neighbours, lane_change, order,
                     sim_steps)
    return rng, lay, tab, fleet, walkers, sim


def agent_states(sim: Simulation, tab: PathTable, steps: slice
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every vehicle but the ego, then every pedestrian, over the simulated `steps` (build frame): centre xy
    (N, T, 2) [m], heading (N, T) [rad], velocity (N, T, 2) [m/s], active (N, T)."""
    path, s = sim.h_path[steps, 1:].T, sim.h_s[steps, 1:].T
    vxy, vh, _ = tab.sample(path, s)
    speed = sim.h_v[steps, 1:].T
    sin_vh, cos_vh = portable.sincos(vh)
    vvel = speed[..., None] * np.stack([cos_vh, sin_vh], -1)
    u, walking = sim.ped_u[steps], sim.ped_walking[steps]
    pxy, ph, pvel = (x.swapaxes(0, 1) for x in sim.w.state(u, walking)) if sim.w.count else (
        np.zeros((0, u.shape[0], 2)), np.zeros((0, u.shape[0])), np.zeros((0, u.shape[0], 2)))
    active = np.concatenate([sim.h_active[steps, 1:].T, np.ones((sim.w.count, u.shape[0]), bool)])
    return np.concatenate([vxy, pxy]), np.concatenate([vh, ph]), np.concatenate([vvel, pvel]), active


def generate_log(seed: int, split: str, scenario: ScenarioType, version: str, num_steps: int, extension: float,
                 rear_on_path: bool) -> DriveLog:
    """`generate` over `num_steps` logged steps (NUM_STEPS: the DriveScene), on roads `extension` [m] longer;
    `rear_on_path`: see `_ego_state`."""
    return log_and_agent_rows(seed, split, scenario, version, num_steps, extension, rear_on_path)[0]


def log_and_agent_rows(seed: int, split: str, scenario: ScenarioType, version: str, num_steps: int,
                       extension: float, rear_on_path: bool) -> tuple[DriveLog, np.ndarray]:
    """`generate_log`'s log, and which of `agent_states`' rows (vehicles but the ego, then pedestrians) are its
    agents, in order: (N,) row indices."""
    rng, lay, tab, fleet, walkers, sim = traffic_simulation(seed, scenario, num_steps, extension)
    red = lay.signal_red
    sim.run()
    keep = slice(WARMUP, WARMUP + num_steps)
    pose, vel, acc, yaw_rate, steering = (x[keep] for x in _ego_state(sim, tab, rear_on_path))
    xy, heading, velocity, valid = agent_states(sim, tab, keep)
    n_ped = walkers.count
    sin_p, cos_p = portable.sincos(pose[:, 2])
    centre = pose[:, :2] + PACIFICA.rear_axle_to_center * np.stack([cos_p, sin_p], -1)
    valid &= portable.norm(xy - centre[None]) <= AGENT_RANGE
    seen = valid.any(1)
    size = np.concatenate([np.stack([fleet.length[1:], fleet.width[1:]], -1), np.tile(PED_SIZE, (n_ped, 1))])
    category = np.concatenate([fleet.category[1:], np.full(n_ped, int(AgentCategory.PEDESTRIAN))]).astype(np.int8)
    # random global map frame
    theta, shift = rng.uniform(-np.pi, np.pi), rng.uniform(-3000.0, 3000.0, size=2)
    sin_t, cos_t = portable.sincos(theta)

    def move(points):
        return portable.rotate(points, (cos_t, sin_t)) + shift

    valid, xy, heading, velocity = valid[seen], xy[seen], heading[seen], velocity[seen]
    base = int(rng.integers(1, 10**6)) * 100
    agents = AgentTracks(
        track_ids=base + rng.permutation(int(seen.sum())).astype(np.int64),
        category=category[seen],
        size=size[seen].astype(np.float64),
        xy=np.where(valid[..., None], move(xy), 0.0),
        heading=np.where(valid, wrap_angle(heading + theta), 0.0),
        velocity=np.where(valid[..., None], portable.rotate(velocity, (cos_t, sin_t)), 0.0),
        valid=valid,
    )
    ego = EgoState(np.concatenate([move(pose[:, :2]), wrap_angle(pose[:, 2:] + theta)], -1), vel, acc,
                   yaw_rate, steering)
    road_map = lay.builder.build()
    back = portable.rotate(shift, (cos_t, -sin_t))  # the build frame's origin seen from the map frame
    road_map = drop_collinear_points(road_map.to_local(np.array([-back[0], -back[1], -theta])))
    route_lanes = tuple(lay.paths[lay.ego_path])
    route_xy = move(pl.concat([lay.builder.lanes[i].xy for i in route_lanes]))
    lights = TrafficLights(np.array(lay.lights, np.int64),
                           np.zeros((0, num_steps), bool) if red is None else red[:, keep].copy())
    meta = SceneMetadata(f"{split}-{seed:010d}", seed, split, scenario, version)
    route_line = shapely.simplify(shapely.LineString(route_xy), COLLINEAR_TOLERANCE)
    log = DriveLog(meta, ego, agents, road_map, Route(route_lanes, route_line), lay.command, lights)
    return log, np.flatnonzero(seen)


COLLINEAR_TOLERANCE = 1e-6  # [m]: only points on a straight run go, so shared edges stay shared


def drop_collinear_points(road_map: MapLayers) -> MapLayers:
    """The map without vertices that lie on a straight run (the 1 m sampling of straight roads), and with
    every drivable polygon valid (rotating a union of lane strips can leave a ring touching itself).

    Halves the stored size of a scene; geometry moves by at most COLLINEAR_TOLERANCE.
    """

    def simplify(geometries: np.ndarray) -> np.ndarray:
        return shapely.simplify(geometries, COLLINEAR_TOLERANCE) if geometries.size else geometries

    left, right = simplify(road_map.lane_left_boundaries), simplify(road_map.lane_right_boundaries)
    return dataclasses.replace(
        road_map,
        lane_centerlines=simplify(road_map.lane_centerlines),
        lane_left_boundaries=left,
        lane_right_boundaries=right,
        lane_polygons=boundary_polygons(left, right),
        drivable_polygons=np.array([valid_polygon(p) for p in simplify(road_map.drivable_polygons)],
                                   dtype=object),
    )


def valid_polygon(polygon: shapely.Polygon) -> shapely.Polygon:
    """`polygon` itself when valid, else its repair (the largest piece of a zero-width buffer)."""
    if shapely.is_valid(polygon):
        return polygon
    repaired = shapely.buffer(polygon, 0.0)
    if not isinstance(repaired, shapely.Polygon):
        repaired = max(shapely.get_parts(repaired), key=lambda part: part.area)
    return repaired
