"""The command line's first impression: every help text keeps its units, `--version`, a light start-up."""

from __future__ import annotations

import re
import subprocess
import sys

import typer
from typer.testing import CliRunner

from diffplan.cli import app

UNIT = re.compile(r"\[[^\]]+\]")  # "[m]", "[m/s]", "[steps of 0.1 s]", ...


def _commands(command, path: tuple[str, ...] = ()):
    """(path, command) of a command and of every subcommand below it."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def _flat(text: str) -> str:
    return " ".join(text.replace("│", " ").split())


def test_every_help_text_keeps_its_bracketed_units():
    runner, checked = CliRunner(), set()
    for path, command in _commands(typer.main.get_command(app)):
        units = [u for p in command.params for u in UNIT.findall(getattr(p, "help", None) or "")]
        units += UNIT.findall(command.help or "")
        if not units:
            continue
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "150"})
        assert result.exit_code == 0, result.output
        shown = _flat(result.output)
        for unit in units:
            assert _flat(unit) in shown, f"diffplan {' '.join(path)} --help lost {unit!r}"
            checked.add(unit)
    assert {"[m]", "[steps of 0.1 s]", "[min]"} <= checked, checked


def test_version_names_the_package_generators_and_benchmarks():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].startswith("diffplan 0.")
    assert lines[1] == "generators: synthetic-drive/3, synthetic-nav/2"
    assert lines[2] == "benchmarks: navtest-synth v3, pointnav-synth v2"


def test_starting_the_cli_imports_no_heavy_library():
    """`diffplan --help` must answer in well under a second: torch, scipy, casadi, lightning, MuJoCo and
    matplotlib are imported by the commands that use them, never at start-up."""
    heavy = ("torch", "scipy", "casadi", "lightning", "mujoco", "matplotlib", "sklearn", "planners.pdm",
             "datagen.expert", "eval.runner")
    code = f"import sys, diffplan.cli; print([m for m in {heavy!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == "[]"
