"""Skip tests whose optional hardware or software is missing; CI runs everything else."""

import importlib.util
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    missing = {
        "gpu": None if _has_cuda() else "no CUDA device",
        "ros": None if importlib.util.find_spec("rclpy") else "rclpy not found (source a ROS 2 install)",
        "habitat": None if importlib.util.find_spec("habitat_sim") else "habitat-sim is not installed",
    }
    for item in items:
        for marker, reason in missing.items():
            if reason and marker in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def diffplan_exe() -> str:
    """The installed `diffplan` console script beside this interpreter."""
    exe = Path(sys.executable).parent / "diffplan"
    assert exe.is_file(), f"the diffplan console script is not installed at {exe} (pip install -e .)"
    return str(exe)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small matrices: one torch thread is faster, and immune to a busy machine's other cores (a module's
    `pytestmark = pytest.mark.usefixtures("one_torch_thread")`)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
