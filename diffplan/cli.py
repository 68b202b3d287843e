"""`diffplan`: the single entry point. Each package owns its sub-app; this file only mounts them."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from diffplan.bench import BENCHMARKS
from diffplan.commands.datagen import app as datagen_app
from diffplan.commands.eval import app as eval_app
from diffplan.commands.node import app as node_app
from diffplan.commands.scenes import app as scenes_app
from diffplan.commands.stl import app as stl_app
from diffplan.commands.train import anchors, train
from diffplan.commands.train_refinenet import train_refinenet
from diffplan.console import UserError, user_errors
from scenes.store.layout import atomic_write_bytes

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # Markdown, not Rich markup, which would eat units such as "[m]"
)
app.add_typer(scenes_app, name="scenes")
app.add_typer(eval_app, name="eval")
app.add_typer(stl_app, name="stl")
app.add_typer(datagen_app, name="datagen")
app.add_typer(node_app, name="node")
app.command()(anchors)
app.command()(train)
app.command(name="train-refinenet")(train_refinenet)


def version_text() -> str:
    """The package version, and the generator and benchmark versions that decide what scenes are made."""
    from importlib.metadata import PackageNotFoundError, version

    from eval.pointnav.benchmark import BENCHMARK_VERSION
    from scenes.generate import BENCHMARK_VERSIONS
    from scenes.nav import NAV_GENERATOR_VERSION
    from scenes.synthetic import GENERATOR_VERSION

    try:
        package = version("diffplan")
    except PackageNotFoundError:
        package = "unknown (not installed)"
    benchmarks = ", ".join(f"{name} v{v}" for name, v in BENCHMARK_VERSIONS.items())
    return (f"diffplan {package}\ngenerators: {GENERATOR_VERSION}, {NAV_GENERATOR_VERSION}\n"
            f"benchmarks: {benchmarks}, pointnav-synth {BENCHMARK_VERSION}")


def _print_version(value: bool) -> None:
    if value:
        print(version_text())
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the version (and the scene generators') and exit.")] = False,
) -> None:
    """diffplan: diffusion-based motion planning for vehicles and robots.

    Data generation, training and closed-loop evaluation. Run `diffplan COMMAND --help` for details.
    """


@app.command()
def manifest(
    name: Annotated[str, typer.Argument(help="Benchmark: navtest-synth or pointnav-synth.")],
    write: Annotated[bool, typer.Option(help="Write the shipped manifest file(s) instead of comparing.")] = False,
) -> None:
    """Build a benchmark's content-digest manifest as this checkout generates it; compare it with the shipped
    one (exit 2 on a difference), or --write it after a generator version bump."""
    from eval.pointnav import benchmark as pointnav_benchmark
    from scenes.generate import BENCHMARK_SETS, build_manifest
    from scenes.manifest import BenchmarkManifest, ManifestError, manifest_path
    from scenes.nav import ROBOTS

    with user_errors(ManifestError):
        if name in BENCHMARK_SETS:
            built = [(manifest_path(name), build_manifest(name))]
        elif name in pointnav_benchmark.BENCHMARKS:
            built = [(manifest_path(pointnav_benchmark.manifest_name(name, robot), pointnav_benchmark.MANIFEST_DIR),
                      pointnav_benchmark.build_manifest(name, robot)) for robot in sorted(ROBOTS)]
        else:
            raise UserError(f"unknown benchmark {name!r}; expected navtest-synth or pointnav-synth")
        for path, made in built:
            if write:
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(path, made.to_json().encode())
                print(f"{made.name} v{made.version}: {len(made)} items, set {made.set_hash[:16]} -> {path}")
                continue
            shipped = BenchmarkManifest.read(path)
            shipped.check_all(list(made.item_ids), list(made.digests))
            if len(shipped) != len(made):
                raise ManifestError(f"{path}: {len(shipped)} items, this checkout builds {len(made)}")
            print(f"{made.name} v{made.version}: {len(made)} items match {path} (set {made.set_hash[:16]})")


@app.command()
def bench(
    name: Annotated[str, typer.Argument(help=f"Benchmark: {', '.join(BENCHMARKS)}.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object as the last line.")] = False,
    seconds: Annotated[float, typer.Option(help="Rough time budget per measurement [s].")] = 10.0,
) -> None:
    """Measure speed; `--json` ends with one JSON line of the figures."""
    with user_errors():
        if name not in BENCHMARKS:
            raise UserError(f"unknown benchmark {name!r}; expected one of {', '.join(BENCHMARKS)}")
        if seconds <= 0:
            raise UserError(f"--seconds must be positive, got {seconds}")
        figures = BENCHMARKS[name](seconds)
    if as_json:
        print(json.dumps(figures, sort_keys=True))
    else:
        for key, value in figures.items():
            print(f"{key:>32}: {value}")
