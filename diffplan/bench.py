"""Speed benchmarks behind `diffplan bench NAME`. Each returns a flat dict of figures."""

from __future__ import annotations

import functools
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def bench_scenes(seconds: float) -> dict[str, float]:
    """Synthetic scene generation on one core, round-robin over scenario types, then store write/read."""
    from scenes.drive import SPLITS
    from scenes.store import DriveDataset, finalize_dataset, write_shard
    from scenes.synthetic import SYNTHETIC_SCENARIOS, generate_scene, scene_seed

    generate_scene(scene_seed("train", 0, 0), "train")  # warm caches and imports
    scenes: list[Any] = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(scenes) < len(SYNTHETIC_SCENARIOS):
        i = len(scenes)
        scenario = SYNTHETIC_SCENARIOS[i % len(SYNTHETIC_SCENARIOS)]
        scenes.append(generate_scene(scene_seed(SPLITS[0], 0, i), SPLITS[0], scenario))
    generate_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        write_shard(root, 0, scenes)
        finalize_dataset(root, {"bench": True}, 1)
        write_s = time.perf_counter() - start
        size = sum(f.stat().st_size for f in root.rglob("*.parquet"))
        start = time.perf_counter()
        data = DriveDataset.open(root)
        for i in range(len(data)):
            data[i]
        read_s = time.perf_counter() - start
    return {
        "scenes_per_s": round(len(scenes) / generate_s, 2),
        "scenes": len(scenes),
        "store_write_scenes_per_s": round(len(scenes) / write_s, 1),
        "store_read_scenes_per_s": round(len(scenes) / read_s, 1),
        "store_bytes_per_scene": round(size / len(scenes)),
        "cpu_count": os.cpu_count() or 1,
    }


BENCHMARKS: dict[str, Callable[[float], dict[str, float]]] = {"scenes": bench_scenes}  # more below


def bench_pdms(seconds: float) -> dict[str, float]:
    """NAVSIM scoring throughput on one core with a metric cache, as NAVSIM's metric cache holds one.

    Cached per scene (built before timing): PDM-Closed's simulated states and their sub-metrics, and the
    scene's map geometry (drivable area, lanes, centreline). Timed: simulate every scene's plan (LQR +
    bicycle, one batched call) and score it against the reference (PDMS v1.1). `..._with_geometry` also
    rebuilds the map geometry of every scene inside the timed loop.
    """
    import numpy as np

    import planners
    from eval.scoring import reference_states, simulate_scene_plans
    from planners.pdm.scoring import SceneGeometry, ScorerConfig, score_proposals, score_reference
    from scenes.synthetic import SYNTHETIC_SCENARIOS, generate_scene, scene_seed

    scenes = [generate_scene(scene_seed("test", 0, i), "test", SYNTHETIC_SCENARIOS[i % len(SYNTHETIC_SCENARIOS)])
              for i in range(100)]
    config = ScorerConfig()
    geometries = [SceneGeometry.from_scene(scene) for scene in scenes]
    references = [score_reference(g, reference_states(s), config) for g, s in zip(geometries, scenes)]
    planner = planners.load("constant-velocity")
    plans = np.stack([planner.plan(scene.observation()).trajectory.poses for scene in scenes])

    def run(rebuild_geometry: bool, budget: float) -> float:
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < budget or done == 0:
            states = simulate_scene_plans(scenes, plans)
            for scene, geometry, state, reference in zip(scenes, geometries, states, references):
                if rebuild_geometry:
                    geometry = SceneGeometry.from_scene(scene)
                score_proposals(geometry, state[None], reference, config)
            done += len(scenes)
        return done / (time.perf_counter() - start)

    return {
        "scenes_per_s_per_core": round(run(False, seconds), 1),
        "scenes_per_s_per_core_with_geometry": round(run(True, seconds / 2), 1),
        "proposals_per_scene": 2,
        "navsim_v1_1_reference_scenes_per_s": 56,
    }


BENCHMARKS["pdms"] = bench_pdms


def bench_stl(seconds: float) -> dict[str, float]:
    """Batched exact STL robustness against stlpy (4,096 signals of 41 steps, a 16-node driving spec)."""
    from stl.bench import bench_stl as run

    return run(seconds)


BENCHMARKS["stl"] = bench_stl


def bench_trajopt(seconds: float, compiled: bool = False, solver: str = "ipopt") -> dict[str, float]:
    """Warm-started bicycle solves at N = 40 with obstacles, lane bounds and STL rules."""
    from trajopt.bench import bench_trajopt as run

    return run(seconds, compiled=compiled, solver=solver)


def bench_datagen(seconds: float, compiled: bool = False, solver: str = "ipopt") -> dict[str, float]:
    """End-to-end expert demonstrations per second on one core (worlds, solves, demos, shard writes)."""
    from datagen.bench import bench_datagen as run

    return run(seconds, compiled=compiled, solver=solver)


BENCHMARKS["trajopt"] = bench_trajopt
BENCHMARKS["datagen"] = bench_datagen
# the same with the solver's options: NAME-compiled (C functions; the first run builds them, minutes),
# NAME-fatrop (fatrop instead of IPOPT), NAME-fatrop-compiled
for _name, _bench in (("trajopt", bench_trajopt), ("datagen", bench_datagen)):
    for _suffix, _compiled, _solver in (("compiled", True, "ipopt"), ("fatrop", False, "fatrop"),
                                        ("fatrop-compiled", True, "fatrop")):
        BENCHMARKS[f"{_name}-{_suffix}"] = functools.partial(_bench, compiled=_compiled, solver=_solver)


def bench_planner(seconds: float) -> dict:
    """Batch-1 CPU latency (one thread) of DiffusionDrive, the 20-step diffusion policy, regression and
    ego-mlp on the same encoder, and the ratio diffusion-policy / DiffusionDrive (goal >= 8)."""
    from planners.bench import bench_planners

    return bench_planners(seconds)


BENCHMARKS["planner"] = bench_planner


def bench_navgen(seconds: float) -> dict[str, float]:
    """Nav expert trajectories (with their depth frames) per second on one core, end to end."""
    from datagen.bench import bench_navgen as run

    return run(seconds)


BENCHMARKS["navgen"] = bench_navgen


def bench_startup(seconds: float) -> dict[str, float]:
    """Wall time of `diffplan --help` and `diffplan --version` in fresh processes (median of at least 5)."""
    import statistics
    import subprocess
    import sys

    exe = Path(sys.executable).parent / "diffplan"
    figures = {}
    for name, args in (("help", ["--help"]), ("version", ["--version"])):
        times: list[float] = []
        start = time.perf_counter()
        while len(times) < 5 or time.perf_counter() - start < seconds / 2:
            began = time.perf_counter()
            subprocess.run([str(exe), *args], check=True, capture_output=True)
            times.append(time.perf_counter() - began)
        figures[f"{name}_s"] = round(statistics.median(times), 3)
    return figures


BENCHMARKS["startup"] = bench_startup
