"""NAVSIM's non-reactive pseudo-simulation of a planner over a dataset's scenes, as a resumable sharded job.

Per scene: observation -> planner -> one plan (validated) -> tracked for 4 s by the LQR controller on the
kinematic bicycle -> scored against the cached PDM-Closed reference (PDMS or EPDMS). The plan is not
re-planned along the way: this is NAVSIM's pseudo-simulation, not a closed re-planning loop. A planner that
raises, or returns NaN or a wrongly shaped plan, scores 0 and the scene is listed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np

import planners
from eval.records import array_from_json, from_json, to_json
from eval.reference import ReferenceCache, scene_hash
from eval.results import SceneResult
from eval.scoring import reference_states, score_plans
from planners.drive_base import DrivePrivileged
from planners.pdm.scoring import MetricVersion
from scenes import CURRENT_INDEX, PREVIOUS_PLAN_STEPS, DriveScene
from scenes.store import DriveDataset
from scenes.store.units import parsed_unit_records, write_unit_record


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
            previous = plan_at(planner, scene, CURRENT_INDEX - PREVIOUS_PLAN_STEPS)
            previous.validate(planner.plan_spec)
        start = time.perf_counter()
        plan = plan_at(planner, scene, CURRENT_INDEX)
        latency_ms = 1e3 * (time.perf_counter() - start)
        plan.validate(planner.plan_spec)
    except Exception as error:  # noqa: BLE001 - any planner failure is a scored, listed failure
        message = f"{type(error).__name__}: {error}".splitlines()[0]
        return SceneResult(index=index, scene_id=meta.scene_id, scenario_type=meta.scenario_type.value,
                           error=message)
    states = None
    if config.reactive_agents:  # agents react to the simulated ego, which is then scored as simulated here
        from eval.reactive import reactive_agent_tracks
        from eval.scoring import simulate_plans

        states = simulate_plans(scene, plan.trajectory.poses[None])
        scene = replace(scene, agents=reactive_agent_tracks(scene, states[0]))
    evaluation = score_plans(scene, plan.trajectory.poses[None], reference, config.version,
                             previous_plans=None if previous is None else previous.trajectory.poses[None],
                             states=states)
    return SceneResult.from_scores(index, meta.scene_id, meta.scenario_type.value, evaluation.scores, 0,
                                   latency_ms=latency_ms, plan=plan.trajectory.poses.copy(),
                                   simulated_xy=evaluation.states[0, :, :2].copy())


def plan_at(planner: planners.Planner, scene: DriveScene, at: int) -> planners.Plan:
    """The planner's plan at step `at` of `scene`: its observation then, and the scene as privileged context
    (which only oracles read)."""
    return planner.plan_privileged(scene.observation(at), DrivePrivileged(scene, at))


@dataclass(frozen=True)
class ChunkOutput:
    """A unit's results, sorted by index, and the PDM-Closed references it had to compute (scene id ->
    (scene hash, (41, 11) states))."""

    results: list[SceneResult]
    new_references: dict[str, tuple[str, np.ndarray]]


def evaluate_chunk(dataset: str, indices: list[int], config: EvalConfig,
                   on_scene: Callable[[SceneResult], None] = lambda result: None) -> ChunkOutput:
    """Evaluate the scenes `indices` of `dataset` with references from its cache (computed where missing);
    `on_scene(result)` after each scene."""
    data = DriveDataset.open(dataset)
    planner = planners.load(config.planner)
    planner.seed = config.seed  # stochastic planners restart their generator from it at every scene (reset)
    cache = ReferenceCache.load(Path(dataset))
    results, fresh = [], {}
    for index in indices:
        scene = data[index]
        digest = scene_hash(scene)
        reference = cache.get(scene.metadata.scene_id, digest)
        if reference is None:
            reference = reference_states(scene)
            fresh[scene.metadata.scene_id] = (digest, reference)
        results.append(evaluate_scene(scene, index, planner, config, reference))
        on_scene(results[-1])
    return ChunkOutput(results, fresh)


@dataclass(frozen=True)
class NavsimEvaluation:
    """`diffplan eval navsim` as a sharded job (`diffplan.jobs.run_job` runs it) in its run folder: unit u
    evaluates scenes indices[u * chunk_size, ...] and commits `units/unit-NNNNN.json` (its results and new
    references). A rerun resumes: finished units are read back, the rest evaluated. `finish` adds the new
    references to the dataset's PDM-Closed cache and returns every result, sorted by index.

    Attributes:
        dataset: the dataset folder.
        config: what to run.
        indices: the scenes' indices in the dataset, in order.
        planner_fingerprint: the planner's name or its checkpoint's content hash (a resumed run must match).
        chunk_size: scenes per unit.
    """

    dataset: str
    config: EvalConfig
    indices: tuple[int, ...]
    planner_fingerprint: str
    chunk_size: int = 16
    command: ClassVar[str] = "diffplan eval navsim"

    def job_record(self) -> dict[str, object]:
        """Planner (and its fingerprint), dataset, metric, reactivity, seed and scenes: what a resumed run
        must match."""
        return {"planner": self.config.planner, "planner_fingerprint": self.planner_fingerprint,
                "dataset": str(Path(self.dataset).resolve()), "metric": self.config.version.value,
                "reactive_agents": self.config.reactive_agents, "seed": self.config.seed,
                "scenes": list(self.indices), "chunk_size": self.chunk_size}

    def job_defaults(self) -> dict[str, object]:
        """Empty: every field is in every job file."""
        return {}

    @property
    def num_units(self) -> int:
        """Number of chunks."""
        return -(-len(self.indices) // self.chunk_size)

    def chunk(self, unit: int) -> list[int]:
        """The dataset indices of unit `unit`'s scenes."""
        return list(self.indices[unit * self.chunk_size:(unit + 1) * self.chunk_size])

    def finished(self, root: Path) -> tuple[dict[int, ChunkOutput], dict[int, str]]:
        """Chunks an earlier run committed (their outputs), and those whose unit record is unreadable."""
        return parsed_unit_records(root, UNIT_DIR, self.num_units, _chunk_from_json)

    def run_unit(self, root: Path, unit: int, on_item: Callable[[ChunkOutput], None]) -> ChunkOutput:
        """Evaluate chunk `unit`, then commit its results and new references; its output."""
        output = evaluate_chunk(self.dataset, self.chunk(unit), self.config,
                                lambda result: on_item(ChunkOutput([result], {})))
        write_unit_record(Path(root), UNIT_DIR, unit, _chunk_to_json(output))
        return output

    def amount(self, report: ChunkOutput) -> int:
        """Scenes evaluated."""
        return len(report.results)

    def finish(self, root: Path, run) -> list[SceneResult]:
        """Save the references the units computed into the dataset's cache; every result, by index."""
        return merged_results(self.dataset, list(run.reports.values()))


