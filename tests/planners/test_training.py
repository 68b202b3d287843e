"""Learned planners: the ego-status MLP overfits, checkpoints round-trip bitwise, bad folders fail clearly."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import typer
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

import planners
from diffplan.commands.train import train as train_command
from planners.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from planners.learned import EgoMLPConfig, EgoMLPPlanner, ModelConfigError
from planners.training import TrainConfig, TrainConfigError, TrainingError, train
from scenes import NUM_PLAN_POSES, PLAN_DT, Frame
from scenes.store import DriveDataset, finalize_dataset, write_shard
from scenes.synthetic import generate_scene

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("learned") / "ds"
    scenes = [generate_scene(seed, "train") for seed in range(8)]
    write_shard(root, 0, scenes[:4])
    write_shard(root, 1, scenes[4:])
    finalize_dataset(root, {"generator": "test_training"}, 2)
    return root


@pytest.fixture(scope="module")
def run(tmp_path_factory, dataset) -> Path:
    out = tmp_path_factory.mktemp("learned") / "run"
    config = TrainConfig(epochs=150, batch_size=8, lr=1e-3, seed=0, in_memory=True)
    folder = train("ego-mlp", dataset, out, config)
    assert folder == out / "checkpoint"
    return out


def epoch_losses(out: Path) -> list[float]:
    """Per-epoch train loss over every run in `out` (resumed runs log to logs/version_1, ...)."""
    versions = sorted((out / "logs").glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name[8:]))
    rows = [row for path in versions for row in csv.DictReader(path.open())]
    return [float(row["train/loss_epoch"]) for row in rows if row["train/loss_epoch"]]


def observations(dataset: Path) -> list:
    data = DriveDataset.open(dataset, privileged=False)
    return [data.observation(i) for i in range(len(data))]


def test_mlp_overfits_eight_scenes(run, dataset):
    losses = epoch_losses(run)
    assert len(losses) == 150
    assert losses[0] / losses[-1] > 10, (losses[0], losses[-1])
    data = DriveDataset.open(dataset)
    planner = planners.load(run / "checkpoint")
    errors = [np.abs(planner.plan(data[i].observation()).trajectory.poses[:, :2]
                     - data[i].expert_plan().poses[:, :2]).mean() for i in range(len(data))]
    assert np.mean(errors) < 0.5  # [m]


def test_checkpoint_round_trip_is_bitwise(run, dataset, tmp_path):
    obs = observations(dataset)
    for planner in (planners.load(run / "checkpoint"), EgoMLPPlanner()):
        again = load_checkpoint(save_checkpoint(planner, tmp_path / "copy"))
        for key, value in planner.model.state_dict().items():
            assert value.dtype == again.model.state_dict()[key].dtype
            assert np.array_equal(value.numpy(), again.model.state_dict()[key].numpy()), key
        for a, b in zip(planner.plan_batch(obs), again.plan_batch(obs), strict=True):
            assert np.array_equal(a.trajectory.poses, b.trajectory.poses)
    config = json.loads((tmp_path / "copy" / "config.json").read_text())
    assert config["planner"] == "ego-mlp" and config["model"] == {"hidden_dim": 512, "num_poses": 8}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folders left


def test_same_seed_trains_the_same_bytes(dataset, tmp_path):
    """`seed` fixes the initial weights and the batches: two runs export byte-equal files; another seed differs."""
    from planners.checkpoint import export_single_file

    def trained(seed: int, name: str) -> bytes:
        config = TrainConfig(epochs=2, batch_size=4, lr=1e-3, seed=seed, in_memory=True, progress=False)
        path = export_single_file(planners.load(train("ego-mlp", dataset, tmp_path / name, config)),
                                  tmp_path / f"{name}.safetensors")
        return path.read_bytes()

    first = trained(3, "a")
    assert trained(3, "b") == first
    assert trained(4, "c") != first


def test_loaded_planner_plans_like_any_planner(run, dataset):
    planner = planners.load(str(run / "checkpoint"))
    assert isinstance(planner, EgoMLPPlanner) and planner.name == "ego-mlp" and not planner.privileged
    obs = observations(dataset)
    batch = planner.plan_batch(obs)
    for o, batched in zip(obs, batch, strict=True):
        plan = planner.plan(o).validate()
        poses = plan.trajectory.poses
        assert plan.trajectory.frame is Frame.EGO and plan.trajectory.dt == PLAN_DT
        assert poses.shape == (NUM_PLAN_POSES, 3) and poses.dtype == np.float64
        assert np.all((poses[:, 2] >= -np.pi) & (poses[:, 2] < np.pi))
        np.testing.assert_allclose(batched.trajectory.poses, poses, atol=1e-4)
        assert plan.info["latency_ms"] > 0


def test_untrained_planner_by_name_is_valid(dataset):
    assert "ego-mlp" in planners.available_planners()
    planner = planners.load("ego-mlp")
    planner.plan(observations(dataset)[0]).validate()


def test_planners_import_stays_light():
    code = "import sys, planners; planners.available_planners(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"


def broken(run: Path, tmp_path: Path, how: str) -> Path:
    folder = tmp_path / how
    save_checkpoint(planners.load(run / "checkpoint"), folder)
    config = json.loads((folder / "config.json").read_text())
    if how == "no-weights":
        (folder / "model.safetensors").unlink()
    elif how == "no-config":
        (folder / "config.json").unlink()
    elif how == "bad-json":
        (folder / "config.json").write_text("{")
    elif how == "unknown-planner":
        config["planner"] = "no-such-planner"
    elif how == "not-learned":
        config["planner"] = "constant-velocity"
    elif how == "hidden-dim":
        config["model"]["hidden_dim"] = 64
    elif how == "renamed-weight":
        state = load_file(folder / "model.safetensors")
        state["mlp.9.weight"] = state.pop("mlp.6.weight")
        save_file(state, folder / "model.safetensors")
    elif how == "not-safetensors":
        (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    if how in ("unknown-planner", "not-learned", "hidden-dim"):
        (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize("how, message", [
    ("no-weights", "model.safetensors is missing"),
    ("no-config", "config.json is missing"),
    ("bad-json", "unreadable"),
    ("unknown-planner", "unknown learned planner 'no-such-planner'"),
    ("not-learned", "unknown learned planner 'constant-velocity'"),
    ("hidden-dim", r"mlp.0.weight has shape \(512, 8\) torch.float32, ego-mlp expects \(64, 8\)"),
    ("renamed-weight", "missing \\['mlp.6.weight'\\]"),
    ("not-safetensors", "unreadable"),
])
def test_bad_checkpoint_folder_fails_in_one_line(run, tmp_path, how, message):
    folder = broken(run, tmp_path, how)
    with pytest.raises(CheckpointError, match=message) as error:
        planners.load(folder)
    assert "\n" not in str(error.value)


def test_load_of_missing_path_or_empty_folder(tmp_path):
    with pytest.raises(planners.UnknownPlannerError, match="unknown planner"):
        planners.load(tmp_path / "nothing-here")
    with pytest.raises(CheckpointError, match="is missing"):
        planners.load(tmp_path)


def test_train_rejects_bad_input(dataset, tmp_path):
    with pytest.raises(TrainingError, match="not a learned planner"):
        train("constant-velocity", dataset, tmp_path / "a")
    with pytest.raises(TrainingError, match="no scenes"):
        train("ego-mlp", dataset, tmp_path / "b", TrainConfig(split="val"))
    with pytest.raises(TrainingError, match="last.ckpt does not exist"):
        train("ego-mlp", dataset, tmp_path / "c", TrainConfig(resume=True))
    with pytest.raises(ModelConfigError, match="hidden_dim=0: must be positive"):
        train("ego-mlp", dataset, tmp_path / "d", model=EgoMLPConfig(hidden_dim=0))
    with pytest.raises(ModelConfigError, match="has no key 'width'; EgoMLPConfig has hidden_dim, num_poses"):
        train("ego-mlp", dataset, tmp_path / "e", model={"width": 8})
    with pytest.raises(TrainingError, match="not a learned planner"):
        train("constant-velocity", dataset, tmp_path / "f", model={"width": 8})
    assert not any((tmp_path / name).exists() for name in "abcdef")


@pytest.mark.parametrize("changes, field, message", [
    ({"epochs": 0}, "epochs", "epochs must be positive, got 0"),
    ({"batch_size": 2.5}, "batch_size", "batch_size must be an integer, got 2.5"),
    ({"num_workers": -1}, "num_workers", "num_workers must be 0 or more, got -1"),
    ({"lr": -1e-3}, "lr", "lr must be positive, got -0.001"),
    ({"lr": float("nan")}, "lr", "lr must be positive, got nan"),
    ({"max_steps": 0}, "max_steps", "max_steps must be positive, got 0"),
    ({"max_minutes": 0.0}, "max_minutes", "max_minutes must be positive, got 0.0"),
    ({"seed": -1}, "seed", "seed must be in 0 .. 4294967295, got -1"),
    ({"devices": 0}, "devices", "devices 0: expected 'auto', a count"),
    ({"devices": ()}, "devices", "devices (): expected 'auto', a count"),
    ({"in_memory": 1}, "in_memory", "in_memory must be True or False, got 1"),
    ({"export": "run/dd.pt"}, "export", "export run/dd.pt: expected a .safetensors file"),
])
def test_train_config_is_validated_with_one_line_naming_the_field(changes, field, message):
    with pytest.raises(TrainConfigError) as error:
        TrainConfig(**changes).validate()
    assert error.value.field == field and str(error.value).startswith(message), str(error.value)
    assert "\n" not in str(error.value) and "--" not in str(error.value)
    assert error.value.as_option().startswith("--" + field.replace("_", "-"))


def test_train_config_takes_paths_as_strings_and_device_lists():
    config = TrainConfig(export="out/x.safetensors", init="ckpt", devices=[0, 1]).validate()
    assert config.export == Path("out/x.safetensors") and config.init == Path("ckpt")
    assert config.devices == (0, 1)
    assert TrainConfig().lr is None  # the model's default_lr


def test_cli_trains_resumes_and_reports_errors_in_one_line(dataset, tmp_path):
    app = typer.Typer()
    app.command()(train_command)
    app.command("noop")(lambda: None)  # keep `train` a named sub-command
    runner = CliRunner()
    out = tmp_path / "cli-run"
    common = ["--data", str(dataset), "--out", str(out), "--batch-size", "4", "--in-memory"]
    result = runner.invoke(app, ["train", "ego-mlp", *common, "--epochs", "1"])
    assert result.exit_code == 0, result.output
    assert (out / "checkpoint" / "model.safetensors").is_file() and (out / "lightning" / "last.ckpt").is_file()
    assert "Epoch 0: 100%" in result.output  # not a terminal: tqdm lines, which log files keep (Rich draws none)
    again = runner.invoke(app, ["train", "ego-mlp", *common, "--epochs", "1"])
    assert again.exit_code == 2 and "not empty" in again.output
    resumed = runner.invoke(app, ["train", "ego-mlp", *common, "--epochs", "2", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert len(epoch_losses(out)) == 2
    for args, message in [
        (["train", "no-such", *common], "unknown planner"),
        (["train", "constant-velocity", "--data", str(dataset), "--out", str(tmp_path / "x")], "not a learned"),
        (["train", "ego-mlp", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "y")], "missing"),
        (["train", "ego-mlp", *common[:2], "--out", str(tmp_path / "z"), "--epochs", "0"], "must be positive"),
    ]:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output


def test_cli_model_hyperparameters_reach_the_checkpoint(dataset, tmp_path):
    app = typer.Typer()
    app.command()(train_command)
    app.command("noop")(lambda: None)
    runner = CliRunner()
    common = ["--data", str(dataset), "--batch-size", "4", "--in-memory", "--epochs", "1"]
    result = runner.invoke(app, ["train", "ego-mlp", *common, "--out", str(tmp_path / "a"), "--model",
                                 "hidden_dim=16"])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "a" / "checkpoint" / "config.json").read_text())
    assert config["model"]["hidden_dim"] == 16
    assert planners.load(tmp_path / "a" / "checkpoint").model.mlp[0].out_features == 16
    unknown = "--model has no key 'hidden'; EgoMLPConfig has hidden_dim, num_poses"
    for value, message in [("hidden=16", unknown),
                           ("16", "--model '16': expected KEY=VALUE"),
                           ("hidden_dim=big", "--model hidden_dim=big: expected an int"),
                           ("hidden_dim=1.5", "--model hidden_dim=1.5: expected an int"),
                           ("hidden_dim=0", "--model hidden_dim=0: must be positive")]:
        out = tmp_path / value.replace("=", "-")
        result = runner.invoke(app, ["train", "ego-mlp", *common, "--out", str(out), "--model", value])
        assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output
        assert not out.exists()


def test_several_datasets_train_as_their_concatenation(dataset, tmp_path):
    """Training on [A, B] exports the bytes of training on one dataset holding A's scenes, then B's."""
    from planners.checkpoint import export_single_file

    more = [generate_scene(seed, "train") for seed in range(8, 12)]
    write_shard(tmp_path / "b", 0, more)
    finalize_dataset(tmp_path / "b", {"generator": "test_training"}, 1)
    together = [generate_scene(seed, "train") for seed in range(12)]
    for shard in range(3):
        write_shard(tmp_path / "ab", shard, together[4 * shard:4 * shard + 4])
    finalize_dataset(tmp_path / "ab", {"generator": "test_training"}, 3)
    config = TrainConfig(epochs=2, batch_size=4, lr=1e-3, seed=0, in_memory=True, progress=False)

    def exported(data, name: str) -> bytes:
        folder = train("ego-mlp", data, tmp_path / name, config)
        return export_single_file(planners.load(folder), tmp_path / f"{name}.safetensors").read_bytes()

    assert exported([dataset, tmp_path / "b"], "two") == exported(tmp_path / "ab", "one")
    assert exported([tmp_path / "b", dataset], "swapped") != exported(tmp_path / "ab", "again")
    app = typer.Typer()
    app.command()(train_command)
    app.command("noop")(lambda: None)
    result = CliRunner().invoke(app, ["train", "ego-mlp", "--data", str(dataset), "--data", str(tmp_path / "b"),
                                      "--out", str(tmp_path / "cli"), "--batch-size", "4", "--epochs", "1"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(next((tmp_path / "cli" / "logs").glob("version_*/metrics.csv")).open()))
    assert [(row["epoch"], row["step"]) for row in rows if row["train/loss_epoch"]] == [("0", "2")]  # 12 / 4
    empty = CliRunner().invoke(app, ["train", "ego-mlp", "--data", str(dataset), "--data", str(tmp_path / "b"),
                                     "--split", "val", "--out", str(tmp_path / "none")])
    assert empty.exit_code == 2 and f"{dataset}: no scenes in split 'val'" in empty.output


def test_cli_max_steps_ends_training_early(dataset, tmp_path):
    app = typer.Typer()
    app.command()(train_command)
    app.command("noop")(lambda: None)
    runner = CliRunner()
    out = tmp_path / "short"
    result = runner.invoke(app, ["train", "ego-mlp", "--data", str(dataset), "--out", str(out),
                                 "--batch-size", "2", "--in-memory", "--epochs", "5", "--max-steps", "3"])
    assert result.exit_code == 0, result.output
    assert "at most 3 steps" in result.output
    rows = list(csv.DictReader(next((out / "logs").glob("version_*/metrics.csv")).open()))
    assert [(row["epoch"], row["step"]) for row in rows] == [("0", "2")]  # 3 steps of the 4 in epoch 0
    bad = runner.invoke(app, ["train", "ego-mlp", "--data", str(dataset), "--out", str(tmp_path / "b"),
                              "--max-minutes", "0"])
    assert bad.exit_code == 2 and "must be positive" in bad.output


def test_init_fine_tunes_from_a_checkpoint(run, dataset, tmp_path):
    trained = load_checkpoint(run / "checkpoint")
    start = trained.model.state_dict()
    # one step at a tiny learning rate: the weights move from the checkpoint's, not from a fresh init
    tune = TrainConfig(epochs=1, batch_size=8, lr=1e-9, in_memory=True, max_steps=1, init=run / "checkpoint")
    folder = train("ego-mlp", dataset, tmp_path / "tune", tune)
    tuned = load_checkpoint(folder).model.state_dict()
    assert set(tuned) == set(start)
    for key, value in start.items():
        np.testing.assert_allclose(tuned[key].numpy(), value.numpy(), atol=1e-6, err_msg=key)
    assert any(not np.array_equal(tuned[k].numpy(), start[k].numpy()) for k in start if "norm" not in k)
    with pytest.raises(TrainConfigError, match="^init .* holds a ego-mlp planner, not diffusiondrive"):
        train("diffusiondrive", dataset, tmp_path / "x", TrainConfig(init=run / "checkpoint"))
    with pytest.raises(TrainingError, match="init and model exclude each other"):
        train("ego-mlp", dataset, tmp_path / "y", TrainConfig(init=run / "checkpoint"),
              EgoMLPConfig(hidden_dim=8))
    with pytest.raises(TrainConfigError, match="^init .*missing") as error:
        train("ego-mlp", dataset, tmp_path / "z", TrainConfig(init=tmp_path / "missing"))
    assert error.value.field == "init" and "--" not in str(error.value)
