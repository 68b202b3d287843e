"""Navigation types shared by the world generator, the expert, the data engine, planners and evaluation.

Frames: the world frame is z-up, SI units. The robot frame is x forward, y left, heading counter-clockwise
[rad], origin at the robot's base centre on the floor. Navigation plans are NAV_PLAN_POSES waypoints in the
robot frame, NAV_PLAN_DT apart at the expert's speed.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from scenes._checks import ShapeChecker

NAV_PLAN_POSES = 24  # NavDP's 24 future steps
NAV_PLAN_DT = 0.25  # [s] between waypoints at the expert's speed
NAV_CONTROL_DT = 0.1  # [s] closed-loop control and simulation step (NavDP's MPC T)
NAV_CAMERA_DT = 0.25  # [s] between recorded depth frames in demonstrations (the planning rate)
NAVDP_ACTION_SCALE = 4.0  # NavDP labels are consecutive waypoint deltas x 4, clipped to [-1, 1]
DEPTH_MIN, DEPTH_MAX = 0.1, 5.0  # [m] NavDP's valid depth range; outside it depth is 0 (invalid)
DEPTH_SCALE = 10000.0  # stored depth = round(m x DEPTH_SCALE) as uint16, i.e. 0.1 mm (NavDP's depth PNGs)


class RobotKind(enum.Enum):
    """How a robot moves: differential drive (unicycle) or legged."""

    WHEELED = "wheeled"
    QUADRUPED = "quadruped"


@dataclass(frozen=True)
class RobotProfile:
    """A mobile base, for embodiment-aware worlds, collision checks and control limits.

    Attributes:
        name: profile name, e.g. "wheeled".
        kind: wheeled (differential drive / unicycle) or quadruped.
        length, width: footprint box [m], centred on the base.
        height: top of the robot [m]; obstacles whose free space underneath is taller than this pass over it.
        v_max: forward speed limit [m/s]; reverse is not used.
        omega_max: yaw-rate limit [rad/s].
    """

    name: str
    kind: RobotKind
    length: float
    width: float
    height: float
    v_max: float
    omega_max: float

    @property
    def radius(self) -> float:
        """Radius [m] of the disc that encloses the footprint, used for collision and clearance checks."""
        return 0.5 * math.sqrt(self.length * self.length + self.width * self.width)  # not libm's hypot

    def validate(self) -> RobotProfile:
        """The profile itself; ValidationError naming the field unless every size and limit is a positive
        number."""
        check = ShapeChecker(f"RobotProfile({self.name})")
        for field in ("length", "width", "height", "v_max", "omega_max"):
            value = getattr(self, field)
            if not (math.isfinite(value) and value > 0):
                check.fail(field, f"must be a positive number, got {value}")
        if not isinstance(self.kind, RobotKind):
            check.fail("kind", f"must be a RobotKind, got {self.kind!r}")
        return self


# NavDP's benchmark robot is a Clearpath Dingo (v <= 0.5 m/s, |w| <= 0.5 rad/s); ours carries a mast camera,
# so it is tall and tables block it. The quadruped (Go2-like) is short and walks under tables.
WHEELED = RobotProfile("wheeled", RobotKind.WHEELED, length=0.45, width=0.40, height=1.0, v_max=0.5,
                       omega_max=0.5)
QUADRUPED = RobotProfile("quadruped", RobotKind.QUADRUPED, length=0.70, width=0.31, height=0.45, v_max=0.5,
                         omega_max=0.5)
ROBOTS = {robot.name: robot for robot in (WHEELED, QUADRUPED)}


@dataclass(frozen=True)
class CameraSpec:
    """A forward-looking pinhole depth camera on the robot.

    Attributes:
        width, height: image size [px], each in 64..640.
        hfov_deg: horizontal field of view [deg], 68..90.
        mount_height: optical centre above the floor [m]; the camera sits at the base centre, looking along +x.
    """

    width: int = 160
    height: int = 120
    hfov_deg: float = 79.0
    mount_height: float = 0.4

    def intrinsics(self) -> np.ndarray:
        """(3, 3) pinhole matrix K [px], square pixels, principal point at the image centre."""
        fx = 0.5 * self.width / math.tan(math.radians(self.hfov_deg) / 2)
        return np.array([[fx, 0.0, self.width / 2], [0.0, fx, self.height / 2], [0.0, 0.0, 1.0]])

    def validate(self) -> CameraSpec:
        """The camera itself; ValidationError naming the field when the image size, field of view or mount
        height is out of range."""
        check = ShapeChecker("CameraSpec")
        if not (64 <= self.width <= 640 and 64 <= self.height <= 640):
            check.fail("width/height", f"{self.width}x{self.height} px is outside 64..640")
        if not 68.0 <= self.hfov_deg <= 90.0:
            check.fail("hfov_deg", f"{self.hfov_deg} is outside 68..90 degrees")
        if not (math.isfinite(self.mount_height) and self.mount_height > 0):
            check.fail("mount_height", f"must be positive, got {self.mount_height}")
        return self


@dataclass(frozen=True, eq=False)
class NavEpisode:
    """A PointNav episode: drive from `start` to within `success_distance` of `goal`, then stop.

    Attributes:
        episode_id: unique id within its dataset.
        world_id: names the world (for synthetic worlds "<kind>-<seed>", which regenerates it).
        start: (3,) x [m], y [m], yaw [rad] in the world frame.
        goal: (2,) x [m], y [m] in the world frame.
        geodesic_distance: shortest obstacle-free path length [m] from start to goal for `robot`.
        robot: the RobotProfile name the episode was sampled for.
    """

    episode_id: str
    world_id: str
    start: np.ndarray
    goal: np.ndarray
    geodesic_distance: float
    robot: str = WHEELED.name

    def validate(self) -> NavEpisode:
        """The episode itself; ValidationError naming the field on a bad start, goal or geodesic distance."""
        check = ShapeChecker(f"NavEpisode({self.episode_id})")
        check.array("start", self.start, (3,), "f")
        check.array("goal", self.goal, (2,), "f")
        if not (math.isfinite(self.geodesic_distance) and self.geodesic_distance > 0):
            check.fail("geodesic_distance", f"must be a positive number of metres, got {self.geodesic_distance}")
        return self


@dataclass(frozen=True, eq=False)
class NavObservation:
    """What a navigation planner may see. No map, no obstacle list, no expert path.

    Attributes:
        depth: (H, W) float32 [m]; NavDP's convention: values outside [0.1, 5] m and invalid pixels are 0.
        goal: (3,) float32 point goal in the robot frame: x [m] forward, y [m] left, yaw [rad] (0 if unknown).
        velocity: (2,) float32 current forward speed [m/s] and yaw rate [rad/s].
        camera: the depth camera.
        time_s: time since the episode started [s].
    """

    depth: np.ndarray
    goal: np.ndarray
    velocity: np.ndarray
    camera: CameraSpec
    time_s: float = 0.0

    def validate(self) -> NavObservation:
        """The observation itself; ValidationError naming the field on a bad shape, dtype or value."""
        check = ShapeChecker("NavObservation", H=self.camera.height, W=self.camera.width)
        check.array("depth", self.depth, ("H", "W"), "f")
        check.array("goal", self.goal, (3,), "f")
        check.array("velocity", self.velocity, (2,), "f")
        if self.depth.size and (self.depth.min() < 0 or self.depth.max() > DEPTH_MAX):
            check.fail("depth", f"values must be 0 (invalid) or in [{DEPTH_MIN}, {DEPTH_MAX}] m")
        return self


class NavWorldInterface(Protocol):
    """What closed-loop evaluation, the expert and renderers need from a world, synthetic (MuJoCo) or Habitat.

    Positions are world-frame xy [m] on the floor; poses are (x, y, yaw).
    """

    world_id: str
    bounds: np.ndarray  # (4,) xmin, ymin, xmax, ymax [m]

    def render_depth(self, pose: np.ndarray, camera: CameraSpec) -> np.ndarray:
        """(H, W) float32 depth [m] seen from robot `pose` (3,), NavDP's clipping (0 = invalid)."""
        ...

    def clearance(self, xy: np.ndarray, robot: RobotProfile) -> np.ndarray:
        """(N,) distance [m] from the points (N, 2) to the nearest obstacle in `robot`'s height slice."""
        ...

    def collides(self, xy: np.ndarray, robot: RobotProfile) -> np.ndarray:
        """(N,) bool: the robot's enclosing disc at the points (N, 2) overlaps an obstacle or leaves the world."""
        ...

    def shortest_path(self, start: np.ndarray, goal: np.ndarray, robot: RobotProfile) -> np.ndarray | None:
        """(P, 2) obstacle-free path [m] from start (2,) to goal (2,) for `robot`, or None if unreachable."""
        ...

    def geodesic_distance(self, start: np.ndarray, goal: np.ndarray, robot: RobotProfile) -> float:
        """Length [m] of `shortest_path`, or inf if unreachable."""
        ...

    def obstacle_footprints(self, robot: RobotProfile) -> list:
        """Shapely polygons of the obstacles that block `robot` (for top-down pictures)."""
        ...