def merged_results(dataset: str, outputs: list[ChunkOutput]) -> list[SceneResult]:
    """Every result of `outputs`, sorted by index, after adding their new references to the dataset's cache."""
    fresh = {k: v for output in outputs for k, v in output.new_references.items()}
    if fresh:
        cache = ReferenceCache.load(Path(dataset))
        for scene_id, (digest, states) in fresh.items():
            cache.put(scene_id, digest, states)
        cache.save(Path(dataset))
    return sorted((r for output in outputs for r in output.results), key=lambda r: r.index)


def evaluate_scenes(dataset: str | Path, config: EvalConfig, indices: list[int]) -> list[SceneResult]:
    """Evaluate `indices` of `dataset` in this process, without a job folder (tests, notebooks); the same
    results as `NavsimEvaluation` run by `diffplan.jobs.run_job`."""
    return merged_results(str(dataset), [evaluate_chunk(str(dataset), list(indices), config)])


UNIT_DIR = "units"


def _chunk_to_json(output: ChunkOutput) -> dict[str, object]:
    """Exact: floats as Python's shortest round-trip text (NaN as NaN)."""
    return {"results": [to_json(r) for r in output.results],
            "new_references": {k: [digest, to_json(states)] for k, (digest, states) in output.new_references.items()}}


def _chunk_from_json(body: dict) -> ChunkOutput:
    results = [from_json(SceneResult, r) for r in body["results"]]
    fresh = {k: (str(digest), array_from_json(states)) for k, (digest, states) in body["new_references"].items()}
    return ChunkOutput(results, fresh)
