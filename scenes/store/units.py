"""How a sharded job's units split its items, and the unit records that mark a unit committed.

`Shards` splits n items into units of `shard_size` (unit u holds items u * shard_size, ...) and derives a unit's
random stream from (job seed, unit). A job writes a unit's data files first and its unit record
(`<folder>/unit-NNNNN.json`) last, atomically; a unit whose record is missing or unreadable is not done, so a
killed job redoes it. `read_unit_records` is what every job's resume starts from.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from scenes.store.layout import atomic_write_bytes

ReportT = TypeVar("ReportT")


@dataclass(frozen=True)
class Shards:
    """n items in units of `shard_size`; `seed` is the job's seed.

    Attributes:
        n: number of items (scenes, episodes, ...).
        seed: the job's seed.
        shard_size: items per unit.
    """

    n: int
    seed: int
    shard_size: int

    @property
    def num_units(self) -> int:
        """Number of units (the last may hold fewer items)."""
        return -(-self.n // self.shard_size)

    def indices(self, unit: int) -> range:
        """Item indices of `unit`."""
        return range(unit * self.shard_size, min(self.n, (unit + 1) * self.shard_size))

    def unit_rng(self, unit: int) -> np.random.Generator:
        """The random stream of `unit`: SeedSequence([seed, unit]), whichever process runs it."""
        return np.random.default_rng(np.random.SeedSequence([int(self.seed), int(unit)]))


def unit_record_path(root: Path, folder: str, unit: int) -> Path:
    """The unit record file of unit `unit` in `root`/`folder`."""
    return Path(root) / folder / f"unit-{unit:05d}.json"


def write_unit_record(root: Path, folder: str, unit: int, record: dict[str, object]) -> None:
    """Write unit `unit`'s record (after its data files): sorted keys, indented, atomically."""
    path = unit_record_path(root, folder, unit)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())


def parsed_unit_records(root: Path, folder: str, num_units: int, parse: Callable[[dict], ReportT]
                        ) -> tuple[dict[int, ReportT], dict[int, str]]:
    """The reports `parse(record)` of the committed units among 0 .. num_units - 1, and the units whose record
    `parse` cannot read (KeyError, TypeError, ValueError), each with a line naming its file: what an evaluation
    job's `finished` returns."""
    done: dict[int, ReportT] = {}
    damaged: dict[int, str] = {}
    for unit, body in read_unit_records(root, folder, range(num_units)).items():
        try:
            done[unit] = parse(body)
        except (KeyError, TypeError, ValueError) as error:
            damaged[unit] = f"{unit_record_path(root, folder, unit)} is unreadable ({error!r})"
    return done, damaged


def read_unit_records(root: Path, folder: str, units: range | list[int]) -> dict[int, dict]:
    """{unit: record} of the units among `units` whose record exists and parses (others are to be redone)."""
    out = {}
    for unit in units:
        path = unit_record_path(root, folder, unit)
        try:
            body = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(body, dict):
            out[unit] = body
    return out
