"""NavDP: the cosine DDPM schedule, labels, seeded sampling, training on hand-built depth frames, the critic's
ranking, checkpoints and the inference rules."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from planners.checkpoint import export_single_file, load_checkpoint, save_checkpoint
from planners.navdp import (
    DDPMSchedule,
    InferenceRules,
    NavDPConfig,
    NavDPFeatures,
    NavDPModel,
    NavDPPlanner,
    NavDPTrainingSet,
    cosine_betas,
    deltas_to_poses,
    poses_to_deltas,
    resize_depth,
    select_trajectory,
)
from planners.registry import load
from scenes.nav import NAV_PLAN_DT, NAV_PLAN_POSES, CameraSpec, NavObservation, NavTrainingSample
from tests.factories import fit_full_batch

CAMERA = CameraSpec(width=64, height=64)
TINY = {"d_model": 32, "num_layers": 2, "num_heads": 2, "dropout": 0.0, "image_size": 32, "cnn_width": 8,
        "cnn_stages": 3}


def numpy_alpha_bar(s: float) -> float:
    return np.cos((s + 0.008) / 1.008 * np.pi / 2) ** 2


def test_cosine_schedule_matches_an_independent_computation():
    steps = 10
    alpha_bar = np.array([numpy_alpha_bar(t / steps) for t in range(steps + 1)])
    expected = np.minimum(1 - alpha_bar[1:] / alpha_bar[:-1], 0.999)
    schedule = DDPMSchedule()
    np.testing.assert_allclose(schedule.betas.numpy(), expected, rtol=1e-6)
    # cos((1 + 0.008) / 1.008 * pi / 2) = 0, so the last beta is 1 and is capped at 0.999
    assert schedule.betas[-1].item() == pytest.approx(0.999, abs=1e-7)
    # telescoping: before the cap, alphas_cumprod_t = alpha_bar((t + 1) / T) / alpha_bar(0)
    np.testing.assert_allclose(schedule.alphas_cumprod[:-1].numpy(), alpha_bar[1:-1] / alpha_bar[0], rtol=1e-5)
    first = 1 - math.cos(0.108 / 1.008 * math.pi / 2) ** 2 / math.cos(0.008 / 1.008 * math.pi / 2) ** 2
    assert schedule.betas[0].item() == pytest.approx(first, rel=1e-6)
    assert schedule.alphas_cumprod[-1].item() == pytest.approx(0.001 * alpha_bar[9] / alpha_bar[0], rel=1e-4)
    assert cosine_betas(4).shape == (4,) and schedule.timesteps() == list(range(9, -1, -1))


def test_ddpm_step_inverts_the_forward_process_and_clips():
    schedule = DDPMSchedule()
    x0 = torch.tensor([[[0.3, -0.7, 0.1]]])
    noise = torch.tensor([[[1.5, -0.2, 0.4]]])
    x_t = schedule.add_noise(x0, noise, torch.tensor([0]))
    acp = schedule.alphas_cumprod[0]
    torch.testing.assert_close(x_t, acp.sqrt() * x0 + (1 - acp).sqrt() * noise)
    # at t = 0 the previous cumulative alpha is 1: the step returns the clipped x0 estimate, no noise added
    torch.testing.assert_close(schedule.step(noise, 0, x_t), x0, atol=1e-5, rtol=0)
    clipped = schedule.step(torch.zeros_like(x_t), 0, torch.full_like(x_t, 5.0))
    torch.testing.assert_close(clipped, torch.ones_like(x_t), atol=1e-6, rtol=0)
    # at t = 5 with the true noise the posterior mean lies between x0 and x_t (here without sampling noise)
    t = 5
    x5 = schedule.add_noise(x0, noise, torch.tensor([t]))
    acp_t, acp_prev, beta = (schedule.alphas_cumprod[t].item(), schedule.alphas_cumprod[t - 1].item(),
                             schedule.betas[t].item())
    mean = (math.sqrt(acp_prev) * beta / (1 - acp_t)) * x0 + (math.sqrt(1 - beta) * (1 - acp_prev) / (1 - acp_t)) * x5
    generator = torch.Generator().manual_seed(3)
    z = torch.randn(x5.shape, generator=torch.Generator().manual_seed(3))
    std = math.sqrt((1 - acp_prev) / (1 - acp_t) * beta)
    torch.testing.assert_close(schedule.step(noise, t, x5, generator), mean + std * z, atol=1e-5, rtol=0)


def test_sampling_with_the_exact_noise_of_a_point_mass_returns_it():
    schedule = DDPMSchedule()
    generator = torch.Generator().manual_seed(0)
    x0 = torch.rand((8, NAV_PLAN_POSES, 3), generator=generator) * 1.6 - 0.8
    x = torch.randn(x0.shape, generator=generator)
    for t in schedule.timesteps():
        acp = schedule.alphas_cumprod[t]
        x = schedule.step((x - acp.sqrt() * x0) / (1 - acp).sqrt(), t, x, generator)
    torch.testing.assert_close(x, x0, atol=1e-5, rtol=0)


def test_labels_are_scaled_clipped_deltas_and_invert_by_cumsum():
    times = NAV_PLAN_DT * np.arange(1, NAV_PLAN_POSES + 1)
    poses = np.stack([0.4 * times, 0.1 * times, 0.2 * times], axis=1)  # 0.1 m, 0.025 m, 0.05 rad per step
    labels = poses_to_deltas(poses)
    np.testing.assert_allclose(labels[0], [0.4, 0.1, 0.2], atol=1e-6)
    np.testing.assert_allclose(deltas_to_poses(torch.from_numpy(labels)).numpy(), poses, atol=1e-5)
    fast = poses * 4  # 0.4 m per step: clipped to 1 (0.25 m)
    assert poses_to_deltas(fast)[:, 0].max() == 1.0
    across = np.zeros((NAV_PLAN_POSES, 3))
    across[:, 2] = np.pi - 0.05 + 0.02 * np.arange(NAV_PLAN_POSES)  # crosses +pi: wrapped steps of 0.02 rad
    across[:, 2] = (across[:, 2] + np.pi) % (2 * np.pi) - np.pi
    np.testing.assert_allclose(poses_to_deltas(across)[1:, 2], 0.08, atol=1e-5)


def test_depth_resize_is_nearest_neighbour_at_pixel_centres():
    depth = np.arange(16, dtype=np.float32).reshape(4, 4)
    np.testing.assert_array_equal(resize_depth(depth, 2), [[5, 7], [13, 15]])
    np.testing.assert_array_equal(resize_depth(depth, 8)[::2, ::2], depth)
    wide = np.zeros((2, 6), np.float32)
    wide[:, 3:] = 4.0
    np.testing.assert_array_equal(resize_depth(wide, 2), [[0, 4], [0, 4]])


def observation(depth: np.ndarray, goal=(3.0, 0.0, 0.0)) -> NavObservation:
    return NavObservation(depth.astype(np.float32), np.asarray(goal, np.float32), np.zeros(2, np.float32),
                          CAMERA).validate()


def obstacle_frame(side: str, distance: float = 1.0) -> np.ndarray:
    """64 x 64 depth [m]: open floor at 4 m, a box `distance` ahead filling the left or right half."""
    depth = np.full((CAMERA.height, CAMERA.width), 4.0, np.float32)
    if side == "left":
        depth[:, : CAMERA.width // 2] = distance
    else:
        depth[:, CAMERA.width // 2:] = distance
    return depth


def arc(turn: float) -> np.ndarray:
    """(24, 3) robot-frame poses of a 0.1 m-per-step arc turning at `turn` [rad per step]."""
    yaw = turn * np.arange(1, NAV_PLAN_POSES + 1)
    xy = np.cumsum(0.1 * np.stack([np.cos(yaw), np.sin(yaw)], axis=1), axis=0)
    return np.concatenate([xy, yaw[:, None]], axis=1)


def obstacle_samples() -> list[NavTrainingSample]:
    """Four hand-built frames: the expert bends away from the box (more when it is near), its negative turns
    into it."""
    samples = []
    for side, distance, away, goal_y in (("left", 1.0, -0.04, -1.0), ("right", 1.0, 0.04, 1.0),
                                         ("left", 2.0, -0.02, -0.5), ("right", 2.0, 0.02, 0.5)):
        expert, negative = arc(away), arc(-2 * away)
        frame = observation(obstacle_frame(side, distance), (2.0, goal_y, 0.0))
        samples.append(NavTrainingSample(frame, expert, negative, critic_target=1.0,
                                         augmented_critic_target=-3.0).validate())
    return samples


def batch_of(samples: list[NavTrainingSample], model: NavDPModel):
    dataset = NavDPTrainingSet(samples, model.image_size)
    return torch.utils.data.default_collate([dataset[i] for i in range(len(dataset))])


def fixed_noise_mse(model: NavDPModel, features: NavDPFeatures, actions: torch.Tensor) -> float:
    """Epsilon MSE with the point goal, averaged over all 10 timesteps with fixed noise."""
    generator = torch.Generator().manual_seed(11)
    noise = torch.randn((10, *actions.shape), generator=generator)
    with torch.no_grad():
        tokens = model.network.encode_depth(features.depth)
        goals = model.network.goal_tokens(features.goal, len(actions))
        errors = []
        for t in range(10):
            steps = torch.full((len(actions),), t)
            noisy = model.schedule.add_noise(actions, noise[t], steps)
            errors.append(((model.network.predict_noise(noisy, steps, goals, tokens) - noise[t]) ** 2).mean())
    return float(torch.stack(errors).mean())


def median_final_errors(planner: NavDPPlanner, samples: list[NavTrainingSample]) -> np.ndarray:
    """Per sample, the median over the 16 candidates of the final point's distance to the label's [m]."""
    plans = planner.plan_batch([sample.observation for sample in samples])
    return np.array([np.median(np.linalg.norm(plan.candidates[:, -1, :2] - sample.future[-1, :2], axis=1))
                     for plan, sample in zip(plans, samples, strict=True)])


@pytest.fixture(scope="module")
def trained():
    """A tiny model trained 300 full-batch Adam steps (lr 5e-3, not NavDP's 1e-4) on the four obstacle frames,
    on one thread (about 15-30 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = NavDPModel(NavDPConfig(**TINY))
    samples = obstacle_samples()
    features, targets = batch_of(samples, model)
    before = fixed_noise_mse(model, features, targets.actions), median_final_errors(NavDPPlanner(model), samples)
    fit_full_batch(model, features, targets, torch.optim.Adam(model.parameters(), lr=5e-3), 300)
    model.eval()
    yield model, samples, features, targets, before
    torch.set_num_threads(threads)


def test_tiny_model_overfits_a_handful_of_samples(trained):
    model, samples, features, targets, (mse_before, errors_before) = trained
    mse_after = fixed_noise_mse(model, features, targets.actions)
    assert mse_after < 0.1 * mse_before, (mse_before, mse_after)
    # the label arcs end 2.3-2.4 m from the robot, 0.7-1.8 m from their negatives; untrained samples miss by
    # more than 1 m; after training the median candidate ends within 0.6 m (0.45 m on average)
    errors = median_final_errors(NavDPPlanner(model), samples)
    assert errors_before.min() > 1.0 and errors.max() < 0.6 and errors.mean() < 0.45, (errors_before, errors)


def test_critic_ranks_the_expert_above_its_rotated_negative(trained):
    model, _, features, targets, _ = trained
    with torch.no_grad():
        tokens = model.network.encode_depth(features.depth)
        expert = model.network.critic(targets.actions, tokens)
        negative = model.network.critic(targets.augmented_actions, tokens)
    assert (expert > negative + 1.0).all(), (expert, negative)
    # the ranking depends on the depth: the left frame's expert is the right frame's negative
    with torch.no_grad():
        swapped = model.network.critic(targets.augmented_actions[[1, 0]], tokens[:2])
    assert (swapped < expert[:2] - 1.0).all()


def test_seeded_sampling_is_reproducible():
    torch.manual_seed(1)
    model = NavDPModel(NavDPConfig(**TINY))
    obs = observation(obstacle_frame("left"))
    first = NavDPPlanner(model, seed=7).plan(obs)
    again = NavDPPlanner(model, seed=7).plan(obs)
    other = NavDPPlanner(model, seed=8).plan(obs)
    np.testing.assert_array_equal(first.candidates, again.candidates)
    np.testing.assert_array_equal(first.trajectory.poses, again.trajectory.poses)
    np.testing.assert_array_equal(first.scores, again.scores)
    assert not np.allclose(first.candidates, other.candidates)
    planner = NavDPPlanner(model, seed=7)
    planner.plan(obs)
    planner.reset()
    np.testing.assert_array_equal(planner.plan(obs).candidates, first.candidates)
    assert first.candidates.shape == (16, NAV_PLAN_POSES, 3) and first.scores.shape == (16,)
    assert first.trajectory.dt == NAV_PLAN_DT


def test_checkpoint_round_trip_gives_identical_plans(tmp_path, trained):
    model = trained[0]
    obs = observation(obstacle_frame("right"), (4.0, 1.0, 0.0))
    planner = NavDPPlanner(model, seed=3)
    folder = save_checkpoint(planner, tmp_path / "navdp")
    loaded = load(folder)
    assert isinstance(loaded, NavDPPlanner) and loaded.model.config == model.config
    loaded.seed = 3
    first, second = planner.plan(obs), loaded.plan(obs)
    np.testing.assert_array_equal(first.trajectory.poses, second.trajectory.poses)
    np.testing.assert_array_equal(first.candidates, second.candidates)
    np.testing.assert_array_equal(first.scores, second.scores)
    single = load(export_single_file(planner, tmp_path / "navdp.safetensors"))
    single.seed = 3
    np.testing.assert_array_equal(single.plan(obs).candidates, first.candidates)
    assert type(load_checkpoint(folder).model) is NavDPModel


class ScriptedModel(NavDPModel):
    """A NavDP model whose proposals are fixed: (N, 24, 3) scaled deltas and (N,) values, batch 1."""

    def __init__(self, actions: np.ndarray, values: np.ndarray):
        super().__init__(NavDPConfig(**TINY))
        self.poses = deltas_to_poses(torch.tensor(actions))[None]
        self.values = torch.tensor(values)[None]

    def propose(self, features, generator=None, num_samples=16):
        return self.poses[:, 0], self.poses, self.values


def straight(step_x: float, step_y: float = 0.0, step_yaw: float = 0.0) -> np.ndarray:
    return np.tile([4 * step_x, 4 * step_y, 4 * step_yaw], (NAV_PLAN_POSES, 1))


def scripted_plan(actions: list[np.ndarray], values: list[float], goal=(3.0, 0.0, 0.0), **rules):
    planner = NavDPPlanner(ScriptedModel(np.stack(actions), np.array(values)), num_samples=len(actions),
                           rules=InferenceRules(**rules))
    return planner.plan(observation(obstacle_frame("left"), goal))


def test_the_critic_picks_the_best_candidate():
    plan = scripted_plan([straight(0.1), straight(0.1, 0.05), straight(0.1, -0.05)], [0.5, 1.5, -1.0])
    np.testing.assert_allclose(plan.trajectory.poses[-1], [2.4, 1.2, 0.0], atol=1e-6)
    assert plan.info["index"] == 1 and plan.info["rotated"] == 0 and plan.info["turned_in_place"] == 0
    np.testing.assert_array_equal(plan.scores, [0.5, 1.5, -1.0])


LEFT = [0.0, 0.5, np.pi / 2]  # the eval convention: waypoints beside the robot make the tracker turn on the spot
RIGHT = [0.0, -0.5, -np.pi / 2]


def test_short_trajectories_turn_in_place():
    # 24 x 0.02 m = 0.48 m < 0.5 m, turning left 0.02 rad per step: waypoints to the left (NavDP zeroes x, y and
    # keeps the headings; a plan at the robot would be STOP in the closed loop)
    plan = scripted_plan([straight(0.02, 0.0, 0.02), straight(0.021)], [1.0, 0.0])
    np.testing.assert_allclose(plan.trajectory.poses, np.tile(LEFT, (NAV_PLAN_POSES, 1)))
    assert plan.info["turned_in_place"] == 1.0 and plan.info["index"] == 0
    np.testing.assert_allclose(plan.candidates[0, -1], [0.48, 0.0, 0.48], atol=1e-6)  # raw samples
    longer = scripted_plan([straight(0.021)], [1.0])  # 0.504 m: driven as it is
    assert longer.info["turned_in_place"] == 0.0 and longer.trajectory.poses[-1, 0] == pytest.approx(0.504)
    no_turn = scripted_plan([straight(0.02)], [1.0], goal=(3.0, -1.0, 0.0))  # no heading change: goal's side
    np.testing.assert_allclose(no_turn.trajectory.poses[0], RIGHT)
    farther = scripted_plan([straight(0.015)], [1.0], goal=(1.05, 0.0, 0.0))
    assert farther.info["turned_in_place"] == 1.0 and farther.info["approached"] == 0.0


def test_the_final_approach_follows_the_trajectory_then_goes_straight_to_the_goal():
    # within 1 m: a 0.36 m straight sample (24 x 0.015 m), goal at (0.76, 0.3): the path (0,0) -> (0.36,0)
    # -> goal is 0.36 + 0.5 = 0.86 m long, resampled at 24 equal steps of 0.86 / 24 m, ending at the goal
    plan = scripted_plan([straight(0.015)], [1.0], goal=(0.76, 0.3, 0.0))
    assert plan.info["approached"] == 1.0 and plan.info["turned_in_place"] == 0.0
    poses, step = plan.trajectory.poses, 0.86 / NAV_PLAN_POSES
    np.testing.assert_allclose(poses[-1, :2], [0.76, 0.3], atol=1e-12)
    steps = np.linalg.norm(np.diff(np.vstack([[0, 0], poses[:, :2]]), axis=0), axis=1)
    np.testing.assert_allclose(steps[:10], step, atol=1e-12)  # equal arc lengths on the first leg
    on_first = poses[:, 0] <= 0.36 + 1e-12
    np.testing.assert_allclose(poses[on_first, 1], 0.0, atol=1e-12)
    np.testing.assert_allclose(poses[on_first, 2], 0.0, atol=1e-12)
    np.testing.assert_allclose(poses[-1, 2], math.atan2(0.3, 0.4), atol=1e-12)
    # a 1.2 m trajectory past the goal at 0.57 m: cut at its waypoint nearest the goal (0.55 m), then to it
    past = scripted_plan([straight(0.05)], [1.0], goal=(0.57, 0.0, 0.0))
    np.testing.assert_allclose(past.trajectory.poses[-1], [0.57, 0.0, 0.0], atol=1e-6)
    assert past.trajectory.poses[:, 0].max() == pytest.approx(0.57, abs=1e-6)


def test_low_values_rotate_in_place_towards_the_mean_lateral_side():
    plan = scripted_plan([straight(0.1, -0.01), straight(0.1, 0.02)], [-3.5, -3.2])
    np.testing.assert_allclose(plan.trajectory.poses, np.tile(LEFT, (NAV_PLAN_POSES, 1)))
    assert plan.info["rotated"] == 1.0 and plan.info["index"] == 1
    right = scripted_plan([straight(0.1, -0.01)], [-3.5])
    np.testing.assert_allclose(right.trajectory.poses[-1], RIGHT)
    above = scripted_plan([straight(0.1, -0.01)], [-2.9])
    assert above.info["rotated"] == 0.0 and above.trajectory.poses[-1, 0] == pytest.approx(2.4)
    ablation = scripted_plan([straight(0.1, -0.01)], [-3.5], use_critic=False)
    assert ablation.info["rotated"] == 0.0  # without the critic its values are not used


def test_near_the_goal_the_plan_stops():
    plan = scripted_plan([straight(0.1)], [1.0], goal=(0.1, 0.1, 0.0))
    np.testing.assert_array_equal(plan.trajectory.poses, np.zeros((NAV_PLAN_POSES, 3)))
    assert plan.info["stopped"] == 1.0


def test_without_the_critic_a_seeded_random_candidate_is_executed():
    actions = np.stack([straight(0.1, 0.01 * k) for k in range(16)])
    values = np.arange(16.0)
    picks = set()
    for seed in range(6):
        planner = NavDPPlanner(ScriptedModel(actions, values), seed=seed)
        planner.use_critic = False
        picks.add(planner.plan(observation(obstacle_frame("left"))).info["index"])
    assert len(picks) > 1
    poses = deltas_to_poses(torch.from_numpy(actions)).numpy()
    assert select_trajectory(poses, values, np.array([3.0, 0.0, 0.0]), InferenceRules()).index == 15


def test_training_schedule_and_lightning_training(tmp_path):
    model = NavDPModel(NavDPConfig(**TINY))
    optimiser, scheduler = model.optimizer(1e-4, total_steps=5)
    for _ in range(10_000):
        optimiser.step()
        scheduler.step()
    assert optimiser.param_groups[0]["lr"] == pytest.approx(0.5e-4)
    from planners.training import TrainConfig, train

    folder = train("navdp", obstacle_samples(), tmp_path / "run",
                   TrainConfig(epochs=1, batch_size=4, accelerator="cpu", devices=1))
    planner = load(folder)
    assert isinstance(planner, NavDPPlanner)
    plan = planner.plan(observation(obstacle_frame("left")))
    assert plan.candidates.shape == (16, NAV_PLAN_POSES, 3) and np.isfinite(plan.scores).all()


def test_cli_errors_are_one_line(tmp_path):
    from typer.testing import CliRunner

    from diffplan.cli import app

    def one_line(args: list[str], *expected: str) -> None:
        result = CliRunner().invoke(app, args)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 2 and len(lines) == 1 and "Traceback" not in result.output, result.output
        assert all(text in lines[0] for text in expected), lines[0]

    one_line(["eval", "pointnav", "--planner", "go-to-goal", "--episodes", "pointnav-synth", "--no-critic"],
             "--no-critic", "go-to-goal")
    missing = tmp_path / "no-such-dataset"
    one_line(["train", "navdp", "--data", str(missing), "--out", str(tmp_path / "run")], str(missing))
    one_line(["train", "navdp", "--data", str(missing), "--out", str(tmp_path / "run2"), "--split", "val"],
             "no splits", "'val'")
