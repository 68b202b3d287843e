"""save_rollout_animation: a short real closed-loop roll-out written as an animated GIF."""

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image, ImageSequence

import planners
from eval.closed_loop.render import frame_steps, save_rollout_animation
from eval.closed_loop.simulation import SimulationConfig, simulate_log
from scenes.synthetic import SYNTHETIC_SCENARIOS, generate_log, scene_seed


@pytest.fixture(scope="module")
def rollout():
    log = generate_log(scene_seed("test", 0, 2), "test", SYNTHETIC_SCENARIOS[2], 60)
    result = simulate_log(log, planners.load("constant-velocity"), SimulationConfig(duration=2.0))
    assert result.error is None and result.rollout.num_steps == 21
    return log, result


def frames(path):
    with Image.open(path) as image:
        return [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(image)]


def test_frame_steps():
    assert frame_steps(21, 5) == [0, 5, 10, 15, 20]
    assert frame_steps(21, 2)[-2:] == [18, 20]
    assert frame_steps(22, 5) == [0, 5, 10, 15, 20, 21]
    assert frame_steps(1, 3) == [0]


def test_animation_has_a_frame_every_five_steps_and_the_ego_moves(rollout, tmp_path):
    log, result = rollout
    path = save_rollout_animation(log, result, tmp_path / "gifs" / "rollout.gif", every=5, title="cv")
    assert path == tmp_path / "gifs" / "rollout.gif" and path.is_file()
    assert sorted(p.name for p in path.parent.iterdir()) == ["rollout.gif"]  # no temporary file left
    with Image.open(path) as image:
        assert image.format == "GIF" and image.n_frames == 5
        width, height = image.size
        assert 400 <= width <= 2000 and 300 <= height <= 2000
        assert image.info.get("loop") == 0
    pictures = frames(path)
    assert all(p.shape == pictures[0].shape for p in pictures)
    assert np.abs(pictures[0].astype(int) - pictures[-1].astype(int)).sum(axis=-1).astype(bool).mean() > 0.01


def test_failed_rollout_renders_with_the_error_in_red(rollout, tmp_path):
    log, result = rollout
    failed = replace(result, error="step 3: RuntimeError: boom", failed_step=3)
    plain = save_rollout_animation(log, result, tmp_path / "plain.gif", every=10)
    path = save_rollout_animation(log, failed, tmp_path / "failed.gif", every=10)
    ok, bad = frames(plain), frames(path)
    assert len(bad) == len(ok) == 3  # steps 0, 10, 20
    red = (bad[-1][..., 0] > 200) & (bad[-1][..., 1] < 60) & (bad[-1][..., 2] < 60)
    red_ok = (ok[-1][..., 0] > 200) & (ok[-1][..., 1] < 60) & (ok[-1][..., 2] < 60)
    assert red.sum() > red_ok.sum() + 50  # the red failure line
    assert np.array_equal(ok[0], bad[0])  # only the last frame changes
