"""RTI-DP warm starts of DiffusionDrive: the same noise from the anchors is the cold start, the previous plan
is shifted exactly, and a warm-started call takes fewer denoising passes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import planners
from planners.learned.diffusiondrive import DiffusionDriveModel
from planners.learned.vector import denormalise_xy, normalise_xy
from planners.learned.warm_start import WarmStart, shifted_plan
from scenes.drive import CURRENT_INDEX
from scenes.synthetic import generate_scene

CHECKPOINT = Path(__file__).resolve().parents[2] / "checkpoints" / "diffusiondrive-synth.safetensors"


@pytest.fixture(scope="module")
def scene():
    return generate_scene(1100000004, "test")


def test_warm_start_from_the_anchors_at_the_same_noise_is_the_cold_start(scene):
    planner = planners.load(CHECKPOINT)
    model = planner.model
    assert isinstance(model, DiffusionDriveModel)
    features = planner.batched_features([scene.observation()])
    cold = model.propose(features, generator=torch.Generator().manual_seed(3))
    warm = model.propose(features, generator=torch.Generator().manual_seed(3), start=model.anchors[None].clone(),
                         start_t=model.inference_start, steps=model.inference_steps)
    for a, b in zip(cold, warm, strict=True):
        assert torch.equal(a, b)
    other = model.propose(features, generator=torch.Generator().manual_seed(3),
                          start=model.anchors[None].flip(1).clone())
    assert not torch.equal(other[1], cold[1])  # the start really is what gets noised


def test_shifted_plan_is_the_previous_plan_later_in_the_new_frame():
    previous = np.column_stack([5.0 * np.arange(1, 9), np.zeros(8)])  # 10 m/s straight ahead, 0.5 s apart
    origin = np.array([100.0, 50.0, np.pi / 2])  # facing +y
    moved = np.array([100.0, 51.0, np.pi / 2])  # 0.1 s later: 1 m along the plan
    shifted = shifted_plan(previous, origin, moved, 0.1)
    np.testing.assert_allclose(shifted, np.column_stack([5.0 * np.arange(1, 9), np.zeros(8)]), atol=1e-9)
    same = shifted_plan(previous, origin, origin, 0.0)
    np.testing.assert_allclose(same, previous, atol=1e-9)
    half = shifted_plan(previous, origin, origin, 0.25)  # between waypoints, and 0.25 s past the end
    np.testing.assert_allclose(half[:, 0], 5.0 * np.arange(1, 9) + 2.5, atol=1e-9)


def test_a_warm_planner_starts_cold_then_takes_fewer_denoising_passes(scene, monkeypatch):
    planner = planners.load(CHECKPOINT)
    model = planner.model
    assert isinstance(model, DiffusionDriveModel)
    calls = []
    decode = model.decode
    monkeypatch.setattr(model, "decode", lambda *a, **k: calls.append(1) or decode(*a, **k))
    planner.warm_start = WarmStart(start_t=4, steps=1, replan_interval_s=0.1)
    planner.reset()
    first = planner.plan(scene.observation(CURRENT_INDEX - 1))
    assert len(calls) == model.inference_steps  # no previous plan: cold
    cold = planners.load(CHECKPOINT)
    cold.reset()
    np.testing.assert_array_equal(first.trajectory.poses,
                                  cold.plan(scene.observation(CURRENT_INDEX - 1)).trajectory.poses)
    calls.clear()
    second = planner.plan(scene.observation(CURRENT_INDEX))
    assert len(calls) == 1 and second.candidates is not None
    assert np.isfinite(second.trajectory.poses).all()
    # the warm-started mode stays near the shifted previous plan, as RTI-DP intends
    shifted = shifted_plan(first.trajectory.poses[:, :2], scene.ego.pose[CURRENT_INDEX - 1],
                           scene.ego.pose[CURRENT_INDEX], 0.1)
    nearest = np.linalg.norm(second.candidates[..., :2] - shifted, axis=-1).mean(-1).min()
    assert nearest < 1.0
    planner.reset()
    calls.clear()
    planner.plan(scene.observation(CURRENT_INDEX))
    assert len(calls) == model.inference_steps  # reset forgets the previous plan


def test_warm_start_settings_are_checked():
    with pytest.raises(ValueError, match="steps"):
        WarmStart(start_t=2, steps=3).validate()
    with pytest.raises(ValueError, match="start_t"):
        WarmStart(start_t=60, steps=1).validate()
    assert replace(WarmStart(), replan_interval_s=0.5).validate().replan_interval_s == 0.5


def test_the_ddim_baseline_warm_starts_from_its_previous_plan(scene, monkeypatch):
    """diffusion-policy (untrained): the first call is the cold 20-step DDIM; later calls take `steps` passes
    from the shifted previous plan, and at a low noise level stay next to it."""
    from planners.learned.diffusion_policy import DiffusionPolicyModel

    planner = planners.load("diffusion-policy")
    planner.warm_start = WarmStart(start_t=1, steps=1, replan_interval_s=0.1, max_start_t=1000)
    planner.reset()
    calls = []
    original = DiffusionPolicyModel.denoise
    monkeypatch.setattr(DiffusionPolicyModel, "denoise", lambda self, *a: calls.append(1) or original(self, *a))
    first = planner.plan(scene.observation(CURRENT_INDEX - 1))
    assert len(calls) == 20 and planner.last_network_steps == 20
    second = planner.plan(scene.observation(CURRENT_INDEX))
    assert len(calls) == 21 and planner.last_network_steps == 1
    shifted = shifted_plan(first.trajectory.poses[:, :2], scene.ego.pose[CURRENT_INDEX - 1],
                           scene.ego.pose[CURRENT_INDEX], 0.1)
    # the plan space is clipped to [-1, 1] after normalising (this untrained model's plans reach its edges)
    clipped = denormalise_xy(normalise_xy(torch.from_numpy(shifted)).clamp(-1.0, 1.0)).numpy()
    # at t = 1, alpha_bar = 0.9998: the sample is the shifted plan up to 1.4% of the noise, whatever the network says
    assert np.abs(second.trajectory.poses[:, :2] - clipped).max() < 1.0
    with pytest.raises(ValueError, match="0..999"):
        WarmStart(start_t=1000, steps=1, max_start_t=1000).validate()
