"""Ray as a job backend: run a function once per work unit and yield results as tasks finish.

Address "local" starts a private cluster bound to 127.0.0.1 (no dashboard) for this run; any other address
(e.g. "auto", "ray://host:10001") joins an existing cluster. A cluster started here is always shut down.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any


def run_tasks(function: Callable[..., Any], argument_lists: Sequence[tuple], address: str
              ) -> Iterator[tuple[int, Any]]:
    """Yield (unit index, result) for `function(*argument_lists[i])`, each on a Ray task, as they finish."""
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        if address == "local":
            ray.init(include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
        else:
            ray.init(address=address, log_to_driver=False)
    try:
        task = ray.remote(function)
        pending = {task.remote(*arguments): i for i, arguments in enumerate(argument_lists)}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            yield pending.pop(done[0]), ray.get(done[0])
    finally:
        if started_here:
            ray.shutdown()
