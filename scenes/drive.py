"""A driving scene (everything, privileged included) and the observation a planner may see.

Timeline (NAVSIM sampling, 10 Hz underneath): index 0 is 2.0 s in the past, `CURRENT_INDEX` is now,
and the last index is 5 s ahead (NAVSIM's TTC looks up agents until 4.9 s). A planner observes 1.5 s of
history; the extra 0.5 s lets evaluation ask the planner for its plan 0.5 s earlier (NAVSIM v2's extended
comfort compares consecutive plans). Plans are 8 poses at 0.5 s.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
import shapely

from scenes._checks import ShapeChecker, ValidationError
from scenes.agents import AgentTracks
from scenes.ego import EgoState, Frame, Trajectory
from scenes.geometry import points_to_local, poses_to_local
from scenes.maps import MapLayers

SIM_DT = 0.1  # [s]
NUM_HISTORY_STEPS = 20  # 2.0 s before now, at SIM_DT (stored)
OBSERVED_HISTORY_STEPS = 15  # 1.5 s before the observed step (what a planner sees)
PREVIOUS_PLAN_STEPS = 5  # 0.5 s: the earlier observation evaluation may ask for
NUM_FUTURE_STEPS = 50  # 5.0 s after now, at SIM_DT
CURRENT_INDEX = NUM_HISTORY_STEPS
NUM_STEPS = NUM_HISTORY_STEPS + 1 + NUM_FUTURE_STEPS
PLAN_DT = 0.5  # [s]
NUM_PLAN_POSES = 8  # 4 s
OBSERVATION_RADIUS = 80.0  # [m] of map and agents a planner sees around the ego
SPLITS = ("train", "val", "test")


class DrivingCommand(enum.IntEnum):
    """High-level command, NAVSIM's one-hot order."""

    LEFT = 0
    STRAIGHT = 1
    RIGHT = 2
    UNKNOWN = 3

    def one_hot(self) -> np.ndarray:
        """(4,) float32 one-hot vector in NAVSIM's order."""
        return np.eye(4, dtype=np.float32)[self.value]


class ScenarioType(enum.Enum):
    """What a synthetic scene is built to stress."""

    STRAIGHT_ROAD = "straight_road"
    CURVED_ROAD = "curved_road"
    INTERSECTION_LEFT = "intersection_left"
    INTERSECTION_RIGHT = "intersection_right"
    INTERSECTION_STRAIGHT = "intersection_straight"
    MERGE = "merge"
    LANE_DROP = "lane_drop"
    PARKED_VEHICLE = "parked_vehicle"
    SLOW_VEHICLE = "slow_vehicle"
    PEDESTRIAN_CROSSING = "pedestrian_crossing"
    LOG = "log"  # a scene read from a real log


@dataclass(frozen=True, eq=False)
class Route:
    """The lanes the ego is asked to follow.

    Attributes:
        lane_ids: ids of the route lanes, in driving order.
        centerline: LineString [m] through those lanes' centerlines.
    """

    lane_ids: tuple[int, ...]
    centerline: shapely.LineString

    def validate(self) -> Route:
        """The route itself; ValidationError naming the field unless it has lanes and a finite, non-empty
        centreline."""
        check = ShapeChecker("Route")
        if not self.lane_ids:
            check.fail("lane_ids", "a route needs at least one lane")
        if not isinstance(self.centerline, shapely.LineString) or self.centerline.is_empty:
            check.fail("centerline", "must be a non-empty LineString")
        if not np.isfinite(shapely.get_coordinates(self.centerline)).all():
            check.fail("centerline", "has non-finite coordinates (NaN or inf)")
        return self


@dataclass(frozen=True, eq=False)
class TrafficLights:
    """Signal state of the lanes (intersection connectors) that have one.

    Attributes:
        lane_ids: (K,) int64 controlled lane ids.
        is_red: (K, T) bool, True while the lane must not be entered.
    """

    lane_ids: np.ndarray
    is_red: np.ndarray

    def validate(self, num_steps: int | None = None) -> TrafficLights:
        """The lights themselves; ValidationError naming the field on a bad shape or dtype (`num_steps`: T, if
        given)."""
        check = ShapeChecker("TrafficLights")
        check.array("lane_ids", self.lane_ids, ("K",), "i")
        check.array("is_red", self.is_red, ("K", num_steps), "b")
        return self


