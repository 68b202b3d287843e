"""Frame conversions between our z-up world and Habitat's y-up world. The only place the mapping lives.

Axis mapping (a proper rotation, determinant +1):
    habitat X =  world x
    habitat Y =  world z  (up; the floor is at `floor_height`)
    habitat Z = -world y
A Habitat agent looks along its local -Z; its rotation is a yaw `a` about +Y, quaternion [x, y, z, w] =
[0, sin(a/2), 0, cos(a/2)]. Our yaw (counter-clockwise about +z from +x) is theta = a + pi/2:
an agent with identity rotation looks along habitat -Z = world +y, i.e. theta = pi/2.
Trigonometry is `scenes.portable`'s, so an episode file and its round trip are the same bits on every CPU.
"""

from __future__ import annotations

import math

import numpy as np

from scenes import portable
from scenes.geometry import wrap_angle


def points_to_habitat(xy: np.ndarray, floor_height: float = 0.0) -> np.ndarray:
    """World-frame floor points (..., 2) [m] to Habitat positions (..., 3) [m] at height `floor_height`."""
    xy = np.asarray(xy, dtype=np.float64)
    return np.stack([xy[..., 0], np.full(xy.shape[:-1], float(floor_height)), -xy[..., 1]], axis=-1)


def points_from_habitat(position: np.ndarray) -> np.ndarray:
    """Habitat positions (..., 3) [m] to world-frame floor points (..., 2) [m] (the height is dropped)."""
    position = np.asarray(position, dtype=np.float64)
    return np.stack([position[..., 0], -position[..., 2]], axis=-1)


def pose_to_habitat(pose: np.ndarray, floor_height: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """World pose (3,) x, y [m], yaw [rad] to a Habitat (position (3,) [m], rotation (4,) quaternion x, y, z, w)."""
    pose = np.asarray(pose, dtype=np.float64)
    angle = pose[2] - math.pi / 2
    sin, cos = portable.sincos(angle / 2)
    rotation = np.array([0.0, sin, 0.0, cos])
    return points_to_habitat(pose[:2], floor_height), rotation


def pose_from_habitat(position: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """Habitat position (3,) and quaternion (4,) [x, y, z, w] to a world pose (3,); yaw in [-pi, pi).

    Any quaternion is accepted: the yaw is that of the agent's forward axis (-Z) projected onto the floor.
    """
    q = np.asarray(rotation, dtype=np.float64)
    qx, qy, qz, qw = q / math.sqrt(float((q * q).sum()))
    # third column of the rotation matrix, negated: where the agent's local -Z points in Habitat's frame
    forward_x = -2.0 * (qx * qz + qw * qy)
    forward_z = -(1.0 - 2.0 * (qx * qx + qy * qy))
    yaw = float(portable.arctan2(-forward_z, forward_x))  # world forward = (habitat X, -habitat Z)
    yaw = float(wrap_angle(yaw))
    x, y = points_from_habitat(position)
    return np.array([x, y, yaw])
