"""pSTL's RefineNet: its bounded correction on hand values, the candidate choice, rounds that touch only the
failing samples, the DPP term on hand-built sets, training that raises compliance on a hand-built objective,
and a checkpoint round trip that samples the same refined plans."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from planners.checkpoint import export_single_file, read_single_file
from planners.learned import LearnedDrivePlanner
from planners.pstl import PstlConfig, PstlModel, STLCondition, condition_tensor
from planners.pstl.actions import controls_to_plan
from planners.pstl.guidance import GuidanceSettings, Guide
from planners.pstl.refine import RefineNet, best_candidates, dpp_diversity_loss, refine_rounds
from planners.pstl.refine_training import RefineTrainSettings, RefineWindow, train_refiner
from scenes.synthetic import generate_scene
from tests.planners.test_pstl_model import TINY

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def features_of(count: int):
    """DiffusionDrive features of `count` synthetic test scenes, collated."""
    from torch.utils.data import default_collate

    builder = PstlModel(PstlConfig(**TINY)).feature_builder()
    return default_collate([builder(generate_scene(1_100_000_000 + k, "test").observation())
                            for k in range(count)])


def constant_net(bias: float, scene_dim: int = 4) -> RefineNet:
    """A RefineNet whose raw output is `bias` everywhere (zero last-layer weights)."""
    net = RefineNet(scene_dim, 8, 8).requires_grad_(False)
    with torch.no_grad():
        net.net[-1].weight.zero_()
        net.net[-1].bias.fill_(bias)
    return net


def test_correction_is_scaled_into_the_control_range_that_is_left():
    u = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0]).repeat(2, 8, 1)[..., :2].clone()
    u[..., 0] = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0, 0.2, 0.2, 0.2])
    u[..., 1] = 0.9
    scene, condition = torch.zeros(2, 4), torch.zeros(2, 9)
    o = math.tanh(0.5)
    up = constant_net(0.5)(scene, condition, u, 2)
    torch.testing.assert_close(up, u + o * (1.0 - u))
    down = constant_net(-0.5)(scene, condition, u, 2)
    torch.testing.assert_close(down, u - o * (1.0 + u))
    assert float(up.max()) <= 1.0 and float(down.min()) >= -1.0
    torch.testing.assert_close(constant_net(0.0)(scene, condition, u, 2), u)


def test_merge_features_are_frozen_and_pooled_per_window():
    net = RefineNet(4, 8, 8)
    assert not any(p.requires_grad for p in net.merge.parameters())
    assert all(p.requires_grad for p in net.net.parameters())
    net.requires_grad_(False)
    u = torch.rand(8, 8, 2, generator=torch.Generator().manual_seed(0)) * 2 - 1
    scene, condition = torch.zeros(8, 4), torch.zeros(8, 9)
    together = net(scene, condition, u, 4)  # two windows of 4
    apart = torch.cat([net(scene[:4], condition[:4], u[:4], 4), net(scene[4:], condition[4:], u[4:], 4)])
    torch.testing.assert_close(together, apart)
    changed = u.clone()
    changed[5] = -changed[5]  # a sample of the second window: the first window's outputs stay
    moved = net(scene, condition, changed, 4)
    torch.testing.assert_close(moved[:4], together[:4])
    assert float((moved[4] - together[4]).abs().max()) > 0.0


def test_best_candidate_is_the_highest_rho_ties_to_the_latest():
    candidates = torch.arange(3.0)[:, None, None, None].expand(3, 4, 8, 2)  # candidate k is all k
    rho = torch.tensor([[0.5, -1.0, 2.0, 0.0], [0.1, -2.0, 2.0, 1.0], [0.2, -3.0, 1.0, 1.0]])
    u, best = best_candidates(candidates, rho)
    assert u[:, 0, 0].tolist() == [0.0, 0.0, 1.0, 2.0]
    assert best.tolist() == [0.5, -1.0, 2.0, 1.0]


def test_rounds_touch_only_failing_samples_and_stop_when_all_pass():
    net = constant_net(0.5).requires_grad_(False)
    u = torch.zeros(3, 8, 2)
    u[1, 0, 0] = 0.9  # passes from the start
    calls = []

    def score(z: torch.Tensor) -> torch.Tensor:  # passes once the first control is above 0.6
        calls.append(1)
        return z[:, 0, 0] - 0.6

    out = refine_rounds(net, torch.zeros(3, 4), torch.zeros(3, 9), u, torch.tensor([-1.0, 1.0, -1.0]), score,
                        rounds=5, samples=3)
    o = math.tanh(0.5)
    first, second = o, o + o * (1.0 - o)  # 0.462 fails, 0.710 passes: two rounds, then stop
    assert len(calls) == 2
    np.testing.assert_allclose(out[:, 0, 0].detach().numpy(), [second, 0.9, second], rtol=1e-6)
    assert first < 0.6 < second


def test_dpp_term_on_hand_built_sets():
    q2 = math.exp(2.0)  # ρ = 1: quality e
    same = torch.zeros(2, 8, 2)
    rho = torch.ones(2)
    # identical samples: L = q² [[1, 1], [1, 1]], eigenvalues 2 q² and 0
    assert float(dpp_diversity_loss(same, rho)) == pytest.approx(-(1.0 - 1.0 / (1.0 + 2.0 * q2)), rel=1e-9)
    far = torch.zeros(2, 8, 2)
    far[1] = 100.0  # S ≈ I: L = q² I
    assert float(dpp_diversity_loss(far, rho)) == pytest.approx(-2.0 * (1.0 - 1.0 / (1.0 + q2)), rel=1e-9)
    assert float(dpp_diversity_loss(far, torch.tensor([1.0, -0.5]))) == pytest.approx(
        -(1.0 - 1.0 / (1.0 + q2)), rel=1e-9)  # a failing sample has no quality
    assert float(dpp_diversity_loss(far, -rho)) == 0.0


def test_training_raises_compliance_on_a_hand_built_objective():
    # controls rolled out at 8 m/s; ρ̃ = 1 - |y_8| [m]: a plan must end within 1 m of its lane (|ω| below
    # about 0.014 rad/s). Random turn rates in +-0.025 rad/s put about half the samples outside; RefineNet
    # learns to steer them back
    generator = torch.Generator().manual_seed(0)
    v0 = torch.tensor(8.0)

    def decode(u: torch.Tensor, speeds: torch.Tensor) -> torch.Tensor:
        return controls_to_plan(u, speeds)[..., :2]

    def objective(xy: torch.Tensor) -> torch.Tensor:
        return 1.0 - xy[:, -1, 1].abs()

    windows = []
    for _ in range(16):
        u = torch.zeros(1, 16, 8, 2)
        u[..., 0] = (torch.rand(1, 16, 1, generator=generator) - 0.5) * 0.05
        windows.append(RefineWindow(torch.zeros(4), torch.zeros(9), v0, u, objective))
    torch.manual_seed(0)
    net = RefineNet(4, 32, 8)
    history = train_refiner(net, windows, decode, RefineTrainSettings(epochs=30, batch_windows=4, lr=3e-3),
                            torch.Generator().manual_seed(0))
    assert 0.3 < history[0]["input_compliance"] < 0.7
    assert history[-1]["compliance"] > 0.95 > history[-1]["input_compliance"] + 0.25
    assert history[-1]["stl"] < 0.1 * history[0]["stl"]


@pytest.mark.parametrize(("field", "value", "words"), [
    ("epochs", 0, "epochs = 0"), ("lr", 0.0, "lr = 0.0"), ("stl_weight", -1.0, "stl_weight = -1.0"),
])
def test_bad_refine_settings_are_one_line_errors(field, value, words):
    with pytest.raises(ValueError) as error:
        RefineTrainSettings(**{field: value}).validate()
    assert words in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(ValueError, match="must be >= 0, not both 0|both >= 0, not both 0"):
        RefineTrainSettings(stl_weight=0.0, diversity_weight=0.0).validate()


def test_sampling_with_refinenet_round_trips_through_a_checkpoint(tmp_path):
    features = features_of(4)
    torch.manual_seed(0)
    model = PstlModel(PstlConfig(**TINY, action_space="controls", refine_hidden=16))
    with torch.no_grad():  # a visible correction: every raw output 0.3
        model.refiner.net[-1].weight.zero_()
        model.refiner.net[-1].bias.fill_(0.3)
    model.eval()
    condition = condition_tensor([STLCondition.default()] * 4)
    guide = Guide(lambda xy: xy[:, -1, 1] - 1e3, GuidanceSettings(iterations=0, refine_rounds=2))  # all fail
    plain = model.sample(features, condition, torch.Generator().manual_seed(1), sampler="ddim", num_samples=4)
    refined = model.sample(features, condition, torch.Generator().manual_seed(1), sampler="ddim", num_samples=4,
                           guide=guide)
    assert float((refined - plain).abs().max()) > 0.1  # every sample was corrected twice

    class PstlTestPlanner(LearnedDrivePlanner):
        model_class = PstlModel
        name = "pstl"

    path = export_single_file(PstlTestPlanner(model=model), tmp_path / "refined.safetensors")
    config, state = read_single_file(path)
    loaded = PstlModel(PstlConfig.from_json(config["model"]))
    loaded.load_state_dict(state, strict=True)
    loaded.eval()
    again = loaded.sample(features, condition, torch.Generator().manual_seed(1), sampler="ddim", num_samples=4,
                          guide=guide)
    assert torch.equal(refined, again)
    without = PstlModel(PstlConfig(**TINY))
    with pytest.raises(ValueError, match="this model has no RefineNet"):
        without.sample(features, condition, sampler="ddim", guide=guide)
