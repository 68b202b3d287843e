"""One parametric NLP per problem shape (SX, expanded, built once and cached), solved by IPOPT (MUMPS) or
fatrop (CasADi's structure-exploiting OCP solver).

Stage-wise, as fatrop needs: stage k = 0..N has states s_k = (x, y, heading, v) and, for fatrop, the previous
controls (a_prev, u1_prev) that make jerk and steering-rate rows stage-local; for k < N, controls
u_k = (a, u1).
w = [s_0, u_0, s_1, u_1, ..., s_N]; `Problem.pack_w` / `unpack_w` convert from states (N+1, 4), controls
(N, 2).
Constraint rows g, stage by stage (`Problem.rows[name]` holds each kind's row indices, in step order; bounds
come per solve via lbg / ubg, so rules switch on and off without a rebuild):
  dyn    (4 or 6, stage < N)  s_{k+1} - F(s_k, u_k) = 0: Euler multiple shooting (fatrop: u_k into s_{k+1})
  lane   (1, stages >= 1)     rear-axle lateral offset - lane centre offset c_k [m]
  head   (1, stages >= 1)     heading - reference heading [rad]
  road   (4, stages >= 1)     ego box corner lateral offsets [m] (drivable corridor)
  stop   (1, stages >= 1)     front-bumper along-track offset from the reference point [m]
  obs    (M ego_discs, >= 1)  ||(q_x / a_j, q_y / b_j)||_8 - 1, q = ego disc centre in slot j's box frame:
                              outside the box inflated by the ego disc radius + clearance (a rounded box that
                              contains the Minkowski sum box + disc) [-]
  rate   (1, stages < N)      yaw rate of the step k -> k+1 [rad/s]
  jerk   (1, 1 <= k < N)      (a_k - a_{k-1}) / dt [m/s^3]
  steer  (1, 1 <= k < N)      (u1_k - u1_{k-1}) / dt [rad/s or rad/s^2]
  goal   (1, last; IPOPT)     Boltzmann-max_k (r_goal - |p_k - goal|) [m] (F of reach_goal,
                              under-approximated)
Parameters p (per step k = 0..N): ref xy, ref heading, kappa, lane offset c, v_ref, obstacle centres and
heading cos / sin (M, N+1, 4) and inflated half sizes (M, N+1, 2) [m] (a slot may hold another agent at each
step), goal (2), r_goal, goal shift.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import casadi as ca
import numpy as np

from trajopt.compiled import compiled_library
from trajopt.models import MODELS
from trajopt.smooth import boltzmann_max


@dataclass(frozen=True)
class Shape:
    """Everything that fixes the NLP's structure."""

    model: str = "bicycle"
    horizon: int = 40  # N [steps]
    dt: float = 0.1  # [s]
    obstacles: int = 8  # M slots
    ego_offsets: tuple[float, ...] = (-0.264, 1.461, 3.186)  # disc centres ahead of the rear axle [m]
    front: float = 4.049  # rear axle to front bumper [m]
    corners: tuple[tuple[float, float], ...] = ((4.049, 1.1485), (4.049, -1.1485), (-1.127, 1.1485),
                                                (-1.127, -1.1485))  # ego box corners (ahead, left) [m]
    weights: tuple[tuple[str, float], ...] = (("v", 1.0), ("lat", 0.5), ("head", 1.0), ("a", 0.1),
                                              ("u1", 1.0), ("jerk", 0.1), ("du1", 5.0), ("progress", 0.05))
    goal_k: float = 10.0  # Boltzmann sharpness [1/m]
    max_iter: int = 200
    tol: float = 1e-6


# re-solves near a known primal-dual point: a small barrier, updated adaptively (a fifth fewer iterations than
# the monotone rule from mu_init 1e-4 on datagen's re-linearisations)
WARM_OPTIONS = {"ipopt.warm_start_init_point": "yes", "ipopt.mu_init": 1e-5, "ipopt.mu_strategy": "adaptive",
                "ipopt.warm_start_bound_push": 1e-6, "ipopt.warm_start_slack_bound_push": 1e-6,
                "ipopt.warm_start_mult_bound_push": 1e-6}
