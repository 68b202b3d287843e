"""pSTL's conditioned diffusion policy: the condition (validation, RuleParams round trip, tensor), the schedule
(values, ε-oracle samplers), a tiny model trained to follow v_max, the guidance hook and a checkpoint file."""

import math

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from planners.checkpoint import export_single_file, read_single_file
from planners.learned import LearnedDrivePlanner, ModelConfigError
from planners.pstl import (
    ConditionError,
    DrivingMode,
    PstlConfig,
    PstlModel,
    PstlTarget,
    STLCondition,
    condition_tensor,
    headings_from_xy,
)
from planners.pstl import schedule as sch
from planners.pstl.condition import RELAX_LOOSEST, free_v_min, relax_conditions, theta_denormalised
from planners.pstl.guidance import GuidanceSettings, Guide
from scenes.synthetic import generate_scene
from stl.rules import DEFAULT_PARAMS, LaneChangeParams, RuleParams, SafeDistanceParams, SpeedBandParams
from tests.factories import fit_full_batch

TINY = {"d_model": 32, "depth": 1, "heads": 2, "ffn_dim": 64, "max_agents": 8, "max_polylines": 16,
        "hidden_dim": 128}
V_MAX = (5.0, 12.0)  # [m/s] the two conditions; the targets drive at v_max - 1


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def keep(v_max: float) -> STLCondition:
    return STLCondition(DrivingMode.KEEP, np.array([0.0, v_max, 0.5, 0.2, 0.5]))


# ---- condition ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("mode", "theta", "message"), [
    (0, [0, 5, 0.5, 0.2], "theta has 4 values, expected 5: v_min, v_max, d_lat, h_max, d_safe"),
    (0, [0, 5, 0.5, math.nan, 0.5], "theta.h_max = nan is not a finite number"),
    (0, [0, 45, 0.5, 0.2, 0.5], "theta.v_max = 45 is outside the calibrated range [0.5, 30] m/s"),
    (0, [0, 5, 0.5, 0.2, -1], "theta.d_safe = -1 is outside the calibrated range [0, 10] m"),
    (0, [6, 5, 0.5, 0.2, 0.5], "theta.v_min = 6 must be below theta.v_max = 5 m/s"),
    (7, [0, 5, 0.5, 0.2, 0.5], "mode = 7 is not a driving mode; expected 0 KEEP, 1 LEFT, 2 RIGHT, 3 STOP"),
])
def test_bad_conditions_raise_one_line_naming_the_field(mode, theta, message):
    with pytest.raises(ConditionError) as error:
        STLCondition(mode, np.array(theta, dtype=float)).validate()
    assert str(error.value) == message
    assert isinstance(error.value, ValueError)


def test_rule_params_round_trip_for_keep_and_left():
    keep_condition = STLCondition.from_rule_params(DrivingMode.KEEP, DEFAULT_PARAMS)
    np.testing.assert_array_equal(keep_condition.theta, [0.0, 15.0, 0.5, 0.2, 0.5])
    assert keep_condition.to_rule_params(DEFAULT_PARAMS) == RuleParams(
        **{**dict(DEFAULT_PARAMS.items()), "lane_change_left": None, "lane_change_right": None})
    np.testing.assert_array_equal(STLCondition.default().theta, keep_condition.theta)

    params = RuleParams(speed_band=SpeedBandParams(1.0, 9.0), lane_change_left=LaneChangeParams(0.8, 0.3),
                        safe_distance=SafeDistanceParams(2.0))
    left = STLCondition.from_rule_params(DrivingMode.LEFT, params)
    assert (left.mode, left.v_min, left.v_max, left.d_lat, left.h_max, left.d_safe) == (
        DrivingMode.LEFT, 1.0, 9.0, 0.8, 0.3, 2.0)
    assert left.to_rule_params(RuleParams()) == params
    back = left.to_rule_params(DEFAULT_PARAMS)  # keeps base's other rules, drops the lane rules LEFT does not ask
    assert back.lane_keeping is None and back.lane_change_right is None and back.comfort == DEFAULT_PARAMS.comfort
    assert back.only(params.names) == params
    with pytest.raises(ConditionError, match="rules.lane_change_right is missing"):
        STLCondition.from_rule_params(DrivingMode.RIGHT, params)


def test_condition_tensor_is_one_hot_and_normalised_theta():
    out = condition_tensor([keep(5.0), STLCondition(DrivingMode.STOP, np.array([-5.0, 30.0, 5.0, 0.02, 5.0]))])
    assert out.shape == (2, 9) and out.dtype == torch.float32
    np.testing.assert_allclose(out[0, :4], [1, 0, 0, 0])
    np.testing.assert_allclose(out[1], [0, 0, 0, 1, -1, 1, 1, -1, 0], atol=1e-6)
    np.testing.assert_allclose(out[0, 5], 2 * (5.0 - 0.5) / 29.5 - 1, rtol=1e-6)
    np.testing.assert_allclose(theta_denormalised(out[:, 4:].double()),
                               [[0.0, 5.0, 0.5, 0.2, 0.5], [-5.0, 30.0, 5.0, 0.02, 5.0]], atol=1e-5)


