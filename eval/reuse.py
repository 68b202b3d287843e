"""Reusing a finished evaluation: a run folder whose planner, scenes, options and code are unchanged.

An evaluation's `run_key` hashes the planner (its name, or the bytes of its checkpoint), the content hash of
the scenes or episodes it evaluated, every option that changes a result, and the source of the packages
that compute one (scenes, planners, eval). A rerun with the same key finds the key in the run folder's
summary.json and reports it instead of evaluating again.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path

PACKAGES = ("scenes", "planners", "eval")


@cache
def code_hash() -> str:
    """sha256 of every Python source file of the packages that shape a result."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def planner_fingerprint(planner: str) -> str:
    """A registered planner's name, or the sha256 of a checkpoint file or of every file of a folder."""
    path = Path(planner)
    if not path.exists():
        return planner
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        digest.update(file.name.encode() + b"\0" + file.read_bytes())
    return f"sha256:{digest.hexdigest()}"


def run_key(planner: str, evaluated_hash: str, options: dict[str, object]) -> str:
    """The key of an evaluation (see the module docstring)."""
    body = {"planner": planner_fingerprint(planner), "evaluated": evaluated_hash, "options": options,
            "code": code_hash()}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def finished_run(out: Path | None, key: str, results_file: str) -> dict | None:
    """The summary.json body of `out` when it holds a finished run with this key, else None."""
    if out is None or not (out / results_file).is_file():
        return None
    try:
        body = json.loads((out / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    return body if isinstance(body, dict) and body.get("run_key") == key else None
