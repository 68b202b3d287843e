"""The local process pool of the evaluation runners."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor


def share_cores(threads: int) -> None:
    """Worker initializer: torch uses `threads` intra-op threads (workers x threads <= cores: no
    oversubscription)."""
    import torch

    torch.set_num_threads(threads)


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """`workers` spawned processes (not forked: a parent that already runs torch threads deadlocks forked
    children) that split the machine's cores between them."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=share_cores, initargs=(threads,))
