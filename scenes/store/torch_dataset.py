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
Default targets:
    plan (8, 3) float32: the expert's x, y [m], heading [rad] at 0.5 s .. 4 s.
    agents_future (A, 50, 2) float32 [m]: future centres of the feature agents, in the same order;
    agents_future_mask (A, 50) bool.
"""

from __future__ import annotations

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
    ego_history: torch.Tensor  # (16, 7)
    agents: torch.Tensor  # (A, 16, 8)
    agents_mask: torch.Tensor  # (A, 16) bool
    agents_category: torch.Tensor  # (A,) int64
    route: torch.Tensor  # (P, 2)
    route_mask: torch.Tensor  # (P,) bool
    command: torch.Tensor  # (4,)


class SceneTargets(NamedTuple):
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


class SceneTargetBuilder:
    """(DriveScene, its DriveObservation) -> SceneTargets (privileged: the expert plan, agents' futures)."""

    def __init__(
        self, max_agents: int = MAX_AGENTS, num_plan_poses: int = NUM_PLAN_POSES, plan_dt: float = PLAN_DT
    ):
        self.max_agents, self.num_plan_poses, self.plan_dt = max_agents, num_plan_poses, plan_dt

    def __call__(self, scene: DriveScene, obs: DriveObservation) -> SceneTargets:
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