@dataclass(frozen=True, eq=False)
class NavTrainingSample:
    """One recorded frame of an expert demonstration, as the nav dataset reader returns it.

    Attributes:
        observation: what the planner saw at this frame.
        future: (NAV_PLAN_POSES, 3) [privileged] the expert's next waypoints x, y [m], yaw [rad] in the robot
            frame at this frame, NAV_PLAN_DT apart (padded with the last pose at the end of a trajectory).
        augmented_future: (NAV_PLAN_POSES, 3) [privileged] the contrastive negative: `future` rotated about the
            robot by a yaw in [-60, 60] deg and refitted with a cubic spline (NavDP).
        critic_target: [privileged] NavDP's value of `future`: -5 * (fraction of waypoints within 0.1 m of an
            obstacle) + 0.5 * (net clearance change); the clearance is the dataset's `critic_label`
            (datagen.critic: NavDP's obstacle points by default, or the robot footprint's ESDF).
        augmented_critic_target: [privileged] the same value for `augmented_future`.
    """

    observation: NavObservation
    future: np.ndarray
    augmented_future: np.ndarray
    critic_target: float
    augmented_critic_target: float

    def validate(self) -> NavTrainingSample:
        """The sample itself (observation included); ValidationError naming the field on a bad shape/value."""
        self.observation.validate()
        check = ShapeChecker("NavTrainingSample")
        check.array("future", self.future, (NAV_PLAN_POSES, 3), "f")
        check.array("augmented_future", self.augmented_future, (NAV_PLAN_POSES, 3), "f")
        for field in ("critic_target", "augmented_critic_target"):
            if not math.isfinite(getattr(self, field)):
                check.fail(field, "must be finite")
        return self


