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
