"""k-means anchors: exact cluster means on hand-built futures, and `diffplan anchors` end to end."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from planners.anchors import expert_futures, fit_anchors
from scenes.store import DriveDataset, finalize_dataset, write_shard
from tests.factories import straight_scene

T = 0.5 * np.arange(1, 9)  # [s]


def straight(speed: float, y: float = 0.0) -> np.ndarray:
    return np.stack([speed * T, np.full(8, y)], axis=-1)


def test_two_speed_groups_give_their_exact_means():
    # 6 futures per group, lateral offsets +-0.2 m that cancel: the means are the unperturbed lines.
    offsets = [-0.2, 0.2, -0.1, 0.1, 0.0, 0.0]
    futures = np.stack([straight(5.0, o) for o in offsets] + [straight(12.0, o) for o in offsets])
    anchors = fit_anchors(futures, k=2, seed=3)
    np.testing.assert_allclose(anchors.points[0], straight(5.0), atol=1e-12)
    np.testing.assert_allclose(anchors.points[1], straight(12.0), atol=1e-12)
    assert anchors.counts.tolist() == [6, 6]
    assert anchors.inertia == pytest.approx(2 * 8 * (2 * 0.04 + 2 * 0.01))
    with pytest.raises(ValueError, match="between 1 and the number of futures"):
        fit_anchors(futures, k=13)


def test_cli_writes_npy_and_rejects_bad_k(tmp_path):
    root = tmp_path / "ds"
    write_shard(root, 0, [straight_scene(seed=i) for i in range(3)])
    finalize_dataset(root, {}, 1)
    futures = expert_futures(DriveDataset.open(root))
    np.testing.assert_allclose(futures[0], straight(10.0), atol=1e-12)  # the factory drives at 10 m/s
    exe = Path(sys.executable).parent / "diffplan"
    out = tmp_path / "anchors.npy"
    done = subprocess.run([str(exe), "anchors", "--data", str(root), "--k", "1", "--out", str(out),
                           "--plot", str(tmp_path / "a.png")], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    saved = np.load(out, allow_pickle=False)
    assert saved.shape == (1, 8, 2) and saved.dtype == np.float32
    np.testing.assert_allclose(saved[0], straight(10.0), atol=1e-5)
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
    bad = subprocess.run([str(exe), "anchors", "--data", str(root), "--k", "4", "--out", str(out)],
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "--k 4 is more than the 3 futures" in bad.stderr
