"""pSTL's conditional VAE baseline: config validation, the closed-form KL, seeded sampling, a tiny model
trained to follow v_max, the unsupported sampler / guide errors and a state_dict round trip."""

import math
import time

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from planners.learned import ModelConfigError
from planners.pstl import (
    DrivingMode,
    PstlConfig,
    PstlModel,
    PstlTarget,
    PstlVaeConfig,
    PstlVaeModel,
    STLCondition,
    condition_tensor,
)
from planners.pstl.guidance import Guide
from planners.pstl.vae import gaussian_kl
from scenes.synthetic import generate_scene
from tests.factories import fit_full_batch

TINY = {"d_model": 32, "depth": 1, "heads": 2, "ffn_dim": 64, "max_agents": 8, "max_polylines": 16,
        "hidden_dim": 128, "latent_dim": 16}
V_MAX = (5.0, 12.0)  # [m/s] the two conditions; the targets drive at v_max - 1
STEPS = 600


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def keep(v_max: float) -> STLCondition:
    return STLCondition(DrivingMode.KEEP, np.array([0.0, v_max, 0.5, 0.2, 0.5]))


@pytest.fixture(scope="module")
def scenes():
    """(a TINY untrained model, DriveFeatures of 4 test scenes)."""
    torch.manual_seed(0)
    model = PstlVaeModel(PstlVaeConfig(**TINY)).eval()
    builder = model.feature_builder()
    observations = [generate_scene(1_100_000_000 + k, "test").observation() for k in range(4)]
    return model, default_collate([builder(obs) for obs in observations])


def test_config_validation_and_defaults():
    c = PstlVaeConfig().validate()
    assert (c.latent_dim, c.hidden_dim, c.hidden_layers, c.kl_weight) == (64, 256, 2, 0.01)
    assert PstlVaeModel.default_lr == 3e-4 and PstlVaeModel.config_class is PstlVaeConfig
    for field, value, message in (("latent_dim", 0, "latent_dim=0: must be positive"),
                                  ("hidden_layers", -1, "hidden_layers=-1: must be positive"),
                                  ("kl_weight", -0.5, "kl_weight=-0.5: must be 0 or more")):
        with pytest.raises(ModelConfigError, match=message):
            PstlVaeConfig(**{field: value}).validate()
    parsed = PstlVaeConfig.from_text(["kl_weight=0.05", "latent_dim=8"])
    assert parsed == PstlVaeConfig(kl_weight=0.05, latent_dim=8)


def test_kl_matches_the_closed_form():
    mean = torch.tensor([[0.0, 0.0], [1.0, -2.0], [0.5, 0.0]], dtype=torch.float64)
    logvar = torch.tensor([[0.0, 0.0], [0.0, 0.0], [math.log(4.0), math.log(0.25)]], dtype=torch.float64)
    expected = [0.0,
                0.5 * (1.0 + 4.0),  # unit variances: ½ |μ|²
                0.5 * (0.25 + 4.0 - 1.0 - math.log(4.0)) + 0.5 * (0.25 - 1.0 - math.log(0.25))]
    np.testing.assert_allclose(gaussian_kl(mean, logvar).numpy(), expected, rtol=1e-12)
    assert gaussian_kl(torch.zeros(4, 3, 16), torch.zeros(4, 3, 16)).shape == (4, 3)


def test_loss_is_recon_plus_weighted_kl(scenes):
    model, features = scenes
    plan = torch.zeros(4, 8, 3)
    plan[:, :, 0] = 4.0 * 0.5 * torch.arange(1, 9)
    torch.manual_seed(1)
    loss, parts = model.loss(features, PstlTarget(plan, condition_tensor([keep(5.0)] * 4)))
    assert set(parts) == {"recon", "kl"} and parts["kl"] >= 0.0 and parts["recon"] > 0.0
    assert float(loss.detach()) == pytest.approx(parts["recon"] + 0.01 * parts["kl"], rel=1e-5)
    with pytest.raises(ValueError, match="needs a condition"):
        model.loss(features, plan)
    with pytest.raises(ValueError, match=r"condition has shape \(3, 9\), expected \(4, 9\)"):
        model.loss(features, plan, condition_tensor([keep(5.0)] * 3))


