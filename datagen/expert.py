"""The experts behind the data engine, both `trajopt.expert.Expert`s: the trajopt solver (default) and
`follow`, a log-following baseline.

`follow` is a simpler expert with no optimisation, for comparisons and quick smoke runs: it drives the logged
path (extended along the route centreline) with a speed profile towards the target speed under
acceleration and jerk limits taken from the comfort rule, then checks every rule by exact STL robustness.
No optimisation: iterations is the number of profile steps that hit a limit, and a usable result's status
is ExpertStatus.OK (trajopt's is SUCCESS).
"""

from __future__ import annotations

import functools
import time
from typing import cast

import numpy as np
import shapely

from scenes.drive import CURRENT_INDEX, SIM_DT, DriveScene
from scenes.errors import ConfigError
from stl.calibrate import window_robustness
from stl.rules import DEFAULT_PARAMS, ComfortParams, RuleParams, SpeedBandParams, rule_set
from stl.signals import signals_from_poses
from trajopt.expert import DriveTarget, Expert, ExpertResult, ExpertStatus, WarmStart

EXPERTS = ("follow", "trajopt")
SOLVERS = ("ipopt", "fatrop")  # trajopt's NLP solvers
FOLLOW_RULES = ("speed_band", "lane_keeping", "safe_distance", "stop_before_line", "comfort")


