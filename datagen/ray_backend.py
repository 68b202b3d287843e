"""Ray backend of the datagen job: one task per shard. Address "local" starts a private loopback-only
cluster for this run (no dashboard, bound to 127.0.0.1), shut down when the run ends, however it ends."""

from __future__ import annotations

from collections.abc import Iterator

from datagen.job import DriveDatagenConfig, UnitReport, run_unit
from scenes.ray_tasks import run_tasks


def run_on_ray(root: str, config: DriveDatagenConfig, shards: list[int],
               address: str) -> Iterator[UnitReport]:
    """Yield each shard's report as its task finishes."""
    for _, report in run_tasks(run_unit, [(root, config, shard) for shard in shards], address):
        yield report