def theta_of(condition: torch.Tensor) -> torch.Tensor:
    return theta_denormalised(condition[:, 4:].double())


def test_relabelling_only_widens_theta_towards_the_loosest():
    tight = keep(9.0).theta.copy()
    tight[0], tight[2], tight[3], tight[4] = 7.0, 0.3, 0.1, 1.2  # v 7 .. 9 m/s, |d| 0.3 m, 0.1 rad, gap 1.2 m
    loose = np.array([-2.0, 25.0, 4.0, 1.0, 0.0])  # looser than RELAX_LOOSEST in every field: kept
    conditions = condition_tensor([STLCondition(DrivingMode.LEFT, tight)] * 2000
                                  + [STLCondition(DrivingMode.KEEP, loose)] * 100)
    assert relax_conditions(conditions, 0.0) is conditions
    out = relax_conditions(conditions, 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(out[:, :4], conditions[:, :4])
    theta, before = theta_of(out), theta_of(conditions)
    np.testing.assert_allclose(theta[:, 1], before[:, 1], atol=1e-5)  # v_max, the speed command, stays tight
    lower = torch.tensor([True, False, False, False, True])  # v_min and d_safe are lower bounds
    loosest = torch.tensor(RELAX_LOOSEST, dtype=torch.float64)
    loosest[1] = before[:, 1].max()  # not relaxed
    widened = torch.where(lower, theta <= before + 1e-5, theta >= before - 1e-5)
    within = torch.where(lower, theta >= torch.minimum(before, loosest) - 1e-5,
                         theta <= torch.maximum(before, loosest) + 1e-5)
    assert bool(widened.all()) and bool(within.all())
    np.testing.assert_allclose(theta[2000:], before[2000:], atol=1e-5)
    moved = (theta[:2000] - before[:2000]).abs() > 1e-4
    rows = moved.any(1).double().mean()
    assert 0.5 * (1 - 0.5 ** 4) - 0.04 < float(rows) < 0.5 * (1 - 0.5 ** 4) + 0.04  # rows x any of 4 fields
    assert 0.2 - 0.03 < float(moved.double().mean()) < 0.2 + 0.03  # half the rows, half of 4 of 5 fields
    generator = torch.Generator().manual_seed(0)
    with_v_max = theta_of(relax_conditions(conditions, 1.0, generator, relax_v_max=True))
    assert bool((with_v_max[:2000, 1] >= 9.0 - 1e-5).all() and (with_v_max[:2000, 1] <= 20.0 + 1e-5).all())
    assert 0.45 < float((with_v_max[:2000, 1] > 9.0 + 1e-4).double().mean()) < 0.55
    np.testing.assert_allclose(with_v_max[2000:, 1], 25.0, atol=1e-5)  # looser than RELAX_LOOSEST: kept
    with pytest.raises(ValueError, match="relabel fraction must be in"):
        relax_conditions(conditions, 1.5)
    with pytest.raises(ModelConfigError, match="relabel_fraction=-0.1: must be in"):
        PstlConfig(relabel_fraction=-0.1).validate()


def test_free_v_min_lowers_only_v_min_in_the_drawn_share_of_rows():
    theta = np.array([[7.0, 9.0, 0.3, 0.1, 1.2], [-2.0, 9.0, 0.3, 0.1, 1.2]])  # v_min 7 m/s; already below 0
    conditions = condition_tensor([STLCondition(DrivingMode.KEEP, theta[0])] * 1000
                                  + [STLCondition(DrivingMode.STOP, theta[1])] * 100)
    assert free_v_min(conditions, 0.0) is conditions
    out = free_v_min(conditions, 0.3, torch.Generator().manual_seed(0))
    assert torch.equal(out[:, :4], conditions[:, :4])
    after, before = theta_of(out), theta_of(conditions)
    np.testing.assert_allclose(after[:, 1:], before[:, 1:], atol=1e-5)  # d_safe (and the rest) kept
    freed = (after[:1000, 0] - 7.0).abs() > 1e-4
    np.testing.assert_allclose(after[:1000, 0][freed], 0.0, atol=1e-5)  # freed rows: 0 m/s, the rest 7 m/s
    np.testing.assert_allclose(after[:1000, 0][~freed], 7.0, atol=1e-5)
    assert 0.3 - 0.04 < float(freed.double().mean()) < 0.3 + 0.04
    np.testing.assert_allclose(after[1000:, 0], -2.0, atol=1e-5)  # a v_min below 0 is never raised
    with pytest.raises(ValueError, match="free v_min fraction must be in"):
        free_v_min(conditions, -0.5)
    with pytest.raises(ModelConfigError, match="free_v_min_fraction=2.0: must be in"):
        PstlConfig(free_v_min_fraction=2.0).validate()


def test_relabelling_applies_in_training_only():
    observations = [generate_scene(1_100_000_000 + k, "test").observation() for k in range(2)]
    plan = torch.zeros(2, 8, 3)
    plan[:, :, 0] = 4.0 * 0.5 * torch.arange(1, 9)
    target = PstlTarget(plan, condition_tensor([keep(5.0)] * 2))
    losses = {}
    for fraction in (0.0, 1.0):
        torch.manual_seed(0)
        model = PstlModel(PstlConfig(**TINY, relabel_fraction=fraction, free_v_min_fraction=fraction))
        features = default_collate([model.feature_builder()(obs) for obs in observations])
        for training in (True, False):
            model.train(training)
            torch.manual_seed(1)
            losses[fraction, training] = float(model.loss(features, target)[0].detach())
    assert losses[0.0, True] == losses[0.0, False]  # no relabelling: the same draws and the same loss
    assert losses[1.0, False] == losses[0.0, False]  # evaluation never relabels
    assert losses[1.0, True] != losses[1.0, False]


# ---- schedule -------------------------------------------------------------------------------------------------

def test_schedule_values():
    s = sch.pstl_schedule()
    abar = s.alphas_cumprod
    assert s.num_steps == 100 and abar.dtype == torch.float64
    assert bool((abar[1:] < abar[:-1]).all())
    assert 0.9998 < float(abar[0]) < 1.0
    assert float(abar[99]) == pytest.approx(0.1946, abs=1e-4)  # the scaled β leave signal at t = 99
    assert float(s.betas.max()) == pytest.approx(0.2 * 0.999)
    assert sch.ddim_timesteps(10) == [99, 89, 79, 69, 59, 50, 40, 30, 20, 10]
    assert sch.ancestral_timesteps(s) == list(range(99, 0, -1))
    with pytest.raises(ValueError, match="1 to 10 steps"):
        sch.ddim_timesteps(11)
    t = sch.sample_timesteps(4000, generator=torch.Generator().manual_seed(0))
    assert int(t.min()) == 1 and int(t.max()) == 99

    x0 = torch.rand(3, 8, 2, dtype=torch.float64)
    steps = torch.tensor([1, 40, 99])
    expected = abar[steps].sqrt()[:, None, None] * x0
    torch.testing.assert_close(sch.q_sample(x0, torch.zeros_like(x0), steps, s), expected)


def oracle(x0: torch.Tensor, schedule: sch.Schedule):
    def eps(x_t: torch.Tensor, t: int) -> torch.Tensor:
        a = schedule.alpha_bar(t)
        return (x_t - math.sqrt(a) * x0) / math.sqrt(1.0 - a)
    return eps


def test_ancestral_sampler_with_an_oracle_recovers_x0_and_matches_pstl_mean():
    s, g = sch.pstl_schedule(), torch.Generator().manual_seed(0)
    x0 = torch.rand(4, 8, 2, generator=g, dtype=torch.float64) * 1.8 - 0.9
    eps = oracle(x0, s)
    x = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    for t in sch.ancestral_timesteps(s):
        e = eps(x, t)
        if t >= 2:  # pSTL's mean (x_t - β_t / sqrt(1 - ᾱ_t) ε) / sqrt(α_t) is the posterior mean
            beta = float(s.betas[t])
            mean, sigma = sch.ancestral_mean(x, e, t, s)
            pstl = (x - beta / math.sqrt(1 - s.alpha_bar(t)) * e) / math.sqrt(1 - beta)
            torch.testing.assert_close(mean, pstl)
            assert sigma == pytest.approx(math.sqrt(beta))
        x = sch.ancestral_step(x, e, t, s, torch.randn(x0.shape, generator=g, dtype=torch.float64))
    assert float((x - x0).abs().max()) < 1e-3


def test_ddim_with_ten_steps_and_an_oracle_recovers_x0():
    s, g = sch.pstl_schedule(), torch.Generator().manual_seed(1)
    x0 = torch.rand(4, 8, 2, generator=g, dtype=torch.float64) * 1.8 - 0.9
    eps = oracle(x0, s)
    x = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    timesteps = sch.ddim_timesteps(10)
    for t, t_prev in zip(timesteps, [*timesteps[1:], sch.CLEAN], strict=True):
        x = sch.ddim_step(x, eps(x, t), t, t_prev, s)
    assert float((x - x0).abs().max()) < 1e-4


# ---- model ----------------------------------------------------------------------------------------------------

def test_config_validation_and_headings():
    with pytest.raises(ModelConfigError, match="sampling_steps=20: must be 1 to 10"):
        PstlConfig(sampling_steps=20).validate()
    with pytest.raises(ModelConfigError, match="time_dim=31"):
        PstlConfig(time_dim=31).validate()
    xy = torch.tensor([[1.0, 0.0], [2.0, 1.0], [2.0, 1.0], [2.0, 2.0]])
    np.testing.assert_allclose(headings_from_xy(xy), [0.0, math.pi / 4, math.pi / 4, math.pi / 2], atol=1e-6)


@pytest.fixture(scope="module")
def trained():
    """A TINY model trained to drive straight at v_max - 1 for v_max 5 and 12 m/s on 4 test scenes: (model,
    features of the 4 scenes)."""
    torch.manual_seed(0)
    model = PstlModel(PstlConfig(**TINY))
    builder = model.feature_builder()
    observations = [generate_scene(1_100_000_000 + k, "test").observation() for k in range(4)]
    features = default_collate([builder(obs) for obs in observations])
    times = 0.5 * torch.arange(1, 9, dtype=torch.float32)
    rows, plans, conditions = [], [], []
    for v_max in V_MAX:
        for i in range(len(observations)):
            plan = torch.zeros(8, 3)
            plan[:, 0] = (v_max - 1.0) * times
            rows.append(i)
            plans.append(plan)
            conditions.append(keep(v_max))
    index = torch.tensor(rows * 4)  # 4 copies: more noise draws per step
    batch = type(features)(*(f[index] for f in features))
    target = PstlTarget(torch.stack(plans * 4), condition_tensor(conditions * 4))
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = fit_full_batch(model, batch, target, optimiser, 1000)
    model.eval()
    assert np.mean(losses[-50:]) < 0.5 * np.mean(losses[:20])
    return model, features


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_samples_follow_v_max(trained, sampler):
    model, features = trained
    finals = []
    for v_max in V_MAX:
        condition = condition_tensor([keep(v_max)] * 4)
        plans = model.sample(features, condition, torch.Generator().manual_seed(3), sampler=sampler, num_samples=4)
        assert plans.shape == (4, 4, 8, 3)
        finals.append(plans[:, :, -1, 0])
    slow, fast = finals
    assert float(slow.mean()) == pytest.approx(16.0, abs=5.0)  # 4 m/s for 4 s
    assert float(fast.mean()) == pytest.approx(44.0, abs=8.0)  # 11 m/s for 4 s
    assert float(fast.min()) > float(slow.max()) + 5.0  # every sample


def test_guide_moves_samples_its_way(trained):
    model, features = trained
    condition = condition_tensor([keep(12.0)] * 4)
    calls = []

    def leftwards(xy: torch.Tensor) -> torch.Tensor:  # ρ̃ rises with the last pose's y [m]
        assert xy.shape == (16, 8, 2) and xy.requires_grad
        calls.append(1)
        return xy[:, -1, 1] - 100.0

    for sampler, last in (("ddpm", 10), ("ddim", 3)):
        calls.clear()
        plain = model.sample(features, condition, torch.Generator().manual_seed(5), sampler=sampler,
                             num_samples=4)
        guide = Guide(leftwards, GuidanceSettings(iterations=2, lr=0.01, last_steps=last))
        guided = model.sample(features, condition, torch.Generator().manual_seed(5), sampler=sampler,
                              num_samples=4, guide=guide)
        assert len(calls) == 2 * last
        lift = guided[..., -1, 1] - plain[..., -1, 1]  # [m]
        assert float(lift.min()) > 0.2, sampler


def test_forward_and_checkpoint_file_round_trip(trained, tmp_path):
    model, features = trained

    class PstlTestPlanner(LearnedDrivePlanner):  # not registered: load_checkpoint needs a registry entry
        model_class = PstlModel
        name = "pstl"

    path = export_single_file(PstlTestPlanner(model=model), tmp_path / "pstl.safetensors")
    config, state = read_single_file(path)
    loaded = PstlModel(PstlConfig.from_json(config["model"]))
    assert config["spec"] == loaded.spec()
    loaded.load_state_dict(state, strict=True)
    loaded.eval()
    condition = condition_tensor([keep(5.0)] * 4)
    for sampler in ("ddpm", "ddim"):
        before = model.sample(features, condition, torch.Generator().manual_seed(9), sampler=sampler)
        after = loaded.sample(features, condition, torch.Generator().manual_seed(9), sampler=sampler)
        assert torch.equal(before, after)
    plan = loaded(features, torch.Generator().manual_seed(9))
    assert plan.shape == (4, 8, 3) and bool(torch.isfinite(plan).all())
