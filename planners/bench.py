"""`diffplan bench planner`: batch-1 CPU latency of the learned planners on one thread.

Every entry of `PLANNER_CASES` builds (planner, observation); another planner (e.g. `navdp`) is benchmarked
by adding an entry. Figures per planner:
    latency_ms       the network alone (scene encoder + decoder or sampler) on features built beforehand,
                     median over repeated calls; what DiffusionDrive's FPS figures measure
    plan_latency_ms  `planner.plan(observation)` end to end, feature building included
Weights are untrained: latency does not depend on them. `ratio_dp_over_dd` is the vanilla 20-step diffusion
policy's network latency over DiffusionDrive's (2 truncated steps, 20 modes); the goal is >= 8. The
diffusion policy's denoiser has 8 layers (Diffusion Policy's default); `ratio_dp_2_layers_over_dd` gives
the ratio with a 2-layer denoiser, as deep as DiffusionDrive's cascade.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import default_collate

from planners.base import Planner
from planners.learned import LearnedPlanner
from planners.registry import load
from scenes import DriveObservation, ScenarioType

THREADS = 1


def drive_observation() -> DriveObservation:
    """One synthetic driving observation (a test-split intersection scene)."""
    from scenes.synthetic import generate_scene, scene_seed

    return generate_scene(scene_seed("test", 0, 0), "test", ScenarioType.INTERSECTION_LEFT).observation()


def drive_case(name: str) -> Callable[[], tuple[Planner, Any]]:
    """A case that loads planner `name` and one driving observation."""
    return lambda: (load(name), drive_observation())


# name -> builder of (planner, observation); add entries for new planners (e.g. "navdp").
PLANNER_CASES: dict[str, Callable[[], tuple[Planner, Any]]] = {
    name: drive_case(name) for name in ("diffusiondrive", "diffusion-policy", "regression", "ego-mlp")
}


SHIPPED_NAVDP = Path(__file__).resolve().parents[1] / "checkpoints" / "navdp-synth.safetensors"


def navdp_case(planner: str | Path = "navdp") -> tuple[Planner, Any]:
    """NavDP (16 samples x 10 steps + critic) on a default-camera depth frame: a box 1.5 m ahead on the left.
    `planner`: "navdp" (the default size, d 128 and 4 layers, untrained) or a checkpoint."""
    import numpy as np

    from scenes.nav import CameraSpec, NavObservation

    camera = CameraSpec()
    depth = np.full((camera.height, camera.width), 4.0, np.float32)
    depth[:, : camera.width // 2] = 1.5
    observation = NavObservation(depth, np.array([4.0, 1.0, 0.0], np.float32), np.zeros(2, np.float32), camera)
    return load(planner), observation.validate()


PLANNER_CASES["navdp"] = navdp_case
if SHIPPED_NAVDP.is_file():  # the shipped small model (d 64, 3 layers), in a source checkout
    PLANNER_CASES["navdp-synth"] = lambda: navdp_case(SHIPPED_NAVDP)


def median_ms(call: Callable[[], Any], seconds: float, min_calls: int = 5) -> float:
    """Median wall time [ms] of `call` over at least `min_calls` calls and about `seconds`, after 2 warm-ups."""
    for _ in range(2):
        call()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_calls or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        call()
        times.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(times)


def network_call(planner: Planner, observation: Any) -> Callable[[], Any]:
    """The model alone on batch-1 features built once (LearnedPlanner), else the whole `plan`."""
    if not isinstance(planner, LearnedPlanner):
        return lambda: planner.plan(observation)
    features = default_collate([planner.model.feature_builder()(observation)])
    model = planner.model.eval()
    propose = getattr(model, "propose", None)
    generator = torch.Generator().manual_seed(0)

    @torch.no_grad()
    def call() -> Any:
        return propose(features, generator=generator) if propose is not None else model(features)

    return call


def bench_planners(seconds: float, cases: dict[str, Callable[[], tuple[Planner, Any]]] | None = None
                   ) -> dict[str, Any]:
    """Latency of each case on `THREADS` CPU thread(s); `seconds` is the budget per planner and figure."""
    cases = PLANNER_CASES if cases is None else cases
    previous = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        latency, plan_latency = {}, {}
        for name, build in cases.items():
            torch.manual_seed(0)
            planner, observation = build()
            latency[name] = round(median_ms(network_call(planner, observation), seconds / 2), 3)
            plan_latency[name] = round(median_ms(partial(planner.plan, observation), seconds / 2), 3)
        if cases is PLANNER_CASES:  # the same ratio with the diffusion policy as deep as DiffusionDrive's decoder
            from planners.learned import DiffusionPolicyPlanner

            shallow = DiffusionPolicyPlanner(decoder_layers=2)
            equal_depth = median_ms(network_call(shallow, drive_observation()), seconds / 2)
    finally:
        torch.set_num_threads(previous)
    figures: dict[str, Any] = {"latency_ms": latency, "plan_latency_ms": plan_latency, "torch_threads": THREADS,
                               "batch_size": 1, "device": "cpu"}
    if "diffusiondrive" in latency and "diffusion-policy" in latency:
        figures["ratio_dp_over_dd"] = round(latency["diffusion-policy"] / latency["diffusiondrive"], 2)
    if cases is PLANNER_CASES:
        figures["ratio_dp_2_layers_over_dd"] = round(equal_depth / latency["diffusiondrive"], 2)
    return figures
