"""The driving expert: STL-constrained optimal control on the route (CasADi nlpsol: IPOPT + MUMPS by default,
or fatrop with `DriveExpertConfig(solver="fatrop")`).

Rules become per-step bounds (G of predicates, exact); reach_goal's F is a Boltzmann-max >= eps
(under-approximation); a lane change's F[0,D] G[0,H-D] is under-approximated by its last disjunct
(enter the band by the deadline D and stay), which is exact per-step bounds. Every result is re-checked with
the exact robustness of `stl` on the solution's poses. DriveExpert implements `trajopt.expert.Expert`.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field, replace
from typing import cast

import casadi as ca
import numpy as np

from scenes.drive import DriveScene
from scenes.ego import PACIFICA
from stl.robustness import Mode, robustness
from stl.rules import (
    DEFAULT_PARAMS,
    RULES,
    LaneChangeParams,
    LaneKeepingParams,
    RuleParams,
    SafeDistanceParams,
    SpeedBandParams,
    default_deadline,
)
from stl.signals import controllable_gap, signals_from_poses
from trajopt import drive_data as dd
from trajopt.expert import DriveTarget, ExpertResult, ExpertStatus, Multipliers, WarmStart
from trajopt.models import MODELS
from trajopt.nlp import Shape, build
from trajopt.result import classify

INF = np.inf
GUESS_REACH = 10.0  # [m] obstacle_reach for the route guess
OBSTACLE_SLOTS = (2, 4, 8)  # NLP variants by obstacle-slot count (each is built once, on first use)
LANE_RULES = {0: "lane_keeping", 1: "lane_change_left", -1: "lane_change_right"}  # target lane -> its rule


@dataclass(frozen=True)
class DriveExpertConfig:
    """Horizon N [steps] at dt [s], obstacle slots, margins [rule units], guesses and re-linearisation."""

    shape: Shape = field(default_factory=Shape)
    margin: float = 0.05  # [m, m/s, rad] tightening of every rule bound
    collision_margin: float = 0.1  # [m] disc clearance without a safe_distance rule
    steer_rate: float = 0.8  # [rad/s] bicycle steering-rate bound
    jerk_fraction: float = 0.6  # per-step jerk bound as a fraction of j_max (signals use finite differences)
    goal_eps: float = 0.05  # [m]
    guess: str = "route"  # "route" (route_guess: the target lane and speed, car-following) or "expert" (the
    # privileged logged future when it is clear of obstacles, for lane keeping)
    relinearize: int = 2  # extra solves when re-linearising at the solution would move a row by more than
    # relinearize_tol, or the solution enters the box of an agent that held no slot there
    relinearize_tol: float = 0.02  # [m, rad] largest change of a row's slack when re-linearised at the solution
    compiled: bool = False  # NLP functions as C built once with gcc (trajopt.compiled): ~1.4x faster solves
    solver: str = "ipopt"  # or "fatrop" (stage-wise interior point; reach_goal rules still go to ipopt)
    obstacle_reach: float = 4.0  # [m] an agent gets a slot at the steps where its bounding circle comes this
    # near (+ the clearance) to the ego's on the guess or a solution


def exact_robustness(scene: DriveScene, states: np.ndarray, dt: float, params: RuleParams) -> dict[str, float]:
    """Rule -> exact robustness at t = 0 of map-frame states (N+1, >=3), for every rule in `params`."""
    horizon = states.shape[0] - 1
    formulas = {name: RULES[name].formula(horizon) for name in params.names}
    needed = set().union(*(formula.signals() for formula in formulas.values()))
    signals = signals_from_poses(scene, states[None, :, :3], dt, names=needed)
    # params.of(name) is not None for a name in params.names
    return {name: float(np.asarray(robustness(
        formula, signals, t=0, mode=Mode.EXACT, params=params.of(name).bindings(),  # type: ignore[union-attr]
    )).reshape(-1)[0]) for name, formula in formulas.items()}


class DriveExpert:
    """The STL-constrained optimal-control expert (trajopt.expert.Expert). Owns the cached solvers (one per
    Shape) and a small per-scene cache."""

    def __init__(self, config: DriveExpertConfig = DriveExpertConfig()):
        self.config = config
        # the common variant, built eagerly
        self.problem = build(replace(config.shape, obstacles=min(OBSTACLE_SLOTS[0], config.shape.obstacles)),
                             goal=False, stop=False, compiled=config.compiled, plugin=config.solver)
        # ids of (route, map, lights) -> (those objects, their SceneData)
        self._scenes: dict[tuple[int, ...], tuple[tuple[object, ...], dd.SceneData]] = {}
        self._fatrop: dict = {}  # Problem -> its fatrop solver since the last reset()

    def prebuild(self, goal: bool = False) -> None:
        """Build every NLP variant a solve may pick (obstacle slots x stop rows; goal rows if `goal`), with
        its warm-start solver, now, so timed work does not pay for a first build (about a second each)."""
        plugins = {"ipopt", self.config.solver}  # fatrop falls back on IPOPT
        for slots in OBSTACLE_SLOTS:
            if slots <= self.config.shape.obstacles:
                for stop, plugin in itertools.product((False, True), sorted(plugins)):
                    problem = build(replace(self.config.shape, obstacles=slots), goal=goal, stop=stop,
                                    compiled=self.config.compiled, plugin="ipopt" if goal else plugin)
                    _ = problem.warm_solver  # a cached_property: built now

    def _data(self, scene: DriveScene) -> dd.SceneData:
        # SceneData depends only on the route, the map and the traffic lights: scenes that share those objects
        # (the same scene with another ego or agents) share it
        parts = (scene.route, scene.map, scene.traffic_lights)
        key = tuple(id(part) for part in parts)
        hit = self._scenes.get(key)
        if hit is None or any(a is not b for a, b in zip(hit[0], parts, strict=True)):
            if len(self._scenes) > 32:
                self._scenes.clear()
            hit = self._scenes[key] = (parts, dd.scene_data(scene))
        return hit[1]

    def sample_targets(self, scene: DriveScene, params: RuleParams, rng: np.random.Generator,
                       count: int, stop_fraction: float = 0.0, gap_fraction: float = 0.0
                       ) -> list[DriveTarget]:
        """`sample_targets` (module level) over this expert's horizon."""
        shape = self.config.shape
        horizon_s = shape.horizon * shape.dt
        return sample_targets(scene, params, rng, count, stop_fraction, gap_fraction, horizon_s)

    def solve(self, scene: DriveScene, target: DriveTarget, warm_start: WarmStart | None = None) -> ExpertResult:
        """Optimise towards `target`, from `warm_start` if given (a neighbouring solve's `result.warm_start`;
        its multipliers are used when it solved the same NLP variant).

        With fatrop, a solve that fails in the solver (not the exact STL check) is solved again by IPOPT,
        whose restoration phase rescues starts fatrop cannot; iterations and wall time add up."""
        target.validate()
        result = self._solve(scene, target, warm_start, self.config.solver)
        if self.config.solver == "ipopt" or result.status not in (ExpertStatus.INFEASIBLE,
                                                                  ExpertStatus.SOLVER_FAILED):
            return result
        again = self._solve(scene, target, warm_start, "ipopt")
        return replace(again, iterations=again.iterations + result.iterations,
                       solve_ms=again.solve_ms + result.solve_ms, fallback_from=result.solver_status)

    def _solve(self, scene: DriveScene, target: DriveTarget, warm_start: WarmStart | None,
               plugin: str) -> ExpertResult:
        start = time.perf_counter()
        cfg, shape = self.config, self.config.shape
        n, dt, model = shape.horizon, shape.dt, MODELS[shape.model]
        data, x0 = self._data(scene), dd.initial_state(scene)
        params = target.rule_params
        stop = dd.stop_limits(scene, data, x0, n, dt, params.stop_before_line.d_stop + cfg.margin) \
            if params.stop_before_line is not None else np.full(n + 1, INF)
        d_safe = params.safe_distance.d_safe if params.safe_distance is not None else 0.0
        extra = max(d_safe, 0.0) + cfg.collision_margin

        def select(paths: list[np.ndarray], reach: float = cfg.obstacle_reach) -> dd.Obstacles:
            return dd.select_obstacles(scene, paths, dt, shape.obstacles, extra, reach)

        if warm_start is not None:
            states, controls = warm_start.states.copy(), warm_start.controls.copy()
            states[0] = x0
        else:
            states = dd.expert_guess(scene, n, dt)
            states[0] = x0
        obstacles = select([states])
        if warm_start is None:
            lane_c = dd.lane_offsets(scene, data, data.ref.project(states[:, :2]), target.target_lane)
            if cfg.guess != "expert" or target.target_lane != 0 or _blocked(states, obstacles, stop, data):
                # the guess brakes for agents near its own path, which may be in another lane: look wider
                route = dd.route_guess(scene, data, model, x0, n, dt, target.reference_speed, lane_c,
                                       select([states], GUESS_REACH), stop)
                obstacles = select([states, route])
                states = route
            controls = model.controls_from_states(states, dt)
        pr, obstacles = self._problem(obstacles, params, stop, plugin)
        guess = states, controls
        iterations, passes = 0, 0
        duals = None
        if warm_start is not None and warm_start.multipliers is not None and warm_start.multipliers.problem is pr:
            duals = warm_start.multipliers.lam_x, warm_start.multipliers.lam_g
        s_ref = data.ref.project(states[:, :2])
        setup = self._setup(pr, scene, data, target, params, x0, s_ref, obstacles, stop)
        while True:
            values, lbx, ubx, lbg, ubg = setup
            w0 = pr.pack_w(states, controls)
            # primal-dual start (re-linearisation, warm_start)
            warm = duals is not None and pr.plugin == "ipopt"
            if warm:
                solver = pr.warm_solver
                sol = solver(x0=w0, p=pr.pack(values), lbx=lbx, ubx=ubx, lbg=lbg, ubg=ubg,
                             lam_x0=duals[0], lam_g0=duals[1])  # type: ignore[index]  # warm: duals is set
            else:
                solver = self._cold_solver(pr)
                sol = solver(x0=w0, p=pr.pack(values), lbx=lbx, ubx=ubx, lbg=lbg, ubg=ubg)
            stats = solver.stats()
            if warm and not stats["success"]:  # a misleading warm start: start afresh
                sol = pr.solver(x0=w0, p=pr.pack(values), lbx=lbx, ubx=ubx, lbg=lbg, ubg=ubg)
                iterations += int(stats.get("iter_count", 0))
                stats = pr.solver.stats()
            duals = (np.asarray(sol["lam_x"]).reshape(-1), np.asarray(sol["lam_g"]).reshape(-1))
            iterations += int(stats.get("iter_count", 0))
            w = np.asarray(sol["x"]).reshape(-1)
            states, controls = pr.unpack_w(w)
            if passes >= cfg.relinearize or not stats["success"]:
                break
            near = select([states])
            # agents the NLP did not know about near the solution need a re-solve only if the solution enters
            # their inflated boxes; where it keeps out, it is a KKT point of the problem with them too
            new = ~obstacles.held(near)  # (M', N+1) slots of `near` that the NLP did not have
            if not new.any() or not _overlaps(states, near, new):
                s_new = data.ref.project(states[:, :2])
                if np.abs(s_new - s_ref).max() < 1e-3:
                    break
                # the next pass's setup, linearised at the solution's own arc lengths
                setup = self._setup(pr, scene, data, target, params, x0, s_new, obstacles, stop)
                if linearisation_error(pr, w, sol["g"], lbg, ubg, setup) < cfg.relinearize_tol:
                    break
                s_ref = s_new
            else:  # the solution came near agents that held no slot there: add them, start again
                pr, obstacles = self._problem(select([guess[0], states]), params, stop, plugin)
                (states, controls), duals = guess, None
                s_ref = data.ref.project(states[:, :2])
                setup = self._setup(pr, scene, data, target, params, x0, s_ref, obstacles, stop)
            passes += 1
        g = np.asarray(sol["g"]).reshape(-1)
        violation = float(max(0.0, (lbg - g).max(), (g - ubg).max(), (lbx - w).max(), (w - ubx).max()))
        rho = exact_robustness(scene, states, dt, params)
        status = classify(stats["return_status"], bool(stats["success"]), violation, rho)
        return ExpertResult(status, states, controls, dt, iterations, 1e3 * (time.perf_counter() - start), rho,
                            params, stats["return_status"], violation, passes=passes + 1,
                            obstacle_agents=tuple(obstacles.agents.tolist()),
                            multipliers=Multipliers(pr, duals[0], duals[1]))

    def reset(self) -> None:
        """Start fatrop afresh: its solver keeps state between calls (a solve's iterations can depend on the
        solves before it), so jobs that must not depend on what a process solved earlier (a datagen shard)
        call this first. IPOPT's solvers keep none."""
        self._fatrop.clear()

    def _cold_solver(self, pr):
        """pr's solver; for fatrop, this expert's own instance since the last reset()."""
        if pr.plugin == "ipopt":
            return pr.solver
        if pr not in self._fatrop:
            self._fatrop[pr] = ca.nlpsol(pr.solver.name(), pr.plugin, pr.nlp, pr.options)
        return self._fatrop[pr]

    def _problem(self, obstacles: dd.Obstacles, params: RuleParams, stop: np.ndarray, plugin: str):
        """The NLP variant for these obstacles and rules, and the obstacles cut to its slot count: the
        smallest slot count that holds the busiest step; rows whose bounds would all be (-inf, inf) are left
        out (same feasible set)."""
        shape = self.config.shape
        slots = min(next((m for m in OBSTACLE_SLOTS if m >= obstacles.needed), shape.obstacles),
                    shape.obstacles)
        goal = params.reach_goal is not None
        pr = build(replace(shape, obstacles=slots), goal=goal, stop=bool(np.isfinite(stop[1:]).any()),
                   compiled=self.config.compiled, plugin="ipopt" if goal else plugin)
        return pr, obstacles.first(slots)

    def _setup(self, pr, scene, data, target: DriveTarget, params: RuleParams, x0, s_ref, obstacles, stop):
        """Parameter values and variable / row bounds for one solve of problem `pr` under the rules `params`."""
        cfg, shape = self.config, self.config.shape
        n, m = shape.horizon, cfg.margin
        xy, heading, kappa = data.ref.at(s_ref)
        heading = dd.turned_towards(heading, x0[2])
        lane_c = dd.lane_offsets(scene, data, s_ref, target.target_lane)
        goal = dd.goal_point(scene, n, dt=shape.dt)
        r_goal = (params.reach_goal.r_goal if params.reach_goal is not None else 0.0) - m
        shift = max(r_goal - np.linalg.norm(xy - goal, axis=-1).min(), r_goal - 30.0)
        values = {"ref_xy": xy, "ref_h": heading, "kappa": kappa, "lane_c": lane_c,
                  "v_ref": target.reference_speed, "obs": obstacles.boxes, "half": obstacles.half,
                  "goal": goal, "r_goal": r_goal, "goal_shift": shift}
        model = MODELS[shape.model]
        v_lo, v_hi, a_lo, a_hi = 0.0, 40.0, model.control_lower[0], model.control_upper[0]
        if params.speed_band is not None:
            v_lo, v_hi = max(v_lo, params.speed_band.v_min + m), params.speed_band.v_max - m
        comfort = params.comfort
        if comfort is not None:
            a_lo, a_hi = max(a_lo, -0.85 * comfort.a_max), min(a_hi, 0.85 * comfort.a_max)
        lbx, ubx = np.full(pr.num_w, -INF), np.full(pr.num_w, INF)
        lbx[pr.state_index[1:, 3]], ubx[pr.state_index[1:, 3]] = v_lo, v_hi
        lbx[pr.control_index], ubx[pr.control_index] = ([a_lo, model.control_lower[1]],
                                                        [a_hi, model.control_upper[1]])
        lbx[pr.state_index[0]], ubx[pr.state_index[0]] = x0, x0
        rows = pr.rows
        lbg, ubg = np.full(pr.num_g, -INF), np.full(pr.num_g, INF)
        lbg[rows["dyn"]] = ubg[rows["dyn"]] = 0.0
        lane_lo, lane_hi = np.full(n, -INF), np.full(n, INF)
        head = np.full(n, INF)
        if params.lane_keeping is not None:
            d, h = params.lane_keeping.d_max - m, params.lane_keeping.h_max - m
            lane_lo, lane_hi = np.maximum(lane_lo, -d - lane_c[1:]), np.minimum(lane_hi, d - lane_c[1:])
            head = np.minimum(head, h)
        deadline = default_deadline(n)
        for side, change in ((1, params.lane_change_left), (-1, params.lane_change_right)):
            if change is not None:
                off = dd.lane_offsets(scene, data, s_ref, side)[1:] - lane_c[1:]
                b, h = change.d_band - m, change.h_max - m
                late = np.arange(1, n + 1) >= deadline
                lane_lo = np.where(late, np.maximum(lane_lo, off - b), lane_lo)
                lane_hi = np.where(late, np.minimum(lane_hi, off + b), lane_hi)
                head = np.where(late, np.minimum(head, h), head)
        lbg[rows["lane"]], ubg[rows["lane"]] = lane_lo, lane_hi
        lbg[rows["head"]], ubg[rows["head"]] = -head, head
        bounds = data.corridor(s_ref[1:])
        corners = len(shape.corners)
        lbg[rows["road"]] = np.repeat(bounds[:, 0] + m, corners)
        ubg[rows["road"]] = np.repeat(np.maximum(bounds[:, 1] - m, bounds[:, 0] + m), corners)
        if len(rows["stop"]):
            ubg[rows["stop"]] = stop[1:] - s_ref[1:]
        if comfort is not None:
            lbg[rows["rate"]], ubg[rows["rate"]] = -(comfort.w_max - m), comfort.w_max - m
        jerk = cfg.jerk_fraction * comfort.j_max if comfort is not None else 30.0
        lbg[rows["jerk"]], ubg[rows["jerk"]] = -jerk, jerk
        if shape.model == "bicycle":
            lbg[rows["steer"]], ubg[rows["steer"]] = -cfg.steer_rate, cfg.steer_rate
        if params.reach_goal is not None:
            lbg[rows["goal"]] = cfg.goal_eps
        lbg[rows["obs"]] = 0.0
        return values, lbx, ubx, lbg, ubg


