"""Throughput of batched exact robustness (numpy, t = 0) against stlpy's recursive oracle, same spec and data.

The spec is a driving rule set of 6 conjuncts (speed band, lane offset band, gap, and a lateral-settling
F[0,20] G[0,20]) over signals (v, d, s, dl), 4,096 items of 41 steps. stlpy is timed on a subset and its
per-signal rate extrapolated.
"""

from __future__ import annotations

import time

import numpy as np

from stl.robustness import Signals, robustness
from stl.stlpy_bridge import stlpy_robustness, to_stlpy
from stl.text import parse_formula

SPEC = (
    "G[0,40] (v >= 2) & G[0,40] (v <= 15) & G[0,40] (d <= 1.5) & G[0,40] (d >= -1.5) & G[0,40] (s >= 2)"
    " & F[0,20] G[0,20] (dl <= 0.5 & dl >= -0.5)"
)
NAMES = ("v", "d", "s", "dl")


def bench_signals(batch: int = 4096, steps: int = 41, seed: int = 0) -> np.ndarray:
    """(batch, steps, 4) random-walk signals around the spec's thresholds, float64."""
    rng = np.random.default_rng(seed)
    centre = np.array([8.0, 0.0, 5.0, 0.0])
    scale = np.array([0.4, 0.06, 0.3, 0.03])
    walk = np.cumsum(rng.normal(size=(batch, steps, 4)) * scale, axis=1)
    return centre + rng.normal(size=(batch, 1, 4)) * np.array([3.0, 0.5, 1.5, 0.3]) + walk


def _rate(fn, items: int, seconds: float, min_runs: int = 3) -> float:
    """Items per second of `fn`, repeated for about `seconds` (at least `min_runs` times)."""
    runs, start = 0, time.perf_counter()
    while runs < min_runs or time.perf_counter() - start < seconds:
        fn()
        runs += 1
    return runs * items / (time.perf_counter() - start)


def bench_stl(seconds: float = 2.0, batch: int = 4096, stlpy_items: int = 200) -> dict:
    """{"ours_per_s", "stlpy_per_s", "ratio", "max_abs_diff", ...}: signals/s of each, on the same data."""
    formula = parse_formula(SPEC)
    values = bench_signals(batch)
    signals = Signals(NAMES, values)
    oracle = to_stlpy(formula, NAMES)
    ours = robustness(formula, signals)
    subset = values[:stlpy_items]
    theirs = stlpy_robustness(oracle, subset)
    ours_rate = _rate(lambda: robustness(formula, signals), batch, seconds / 2)
    stlpy_rate = _rate(lambda: stlpy_robustness(oracle, subset), len(subset), seconds / 2, min_runs=1)
    return {
        "ours_per_s": ours_rate,
        "stlpy_per_s": stlpy_rate,
        "ratio": ours_rate / stlpy_rate,
        "max_abs_diff": float(np.max(np.abs(ours[: len(subset)] - theirs))),
        "signals": batch,
        "steps": values.shape[1],
        "nodes": len(formula.nodes()),
        "satisfied": float(np.mean(ours > 0)),
    }


if __name__ == "__main__":
    print(bench_stl())
