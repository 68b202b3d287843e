"""Closed-loop evaluation of a planner over a dataset: local processes or Ray tasks, one chunk per task.

Per scene: observation -> planner -> plan (validated) -> simulate -> score against the cached PDM-Closed
reference. A planner that raises, or returns NaN or a wrongly shaped plan, scores 0 and the scene is listed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import as_completed
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

import planners
from eval.pool import worker_pool
from eval.reference import ReferenceCache, scene_hash
from eval.results import SceneResult
from eval.scoring import reference_states, score_plans
from planners.pdm.scoring import MetricVersion
from scenes import CURRENT_INDEX, PREVIOUS_PLAN_STEPS, DriveScene
from scenes.ray_tasks import run_tasks
from scenes.store import DriveDataset


@dataclass(frozen=True)
class EvalConfig:
    """What to run. `planner` is a registered name or a checkpoint path."""

    planner: str
    version: MetricVersion = MetricVersion.PDMS_V1
    reactive_agents: bool = False  # NAVSIM v2-style IDM agents instead of log replay
    seed: int = 0  # seed of stochastic planners (diffusion); reset per scene, so plans do not depend on order


def evaluate_scene(scene: DriveScene, index: int, planner: planners.Planner, config: EvalConfig,
                   reference: np.ndarray) -> SceneResult:
    """Run the planner on one scene and score its plan; planner failures become a 0-score result."""
    meta = scene.metadata
    planner.reset()
    previous = None
    try:
        if config.version is MetricVersion.EPDMS_V2:  # extended comfort compares with the plan of 0.5 s ago
            previous = planner.plan_from_scene(scene, CURRENT_INDEX - PREVIOUS_PLAN_STEPS).validate()
        start = time.perf_counter()
        plan = planner.plan_from_scene(scene)
        latency_ms = 1e3 * (time.perf_counter() - start)
        plan.validate()
    except Exception as error:  # noqa: BLE001 - any planner failure is a scored, listed failure
        message = f"{type(error).__name__}: {error}".splitlines()[0]
        return SceneResult(index=index, scene_id=meta.scene_id, scenario_type=meta.scenario_type.value,
                           error=message)
    if config.reactive_agents:
        from eval.reactive import reactive_agent_tracks
        from eval.scoring import simulate_plans

        states = simulate_plans(scene, plan.trajectory.poses[None])[0]
        scene = replace(scene, agents=reactive_agent_tracks(scene, states))
    evaluation = score_plans(scene, plan.trajectory.poses[None], reference, config.version,
                             previous_plans=None if previous is None else previous.trajectory.poses[None])
    return SceneResult.from_scores(index, meta.scene_id, meta.scenario_type.value, evaluation.scores, 0,
                                   latency_ms=latency_ms, plan=plan.trajectory.poses.copy(),
                                   simulated_xy=evaluation.states[0, :, :2].copy())


@dataclass(frozen=True)
class ChunkOutput:
    results: list[SceneResult]
    new_references: dict[str, tuple[str, np.ndarray]]


def evaluate_chunk(dataset: str, indices: list[int], config: EvalConfig,
                   cached: dict[str, tuple[str, np.ndarray]]) -> ChunkOutput:
    """Evaluate the scenes `indices` of `dataset`; `cached` holds known references by scene id."""
    data = DriveDataset.open(dataset)
    planner = planners.load(config.planner)
    if hasattr(planner, "seed"):
        planner.seed = config.seed
    cache = ReferenceCache(cached)
    results, fresh = [], {}
    for index in indices:
        scene = data[index]
        digest = scene_hash(scene)
        reference = cache.get(scene.metadata.scene_id, digest)
        if reference is None:
            reference = reference_states(scene)
            fresh[scene.metadata.scene_id] = (digest, reference)
        results.append(evaluate_scene(scene, index, planner, config, reference))
    return ChunkOutput(results, fresh)


def _chunks(indices: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(indices), size):
        yield indices[start:start + size]


def evaluate_dataset(dataset: Path, config: EvalConfig, indices: list[int], workers: int = 1,
                     ray_address: str | None = None, chunk_size: int = 16,
                     on_progress: Callable[[int], None] = lambda n: None) -> list[SceneResult]:
    """Evaluate `indices` of `dataset`; results come back sorted by index. Updates the reference cache."""
    cache = ReferenceCache.load(dataset)
    scene_ids = DriveDataset.open(dataset).episodes.column("scene_id").to_pylist()
    chunks = list(_chunks(indices, chunk_size))
    outputs: list[ChunkOutput] = []

    def known(chunk: list[int]) -> dict[str, tuple[str, np.ndarray]]:
        """The cached references of a chunk's scenes (only those travel to the worker)."""
        return {scene_ids[i]: cache.entries[scene_ids[i]] for i in chunk if scene_ids[i] in cache.entries}

    if ray_address:
        outputs = _run_on_ray(str(dataset), chunks, config, known, ray_address, on_progress)
    elif workers == 1:
        for chunk in chunks:
            outputs.append(evaluate_chunk(str(dataset), chunk, config, known(chunk)))
            on_progress(len(chunk))
    else:
        with worker_pool(workers) as pool:
            futures = {pool.submit(evaluate_chunk, str(dataset), chunk, config, known(chunk)): len(chunk)
                       for chunk in chunks}
            for future in as_completed(futures):
                outputs.append(future.result())
                on_progress(futures[future])
    fresh = {k: v for output in outputs for k, v in output.new_references.items()}
    if fresh:
        for scene_id, (digest, states) in fresh.items():
            cache.put(scene_id, digest, states)
        cache.save(dataset)
    return sorted((r for output in outputs for r in output.results), key=lambda r: r.index)


def _run_on_ray(dataset: str, chunks: list[list[int]], config: EvalConfig,
                known: Callable[[list[int]], dict[str, tuple[str, np.ndarray]]], address: str,
                on_progress: Callable[[int], None]) -> list[ChunkOutput]:
    """One Ray task per chunk (see `scenes.ray_tasks`)."""
    outputs = []
    for i, output in run_tasks(evaluate_chunk, [(dataset, chunk, config, known(chunk)) for chunk in chunks],
                               address):
        outputs.append(output)
        on_progress(len(chunks[i]))
    return outputs
