"""Imports run one way: scenes <- stl <- trajopt <- datagen, scenes <- planners <- eval, planners <- datagen
(the nav data engine rolls its expert out with the planners' trackers) and stl <- eval (pSTL's evaluation and
test-time guidance score plans with STL rules; planners stay STL-free and take the guide as a callable);
diffplan (the CLI and the job runner) imports them all and nothing imports it."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = {"scenes", "stl", "trajopt", "datagen", "planners", "eval", "diffplan"}
ALLOWED = {
    "scenes": set(),
    "stl": {"scenes"},
    "trajopt": {"scenes", "stl"},
    "datagen": {"scenes", "stl", "trajopt", "planners"},
    "planners": {"scenes"},
    "eval": {"scenes", "planners", "stl"},
    "diffplan": PROJECT,  # the CLI and the job runner use every package
}


def imported_packages(path: Path) -> set[str]:
    """Top-level project packages that `path` imports, lazily or not."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & PROJECT


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_import_direction(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package}/ has no modules"
    for path in files:
        wrong = imported_packages(path) - ALLOWED[package] - {package}
        assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"


def test_scenes_loads_no_other_project_package():
    code = (
        "import sys, scenes, scenes.synthetic, scenes.store, scenes.render;"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({sorted(PROJECT)!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "['scenes']"


def test_package_names_resolve_to_this_repository():
    # `stl` is also numpy-stl's import name and `eval` shadows a builtin: make sure ours are loaded.
    import eval as eval_package
    import stl

    for module in (stl, eval_package):
        assert Path(module.__file__).resolve().is_relative_to(ROOT)