def test_samples_have_shapes_and_follow_the_seed(scenes):
    model, features = scenes
    condition = condition_tensor([keep(5.0)] * 4)
    first = model.sample(features, condition, torch.Generator().manual_seed(3), num_samples=5)
    again = model.sample(features, condition, torch.Generator().manual_seed(3), num_samples=5)
    other = model.sample(features, condition, torch.Generator().manual_seed(4), num_samples=5)
    assert first.shape == (4, 5, 8, 3) and bool(torch.isfinite(first).all())
    assert torch.equal(first, again)
    assert float((first - other).abs().max()) > 1e-3
    assert float((first[:, 0] - first[:, 1]).abs().max()) > 1e-3  # samples of one scene differ
    one = model.sample(features, condition, torch.Generator().manual_seed(3), sampler=None, steps=1)
    assert one.shape == (4, 1, 8, 3)
    plan = model(features, torch.Generator().manual_seed(3))
    assert plan.shape == (4, 8, 3)
    keep_default = condition_tensor([STLCondition.default()] * 4)
    assert torch.equal(plan, model.sample(features, keep_default, torch.Generator().manual_seed(3))[:, 0])
    ddpm = PstlModel(PstlConfig(**{k: v for k, v in TINY.items() if k != "latent_dim"}))
    assert model.spec() == ddpm.spec()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"sampler": "ddim"}, "sampler 'ddim': the VAE has a single decoder pass, expected None or 'vae'"),
    ({"steps": 10}, "steps=10: the VAE has a single decoder pass, expected None or 1"),
    ({"guide": Guide(lambda xy: xy.sum(dim=(1, 2)))}, "guide is unsupported: a VAE has no denoising chain to guide"),
    ({"num_samples": 0}, "need num_samples >= 1, got 0"),
])
def test_bad_sampler_and_guide_are_one_line_value_errors(scenes, kwargs, message):
    model, features = scenes
    with pytest.raises(ValueError) as error:
        model.sample(features, condition_tensor([keep(5.0)] * 4), **kwargs)
    assert str(error.value) == message


@pytest.fixture(scope="module")
def trained(scenes):
    """A TINY model trained for STEPS steps to drive straight at v_max - 1 for v_max 5 and 12 m/s on the 4
    scenes: (model, features, seconds of training)."""
    _, features = scenes
    torch.manual_seed(0)
    model = PstlVaeModel(PstlVaeConfig(**TINY))
    times = 0.5 * torch.arange(1, 9, dtype=torch.float32)
    rows, plans, conditions = [], [], []
    for v_max in V_MAX:
        for i in range(4):
            plan = torch.zeros(8, 3)
            plan[:, 0] = (v_max - 1.0) * times
            rows.append(i)
            plans.append(plan)
            conditions.append(keep(v_max))
    index = torch.tensor(rows)
    batch = type(features)(*(f[index] for f in features))
    target = PstlTarget(torch.stack(plans), condition_tensor(conditions))
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
    start = time.perf_counter()
    losses = fit_full_batch(model, batch, target, optimiser, STEPS)
    seconds = time.perf_counter() - start
    model.eval()
    assert np.mean(losses[-20:]) < 0.1 * np.mean(losses[:20])
    return model, features, seconds


def test_samples_follow_v_max(trained):
    model, features, seconds = trained
    assert seconds < 20.0
    finals = []
    for v_max in V_MAX:
        plans = model.sample(features, condition_tensor([keep(v_max)] * 4), torch.Generator().manual_seed(3),
                             num_samples=8)
        assert plans.shape == (4, 8, 8, 3)
        finals.append(plans[:, :, -1, 0])
        assert float(plans[..., 1].abs().max()) < 1.0 and float(plans[..., 2].abs().max()) < 0.5  # straight
    slow, fast = finals
    assert float(slow.mean()) == pytest.approx(16.0, abs=3.0)  # 4 m/s for 4 s
    assert float(fast.mean()) == pytest.approx(44.0, abs=4.0)  # 11 m/s for 4 s
    assert float(fast.min()) > float(slow.max()) + 10.0  # every sample


def test_state_dict_round_trip_gives_identical_samples(trained):
    model, features, _ = trained
    loaded = PstlVaeModel(PstlVaeConfig.from_json(model.config.to_json()))
    loaded.load_state_dict(model.state_dict(), strict=True)
    loaded.eval()
    condition = condition_tensor([keep(5.0), keep(12.0), keep(8.0), STLCondition.default()])
    before = model.sample(features, condition, torch.Generator().manual_seed(9), num_samples=3)
    after = loaded.sample(features, condition, torch.Generator().manual_seed(9), num_samples=3)
    assert torch.equal(before, after)
    assert torch.equal(model(features, torch.Generator().manual_seed(9)),
                       loaded(features, torch.Generator().manual_seed(9)))