def follow_targets(scene: DriveScene, params: RuleParams, rng: np.random.Generator,
                   count: int, stop_fraction: float = 0.0) -> list[DriveTarget]:
    """`count` lane-keeping targets whose speeds are around the logged mean future speed, within the speed
    band (DEFAULT_PARAMS' without one); after the first, each is a stop (speed 0) with probability `stop_fraction`.
    Their rules are those of FOLLOW_RULES that `params` has."""
    logged = float(np.mean(scene.ego.speed[CURRENT_INDEX:]))
    rules = params.only(FOLLOW_RULES)
    band = cast(SpeedBandParams, rules.speed_band or DEFAULT_PARAMS.speed_band)  # (DEFAULT_PARAMS has all)
    speeds = np.clip(logged * rng.uniform(0.7, 1.15, count), band.v_min, band.v_max)
    stops = np.arange(count) > 0
    if stop_fraction > 0.0:
        stops &= rng.uniform(size=count) < stop_fraction
    else:
        stops[:] = False
    return [DriveTarget(0.0, 0, rules, stop=True) if stop else DriveTarget(round(float(s), 3), 0, rules)
            for s, stop in zip(speeds, stops, strict=True)]


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
    """Logged-path follower with a comfort-limited speed profile; see the module doc. It keeps the lane:
    `target.target_lane` is not used."""

    def __init__(self, horizon: int = 50, dt: float = SIM_DT):
        self.horizon, self.dt = horizon, dt

    def sample_targets(self, scene: DriveScene, params: RuleParams, rng: np.random.Generator,
                       count: int, stop_fraction: float = 0.0, gap_fraction: float = 0.0
                       ) -> list[DriveTarget]:
        """`follow_targets`; the logged path keeps no chosen gap, so `gap_fraction` must be 0 (the job's
        config refuses it for this expert)."""
        if gap_fraction:
            raise ValueError("the follow expert makes no gap targets: gap_fraction must be 0")
        return follow_targets(scene, params, rng, count, stop_fraction)

    def prebuild(self) -> None:
        """Nothing to build."""

    def reset(self) -> None:
        """No state is kept between solves."""

    def solve(self, scene: DriveScene, target: DriveTarget, warm_start: WarmStart | None = None) -> ExpertResult:
        """The profile towards `target.reference_speed`, checked against `target.rule_params`. A warm start
        (any) starts the profile at zero acceleration instead of the logged one."""
        start = time.perf_counter()
        target.validate()
        comfort = cast(ComfortParams, target.rule_params.comfort or DEFAULT_PARAMS.comfort)  # (DEFAULT_PARAMS has all)
        a_lim, j_lim = 0.8 * comfort.a_max, 0.8 * comfort.j_max
        v = float(scene.ego.speed[CURRENT_INDEX])
        a = float(scene.ego.acceleration[CURRENT_INDEX, 0]) if warm_start is None else 0.0
        a = float(np.clip(a, -a_lim, a_lim))
        profile, limited = [v], 0
        for _ in range(self.horizon):
            want = np.clip((target.reference_speed - v) / max(self.dt, 1.0), -a_lim, a_lim)
            new = float(np.clip(want, a - j_lim * self.dt, a + j_lim * self.dt))
            limited += new != want
            a = new
            v = max(0.0, v + a * self.dt)
            profile.append(v)
        speeds = np.asarray(profile)
        distance = np.concatenate([[0.0], np.cumsum(0.5 * (speeds[1:] + speeds[:-1]) * self.dt)])
        points, arc = _path(scene)
        if distance[-1] > arc[-1]:
            return self._result(ExpertStatus.INFEASIBLE, target, start, limited)
        xy = np.stack([np.interp(distance, arc, points[:, 0]), np.interp(distance, arc, points[:, 1])], -1)
        seg = np.diff(points, axis=0)
        seg_heading = np.unwrap(np.arctan2(seg[:, 1], seg[:, 0]))
        mid = 0.5 * (arc[1:] + arc[:-1])
        heading = np.interp(distance, mid, seg_heading)
        heading[0] = scene.current_pose[2]
        heading = np.unwrap(heading)
        states = np.column_stack([xy, heading, speeds])
        controls = np.column_stack([np.diff(speeds) / self.dt, np.diff(heading) / self.dt])
        rules = rule_set(target.rule_params.names)
        signals = signals_from_poses(scene, states[None, :, :3], self.dt)
        rho = {k: float(v[0]) for k, v in window_robustness(rules, signals, target.rule_params).items()}
        status = ExpertStatus.OK if min(rho.values(), default=0.0) >= 0 else ExpertStatus.STL_VIOLATED
        return self._result(status, target, start, limited, states, controls, rho)

    def _result(self, status: ExpertStatus, target: DriveTarget, start: float, iterations: int,
                states: np.ndarray | None = None, controls: np.ndarray | None = None,
                rho: dict[str, float] | None = None) -> ExpertResult:
        n = self.horizon
        return ExpertResult(status, np.zeros((n + 1, 4)) if states is None else states,
                            np.zeros((n, 2)) if controls is None else controls, self.dt, int(iterations),
                            1e3 * (time.perf_counter() - start), rho or {}, target.rule_params)


HORIZON_STEP = SIM_DT  # [s] the step of every expert `load_expert` builds; a job's `horizon` counts these


@functools.lru_cache(maxsize=4)
def load_expert(name: str, horizon: int, compiled: bool = False, solver: str = "ipopt") -> Expert:
    """The expert `name`: "follow" or "trajopt" (the CasADi solver in trajopt/ with NLP solver `solver`,
    ipopt or fatrop; `compiled`: its NLP functions as C built once with gcc, see trajopt.compiled).

    Cached per process: building the solvers takes about a second, and an expert only memoises pure work, so
    every shard a worker runs reuses it without changing a result.
    """
    if name == "follow":
        return FollowExpert(horizon, HORIZON_STEP)
    if name == "trajopt":
        import dataclasses

        from trajopt.drive import DriveExpert, DriveExpertConfig

        config = DriveExpertConfig()
        config = dataclasses.replace(
            config, shape=dataclasses.replace(config.shape, horizon=horizon, dt=HORIZON_STEP), compiled=compiled,
            solver=solver)
        return DriveExpert(config)
    raise ConfigError("expert", f"unknown {{field}} {name!r}; expected one of {', '.join(EXPERTS)}")
