"""Benchmark: the bicycle driving expert (N = 40, obstacles, corridor and STL rules), warm-started across
neighbouring scenes (one synthetic scene with the ego's initial pose jittered by a few cm / mrad)."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from scenes.drive import CURRENT_INDEX, ScenarioType
from scenes.synthetic import generate_scene
from stl.rules import RuleParams
from trajopt.drive import DriveExpert, DriveExpertConfig, sample_targets


def bench_trajopt(seconds: float = 10.0, seed: int = 1_100_000_001,
                  scenario: ScenarioType = ScenarioType.SLOW_VEHICLE, compiled: bool = False,
                  solver: str = "ipopt") -> dict[str, float]:
    """Solve repeatedly for `seconds` [s]; median / p90 wall time per solve [ms], the median CPU time of this
    process per solve [ms] (robust to other load on the machine) and the success rate."""
    expert = DriveExpert(DriveExpertConfig(compiled=compiled, solver=solver))
    expert.prebuild()  # every variant a solve may pick, before the clock
    scene = generate_scene(seed, "test", scenario)
    target = sample_targets(scene, RuleParams(), np.random.default_rng(0), 1)[0]
    previous = expert.solve(scene, target)
    rng = np.random.default_rng(seed)
    times: list[float]
    cpu: list[float]
    oks: list[bool]
    times, cpu, oks = [], [], []
    stop = time.perf_counter() + seconds
    while time.perf_counter() < stop or not times:
        pose = scene.ego.pose.copy()
        heading = pose[CURRENT_INDEX, 2]
        lateral = np.array([-np.sin(heading), np.cos(heading)])
        pose[CURRENT_INDEX, :2] += rng.uniform(-0.05, 0.05) * lateral
        pose[CURRENT_INDEX, 2] += rng.uniform(-0.005, 0.005)
        near = replace(scene, ego=replace(scene.ego, pose=pose))
        started = time.process_time()
        result = expert.solve(near, target, warm_start=previous.warm_start if previous.ok else None)
        cpu.append(1e3 * (time.process_time() - started))
        times.append(result.solve_ms)
        oks.append(result.ok)
        previous = result
    return {"median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90)),
            "median_cpu_ms": float(np.median(cpu)),
            "success_rate": float(np.mean(oks)), "solves": len(times)}


if __name__ == "__main__":
    print(bench_trajopt())
