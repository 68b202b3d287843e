"""The expert behind the data engine: the trajopt solver (default) and `follow`, a log-following baseline.

An expert is (solve, sample_targets) with the trajopt API:
    expert.solve(scene, target, warm_start=previous_result_or_None) -> result with .ok, .status (enum,
        .value), .states (N+1, 4) x, y, heading, v map frame (state 0 = now), .controls (N, 2),
        .iterations, .wall_ms, .robustness {rule: float}; target.rule_params {rule: {param: float}}
    sample_targets(scene, params, rng, count) -> list of targets (.speed, .lane, .rule_params)

`follow` is a simpler expert with no optimisation, for comparisons and quick smoke runs: it drives the logged
path (extended along the route centreline) with a speed profile towards the target speed under
acceleration and jerk limits taken from the comfort rule, then checks every rule by exact STL robustness.
No optimisation: iterations is the number of profile steps that hit a limit.
"""

from __future__ import annotations

import enum
import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import shapely

from scenes.drive import CURRENT_INDEX, SIM_DT, DriveScene
from stl.calibrate import window_robustness
from stl.rules import rule_set
from stl.signals import signals_from_poses

EXPERTS = ("follow", "trajopt")
SOLVERS = ("ipopt", "fatrop")  # trajopt's NLP solvers
FOLLOW_RULES = ("speed_band", "lane_keeping", "safe_distance", "stop_before_line", "comfort")


class FollowStatus(enum.Enum):
    OK = "ok"
    INFEASIBLE = "infeasible"
    STL_VIOLATED = "stl_violated"
    SOLVER_FAILED = "solver_failed"


@dataclass(frozen=True)
class FollowTarget:
    speed: float  # [m/s]
    lane: int  # 0 = keep the current lane (the follow expert never changes lane)
    rule_params: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class FollowResult:
    status: FollowStatus
    states: np.ndarray  # (N+1, 4)
    controls: np.ndarray  # (N, 2) acceleration [m/s^2], yaw rate [rad/s]
    iterations: int
    wall_ms: float
    robustness: dict[str, float]

    @property
    def ok(self) -> bool:
        return self.status is FollowStatus.OK


def follow_targets(scene: DriveScene, params: Mapping[str, Mapping[str, float]], rng: np.random.Generator,
                   count: int) -> list[FollowTarget]:
    """`count` target speeds around the logged mean future speed, within the speed band."""
    logged = float(np.mean(scene.ego.speed[CURRENT_INDEX:]))
    rules = {r: dict(params[r]) for r in FOLLOW_RULES if r in params}
    band = rules.get("speed_band", {"v_min": 0.0, "v_max": 15.0})
    speeds = np.clip(logged * rng.uniform(0.7, 1.15, count), band["v_min"], band["v_max"])
    return [FollowTarget(round(float(s), 3), 0, rules) for s in speeds]


def _path(scene: DriveScene) -> tuple[np.ndarray, np.ndarray]:
    """(P, 2) points from the ego now along its logged path, then the route centreline; (P,) arc length."""
    logged = scene.ego.pose[CURRENT_INDEX:, :2]
    line = scene.route.centerline
    start = line.project(shapely.Point(*logged[-1]))
    coords = np.asarray(line.coords)[:, :2]
    along = np.asarray([line.project(shapely.Point(*c)) for c in coords])
    tail = coords[along > start + 0.5]
    points = np.concatenate([logged, tail])
    step = np.linalg.norm(np.diff(points, axis=0), axis=1)
    keep = np.concatenate([[True], step > 1e-6])
    points = points[keep]
    return points, np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])


class FollowExpert:
    """Logged-path follower with a comfort-limited speed profile; see the module doc."""

    def __init__(self, horizon: int = 50, dt: float = SIM_DT):
        self.horizon, self.dt = horizon, dt

    def solve(self, scene: DriveScene, target: FollowTarget, warm_start: FollowResult | None = None
              ) -> FollowResult:
        start = time.perf_counter()
        comfort = target.rule_params.get("comfort", {"a_max": 4.0, "j_max": 10.0})
        a_lim, j_lim = 0.8 * comfort["a_max"], 0.8 * comfort["j_max"]
        v = float(scene.ego.speed[CURRENT_INDEX])
        a = float(scene.ego.acceleration[CURRENT_INDEX, 0]) if warm_start is None else 0.0
        a = float(np.clip(a, -a_lim, a_lim))
        speeds, limited = [v], 0
        for _ in range(self.horizon):
            want = np.clip((target.speed - v) / max(self.dt, 1.0), -a_lim, a_lim)
            new = float(np.clip(want, a - j_lim * self.dt, a + j_lim * self.dt))
            limited += new != want
            a = new
            v = max(0.0, v + a * self.dt)
            speeds.append(v)
        speeds = np.asarray(speeds)
        distance = np.concatenate([[0.0], np.cumsum(0.5 * (speeds[1:] + speeds[:-1]) * self.dt)])
        points, arc = _path(scene)
        if distance[-1] > arc[-1]:
            return self._result(FollowStatus.INFEASIBLE, start, limited)
        xy = np.stack([np.interp(distance, arc, points[:, 0]), np.interp(distance, arc, points[:, 1])], -1)
        seg = np.diff(points, axis=0)
        seg_heading = np.unwrap(np.arctan2(seg[:, 1], seg[:, 0]))
        mid = 0.5 * (arc[1:] + arc[:-1])
        heading = np.interp(distance, mid, seg_heading)
        heading[0] = scene.current_pose[2]
        heading = np.unwrap(heading)
        states = np.column_stack([xy, heading, speeds])
        controls = np.column_stack([np.diff(speeds) / self.dt, np.diff(heading) / self.dt])
        rules = rule_set(list(target.rule_params))
        signals = signals_from_poses(scene, states[None, :, :3], self.dt)
        rho = {k: float(v[0]) for k, v in window_robustness(rules, signals, target.rule_params).items()}
        status = FollowStatus.OK if min(rho.values(), default=0.0) >= 0 else FollowStatus.STL_VIOLATED
        return self._result(status, start, limited, states, controls, rho)

    def _result(self, status: FollowStatus, start: float, iterations: int, states: np.ndarray | None = None,
                controls: np.ndarray | None = None, rho: dict[str, float] | None = None) -> FollowResult:
        n = self.horizon
        return FollowResult(status, np.zeros((n + 1, 4)) if states is None else states,
                            np.zeros((n, 2)) if controls is None else controls, int(iterations),
                            1e3 * (time.perf_counter() - start), rho or {})


@functools.lru_cache(maxsize=4)
def load_expert(name: str, horizon: int, compiled: bool = False,
                solver: str = "ipopt") -> tuple[object, Callable]:
    """(expert, sample_targets) of `name`: "follow" or "trajopt" (the CasADi solver in trajopt/ with NLP
    solver `solver`, ipopt or fatrop; `compiled`: its NLP functions as C built once with gcc, see
    trajopt.compiled).

    Cached per process: building the solvers takes about a second, and an expert only memoises pure work, so
    every shard a worker runs reuses it without changing a result.
    """
    if name == "follow":
        return FollowExpert(horizon), follow_targets
    if name == "trajopt":
        import dataclasses

        import trajopt

        config = trajopt.DriveExpertConfig()
        config = dataclasses.replace(config, shape=dataclasses.replace(config.shape, horizon=horizon),
                                     compiled=compiled, solver=solver)
        return trajopt.DriveExpert(config), trajopt.sample_targets
    raise ValueError(f"unknown expert {name!r}; expected one of {', '.join(EXPERTS)}")
