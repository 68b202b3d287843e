"""datagen against the expert contract: solve_scene counts failures by status, warm-starts only towards the
same lane, and the job config keeps the params' JSON form (the job file's and info.json's bytes)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from datagen.demos import demo_extras
from datagen.job import DriveDatagenConfig, UnitReport, solve_scene
from scenes.drive import SIM_DT
from stl.rules import DEFAULT_PARAMS, RuleParams, SpeedBandParams
from trajopt.expert import DriveTarget, Expert, ExpertResult, ExpertStatus, WarmStart

LANES = (0, 1, 0, 1, 0)
STATUSES = (ExpertStatus.SUCCESS, ExpertStatus.INFEASIBLE, ExpertStatus.SUCCESS, None, ExpertStatus.SUCCESS)


@dataclass
class ScriptedExpert:
    """Solves its targets in turn with STATUSES (None: raises), along the logged path at 10 m/s."""

    calls: list[tuple[DriveTarget, WarmStart | None]] = field(default_factory=list)

    def sample_targets(self, scene, params: RuleParams, rng: np.random.Generator, count: int,
                       stop_fraction: float = 0.0, gap_fraction: float = 0.0) -> list[DriveTarget]:
        return [DriveTarget(10.0, LANES[k], params.only(["speed_band"])) for k in range(count)]

    def solve(self, scene, target: DriveTarget, warm_start: WarmStart | None = None) -> ExpertResult:
        status = STATUSES[len(self.calls)]
        self.calls.append((target, warm_start))
        if status is None:
            raise ZeroDivisionError("scripted")
        t = SIM_DT * np.arange(31)
        now = scene.current_pose
        states = np.column_stack([now[0] + 10 * t * np.cos(now[2]), now[1] + 10 * t * np.sin(now[2]),
                                  np.full_like(t, now[2]), np.full_like(t, 10.0)])
        return ExpertResult(status, states, np.zeros((30, 2)), SIM_DT, 3, 1.0, {"speed_band": 0.5},
                            target.rule_params)

    def prebuild(self) -> None:
        pass

    def reset(self) -> None:
        pass


def test_solve_scene_counts_failures_and_warm_starts_within_a_lane():
    expert = ScriptedExpert()
    assert isinstance(expert, Expert)
    config = DriveDatagenConfig(n=1, demos_per_scene=len(LANES))
    report = UnitReport(0)
    demos, extras = solve_scene(config, 0, expert, np.random.default_rng(0), report)
    assert report.attempts == 5 and len(demos) == len(extras) == 3 and report.iterations == 9
    assert report.failures == {"infeasible": 1, "error:ZeroDivisionError": 1}
    warm = [w for _, w in expert.calls]
    assert warm[0] is None and warm[1] is None and warm[3] is None  # lane 1 never solved before
    assert warm[2].states is not None and warm[4].states is not None  # lane 0: from the earlier solve
    assert [r["solver.status"] for r in extras] == ["success"] * 3
    assert [d.metadata.scene_id.rsplit("-demo", 1)[1] for d in demos] == ["0", "2", "4"]


def test_extras_record_the_solved_rules_target_and_status():
    target = DriveTarget(7.5, -1, DEFAULT_PARAMS.only(["speed_band", "comfort"]))
    result = ExpertResult(ExpertStatus.OK, np.zeros((41, 4)), np.zeros((40, 2)), SIM_DT, 2, 1.0,
                          {"comfort": 0.25, "speed_band": 1.0}, target.rule_params)
    assert demo_extras(target, result) == {
        "stl.comfort.a_max": 4.0, "stl.comfort.j_max": 10.0, "stl.comfort.w_max": 0.5,
        "stl.speed_band.v_max": 15.0, "stl.speed_band.v_min": 0.0,
        "robustness.comfort": 0.25, "robustness.speed_band": 1.0,
        "solver.status": "ok", "solver.iterations": 2, "target.speed": 7.5, "target.lane": -1, "target.mode": "right",
        "horizon.steps": 40, "horizon.dt": 0.1}


def test_config_json_holds_the_params_json_form():
    default = DriveDatagenConfig(n=2).as_json()
    assert default["params"] == DEFAULT_PARAMS.to_json()
    partial = DriveDatagenConfig(n=2, params=RuleParams(speed_band=SpeedBandParams(0.0, 12.0))).as_json()
    assert partial["params"] == {"speed_band": {"v_min": 0.0, "v_max": 12.0}}  # no nulls for other rules
    assert json.loads(json.dumps(partial)) == partial
