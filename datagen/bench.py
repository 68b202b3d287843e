"""`bench_datagen`: end-to-end demos per second on one core (scene generation, expert solves, demo building
and the parquet shard write), in-process, with the default config's expert."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from datagen.expert import load_expert
from datagen.job import DriveDatagenConfig, DriveDatagenJob, UnitReport


def bench_datagen(seconds: float = 10.0, expert: str = "trajopt", demos_per_scene: int = 2,
                  compiled: bool = False, solver: str = "ipopt") -> dict[str, float]:
    """Run shards of 4 scenes until `seconds` have passed (at least one); figures of the whole time.

    Steady state, as in a long job: the expert's solvers are built before the clock starts."""
    config = DriveDatagenConfig(n=1_000_000, demos_per_scene=demos_per_scene, shard_size=4, expert=expert,
                                compiled=compiled, solver=solver)
    load_expert(expert, config.horizon, compiled, solver).prebuild()
    reports: list[UnitReport] = []
    with tempfile.TemporaryDirectory() as tmp:
        start, cpu_start = time.perf_counter(), time.process_time()
        while not reports or time.perf_counter() - start < seconds:
            reports.append(DriveDatagenJob(config).run_unit(Path(tmp) / "bench", len(reports), lambda r: None))
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    demos = sum(r.demos for r in reports)
    attempts = sum(r.attempts for r in reports)
    return {
        "demos_per_s_per_core": demos / elapsed,
        # the same per second of this process's CPU time (robust to other load)
        "demos_per_cpu_s": demos / cpu,
        "solves_per_s_per_core": attempts / elapsed,
        "failure_rate": 1.0 - demos / attempts if attempts else 0.0,
        "mean_solve_ms": sum(r.solve_ms for r in reports) / max(attempts, 1),
    }


def bench_navgen(seconds: float = 10.0, robot: str = "wheeled", camera: str = "160x120") -> dict[str, float]:
    """End-to-end nav expert trajectories per second on one core: world generation, grids, episode sampling,
    planning, roll-out, depth rendering (MuJoCo, MUJOCO_GL=egl), critic targets and the shard write, with
    the default job's layout (shards of 8 trajectories, 4 per world) until `seconds` have passed (at least
    one shard).

    Rates "per core" divide by the CPU time this process used (all its threads, llvmpipe's included), so
    other load on a shared machine does not lower them; `*_wall` divide by wall time.
    """
    from datagen.nav import NavDatagenConfig, NavDatagenJob, NavUnitReport

    config = NavDatagenConfig(n=1_000_000, robot=robot, camera=camera)
    reports: list[NavUnitReport] = []
    with tempfile.TemporaryDirectory() as tmp:
        NavDatagenJob(NavDatagenConfig(n=1, camera=camera)).run_unit(Path(tmp) / "warm", 0, lambda r: None)  # imports, GL
        start, cpu = time.perf_counter(), time.process_time()
        while not reports or time.perf_counter() - start < seconds:
            reports.append(NavDatagenJob(config).run_unit(Path(tmp) / "bench", len(reports), lambda r: None))
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    trajectories = sum(r.trajectories for r in reports)
    frames = sum(r.frames for r in reports)
    return {
        "trajectories_per_s_per_core": round(trajectories / cpu, 2),
        "frames_per_s_per_core": round(frames / cpu, 1),
        "trajectories_per_s_wall": round(trajectories / elapsed, 2),
        "frames_per_trajectory": round(frames / max(trajectories, 1), 1),
        "failure_rate": round(1.0 - trajectories / max(sum(r.episodes for r in reports), 1), 3),
    }
