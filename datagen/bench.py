"""`bench_datagen`: end-to-end demos per second on one core (scene generation, expert solves, demo building
and the parquet shard write), in-process, with the default config's expert."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from datagen.job import DriveDatagenConfig, UnitReport, run_unit


def bench_datagen(seconds: float = 10.0, expert: str = "trajopt", demos_per_scene: int = 2) -> dict[str, float]:
    """Run shards of 4 scenes until `seconds` have passed (at least one); figures of the whole time."""
    config = DriveDatagenConfig(n=1_000_000, demos_per_scene=demos_per_scene, shard_size=4, expert=expert)
    reports: list[UnitReport] = []
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        while not reports or time.perf_counter() - start < seconds:
            reports.append(run_unit(str(Path(tmp) / "bench"), config, len(reports)))
        elapsed = time.perf_counter() - start
    demos = sum(r.demos for r in reports)
    attempts = sum(r.attempts for r in reports)
    return {
        "demos_per_s_per_core": demos / elapsed,
        "solves_per_s_per_core": attempts / elapsed,
        "failure_rate": 1.0 - demos / attempts if attempts else 0.0,
        "mean_solve_ms": sum(r.solve_ms for r in reports) / max(attempts, 1),
    }
