"""Ego state arrays used by the simulator and the scorer (NAVSIM's StateIndex layout).

An array of states has shape (..., NUM_STATE_FIELDS); velocities and accelerations are in the body frame
of the rear axle.
"""

from __future__ import annotations

import enum


class StateIndex(enum.IntEnum):
    """Fields of an ego state array (..., NUM_STATE_FIELDS), in NAVSIM's order."""

    X = 0  # [m] rear axle, map frame
    Y = 1  # [m]
    HEADING = 2  # [rad]
    VELOCITY_X = 3  # [m/s] body frame, forward
    VELOCITY_Y = 4  # [m/s] body frame, left
    ACCELERATION_X = 5  # [m/s^2]
    ACCELERATION_Y = 6  # [m/s^2]
    STEERING_ANGLE = 7  # [rad]
    STEERING_RATE = 8  # [rad/s]
    ANGULAR_VELOCITY = 9  # [rad/s]
    ANGULAR_ACCELERATION = 10  # [rad/s^2]


NUM_STATE_FIELDS = len(StateIndex)
NUM_SIM_STATES = 41  # 0..4 s at 0.1 s, state 0 is the current ego state
SIM_INTERVAL = 0.1  # [s]