def linearisation_error(pr, w: np.ndarray, g, lbg: np.ndarray, ubg: np.ndarray, relinearised: tuple) -> float:
    """Largest change [m or rad] of a lane, heading, road or stop row's slack at solution w (rows g, bounds
    lbg / ubg of the setup it was solved with) under `relinearised`, DriveExpert._setup's
    (values, lbx, ubx, lbg, ubg) at the solution's own arc lengths: how far the next pass's constraints would
    move."""
    values, _, _, lbg_new, ubg_new = relinearised
    g = np.asarray(g).reshape(-1)
    g_new = np.asarray(pr.constraints(w, pr.pack(values))).reshape(-1)
    rows = np.concatenate([pr.rows[kind] for kind in ("lane", "head", "road", "stop")])
    error = 0.0
    for bound, bound_new in ((lbg, lbg_new), (ubg, ubg_new)):
        b, b_new = bound[rows], bound_new[rows]
        live = np.isfinite(b)
        if (live != np.isfinite(b_new)).any():  # a bound that appears or vanishes: a large change
            return np.inf
        slack, slack_new = g[rows][live] - b[live], g_new[rows][live] - b_new[live]
        error = max(error, float(np.abs(slack - slack_new).max(initial=0.0)))
    return error


def _overlaps(states: np.ndarray, obstacles: dd.Obstacles, where: np.ndarray | None = None) -> bool:
    """Whether the ego discs of states (N+1, >=3) enter a slot's inflated box at a step >= 1 (the NLP's obs
    rows, negative), among the slots and steps `where` (M, N+1) bool (default all)."""
    boxes, half = obstacles.boxes, obstacles.half
    heading = states[:, 2]
    inside = np.zeros(boxes.shape[:2], dtype=bool)
    for c in Shape().ego_offsets:
        d = states[:, :2] + c * np.stack([np.cos(heading), np.sin(heading)], -1) - boxes[..., :2]
        qx = (boxes[..., 2] * d[..., 0] + boxes[..., 3] * d[..., 1]) / half[..., 0]
        qy = (boxes[..., 2] * d[..., 1] - boxes[..., 3] * d[..., 0]) / half[..., 1]
        inside |= qx**8 + qy**8 < 1.0
    inside[:, 0] = False
    return bool((inside if where is None else inside & where).any())


