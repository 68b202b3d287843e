"""A torch Dataset over a diffplan dataset: one (features, targets) window per scene (history -> future).

The feature builder sees only the `DriveObservation`; the target builder gets the full `DriveScene` and
that observation (to line agents up with the features). Builders are plain picklable callables returning
NamedTuples of tensors, so `default_collate` batches them and DataLoader workers receive them.

Default features (ego rear-axle frame at now, x forward, y left; A = max_agents, P = route_points):
    ego_history (16, 7) float32: x, y [m], heading [rad], vx, vy [m/s] and ax, ay [m/s^2] (body frame),
        oldest first; the last row is now.
    agents (A, 16, 8) float32: x, y [m], cos, sin of heading, vx, vy [m/s], length, width [m]; the A agents
        present now nearest the ego (ties by track id), nearest first; zeros where invalid or padded.
    agents_mask (A, 16) bool; agents_category (A,) int64 AgentCategory, -1 for padding.
    route (P, 2) float32 [m]: the route centerline resampled every `route_spacing` [m] (default 2 m, so
        62 m for P = 32) from the ego's projection onto it; route_mask (P,) False past the route's end.
    command (4,) float32 one-hot (left, straight, right, unknown).
Map polylines (`MapPolylineBuilder`, used by the vector planners; M = max_polylines, Q = points):
    map_points (M, Q, 4) float32: x, y [m] and the unit direction dx, dy of each point, along the element
        (lane centerlines in driving direction). Every element within `radius` of the ego is cut into
        pieces of at most `segment_length` [m], each resampled to Q evenly spaced points; the M pieces
        nearest the ego come first (ties by element order); zeros where padded.
    map_attributes (M, 8) float32: kind one-hot (lane centerline, road edge, stop line, crosswalk), on the
        route, intersection connector, red light now (lanes only), speed limit [m/s] (lanes only, else 0).
    map_mask (M,) bool.
    Road edges are the boundary rings of the drivable area (the union of the drivable polygons).
Default targets:
    plan (8, 3) float32: the expert's x, y [m], heading [rad] at 0.5 s .. 4 s.
    agents_future (A, 50, 2) float32 [m]: future centres of the feature agents, in the same order;
    agents_future_mask (A, 50) bool.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import shapely
import torch
from torch.utils.data import Dataset

from scenes.drive import CURRENT_INDEX, NUM_PLAN_POSES, PLAN_DT, DriveObservation, DriveScene
from scenes.geometry import points_to_local
from scenes.store.reader import DriveDataset

MAX_AGENTS = 32
ROUTE_POINTS = 32
ROUTE_SPACING = 2.0  # [m]


class ObservationFeatures(NamedTuple):
    """Default features of one observation (see the module docstring for units)."""
    ego_history: torch.Tensor  # (16, 7)
    agents: torch.Tensor  # (A, 16, 8)
    agents_mask: torch.Tensor  # (A, 16) bool
    agents_category: torch.Tensor  # (A,) int64
    route: torch.Tensor  # (P, 2)
    route_mask: torch.Tensor  # (P,) bool
    command: torch.Tensor  # (4,)


class SceneTargets(NamedTuple):
    """Default targets of one scene window (see the module docstring for units)."""
    plan: torch.Tensor  # (8, 3)
    agents_future: torch.Tensor  # (A, 50, 2)
    agents_future_mask: torch.Tensor  # (A, 50) bool


def nearest_agents(obs: DriveObservation, max_agents: int) -> np.ndarray:
    """Rows of `obs.agents` to feed a model: nearest now first, ties by track id, at most `max_agents`."""
    distance = np.linalg.norm(obs.agents.xy[:, -1], axis=-1)
    return np.lexsort((obs.agents.track_ids, distance))[:max_agents]


class ObservationFeatureBuilder:
    """DriveObservation -> ObservationFeatures (see the module docstring for shapes and units)."""

    def __init__(
        self,
        max_agents: int = MAX_AGENTS,
        route_points: int = ROUTE_POINTS,
        route_spacing: float = ROUTE_SPACING,
    ):
        self.max_agents, self.route_points, self.route_spacing = max_agents, route_points, route_spacing

    def __call__(self, obs: DriveObservation) -> ObservationFeatures:
        """The ObservationFeatures of `obs`."""
        ego = obs.ego_history
        ego_history = np.concatenate([ego.pose, ego.velocity, ego.acceleration], axis=-1)
        agents, rows = obs.agents, nearest_agents(obs, self.max_agents)
        steps = agents.xy.shape[1]
        table = np.zeros((self.max_agents, steps, 8))
        mask = np.zeros((self.max_agents, steps), bool)
        category = np.full(self.max_agents, -1, np.int64)
        n = len(rows)
        valid = agents.valid[rows]
        heading = agents.heading[rows]
        size = np.broadcast_to(agents.size[rows][:, None, :], (n, steps, 2))
        columns = [
            agents.xy[rows],
            np.cos(heading)[..., None],
            np.sin(heading)[..., None],
            agents.velocity[rows],
            size,
        ]
        table[:n] = np.where(valid[..., None], np.concatenate(columns, axis=-1), 0.0)
        mask[:n] = valid
        category[:n] = agents.category[rows]
        route, route_mask = self.route(obs)
        return ObservationFeatures(
            ego_history=torch.from_numpy(ego_history.astype(np.float32)),
            agents=torch.from_numpy(table.astype(np.float32)),
            agents_mask=torch.from_numpy(mask),
            agents_category=torch.from_numpy(category),
            route=torch.from_numpy(route.astype(np.float32)),
            route_mask=torch.from_numpy(route_mask),
            command=torch.from_numpy(obs.command.one_hot()),
        )

    def route(self, obs: DriveObservation) -> tuple[np.ndarray, np.ndarray]:
        """(P, 2) [m] points every route_spacing from the ego's projection; (P,) mask, False past the end."""
        line = obs.route.centerline
        start = shapely.line_locate_point(line, shapely.Point(0.0, 0.0))
        distance = start + self.route_spacing * np.arange(self.route_points)
        points = shapely.get_coordinates(shapely.line_interpolate_point(line, distance))
        return points, distance <= line.length + 1e-9