@dataclass(frozen=True, eq=False)
class NavDemo:
    """One expert demonstration, T frames NAV_CAMERA_DT apart.

    Attributes:
        episode: the episode.
        path: (P, 2) the expert's planned path [m], world frame.
        poses: (T, 3) world poses x [m], y [m], yaw [rad] at the frames.
        velocity: (T, 2) forward speed [m/s], yaw rate [rad/s] at the frames (the last applied control).
        depth: (T, H, W) uint16 depth [0.1 mm] (value = m x 10000; 0 invalid).
        goal: (T, 3) the goal in each frame's robot frame: x [m], y [m], yaw 0.
        future: (T, NAV_PLAN_POSES, 3) the next poses in each frame's robot frame, padded with the last.
        augmented_future: (T, NAV_PLAN_POSES, 3) NavDP's contrastive negatives.
        augment_yaw: (T,) the negatives' rotation [rad].
        critic: (T,) NavDP's value of `future`.
        augmented_critic: (T,) NavDP's value of `augmented_future`.
    """

    episode: NavEpisode
    path: np.ndarray
    poses: np.ndarray
    velocity: np.ndarray
    depth: np.ndarray
    goal: np.ndarray
    future: np.ndarray
    augmented_future: np.ndarray
    augment_yaw: np.ndarray
    critic: np.ndarray
    augmented_critic: np.ndarray

    @property
    def num_frames(self) -> int:
        """Recorded frames T."""
        return int(self.poses.shape[0])

    def validate(self) -> NavDemo:
        """The demo itself (episode included); ValidationError naming the field on a bad shape, dtype or
        value."""
        self.episode.validate()
        check = ShapeChecker(f"NavDemo({self.episode.episode_id})", P=NAV_PLAN_POSES)
        check.array("path", self.path, ("L", 2), "f")
        check.array("poses", self.poses, ("T", 3), "f")
        check.array("velocity", self.velocity, ("T", 2), "f")
        check.array("depth", self.depth, ("T", "H", "W"), "u")
        check.array("goal", self.goal, ("T", 3), "f")
        check.array("future", self.future, ("T", "P", 3), "f")
        check.array("augmented_future", self.augmented_future, ("T", "P", 3), "f")
        for field in ("augment_yaw", "critic", "augmented_critic"):
            check.array(field, getattr(self, field), ("T",), "f")
        return self
