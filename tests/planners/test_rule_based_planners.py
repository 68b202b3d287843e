"""The vector baselines (diffusion-policy, regression), training DiffusionDrive end to end with Lightning
(NamedTuple features in memory, --export), seeded evaluation, and `diffplan bench planner`."""

import numpy as np
import pytest
import torch
import typer
from torch.utils.data import default_collate
from typer.testing import CliRunner

import planners
from diffplan.commands.train import train as train_command
from eval.runner import EvalConfig, evaluate_scenes
from planners.bench import bench_planners, drive_case
from planners.learned import DiffusionPolicyModel, DiffusionPolicyPlanner, DriveFeatures, RegressionPlanner
from planners.learned.diffusion import ddim_timesteps
from planners.learned.features import MapPolylineBuilder
from planners.training import materialise
from scenes.store import finalize_dataset, write_shard
from scenes.synthetic import generate_scene
from tests.factories import fit_full_batch

TINY = {"d_model": 32, "depth": 1, "heads": 2, "ffn_dim": 64, "max_agents": 8, "max_polylines": 16}


@pytest.fixture(scope="module")
def scenes():
    return [generate_scene(seed, "train") for seed in range(24)]  # k-means needs >= 20 futures


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, scenes):
    root = tmp_path_factory.mktemp("baselines") / "ds"
    write_shard(root, 0, scenes)
    finalize_dataset(root, {"generator": "test_planner_baselines"}, 1)
    return root


def test_untrained_baselines_by_name_plan_valid_trajectories(scenes):
    obs = scenes[0].observation()
    for name, cls in (("diffusion-policy", DiffusionPolicyPlanner), ("regression", RegressionPlanner),
                      ("diffusiondrive", planners.learned.DiffusionDrivePlanner)):
        assert name in planners.available_planners()
        planner = planners.load(name)
        assert isinstance(planner, cls) and planner.name == name
        planner.plan(obs).validate()
    assert ddim_timesteps(20) == list(range(950, -1, -50))


def test_diffusion_policy_is_seeded_and_samples_from_pure_noise(scenes):
    obs = [scene.observation() for scene in scenes[:2]]
    planner = DiffusionPolicyPlanner(**TINY, decoder_layers=1, sampling_steps=5)
    planner.seed = 1
    a = planner.plan_batch(obs)
    planner.reset()
    b = planner.plan_batch(obs)
    planner.seed = 2
    c = planner.plan_batch(obs)
    assert a[0].candidates.shape == (1, 8, 3) and a[0].scores.tolist() == [1.0]
    assert np.array_equal(a[0].trajectory.poses, b[0].trajectory.poses)
    assert not np.array_equal(a[0].trajectory.poses, c[0].trajectory.poses)


@pytest.mark.parametrize("cls", [RegressionPlanner, DiffusionPolicyPlanner])
def test_baselines_learn(scenes, cls):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = cls(**TINY).model
    features = default_collate([model.feature_builder()(scene.observation()) for scene in scenes[:8]])
    plans = torch.stack([torch.from_numpy(s.expert_plan().poses.astype(np.float32)) for s in scenes[:8]])
    optimiser, scheduler = model.optimizer(3e-3, 150)
    losses = fit_full_batch(model, features, plans, optimiser, 150, scheduler)
    torch.set_num_threads(threads)
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10]), (losses[:10], losses[-10:])


def test_map_polylines_lanes_edges_and_route_flags(scenes):
    obs = scenes[0].observation()
    polylines = MapPolylineBuilder(max_polylines=64)(obs)
    valid = polylines.map_mask.numpy()
    points, attributes = polylines.map_points.numpy()[valid], polylines.map_attributes.numpy()[valid]
    assert valid.any() and np.isfinite(points).all()
    assert (attributes[:, :4].sum(-1) == 1).all()  # one kind each
    assert attributes[:, 0].any() and attributes[:, 1].any()  # lanes and road edges
    assert attributes[attributes[:, 4] > 0, 0].all()  # only lanes are on the route
    np.testing.assert_allclose(np.linalg.norm(points[..., 2:], axis=-1), 1.0, atol=1e-5)
    assert (np.linalg.norm(points[..., :2], axis=-1) <= 60.0 + 1e-4).all()
    nearest = np.linalg.norm(points[..., :2], axis=-1).min(-1)
    assert (np.diff(nearest) >= -1e-6).all()  # nearest first
    assert not polylines.map_points.numpy()[~valid].any()


