"""Per-scene map/agent cache and per-step ego areas (NAVSIM `_calculate_ego_area`), vectorised.

Point-in-polygon is strict (`shapely.contains_xy`, a point on an edge is outside), like NAVSIM's
`shapely.vectorized.contains`, and is tested polygon by polygon as NAVSIM does (a corner on the shared edge
of two adjacent drivable polygons is in neither).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from planners.pdm.states import StateIndex
from scenes.agents import AgentCategory
from scenes.drive import CURRENT_INDEX, OBSERVED_HISTORY_STEPS, DriveScene, Route
from scenes.ego import PACIFICA
from scenes.maps import DrivableKind, MapLayers

# BBCoordsIndex order of NAVSIM: front-left, rear-left, rear-right, front-right, centre.
FRONT_LEFT, REAR_LEFT, REAR_RIGHT, FRONT_RIGHT, CENTER = range(5)
EGO_HALF_LENGTH = PACIFICA.length / 2.0
EGO_HALF_WIDTH = PACIFICA.width / 2.0
EGO_REAR_AXLE_TO_CENTER = PACIFICA.rear_axle_to_center


def _polygon_set(polygons: list) -> tuple[np.ndarray, np.ndarray]:
    """Prepared polygons (P,) and their bounds (P, 4)."""
    geoms = np.array(polygons, dtype=object) if len(polygons) else np.zeros(0, dtype=object)
    if geoms.size:
        shapely.prepare(geoms)
        return geoms, shapely.bounds(geoms)
    return geoms, np.zeros((0, 4))


def points_in_polygons(polygons: np.ndarray, bounds: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """(P, *S) bool: point xy (*S, 2) [m] strictly inside polygon p. Bounding boxes prefilter the points."""
    flat = xy.reshape(-1, 2)
    out = np.zeros((len(polygons), flat.shape[0]), dtype=bool)
    if not flat.size:
        return out.reshape((len(polygons), *xy.shape[:-1]))
    low, high = flat.min(axis=0), flat.max(axis=0)
    overlapping = (bounds[:, 0] <= high[0]) & (bounds[:, 2] >= low[0]) & (bounds[:, 1] <= high[1]) & (
        bounds[:, 3] >= low[1])
    for p in np.flatnonzero(overlapping):
        x0, y0, x1, y1 = bounds[p]
        near = np.flatnonzero((flat[:, 0] >= x0) & (flat[:, 0] <= x1) & (flat[:, 1] >= y0) & (flat[:, 1] <= y1))
        if near.size:
            out[p, near] = shapely.contains_xy(polygons[p], flat[near, 0], flat[near, 1])
    return out.reshape((len(polygons), *xy.shape[:-1]))


def route_lane_mask(road: MapLayers, route: Route) -> np.ndarray:
    """(L,) bool: lanes of every roadblock the route passes, as NAVSIM's route lane dict.

    NAVSIM routes are roadblock ids, so a parallel lane of a route roadblock is on route too.
    """
    on_route_lanes = np.isin(road.lane_ids, np.asarray(route.lane_ids, dtype=np.int64))
    return np.isin(road.lane_roadblock_ids, road.lane_roadblock_ids[on_route_lanes])


@dataclass(frozen=True, eq=False)
class SceneGeometry:
    """Everything the scorer needs from a DriveScene, built once per scene.

    Agent arrays cover observation frames f = 0..F-1, i.e. scene steps CURRENT_INDEX + f.

    Attributes:
        lane_polygons, lane_bounds: (L,) prepared lane / connector polygons, (L, 4) bounds.
        lane_on_route: (L,) bool, the lane lies in a route roadblock (see `route_lane_mask`).
        lane_ids: (L,) int64.
        drivable_polygons, drivable_bounds: (P,) prepared drivable polygons (every DrivableKind), (P, 4).
        intersection_polygons, intersection_bounds: (I,) prepared INTERSECTION polygons, (I, 4).
        centerline: prepared route centerline LineString [m].
        red_route_lanes: (F, L) bool, route lane is red at frame f (v2 TLC).
        agent_xy: (N, F, 2) box centres [m]; agent_heading: (N, F) [rad]; agent_valid: (N, F) bool.
        agent_half: (N, 2) half length, half width [m].
        agent_first_speed: (N,) [m/s] speed in the track's first valid frame (NAVSIM `unique_objects`).
        agent_is_agent: (N,) bool, vehicle / pedestrian / bicycle (False: static object).
        history_states: (H, 11) logged ego states before now for v2 history comfort.
    """

    lane_polygons: np.ndarray
    lane_bounds: np.ndarray
    lane_on_route: np.ndarray
    lane_ids: np.ndarray
    drivable_polygons: np.ndarray
    drivable_bounds: np.ndarray
    intersection_polygons: np.ndarray
    intersection_bounds: np.ndarray
    centerline: shapely.LineString
    red_route_lanes: np.ndarray
    agent_xy: np.ndarray
    agent_heading: np.ndarray
    agent_valid: np.ndarray
    agent_half: np.ndarray
    agent_first_speed: np.ndarray
    agent_is_agent: np.ndarray
    history_states: np.ndarray

    @property
    def num_agents(self) -> int:
        """Agents N."""
        return int(self.agent_xy.shape[0])

    @property
    def num_frames(self) -> int:
        """Frames T."""
        return int(self.agent_xy.shape[1])

    @classmethod
    def from_scene(cls, scene: DriveScene) -> SceneGeometry:
        """Build the cache from `scene` (map frame)."""
        road = scene.map
        lane_polygons, lane_bounds = _polygon_set(list(shapely.make_valid(road.lane_polygons)))
        on_route = route_lane_mask(road, scene.route)
        kinds = np.asarray(road.drivable_kinds)
        drivable = [p for p, k in zip(road.drivable_polygons, kinds) if k in tuple(DrivableKind)]
        inter = [p for p, k in zip(road.drivable_polygons, kinds) if k == DrivableKind.INTERSECTION]
        drivable_polygons, drivable_bounds = _polygon_set(drivable)
        intersection_polygons, intersection_bounds = _polygon_set(inter)
        centerline = scene.route.centerline
        shapely.prepare(centerline)

        frames = slice(CURRENT_INDEX, None)
        lights = scene.traffic_lights
        red = np.zeros((scene.agents.num_steps - CURRENT_INDEX, road.num_lanes), dtype=bool)
        for lane_id, is_red in zip(lights.lane_ids, lights.is_red):
            rows = np.flatnonzero((road.lane_ids == lane_id) & on_route)
            red[:, rows] = np.asarray(is_red[frames], dtype=bool)[:, None]

        agents = scene.agents
        valid = agents.valid[:, frames]
        first = np.argmax(valid, axis=1)
        speed = agents.speed[:, frames]
        first_speed = speed[np.arange(agents.num_agents), first]
        return cls(
            lane_polygons=lane_polygons,
            lane_bounds=lane_bounds,
            lane_on_route=on_route,
            lane_ids=np.asarray(road.lane_ids),
            drivable_polygons=drivable_polygons,
            drivable_bounds=drivable_bounds,
            intersection_polygons=intersection_polygons,
            intersection_bounds=intersection_bounds,
            centerline=centerline,
            red_route_lanes=red,
            agent_xy=np.asarray(agents.xy[:, frames], dtype=np.float64),
            agent_heading=np.asarray(agents.heading[:, frames], dtype=np.float64),
            agent_valid=valid,
            agent_half=np.asarray(agents.size, dtype=np.float64) / 2.0,
            agent_first_speed=first_speed,
            agent_is_agent=np.asarray(agents.category) != AgentCategory.STATIC_OBJECT,
            history_states=_history_states(scene),
        )


def _history_states(scene: DriveScene) -> np.ndarray:
    """(OBSERVED_HISTORY_STEPS, 11) logged ego states from -1.5 s to just before now, StateIndex layout."""
    ego = scene.ego.slice(slice(CURRENT_INDEX - OBSERVED_HISTORY_STEPS, CURRENT_INDEX))
    out = np.zeros((OBSERVED_HISTORY_STEPS, len(StateIndex)))
    out[:, StateIndex.X : StateIndex.HEADING + 1] = ego.pose
    out[:, StateIndex.VELOCITY_X : StateIndex.VELOCITY_Y + 1] = ego.velocity
    out[:, StateIndex.ACCELERATION_X : StateIndex.ACCELERATION_Y + 1] = ego.acceleration
    out[:, StateIndex.STEERING_ANGLE] = ego.steering
    out[:, StateIndex.ANGULAR_VELOCITY] = ego.yaw_rate
    return out


def ego_coords(states: np.ndarray) -> np.ndarray:
    """(K, T, 5, 2) [m] ego box corners (FL, RL, RR, FR) and centre from rear-axle states (K, T, 11)."""
    heading = states[..., StateIndex.HEADING]
    cos, sin = np.cos(heading), np.sin(heading)
    center = states[..., StateIndex.X : StateIndex.Y + 1] + EGO_REAR_AXLE_TO_CENTER * np.stack([cos, sin], -1)
    lon = np.array([1.0, -1.0, -1.0, 1.0, 0.0]) * EGO_HALF_LENGTH
    lat = np.array([1.0, 1.0, -1.0, -1.0, 0.0]) * EGO_HALF_WIDTH
    x = center[..., None, 0] + lon * cos[..., None] - lat * sin[..., None]
    y = center[..., None, 1] + lon * sin[..., None] + lat * cos[..., None]
    out = np.stack([x, y], axis=-1)
    out[..., CENTER, :] = center
    return out


@dataclass(frozen=True, eq=False)
class EgoAreas:
    """Per-step ego areas, each (K, T) bool."""

    multiple_lanes: np.ndarray
    non_drivable: np.ndarray
    oncoming: np.ndarray
    rear_axle_in_intersection: np.ndarray
    center_in_intersection: np.ndarray


def ego_areas(geometry: SceneGeometry, states: np.ndarray, coords: np.ndarray) -> EgoAreas:
    """Areas of each proposal step from states (K, T, 11) and `ego_coords` (K, T, 5, 2)."""
    corners = coords[..., :CENTER, :]
    in_lane = points_in_polygons(geometry.lane_polygons, geometry.lane_bounds, coords)  # (L, K, T, 5)
    lane_corner_count = in_lane[..., :CENTER].sum(axis=-1)  # (L, K, T)
    multiple = ((lane_corner_count > 0).sum(axis=0) > 1) & np.all(lane_corner_count != 4, axis=0)
    in_drivable = points_in_polygons(geometry.drivable_polygons, geometry.drivable_bounds, corners)
    non_drivable = in_drivable.any(axis=0).sum(axis=-1) < 4
    oncoming = ~in_lane[geometry.lane_on_route, ..., CENTER].any(axis=0)
    rear = points_in_polygons(
        geometry.intersection_polygons, geometry.intersection_bounds, states[..., StateIndex.X : StateIndex.Y + 1]
    ).any(axis=0)
    center = points_in_polygons(
        geometry.intersection_polygons, geometry.intersection_bounds, coords[..., CENTER, :]
    ).any(axis=0)
    return EgoAreas(multiple, non_drivable, oncoming, rear, center)