@dataclass(frozen=True)
class SceneMetadata:
    """Identity and provenance of a scene."""

    scene_id: str
    seed: int
    split: str
    scenario_type: ScenarioType
    generator_version: str

    def validate(self) -> SceneMetadata:
        """The metadata itself; ValidationError naming the field on an unknown split or scenario type or an
        empty id."""
        check = ShapeChecker("SceneMetadata")
        if self.split not in SPLITS:
            check.fail("split", f"unknown split {self.split!r}; expected one of {', '.join(SPLITS)}")
        if not isinstance(self.scenario_type, ScenarioType):
            check.fail("scenario_type", f"must be a ScenarioType, got {self.scenario_type!r}")
        if not self.scene_id:
            check.fail("scene_id", "must not be empty")
        return self


@dataclass(frozen=True, eq=False)
class DriveObservation:
    """What a driving planner may see at the current time, in the ego rear-axle frame.

    Attributes:
        ego_history: EgoState (OBSERVED_HISTORY_STEPS + 1,); the last pose is (0, 0, 0).
        ego_pose_global: (3,) the ego pose in the map frame, to put plans back on the map.
        agents: AgentTracks (N, OBSERVED_HISTORY_STEPS + 1) of agents present now, within OBSERVATION_RADIUS.
        map: MapLayers within OBSERVATION_RADIUS.
        route: Route, centerline within OBSERVATION_RADIUS.
        command: DrivingCommand.
        red_lane_ids: (K,) int64 lanes whose light is red now.
    """

    ego_history: EgoState
    ego_pose_global: np.ndarray
    agents: AgentTracks
    map: MapLayers
    route: Route
    command: DrivingCommand
    red_lane_ids: np.ndarray

    @property
    def ego(self) -> EgoState:
        """The current ego state, shape ()."""
        return self.ego_history.slice(-1)


def observe(ego_history: EgoState, agents: AgentTracks, road: MapLayers, route: Route, command: DrivingCommand,
            red_lane_ids: np.ndarray) -> DriveObservation:
    """The planner's view of a world state, the one place observations are made (logs and simulation alike).

    ego_history: EgoState (OBSERVED_HISTORY_STEPS + 1,) map frame, the last state is now; agents: AgentTracks
    (N, OBSERVED_HISTORY_STEPS + 1) map frame over the same steps; road and route in the map frame; red_lane_ids
    (K,) lanes whose light is red now. Only agents valid now and within OBSERVATION_RADIUS, and the map within
    it, are kept; everything is moved into the ego frame.
    """
    origin = ego_history.pose[-1]
    distance = np.linalg.norm(agents.xy[:, -1] - origin[:2], axis=-1)
    present = agents.valid[:, -1] & (distance <= OBSERVATION_RADIUS)
    disk = shapely.Point(*origin[:2]).buffer(OBSERVATION_RADIUS)
    route_near = shapely.intersection(route.centerline, disk)
    if not isinstance(route_near, shapely.LineString) or route_near.is_empty:
        route_near = route.centerline  # multi-part or far route: keep it whole
    route_local = shapely.transform(route_near, lambda xy: points_to_local(xy, origin))
    return DriveObservation(
        ego_history=ego_history.to_local(origin),
        ego_pose_global=origin.copy(),
        agents=agents.select(present).to_local(origin),
        map=road.crop(origin[:2], OBSERVATION_RADIUS).to_local(origin),
        route=Route(route.lane_ids, route_local),
        command=command,
        red_lane_ids=np.asarray(red_lane_ids).copy(),
    )


