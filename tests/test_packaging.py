"""One environment everywhere: the lock, the Makefile that installs with it, and a pinned Docker image."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith((" ", "#")):
            name, _, pinned = line.partition("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = pinned
    return pins


def test_lock_pins_every_dependency_and_extra_and_matches_this_environment():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = _lock()
    wanted = list(project["dependencies"])
    for extra in ("dev", "nav", "ros2", "ray", "nuscenes"):
        wanted += project["optional-dependencies"][extra]
    for requirement in wanted:
        name = re.sub(r"[-_.]+", "-", re.split(r"[<>=!\[; ]", requirement)[0]).lower()
        assert name in lock, f"{name} is not in constraints.txt (run `make lock`)"
    for name in ("numpy", "shapely", "scipy", "torch", "pyarrow", "casadi"):  # what make test installed
        assert version(name).split("+")[0] == lock[name], name


def test_make_installs_with_the_lock():
    makefile = (ROOT / "Makefile").read_text()
    installs = [line for line in makefile.splitlines() if "$(PIP) install" in line]
    assert len(installs) == 3 and all("-c $(LOCK)" in line for line in installs)
    assert "LOCK   := constraints.txt" in makefile and "pip-compile" in makefile


def test_docker_image_is_pinned_and_its_context_small():
    dockerfile = (ROOT / "Dockerfile").read_text()
    base = re.search(r"^FROM (\S+)", dockerfile, re.MULTILINE).group(1)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", base), base
    packages = re.findall(r"\b([a-z0-9+.-]+)=([0-9][^\s\\]*)", dockerfile.split("apt-get install", 1)[1])
    names = {name for name, _ in packages}
    assert {"libegl1", "libegl-mesa0", "libgl1-mesa-dri", "libopengl0", "make", "gcc"} <= names
    assert "snapshot.debian.org" in dockerfile and "MUJOCO_GL=egl" in dockerfile
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "demo_out", ".git"} <= set(ignored)
