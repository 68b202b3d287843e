"""The ego vehicle: its state over time, its geometry, and planned trajectories."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from scenes._checks import ShapeChecker
from scenes.geometry import poses_to_global, poses_to_local


@dataclass(frozen=True)
class VehicleGeometry:
    """Box of a vehicle measured from its rear axle [m]."""

    width: float
    rear_axle_to_front: float
    rear_axle_to_rear: float
    wheelbase: float

    @property
    def length(self) -> float:
        """Bumper to bumper [m]."""
        return self.rear_axle_to_front + self.rear_axle_to_rear

    @property
    def rear_axle_to_center(self) -> float:
        """Distance [m] from the rear axle forward to the box centre."""
        return (self.rear_axle_to_front - self.rear_axle_to_rear) / 2.0

    @property
    def half_diagonal(self) -> float:
        """Radius [m] of the box's bounding circle about its centre."""
        return 0.5 * float(np.hypot(self.length, self.width))


# Chrysler Pacifica, the nuPlan / NAVSIM ego.
PACIFICA = VehicleGeometry(width=2.297, rear_axle_to_front=4.049, rear_axle_to_rear=1.127, wheelbase=3.089)


@dataclass(frozen=True, eq=False)
class EgoState:
    """Ego rear-axle state; every field shares the leading shape S, e.g. () or (T,).

    Attributes:
        pose: (*S, 3) x [m], y [m], heading [rad] of the rear axle, in the frame the owner states.
        velocity: (*S, 2) [m/s] in the body frame: forward, left.
        acceleration: (*S, 2) [m/s^2] in the body frame: forward, left.
        yaw_rate: (*S,) [rad/s], counter-clockwise.
        steering: (*S,) front-wheel steering angle [rad], left positive.
    """

    pose: np.ndarray
    velocity: np.ndarray
    acceleration: np.ndarray
    yaw_rate: np.ndarray
    steering: np.ndarray

    def validate(self) -> EgoState:
        """The state itself; ValidationError naming the field on a bad shape, dtype or value."""
        check = ShapeChecker("EgoState")
        lead = self.pose.shape[:-1] if isinstance(self.pose, np.ndarray) else ()
        check.array("pose", self.pose, (*lead, 3), "f")
        check.array("velocity", self.velocity, (*lead, 2), "f")
        check.array("acceleration", self.acceleration, (*lead, 2), "f")
        check.array("yaw_rate", self.yaw_rate, lead, "f")
        check.array("steering", self.steering, lead, "f")
        return self

    @property
    def speed(self) -> np.ndarray:
        """(*S,) [m/s]."""
        return np.linalg.norm(self.velocity, axis=-1)

    def __len__(self) -> int:
        return self.pose.shape[0]

    def slice(self, index: int | slice) -> EgoState:
        """The states at `index` along the first axis."""
        return EgoState(
            pose=self.pose[index],
            velocity=self.velocity[index],
            acceleration=self.acceleration[index],
            yaw_rate=self.yaw_rate[index],
            steering=self.steering[index],
        )

    def to_local(self, origin: np.ndarray) -> EgoState:
        """The same states with poses expressed in the frame of `origin` (3,). Body-frame fields stay."""
        return EgoState(poses_to_local(self.pose, origin), self.velocity, self.acceleration,
                        self.yaw_rate, self.steering)


class Frame(enum.Enum):
    """Coordinate frame of a trajectory."""

    EGO = "ego"  # rear axle of the ego at the current time: x forward, y left
    GLOBAL = "global"  # the map frame


@dataclass(frozen=True, eq=False)
class Trajectory:
    """Poses at a fixed interval after the current time.

    Attributes:
        poses: (T, 3) x [m], y [m], heading [rad]; poses[i] is at time (i + 1) * dt after now.
        dt: interval between poses [s].
        frame: the frame of `poses`.
    """

    poses: np.ndarray
    dt: float
    frame: Frame = Frame.EGO

    def validate(self) -> Trajectory:
        """The trajectory itself; ValidationError naming the field on bad poses, dt or frame."""
        check = ShapeChecker("Trajectory")
        check.array("poses", self.poses, (None, 3), "f")
        if not (np.isfinite(self.dt) and self.dt > 0):
            check.fail("dt", f"must be a positive number of seconds, got {self.dt}")
        if not isinstance(self.frame, Frame):
            check.fail("frame", f"must be a Frame, got {self.frame!r}")
        return self

    @property
    def num_poses(self) -> int:
        """Poses N."""
        return self.poses.shape[0]

    @property
    def times(self) -> np.ndarray:
        """(T,) [s] after now."""
        return self.dt * np.arange(1, self.num_poses + 1)

    def to_global(self, origin: np.ndarray) -> Trajectory:
        """Ego-frame trajectory to the global frame, given the ego pose `origin` (3,)."""
        if self.frame is Frame.GLOBAL:
            return self
        return Trajectory(poses_to_global(self.poses, origin), self.dt, Frame.GLOBAL)

    def to_ego(self, origin: np.ndarray) -> Trajectory:
        """Global-frame trajectory to the ego frame of pose `origin` (3,)."""
        if self.frame is Frame.EGO:
            return self
        return Trajectory(poses_to_local(self.poses, origin), self.dt, Frame.EGO)
