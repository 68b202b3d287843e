"""pSTL's control action space: the unicycle rollout on hand values, its exact inverse, and a
tiny model denoising controls that follows v_max."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from planners.learned import ModelConfigError
from planners.pstl import DrivingMode, PstlConfig, PstlModel, PstlTarget, STLCondition, condition_tensor
from planners.pstl.actions import ACCEL_MAX, OMEGA_MAX, controls_to_plan, plan_to_controls
from planners.pstl.model import current_speed
from scenes.synthetic import generate_scene
from tests.factories import fit_full_batch

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TINY = {"d_model": 32, "depth": 1, "heads": 2, "ffn_dim": 64, "max_agents": 8, "max_polylines": 16,
        "hidden_dim": 128, "action_space": "controls"}


def test_rollout_on_hand_values():
    straight = controls_to_plan(torch.zeros(1, 8, 2, dtype=torch.float64), torch.tensor([6.0], dtype=torch.float64))
    np.testing.assert_allclose(straight[0, :, 0].numpy(), 3.0 * np.arange(1, 9))  # 6 m/s x 0.5 s per step
    np.testing.assert_allclose(straight[0, :, 1:].numpy(), 0.0)
    u = torch.zeros(1, 8, 2, dtype=torch.float64)
    u[0, :, 1] = -2.0 / ACCEL_MAX  # brake at 2 m/s^2 from 3 m/s: 2, 1, 0, 0, ... m/s
    braking = controls_to_plan(u, torch.tensor([3.0], dtype=torch.float64))
    np.testing.assert_allclose(braking[0, :, 0].numpy(), [1.0, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5])
    u = torch.zeros(1, 8, 2, dtype=torch.float64)
    u[0, :, 0] = 0.4 / OMEGA_MAX  # 0.4 rad/s
    turning = controls_to_plan(u, torch.tensor([4.0], dtype=torch.float64))
    np.testing.assert_allclose(turning[0, :, 2].numpy(), 0.2 * np.arange(1, 9))
    assert turning[0, 0, 0].item() == pytest.approx(2.0 * math.cos(0.2)) and turning[0, 0, 1].item() == pytest.approx(
        2.0 * math.sin(0.2))


def test_plan_to_controls_inverts_the_rollout():
    generator = torch.Generator().manual_seed(0)
    u = (torch.rand(16, 8, 2, generator=generator, dtype=torch.float64) - 0.5) * 0.6
    v0 = 6.0 + 4.0 * torch.rand(16, generator=generator, dtype=torch.float64)  # never stops: a >= -1.5 m/s^2
    np.testing.assert_allclose(plan_to_controls(controls_to_plan(u, v0), v0).numpy(), u.numpy(), atol=1e-12)


def test_bad_action_space_is_a_one_line_config_error():
    with pytest.raises(ModelConfigError, match="action_space='wheels': expected one of xy, controls"):
        PstlConfig(action_space="wheels").validate()


def test_a_tiny_controls_model_follows_v_max():
    """Targets brake at 2 m/s^2 under v_max 5 and speed up at 1 m/s^2 under v_max 12, from each scene's speed."""
    torch.manual_seed(0)
    model = PstlModel(PstlConfig(**TINY))
    builder = model.feature_builder()
    observations = [generate_scene(1_100_000_000 + k, "test").observation() for k in range(4)]
    features = default_collate([builder(obs) for obs in observations])
    v0 = current_speed(features)
    plans, conditions, rows = [], [], []
    for v_max, accel in ((5.0, -2.0), (12.0, 1.0)):
        u = torch.zeros(4, 8, 2)
        u[..., 1] = accel / ACCEL_MAX
        plans.append(controls_to_plan(u, v0))
        conditions += [STLCondition(DrivingMode.KEEP, np.array([0.0, v_max, 0.5, 0.2, 0.5]))] * 4
        rows += list(range(4))
    index = torch.tensor(rows * 4)
    batch = type(features)(*(f[index] for f in features))
    target = PstlTarget(torch.cat(plans).repeat(4, 1, 1), condition_tensor(conditions * 4))
    losses = fit_full_batch(model, batch, target, torch.optim.Adam(model.parameters(), lr=2e-3), 600)
    model.eval()
    assert np.mean(losses[-50:]) < 0.5 * np.mean(losses[:20])
    finals = []
    for v_max in (5.0, 12.0):
        condition = condition_tensor([STLCondition(DrivingMode.KEEP, np.array([0.0, v_max, 0.5, 0.2, 0.5]))] * 4)
        samples = model.sample(features, condition, torch.Generator().manual_seed(3), sampler="ddim", num_samples=4)
        finals.append(samples[:, :, -1, 0])
        speeds = torch.diff(torch.cat([torch.zeros_like(samples[..., :1, 0]), samples[..., 0]], -1), dim=-1) / 0.5
        assert bool((speeds.diff(dim=-1).abs() <= ACCEL_MAX * 0.5 + 1e-4).all())  # dynamically feasible
    slow, fast = finals  # (scene, sample) final x [m]
    assert bool((fast.min(dim=1).values > slow.max(dim=1).values + 5.0).all())  # every scene, every sample
    for got, expected in zip(finals, plans, strict=True):  # near the targets' final x, per scene
        np.testing.assert_allclose(got.mean(dim=1).numpy(), expected[:, -1, 0].numpy(), atol=8.0)  # 600 steps