def test_diffusiondrive_trains_in_memory_exports_and_evaluates_seeded(dataset, tmp_path):
    from planners.learned import DiffusionDriveConfig, DiffusionDriveModel

    model = DiffusionDriveModel(DiffusionDriveConfig(**TINY))
    data = materialise(model.training_dataset(dataset, "train"), 0)
    features, plans = data.__getitems__([0, 3])
    assert isinstance(features, DriveFeatures) and plans.shape == (2, 8, 3) and len(data) == 24
    assert torch.equal(features.status[1], data[3][0].status)

    app = typer.Typer()
    app.command()(train_command)
    app.command("noop")(lambda: None)
    out, export = tmp_path / "run", tmp_path / "dd.safetensors"
    result = CliRunner().invoke(app, ["train", "diffusiondrive", "--data", str(dataset), "--out", str(out),
                                      "--epochs", "1", "--batch-size", "8", "--in-memory", "--accelerator", "cpu",
                                      "--strategy", "auto", "--num-nodes", "1", "--export", str(export)])
    assert result.exit_code == 0, result.output
    folder, single = planners.load(out / "checkpoint"), planners.load(export)
    for key, value in folder.model.state_dict().items():
        assert torch.equal(value, single.model.state_dict()[key]), key
    bad = CliRunner().invoke(app, ["train", "diffusiondrive", "--data", str(dataset), "--out", str(tmp_path / "x"),
                                   "--export", str(tmp_path / "dd.pt")])
    assert bad.exit_code == 2 and "expected a .safetensors file" in bad.output

    runs = [evaluate_scenes(dataset, EvalConfig(planner=str(export), seed=seed), [0, 1]) for seed in (3, 3, 4)]
    assert all(not r.failed for run in runs for r in run)
    assert all(np.array_equal(a.plan, b.plan) for a, b in zip(runs[0], runs[1], strict=True))
    assert not all(np.array_equal(a.plan, c.plan) for a, c in zip(runs[0], runs[2], strict=True))


def test_bench_planner_reports_latency_and_ratio():
    figures = bench_planners(0.01, {name: drive_case(name) for name in ("diffusiondrive", "diffusion-policy")})
    assert set(figures["latency_ms"]) == {"diffusiondrive", "diffusion-policy"}
    assert figures["torch_threads"] == 1 and figures["ratio_dp_over_dd"] > 1
    assert all(v > 0 for v in figures["plan_latency_ms"].values())
    assert DiffusionPolicyModel().sampling_steps == 20


def test_bench_planner_includes_the_shipped_navdp_checkpoint():
    from planners.bench import PLANNER_CASES, SHIPPED_NAVDP

    assert SHIPPED_NAVDP.is_file() and {"navdp", "navdp-synth"} <= set(PLANNER_CASES)
    planner, _ = PLANNER_CASES["navdp-synth"]()
    assert planner.model.config.d_model == 64 and planner.model.config.num_layers == 3
    figures = bench_planners(0.01, {"navdp-synth": PLANNER_CASES["navdp-synth"]})
    assert figures["latency_ms"]["navdp-synth"] > 0


def test_a_map_without_speed_limits_plans_with_the_fallbacks():
    """Real maps may give no speed limit (NaN): PDM-Closed uses NAVSIM's fallback target speed (15 m/s, the
    factory road's limit, so the plans agree), the learned map features hold 0."""
    from dataclasses import replace

    from tests.factories import straight_scene

    scene = straight_scene()
    unlimited = replace(scene, map=replace(scene.map, lane_speed_limits=np.full(scene.map.num_lanes, np.nan)))
    unlimited.validate()
    assert scene.map.lane_speed_limits.tolist() == [15.0, 15.0]
    pdm = planners.load("pdm-closed")
    np.testing.assert_array_equal(pdm.plan(unlimited.observation()).trajectory.poses,
                                  pdm.plan(scene.observation()).trajectory.poses)
    attributes = MapPolylineBuilder(max_polylines=64)(unlimited.observation()).map_attributes.numpy()
    lanes = attributes[:, 0] > 0
    assert lanes.any() and np.isfinite(attributes).all() and (attributes[lanes, 7] == 0).all()
    limited = MapPolylineBuilder(max_polylines=64)(scene.observation()).map_attributes.numpy()
    assert (limited[limited[:, 0] > 0, 7] == 15.0).all()
