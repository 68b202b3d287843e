"""Unicycle robot reaching a goal: F[0,N] |p - goal| <= r_goal as a Boltzmann-max >= eps (IPOPT, SX).

States (N+1, 4) x, y [m], heading [rad], v [m/s]; controls (N, 2) a [m/s^2], yaw rate [rad/s].
"""

from __future__ import annotations

import functools
import time

import casadi as ca
import numpy as np

from stl.rules import ReachGoalParams, RuleParams
from trajopt.expert import ExpertResult
from trajopt.models import UNICYCLE
from trajopt.result import classify
from trajopt.smooth import boltzmann_max

V_MAX = 2.0  # [m/s]


@functools.lru_cache(maxsize=4)
def _solver(n: int, dt: float, k: float) -> ca.Function:
    x, u, p = ca.SX.sym("x", 4, n + 1), ca.SX.sym("u", 2, n), ca.SX.sym("p", 3)  # p = goal x, y, r_goal
    reach = [p[2] - ca.sqrt((x[0, i] - p[0]) ** 2 + (x[1, i] - p[1]) ** 2 + 1e-6) for i in range(n + 1)]
    dyn = [x[:, i + 1] - UNICYCLE.step(x[:, i], u[:, i], dt) for i in range(n)]
    cost = ca.sumsqr(u) * 0.1 + ca.sumsqr(x[:2, -1] - p[:2])
    g = ca.vertcat(*dyn, boltzmann_max(reach, k, 0.0))
    nlp = {"x": ca.vertcat(ca.vec(x), ca.vec(u)), "f": cost, "g": g, "p": p}
    opts = {"expand": True, "print_time": False, "ipopt.print_level": 0, "ipopt.sb": "yes",
            "ipopt.max_iter": 300}
    return ca.nlpsol(f"unicycle_{n}", "ipopt", nlp, opts)


def solve_unicycle_goal(x0: np.ndarray, goal: np.ndarray, r_goal: float = 0.5, horizon: int = 40,
                        dt: float = 0.1, eps: float = 0.02, k: float = 10.0) -> ExpertResult:
    """Reach within r_goal [m] of goal (2,) from x0 (4,) with |a| <= 5, |omega| <= 0.5, 0 <= v <= V_MAX."""
    start = time.perf_counter()
    n = horizon
    solver = _solver(n, float(dt), float(k))
    x0 = np.asarray(x0, dtype=np.float64)
    t = np.linspace(0.0, 1.0, n + 1)[:, None]
    guess = np.concatenate([x0[:2] + t * (np.asarray(goal) - x0[:2]), np.tile(x0[2:], (n + 1, 1))], -1)
    w0 = np.concatenate([guess.reshape(-1), np.zeros(2 * n)])
    lbx = np.concatenate([np.tile([-np.inf, -np.inf, -np.inf, 0.0], n + 1),
                          np.tile(UNICYCLE.control_lower, n)])
    ubx = np.concatenate([np.tile([np.inf, np.inf, np.inf, V_MAX], n + 1),
                          np.tile(UNICYCLE.control_upper, n)])
    lbx[:4] = ubx[:4] = x0
    lbg = np.concatenate([np.zeros(4 * n), [eps]])
    ubg = np.concatenate([np.zeros(4 * n), [np.inf]])
    sol = solver(x0=w0, p=[*goal, r_goal], lbx=lbx, ubx=ubx, lbg=lbg, ubg=ubg)
    stats = solver.stats()
    w = np.asarray(sol["x"]).reshape(-1)
    states, controls = w[:4 * (n + 1)].reshape(n + 1, 4), w[4 * (n + 1):].reshape(n, 2)
    g = np.asarray(sol["g"]).reshape(-1)
    violation = float(max(0.0, (lbg - g).max(), (g - ubg).max(), (lbx - w).max(), (w - ubx).max()))
    rho = {"reach_goal": float((r_goal - np.linalg.norm(states[:, :2] - goal, axis=-1)).max())}
    status = classify(stats["return_status"], bool(stats["success"]), violation, rho)
    return ExpertResult(status, states, controls, dt, int(stats["iter_count"]), 1e3 * (time.perf_counter() - start),
                        rho, RuleParams(reach_goal=ReachGoalParams(r_goal)), stats["return_status"], violation)