class MapKind(enum.IntEnum):
    """Kinds of map polyline, in `map_attributes` one-hot order."""

    LANE = 0
    ROAD_EDGE = 1
    STOP_LINE = 2
    CROSSWALK = 3


MAP_ATTRIBUTES = ("lane", "road_edge", "stop_line", "crosswalk", "on_route", "connector", "red", "speed_limit")
MAX_POLYLINES = 64
POLYLINE_POINTS = 10
SEGMENT_LENGTH = 20.0  # [m]
MAP_RADIUS = 60.0  # [m]


class MapPolylines(NamedTuple):
    """Map polylines of one observation (see the module docstring for units)."""
    map_points: torch.Tensor  # (M, Q, 4)
    map_attributes: torch.Tensor  # (M, 8)
    map_mask: torch.Tensor  # (M,) bool


class MapPolylineBuilder:
    """DriveObservation -> MapPolylines: lanes, road edges, stop lines and crosswalks near the ego as
    fixed-size polylines (see the module docstring for shapes and units)."""

    def __init__(
        self,
        max_polylines: int = MAX_POLYLINES,
        points: int = POLYLINE_POINTS,
        segment_length: float = SEGMENT_LENGTH,
        radius: float = MAP_RADIUS,
    ):
        if max_polylines < 1 or points < 2 or segment_length <= 0 or radius <= 0:
            raise ValueError("max_polylines >= 1, points >= 2, segment_length > 0 and radius > 0 are required")
        self.max_polylines, self.points = max_polylines, points
        self.segment_length, self.radius = segment_length, radius

    def elements(self, obs: DriveObservation) -> tuple[np.ndarray, np.ndarray]:
        """(E,) LineStrings of every map element and their (E, 8) attributes, before cutting."""
        m = obs.map
        route, red = set(obs.route.lane_ids), set(obs.red_lane_ids.tolist())
        lines, rows = [], []

        def add(geometries: Any, kind: MapKind, extra: tuple[float, float, float, float] = (0, 0, 0, 0)) -> None:
            for line in geometries:
                lines.append(line)
                rows.append([float(kind == k) for k in MapKind] + list(extra))

        for i, lane_id in enumerate(m.lane_ids.tolist()):
            add([m.lane_centerlines[i]], MapKind.LANE, (float(lane_id in route), float(m.lane_is_connector[i]),
                                                        float(lane_id in red), _speed_limit(m.lane_speed_limits[i])))
        if len(m.drivable_polygons):
            add(_rings(m.drivable_area()), MapKind.ROAD_EDGE)
        add(m.stop_lines, MapKind.STOP_LINE)
        add([ring for polygon in m.crosswalks for ring in _rings(polygon)], MapKind.CROSSWALK)
        return np.array(lines, dtype=object), np.array(rows, np.float64).reshape(-1, len(MAP_ATTRIBUTES))

    def __call__(self, obs: DriveObservation) -> MapPolylines:
        """The map polylines of `obs`, nearest the ego first."""
        m_max, q = self.max_polylines, self.points
        points = np.zeros((m_max, q, 4))
        attributes = np.zeros((m_max, len(MAP_ATTRIBUTES)))
        mask = np.zeros(m_max, bool)
        lines, rows = self.elements(obs)
        if len(lines):
            disk = shapely.Point(0.0, 0.0).buffer(self.radius)
            parts, owner = shapely.get_parts(shapely.intersection(lines, disk), return_index=True)
            keep = (shapely.get_type_id(parts) == 1) & (shapely.length(parts) > 1e-6)  # LineStrings only
            parts, owner = parts[keep], owner[keep]
            length = shapely.length(parts)
            pieces = np.maximum(1, np.ceil(length / self.segment_length - 1e-9)).astype(int)
            part = np.repeat(np.arange(len(parts)), pieces)
            k = np.arange(len(part)) - np.repeat(np.cumsum(pieces) - pieces, pieces)
            piece_length = (length / pieces)[part]
            start = k * piece_length
            distance = start[:, None] + piece_length[:, None] * np.linspace(0.0, 1.0, q)[None, :]
            xy = shapely.get_coordinates(shapely.line_interpolate_point(
                np.repeat(parts[part], q), distance.ravel())).reshape(-1, q, 2)
            direction = np.diff(xy, axis=1)
            direction = np.concatenate([direction, direction[:, -1:]], axis=1)
            direction /= np.maximum(np.linalg.norm(direction, axis=-1, keepdims=True), 1e-9)
            nearest = np.linalg.norm(xy, axis=-1).min(axis=1)
            order = np.lexsort((np.arange(len(part)), nearest))[:m_max]
            n = len(order)
            points[:n] = np.concatenate([xy, direction], axis=-1)[order]
            attributes[:n] = rows[owner[part[order]]]
            mask[:n] = True
        return MapPolylines(
            map_points=torch.from_numpy(points.astype(np.float32)),
            map_attributes=torch.from_numpy(attributes.astype(np.float32)),
            map_mask=torch.from_numpy(mask),
        )