def _blocked(states: np.ndarray, obstacles: dd.Obstacles, stop: np.ndarray, data: dd.SceneData) -> bool:
    """Whether a guess's discs hit an obstacle slot or pass an active stop limit."""
    if _overlaps(states, obstacles):
        return True
    heading = states[:, 2]
    front = states[:, :2] + PACIFICA.rear_axle_to_front * np.stack([np.cos(heading), np.sin(heading)], -1)
    return bool((data.ref.project(front)[1:] > stop[1:]).any())


def available_lanes(scene: DriveScene) -> list[int]:
    """Target lanes that exist next to the ego now: 0, and +1 / -1 where the route lane has such a peer."""
    data = dd.scene_data(scene)
    s0 = data.ref.project(scene.current_pose[None, :2])
    out = [0]
    for side in (1, -1):
        try:
            dd.lane_offsets(scene, data, s0, side)
            out.append(side)
        except ValueError:
            pass
    return out


def sample_targets(scene: DriveScene, calibrated: RuleParams, rng: np.random.Generator,
                   count: int, stop_fraction: float = 0.0, gap_fraction: float = 0.0,
                   horizon_s: float = 5.0) -> list[DriveTarget]:
    """pSTL-style diverse targets (deterministic given rng): the first keeps the lane with the calibrated
    params (DEFAULT_PARAMS for rules without); others are, with probability `stop_fraction`, a stop in the
    lane (reference speed 0, pSTL's mode 3), else, with probability `gap_fraction`, a gap target, else draw a
    lane among those that exist and a speed; all but the first perturb the params (pSTL §1.4 offsets). Each
    target has the rules speed_band, the lane's rule (LANE_RULES), safe_distance and comfort. With
    stop_fraction and gap_fraction 0 no extra number is drawn, so targets are those of the datasets made
    before stops and gaps existed.

    A gap target keeps the lane at the current speed under a d_safe drawn from `controllable_gap` (the
    logged least gap up to the gap now, over the next `horizon_s` [s]): the expert must fall back behind
    its leader, so one scene holds plans with different gaps, which is what makes d_safe a command. Where no
    gap is controllable it is an ordinary lane keep at the current speed.
    """
    lanes = available_lanes(scene)
    v_now = float(scene.ego.speed[dd.CURRENT_INDEX])
    base = DEFAULT_PARAMS.updated(calibrated)
    gap_window = controllable_gap(scene, horizon_s) if gap_fraction > 0.0 else None
    out = []
    for i in range(count):
        stop = i > 0 and stop_fraction > 0.0 and bool(rng.uniform() < stop_fraction)
        gap = i > 0 and not stop and gap_fraction > 0.0 and bool(rng.uniform() < gap_fraction)
        lane = 0 if i == 0 or stop or gap else int(rng.choice(lanes))
        lateral_rule = LANE_RULES[lane]
        # DEFAULT_PARAMS has every rule, so `base` has them all
        band = cast(SpeedBandParams, base.speed_band)
        lateral = cast("LaneKeepingParams | LaneChangeParams", base.of(lateral_rule))
        safe = cast(SafeDistanceParams, base.safe_distance)
        speed = v_now if i == 0 or gap else float(np.clip(v_now + rng.uniform(-4.0, 4.0), 0.0, 20.0))
        speed = 0.0 if stop else speed
        if i > 0:
            v_min = band.v_min - rng.uniform(1.3, 3.0)
            band = SpeedBandParams(v_min, band.v_max + rng.uniform(1.3, 3.0))
            width = float(rng.uniform(0.5, 1.5))  # d_max (lane keeping) or d_band (lane change)
            heading = lateral.h_max + rng.uniform(0.0, 0.3)
            lateral = LaneKeepingParams(width, heading) if lane == 0 else LaneChangeParams(width, heading)
            safe = replace(safe, d_safe=max(0.1, safe.d_safe - rng.uniform(0.0, 1.5)))
        if gap and gap_window is not None:
            safe = replace(safe, d_safe=round(float(rng.uniform(*gap_window)), 3))
        v_max = max(band.v_max, speed + 1.0, v_now + 0.5)
        band = SpeedBandParams(min(band.v_min, 0.0), v_max)
        params = RuleParams(speed_band=band, safe_distance=safe, comfort=base.comfort)
        out.append(DriveTarget(speed, lane, params.with_rule(lateral_rule, lateral), stop=stop))
    return out