# MUMPS without its own row / column scaling and permutation: the KKT systems here are well scaled, and these
# passes cost about a quarter of every solve (as many iterations; 3.8 vs 5.2 ms each on datagen problems)
MUMPS_OPTIONS = {"ipopt.mumps_permuting_scaling": 0, "ipopt.mumps_scaling": 0}
# a fatrop solve not finished in this many iterations goes to IPOPT (DriveExpert.solve), whose restoration
# phase rescues starts that fatrop gives up on
FATROP_MAX_ITER = 60
ROWS = ("dyn", "lane", "head", "road", "stop", "rate", "jerk", "steer", "goal", "obs")


@dataclass(frozen=True, eq=False)
class Problem:
    """A built solver and the variable / row / parameter layout of its shape.

    Attributes:
        state_index: (N+1, 4) position in w of each step's x, y, heading, v.
        control_index: (N, 2) position in w of each step's controls.
        previous_index: (N+1, 2) position in w of the controls carried into each stage (stage 0's are free);
            (N+1, 0) for IPOPT, whose jerk rows read u_{k-1}.
        rows: kind -> row indices (see the module doc); num_g rows in all.
    """

    shape: Shape
    solver: ca.Function
    rows: dict[str, np.ndarray]
    params: dict[str, tuple[slice, tuple[int, ...]]]
    num_w: int
    num_g: int
    state_index: np.ndarray
    control_index: np.ndarray
    previous_index: np.ndarray
    # (w, p) -> g, for checks outside the solver; `build` always sets it
    constraints: ca.Function = field(repr=False, default=None)  # type: ignore[assignment]
    nlp: dict | str = field(repr=False, default_factory=dict)  # SX expressions, or a compiled library's path
    options: dict = field(repr=False, default_factory=dict)
    plugin: str = "ipopt"

    @functools.cached_property
    def warm_solver(self) -> ca.Function:
        """The same NLP, started from a primal-dual point (IPOPT warm_start_init_point, small mu_init): for
        re-solves close to a known solution. Built on first use; fatrop has none (its solver is returned)."""
        if self.plugin != "ipopt":
            return self.solver
        opts = {**self.options, **WARM_OPTIONS}
        return ca.nlpsol(f"{self.solver.name()}_warm", "ipopt", self.nlp, opts)

    def pack(self, values: dict[str, np.ndarray]) -> np.ndarray:
        """Parameter vector from name -> array (shapes as in `params`)."""
        p = np.zeros(self.params["_total"][0].stop)
        for name, (sl, shape) in self.params.items():
            if name != "_total":
                p[sl] = np.broadcast_to(np.asarray(values[name], dtype=np.float64),
                                        shape).reshape(-1, order="F")
        return p

    def pack_w(self, states: np.ndarray, controls: np.ndarray) -> np.ndarray:
        """w from states (N+1, 4) and controls (N, 2); fatrop's carried controls at stage 0 start at
        controls[0]."""
        w = np.zeros(self.num_w)
        w[self.state_index] = states
        w[self.control_index] = controls
        if self.previous_index.size:
            w[self.previous_index] = np.concatenate([controls[:1], controls])
        return w

    def unpack_w(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(states (N+1, 4), controls (N, 2)) from w."""
        return w[self.state_index], w[self.control_index]


def _local(px, py, rx, ry, ch, sh, kappa):
    """(along, lateral) of point p w.r.t. a reference point, second order in curvature."""
    dx, dy = px - rx, py - ry
    along = ch * dx + sh * dy
    return along, ch * dy - sh * dx - 0.5 * kappa * along**2


@functools.lru_cache(maxsize=32)
def build(shape: Shape, goal: bool = True, stop: bool = True, compiled: bool = False,
          plugin: str = "ipopt") -> Problem:
    """Build (once per shape, row set and solver) the parametric NLP and its solver: `plugin` "ipopt" (MUMPS)
    or "fatrop" (stage-wise interior point; no goal rows).

    `compiled`: evaluate the NLP functions as C built once with gcc and cached on disk (`trajopt.compiled`).

    `goal` / `stop` include the goal / stop rows; without them the rows are absent (no row indices). A
    solve whose rows would all be free (bounds -inf, inf) uses the variant without them: the feasible set is
    the same, but the dense goal row (Hessian block over every position) no longer fills the KKT system."""
    model, n, m = MODELS[shape.model], shape.horizon, shape.obstacles
    w = dict(shape.weights)
    layout: dict[str, tuple[slice, tuple[int, ...]]]  # name -> (slice of p, shape)
    layout, offset = {}, 0
    for name, dims in (("ref_xy", (n + 1, 2)), ("ref_h", (n + 1,)), ("kappa", (n + 1,)), ("lane_c", (n + 1,)),
                       ("v_ref", (1,)), ("obs", (m, n + 1, 4)), ("half", (m, n + 1, 2)), ("goal", (2,)),
                       ("r_goal", (1,)), ("goal_shift", (1,))):
        size = int(np.prod(dims))
        layout[name] = (slice(offset, offset + size), dims)
        offset += size
    layout["_total"] = (slice(0, offset), (offset,))
    p = ca.SX.sym("p", offset)

    def par(name):
        sl, dims = layout[name]
        return p[sl], dims

    ref_xy, _ = par("ref_xy")
    ref_h, _ = par("ref_h")
    kappa, _ = par("kappa")
    lane_c, _ = par("lane_c")
    v_ref = par("v_ref")[0][0]
    obs, _ = par("obs")
    half, _ = par("half")
    goal_xy, _ = par("goal")
    r_goal, shift = par("r_goal")[0][0], par("goal_shift")[0][0]

    # fatrop's stages carry the previous controls (jerk rows stage-local); IPOPT reads them from u_{k-1}
    carry = plugin == "fatrop"
    size = 6 if carry else 4
    stages = [ca.SX.sym(f"s{k}", size) for k in range(n + 1)]  # x, y, heading, v (, previous controls)
    controls = [ca.SX.sym(f"u{k}", 2) for k in range(n)]
    g_rows: list[tuple[str, ca.SX]] = []  # (kind, row) in stage order
    cost: ca.SX | float = 0
    goal_terms = []
    for k in range(n + 1):
        sk, xk = stages[k], stages[k][:4]
        if k < n:
            uk = controls[k]
            step = ca.vertcat(model.step(xk, uk, shape.dt), uk) if carry else model.step(xk, uk, shape.dt)
            g_rows += [("dyn", row) for row in ca.vertsplit(stages[k + 1] - step)]
        rx, ry = ref_xy[k], ref_xy[(n + 1) + k]  # column-major (n+1, 2)
        ch, sh = ca.cos(ref_h[k]), ca.sin(ref_h[k])
        cos_h, sin_h = ca.cos(xk[2]), ca.sin(xk[2])
        along, lat = _local(xk[0], xk[1], rx, ry, ch, sh, kappa[k])
        goal_terms.append(r_goal - ca.sqrt((xk[0] - goal_xy[0]) ** 2 + (xk[1] - goal_xy[1]) ** 2 + 1e-6))
        if k >= 1:
            g_rows.append(("lane", lat - lane_c[k]))
            g_rows.append(("head", xk[2] - ref_h[k]))
            for ca_, cl in shape.corners:
                px, py = xk[0] + ca_ * cos_h - cl * sin_h, xk[1] + ca_ * sin_h + cl * cos_h
                g_rows.append(("road", _local(px, py, rx, ry, ch, sh, kappa[k])[1]))
            if stop:
                front = _local(xk[0] + shape.front * cos_h, xk[1] + shape.front * sin_h, rx, ry, ch, sh,
                               kappa[k])
                g_rows.append(("stop", front[0]))
            plane = m * (n + 1)
            for j in range(m):
                base = k * m + j  # column-major index of obs[j, k, 0]
                ox, oy, oc, os_ = (obs[base + i * plane] for i in range(4))
                for c in shape.ego_offsets:
                    dx, dy = xk[0] + c * cos_h - ox, xk[1] + c * sin_h - oy
                    qx, qy = (oc * dx + os_ * dy) / half[base], (oc * dy - os_ * dx) / half[base + plane]
                    qx2, qy2 = qx * qx, qy * qy
                    qx4, qy4 = qx2 * qx2, qy2 * qy2
                    # (qx^8 + qy^8 + 1e-12)^(1/8) by products and square roots (cheaper than pow and
                    # derivatives)
                    g_rows.append(("obs", ca.sqrt(ca.sqrt(ca.sqrt(qx4 * qx4 + qy4 * qy4 + 1e-12))) - 1.0))
            cost += w["v"] * (xk[3] - v_ref) ** 2 + w["lat"] * (lat - lane_c[k]) ** 2
            cost += w["head"] * (xk[2] - ref_h[k]) ** 2
        if k == n:
            cost -= w["progress"] * along
            continue
        g_rows.append(("rate", model.yaw_rate(xk[3], uk[1])))
        cost += w["a"] * uk[0] ** 2 + w["u1"] * uk[1] ** 2
        if k >= 1:
            previous = sk[4:6] if carry else controls[k - 1]
            jerk, dsteer = (uk[0] - previous[0]) / shape.dt, (uk[1] - previous[1]) / shape.dt
            g_rows += [("jerk", jerk), ("steer", dsteer)]
            cost += shape.dt * (w["jerk"] * jerk**2 + w["du1"] * dsteer**2)
    if goal:
        g_rows.append(("goal", boltzmann_max(goal_terms, shape.goal_k, shift)))
    kinds = np.array([kind for kind, _ in g_rows])
    rows = {name: np.flatnonzero(kinds == name) for name in ROWS}
    wvec = ca.vertcat(*[v for k in range(n + 1)
                        for v in ([stages[k], controls[k]] if k < n else [stages[k]])])
    # each stage: its states then 2 controls (none after the last)
    stage_start = np.arange(n + 1) * (size + 2)
    state_index = stage_start[:, None] + np.arange(4)
    previous_index = stage_start[:, None] + np.arange(4, size)  # (N+1, 0) for IPOPT
    control_index = stage_start[:n, None] + np.arange(size, size + 2)
    nlp_g = ca.vertcat(*[row for _, row in g_rows])
    nlp: dict | str = {"x": wvec, "f": cost, "g": nlp_g, "p": p}
    opts: dict[str, Any] = {
        "expand": True, "print_time": False, "show_eval_warnings": False, "ipopt.print_level": 0,
        "ipopt.sb": "yes", "ipopt.max_iter": shape.max_iter, "ipopt.tol": shape.tol,
        "ipopt.linear_solver": "mumps", **MUMPS_OPTIONS, "ipopt.expect_infeasible_problem": "yes"}
    # expect_infeasible_problem: IPOPT enters restoration sooner and gives up on infeasible targets (a lane
    # change through traffic) in fewer iterations; on datagen's solves, 8% less time and no fewer successes
    # No CPU-time limit: a limit would make the outcome depend on the machine; max_iter bounds the work.
    if plugin == "fatrop":
        if goal:
            raise ValueError("fatrop needs stage-wise rows: the goal row couples every stage (use ipopt)")
        opts = {"expand": True, "print_time": False, "structure_detection": "auto", "debug": False,
                "equality": [kind == "dyn" for kind in kinds],
                "fatrop": {"print_level": 0, "max_iter": min(shape.max_iter, FATROP_MAX_ITER),
                           "tol": shape.tol}}
    elif plugin != "ipopt":
        raise ValueError(f"unknown NLP solver {plugin!r}; expected ipopt or fatrop")
    name = f"trajopt_{plugin}_{shape.model}_{n}_{m}_{int(goal)}{int(stop)}"
    solver = ca.nlpsol(name, plugin, nlp, opts)
    constraints = ca.Function(f"{name}_g", [wvec, p], [nlp_g])
    if compiled:
        nlp = str(compiled_library(solver))
        opts = {key: value for key, value in opts.items() if key != "expand"}
        solver = ca.nlpsol(name, plugin, nlp, opts)
    return Problem(shape, solver, rows, layout, int(wvec.shape[0]), len(g_rows), state_index, control_index,
                   previous_index, constraints, nlp, opts, plugin)