def _rings(polygon: shapely.Geometry) -> list[shapely.LineString]:
    """Exterior and interior rings of a Polygon or MultiPolygon, as LineStrings."""
    rings = []
    for part in shapely.get_parts(polygon):
        rings.append(shapely.LineString(part.exterior.coords))
        rings.extend(shapely.LineString(ring.coords) for ring in part.interiors)
    return rings


class SceneTargetBuilder:
    """(DriveScene, its DriveObservation) -> SceneTargets (privileged: the expert plan, agents' futures)."""

    def __init__(
        self, max_agents: int = MAX_AGENTS, num_plan_poses: int = NUM_PLAN_POSES, plan_dt: float = PLAN_DT
    ):
        self.max_agents, self.num_plan_poses, self.plan_dt = max_agents, num_plan_poses, plan_dt

    def __call__(self, scene: DriveScene, obs: DriveObservation) -> SceneTargets:
        """The expert plan and the feature agents' futures of `scene` at `obs`."""
        plan = scene.expert_plan(self.num_plan_poses, self.plan_dt).poses
        ids = obs.agents.track_ids[nearest_agents(obs, self.max_agents)]
        scene_rows = np.array([np.flatnonzero(scene.agents.track_ids == i)[0] for i in ids], np.int64)
        future = slice(CURRENT_INDEX + 1, None)
        steps = scene.agents.xy.shape[1] - CURRENT_INDEX - 1
        xy = np.zeros((self.max_agents, steps, 2))
        mask = np.zeros((self.max_agents, steps), bool)
        if len(scene_rows):
            valid = scene.agents.valid[scene_rows, future]
            local = points_to_local(scene.agents.xy[scene_rows, future], scene.current_pose)
            xy[: len(scene_rows)] = np.where(valid[..., None], local, 0.0)
            mask[: len(scene_rows)] = valid
        return SceneTargets(
            plan=torch.from_numpy(plan.astype(np.float32)),
            agents_future=torch.from_numpy(xy.astype(np.float32)),
            agents_future_mask=torch.from_numpy(mask),
        )


DEFAULT_TARGETS = SceneTargetBuilder()


class SceneWindowDataset(Dataset):
    """(features, targets) per scene of a dataset folder, optionally one split only.

    With target_builder=None an item is the features alone, and only shards/ is read (no privileged data).
    """

    def __init__(
        self,
        root: Path | str,
        feature_builder: Callable[[DriveObservation], Any] | None = None,
        target_builder: Callable[[DriveScene, DriveObservation], Any] | None = DEFAULT_TARGETS,
        split: str | None = None,
        cache_size: int = 4,
    ):
        self.feature_builder = feature_builder or ObservationFeatureBuilder()
        self.target_builder = target_builder
        self.data = DriveDataset.open(root, privileged=target_builder is not None, cache_size=cache_size)
        self.index = self.data.indices(split=split)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> Any:
        episode = int(self.index[i])
        if self.target_builder is None:
            return self.feature_builder(self.data.observation(episode))
        scene = self.data[episode]
        obs = scene.observation()
        return self.feature_builder(obs), self.target_builder(scene, obs)


def _speed_limit(value: float) -> float:
    """A lane's speed limit feature [m/s]; 0 where the map gives none (NaN)."""
    return float(value) if np.isfinite(value) else 0.0
