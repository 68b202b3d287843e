"""Ray backend of the datagen job: one task per shard. Address "local" starts a private loopback-only
cluster for this run (no dashboard, bound to 127.0.0.1), shut down when the run ends, however it ends."""

from __future__ import annotations

from collections.abc import Iterator

from datagen.job import DriveDatagenConfig, UnitReport, run_unit


def run_on_ray(root: str, config: DriveDatagenConfig, shards: list[int], address: str) -> Iterator[UnitReport]:
    """Yield each shard's report as its task finishes."""
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        if address == "local":
            ray.init(include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
        else:
            ray.init(address=address, log_to_driver=False)
    try:
        task = ray.remote(run_unit)
        pending = [task.remote(root, config, shard) for shard in shards]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    finally:
        if started_here:
            ray.shutdown()
