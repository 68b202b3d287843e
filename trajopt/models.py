"""Vehicle models for multiple shooting: a rear-axle kinematic bicycle and a unicycle.

Both share state (x [m], y [m], heading [rad], v [m/s]) and explicit Euler steps of `dt` [s]:
- bicycle: controls (a [m/s^2], steering angle delta [rad]); heading rate v tan(delta) / wheelbase.
- unicycle: controls (a [m/s^2], yaw rate omega [rad/s]).
`step` works on casadi SX/MX and numpy alike, so `rollout` re-integrates a solution exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import casadi as ca
import numpy as np

from scenes.ego import PACIFICA


def _backend(x):
    return np if isinstance(x, np.ndarray) else ca


@dataclass(frozen=True)
class Model:
    """A 4-state, 2-control model.

    Attributes:
        name: "bicycle" or "unicycle".
        wheelbase: [m] (bicycle only).
        control_lower / control_upper: (2,) actuator bounds [m/s^2, rad or rad/s].
    """

    name: str
    control_lower: tuple[float, float]
    control_upper: tuple[float, float]
    wheelbase: float = PACIFICA.wheelbase

    def yaw_rate(self, v, u1):
        """Heading rate [rad/s] from speed v [m/s] and the second control."""
        if self.name == "bicycle":
            return v * _backend(u1).tan(u1) / self.wheelbase
        return u1

    def step(self, x, u, dt: float):
        """One Euler step: x (4,) and u (2,) (numpy arrays or casadi vectors) -> next state (4,)."""
        lib = _backend(x)
        rate = self.yaw_rate(x[3], u[1])
        delta = [x[3] * lib.cos(x[2]), x[3] * lib.sin(x[2]), rate, u[0]]
        if lib is np:
            return x + dt * np.array(delta)
        return x + dt * ca.vertcat(*delta)

    def rollout(self, x0: np.ndarray, controls: np.ndarray, dt: float) -> np.ndarray:
        """States (N+1, 4) from x0 (4,) and controls (N, 2)."""
        states = [np.asarray(x0, dtype=np.float64)]
        for u in np.asarray(controls, dtype=np.float64):
            states.append(self.step(states[-1], u, dt))
        return np.stack(states)

    def controls_from_states(self, states: np.ndarray, dt: float) -> np.ndarray:
        """Approximate controls (N, 2) that follow states (N+1, 4) (for initial guesses)."""
        a = np.diff(states[:, 3]) / dt
        rate = np.diff(np.unwrap(states[:, 2])) / dt
        if self.name == "bicycle":
            v = np.maximum(np.abs(states[:-1, 3]), 0.5)
            second = np.arctan(rate * self.wheelbase / v)
        else:
            second = rate
        u = np.stack([a, second], -1)
        return np.clip(u, self.control_lower, self.control_upper)


BICYCLE = Model("bicycle", (-6.0, -0.6), (3.0, 0.6))
UNICYCLE = Model("unicycle", (-5.0, -0.5), (5.0, 0.5))
MODELS = {m.name: m for m in (BICYCLE, UNICYCLE)}
