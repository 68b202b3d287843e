"""Small jobs for the runner's tests; a module of their own so that spawned pool workers can import them."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from scenes.store.layout import atomic_write_bytes
from scenes.store.units import Shards, read_unit_records, write_unit_record

UNITS = "meta/units"


@dataclass(frozen=True)
class DrawsJob:
    """Unit u writes data/u.txt with its items' random draws, then its record. `swallowed_interrupt`: at (unit,
    item) the job sends itself SIGINT and swallows the KeyboardInterrupt, as IPOPT does inside a solve.
    `item_seconds`: each item sleeps this long (for Ctrl-C timing)."""

    shards: Shards
    swallowed_interrupt: tuple[int, int] | None = None
    item_seconds: float = 0.0
    command: ClassVar[str] = "draws"

    def job_record(self) -> dict[str, object]:
        return {"n": self.shards.n, "seed": self.shards.seed, "shard_size": self.shards.shard_size}

    def job_defaults(self) -> dict[str, object]:
        return {}

    @property
    def num_units(self) -> int:
        return self.shards.num_units

    def finished(self, root: Path):
        records = read_unit_records(root, UNITS, range(self.num_units))
        done = {u: r["items"] for u, r in records.items() if (Path(root) / f"data/{u}.txt").is_file()}
        return done, {}

    def run_unit(self, root: Path, unit: int, on_item) -> int:
        rng, lines = self.shards.unit_rng(unit), []
        for k, item in enumerate(self.shards.indices(unit)):
            if self.item_seconds:
                time.sleep(self.item_seconds)
            if self.swallowed_interrupt == (unit, k):
                try:
                    os.kill(os.getpid(), signal.SIGINT)
                    time.sleep(0.5)
                except KeyboardInterrupt:
                    pass  # swallowed: the unit goes on as if nothing happened
            lines.append(f"{item} {rng.random():.17g}")
            on_item(1)
        path = Path(root) / f"data/{unit}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())
        write_unit_record(Path(root), UNITS, unit, {"unit": unit, "items": len(lines)})
        return len(lines)

    def amount(self, report: int) -> int:
        return report

    def finish(self, root: Path, run) -> dict[int, int]:
        return run.reports
