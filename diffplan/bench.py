"""Speed benchmarks behind `diffplan bench NAME`. Each returns a flat dict of figures."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from scenes.drive import SPLITS
from scenes.store import DriveDataset, finalize_dataset, write_shard
from scenes.synthetic import SYNTHETIC_SCENARIOS, generate_scene, scene_seed


def bench_scenes(seconds: float) -> dict[str, float]:
    """Synthetic scene generation on one core, round-robin over scenario types, then store write/read."""
    generate_scene(scene_seed("train", 0, 0), "train")  # warm caches and imports
    scenes, start = [], time.perf_counter()
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


BENCHMARKS: dict[str, Callable[[float], dict[str, float]]] = {"scenes": bench_scenes}