@dataclass(frozen=True, eq=False)
class DriveLog:
    """A driving log of T >= NUM_STEPS steps at SIM_DT, everything privileged: a DriveScene's fields over a
    longer future. Closed-loop simulation starts at CURRENT_INDEX and runs while the log lasts.

    Attributes:
        metadata: SceneMetadata.
        ego: EgoState (T,) map frame; after CURRENT_INDEX, the expert's (the human log).
        agents: AgentTracks (N, T) map frame.
        map: MapLayers map frame.
        route: Route map frame.
        command: DrivingCommand.
        traffic_lights: TrafficLights (K, T).
    """

    metadata: SceneMetadata
    ego: EgoState
    agents: AgentTracks
    map: MapLayers
    route: Route
    command: DrivingCommand
    traffic_lights: TrafficLights

    @property
    def num_steps(self) -> int:
        """T, the number of logged steps."""
        return self.ego.pose.shape[0]

    @property
    def current_pose(self) -> np.ndarray:
        """(3,) ego rear-axle pose now, map frame."""
        return self.ego.pose[CURRENT_INDEX]

    def validate(self) -> DriveLog:
        """The log itself (every part); ValidationError naming the field on a bad shape, dtype or value."""
        self.metadata.validate()
        self.ego.validate()
        if self.ego.pose.ndim != 2 or self.ego.pose.shape[0] < NUM_STEPS:
            raise ValidationError(f"{type(self).__name__}.ego: expected at least {NUM_STEPS} steps, got shape "
                                  f"{self.ego.pose.shape}")
        self.agents.validate()
        if self.agents.num_steps != self.num_steps:
            raise ValidationError(f"{type(self).__name__}.agents: expected {self.num_steps} steps, got "
                                  f"{self.agents.num_steps}")
        self.map.validate()
        self.route.validate()
        if not isinstance(self.command, DrivingCommand):
            raise ValidationError(f"{type(self).__name__}.command: must be a DrivingCommand, got {self.command!r}")
        self.traffic_lights.validate(self.num_steps)
        missing = set(self.route.lane_ids) - set(self.map.lane_ids.tolist())
        if missing:
            raise ValidationError(f"{type(self).__name__}.route.lane_ids: {sorted(missing)} are not in the map")
        return self

    def red_lane_ids(self, at: int) -> np.ndarray:
        """(K,) int64 lanes whose light is red at step `at`."""
        return self.traffic_lights.lane_ids[self.traffic_lights.is_red[:, at]]

    def expert_plan(self, num_poses: int = NUM_PLAN_POSES, dt: float = PLAN_DT, at: int = CURRENT_INDEX,
                    origin: np.ndarray | None = None) -> Trajectory:
        """Privileged: the logged ego's trajectory after step `at`, `num_poses` poses every `dt` [s], in the
        frame of pose `origin` (3,) (default: the logged pose at `at`). Past the log's end it goes on at the
        last logged speed and heading."""
        stride = round(dt / SIM_DT)
        rows = at + stride * np.arange(1, num_poses + 1)
        last = self.num_steps - 1
        poses = self.ego.pose[np.minimum(rows, last)].copy()
        beyond = (rows - last)[rows > last] * SIM_DT  # [s] past the last logged step
        if beyond.size:
            heading = self.ego.pose[last, 2]
            speed = float(self.ego.velocity[last, 0])
            poses[rows > last, 0] += speed * beyond * np.cos(heading)
            poses[rows > last, 1] += speed * beyond * np.sin(heading)
        return Trajectory(poses_to_local(poses, self.ego.pose[at] if origin is None else origin), dt, Frame.EGO)

    def _observe_log(self, at: int) -> DriveObservation:
        now = slice(at - OBSERVED_HISTORY_STEPS, at + 1)
        return observe(self.ego.slice(now), self.agents.select(slice(None), now), self.map, self.route,
                       self.command, self.red_lane_ids(at))


@dataclass(frozen=True, eq=False)
class DriveScene(DriveLog):
    """Everything about one driving scene, privileged included, over NUM_STEPS steps at SIM_DT.

    Steps up to CURRENT_INDEX are history; later steps are the privileged future. Only
    `observation()` may be handed to a planner. Fields as DriveLog's, with T = NUM_STEPS.
    """

    def validate(self) -> DriveScene:
        """The scene itself (every part); ValidationError naming the field on a bad shape, dtype or value."""
        self.metadata.validate()
        self.ego.validate()
        if self.ego.pose.shape[:1] != (NUM_STEPS,):
            raise ValidationError(f"DriveScene.ego: expected {NUM_STEPS} steps, got shape {self.ego.pose.shape}")
        super().validate()
        return self

    def observation(self, at: int = CURRENT_INDEX) -> DriveObservation:
        """The planner's view at step `at` (default: now): 1.5 s of history, ego frame, within
        OBSERVATION_RADIUS. Evaluation may pass `at = CURRENT_INDEX - PREVIOUS_PLAN_STEPS`."""
        if not OBSERVED_HISTORY_STEPS <= at <= CURRENT_INDEX:
            raise ValueError(f"observation step {at} is outside [{OBSERVED_HISTORY_STEPS}, {CURRENT_INDEX}]")
        return self._observe_log(at)

    # --- privileged views, for target builders, data generation and evaluation only ---

    def ego_future(self) -> EgoState:
        """Privileged: the expert's states after now, (NUM_FUTURE_STEPS,), map frame."""
        return self.ego.slice(slice(CURRENT_INDEX + 1, None))

    def expert_plan(self, num_poses: int = NUM_PLAN_POSES, dt: float = PLAN_DT, at: int = CURRENT_INDEX,
                    origin: np.ndarray | None = None) -> Trajectory:
        """Privileged: the expert's trajectory after step `at` as `num_poses` poses every `dt` [s], in the
        ego frame at `at` (or of pose `origin` (3,), e.g. a simulated ego's)."""
        stride = round(dt / SIM_DT)
        rows = at + stride * np.arange(1, num_poses + 1)
        if rows[-1] >= NUM_STEPS:
            raise ValueError(f"{num_poses} poses at {dt} s run past the {NUM_FUTURE_STEPS * SIM_DT} s future")
        return super().expert_plan(num_poses, dt, at, origin)
