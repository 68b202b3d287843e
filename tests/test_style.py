"""Ruff with its default rules at line length 110 (pyproject.toml) is clean on the whole repository."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_is_clean():
    ruff = Path(sys.executable).parent / "ruff"
    if not ruff.is_file():
        ruff = shutil.which("ruff")
    if not ruff:
        pytest.skip("ruff is not installed (pip install -e '.[dev]')")
    result = subprocess.run([str(ruff), "check", "--output-format", "concise", "."], cwd=ROOT,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
