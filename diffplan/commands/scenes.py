"""`diffplan scenes ...`: generate synthetic driving datasets, draw a scene, print statistics."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from diffplan.commands.scenes_import import app as import_app
from diffplan.console import (
    RayOption,
    ResumeOption,
    WorkersOption,
    output_console,
    run_with_bar,
    user_errors,
)
from scenes.store import DatasetError, DriveDataset

if TYPE_CHECKING:
    from scenes.nav.types import NavEpisode

app = typer.Typer(help="Driving scenes and datasets: synthetic, imported from real logs.", no_args_is_help=True, add_completion=False,
                  rich_markup_mode="markdown")
console = output_console()
app.add_typer(import_app, name="import")

DatasetArg = Annotated[Path, typer.Argument(help="Dataset folder written by `diffplan scenes generate`.")]


@app.command()
def generate(
    out: Annotated[Path, typer.Option(help="Dataset folder to create (or to continue with --resume).")],
    n: Annotated[int, typer.Option(help="Number of scenes.")] = 100,
    split: Annotated[str, typer.Option(help="train, val or test: each draws seeds from its own range.")] = "train",
    seed: Annotated[int, typer.Option(help="Dataset seed: scene i gets seed range_start(split) + seed + i.")] = 0,
    shard_size: Annotated[int, typer.Option(help="Scenes per Parquet shard (the unit of work).")] = 100,
    scenario: Annotated[str | None, typer.Option(
        help="Only this scenario type, e.g. intersection_left. Default: drawn from each scene's seed.")] = None,
    benchmark: Annotated[str | None, typer.Option(
        help="A fixed held-out benchmark set (navtest-synth), checked against its shipped manifest; sets --n, "
             "--split and --seed.")] = None,
    workers: WorkersOption = 1,
    ray: RayOption = None,
    resume: ResumeOption = False,
) -> None:
    """Generate N seeded synthetic driving scenes into a Parquet dataset.

    The same options give the same bytes, whatever --workers or --ray and however often the job was
    interrupted. `--benchmark navtest-synth` builds the 500-scene driving benchmark (50 of each scenario type,
    test seeds).
    """
    from diffplan.jobs import RunOptions
    from scenes.generate import GenerateConfig, SceneGenerationJob, benchmark_config

    with user_errors():
        if benchmark is not None:
            config = benchmark_config(benchmark)
        else:
            config = GenerateConfig(n=n, split=split, seed=seed, shard_size=shard_size, scenario=scenario)
        job = SceneGenerationJob(config)
        info = run_with_bar(job, out, RunOptions(workers, ray, resume), "scenes", config.n, "generating")
    console.print(f"wrote {info.num_episodes} scenes in {info.num_shards} shard(s) to {out}")


@app.command()
def show(
    dataset: DatasetArg,
    out: Annotated[Path, typer.Option(help="PNG file to write.")] = Path("bev.png"),
    index: Annotated[int, typer.Option(help="Episode index.")] = 0,
    radius: Annotated[float, typer.Option(help="Half-width of the view [m].")] = 50.0,
) -> None:
    """Draw one scene from above: lanes, drivable area, agents, ego, route, history and future."""
    from scenes.render import save_bev  # matplotlib is slow to import; only this command needs it

    with user_errors(DatasetError):
        data = DriveDataset.open(dataset)
        if not 0 <= index < len(data):
            raise DatasetError(f"{dataset}: --index {index} is out of range (the dataset has {len(data)} scenes)")
        scene = data[index]
        save_bev(scene, out, radius)
    console.print(f"{scene.metadata.scene_id} ({scene.metadata.scenario_type.value}) -> {out}")


@app.command()
def export(
    dataset: DatasetArg,
    out: Annotated[Path, typer.Option(help="Folder to write.")],
    format: Annotated[str, typer.Option("--format", help="openscene (NAVSIM v1.1 logs and nuPlan GPKG maps) or "
                                                          "nuscenes (v1.0 tables, map expansion, CAN bus).")
                      ] = "openscene",
    location: Annotated[str, typer.Option(help="openscene: the nuPlan map location that holds every scene's "
                                               "map.")] = "us-nv-las-vegas-strip",
    map_name: Annotated[str, typer.Option(help="nuscenes: the map name (boston-seaport, singapore-onenorth, "
                                               "singapore-hollandvillage, singapore-queenstown).")
                        ] = "boston-seaport",
    version: Annotated[str, typer.Option(help="nuscenes: the version folder of the tables.")] = "v1.0-synth",
    limit: Annotated[int | None, typer.Option(help="Only the first N scenes.")] = None,
) -> None:
    """Write a dataset in a real dataset's format, so that its own tools read our worlds.

    `--format openscene`: one OpenScene log pickle per scene (15 frames at 2 Hz) in OUT/logs, nuPlan maps for
    all four locations in OUT/maps and OUT/scene_filter.yaml naming each scene's current frame; scene k is moved
    by (k mod 100, k div 100) x 1 km so the maps share one GPKG. Point NAVSIM at it with OPENSCENE_DATA_ROOT
    and NUPLAN_MAPS_ROOT; `diffplan scenes import openscene` reads it back.

    `--format nuscenes`: a nuScenes dataroot that nuscenes-devkit loads (`NuScenes(version, OUT)`,
    `NuScenesMap`, `NuScenesCanBus`): the 13 tables, the map expansion, CAN bus pose messages and placeholder
    sensor files; up to 10 scenes take the v1.0-mini scene names (mini_train, mini_val). `diffplan scenes
    import nuscenes` reads it back.
    """
    from diffplan.console import UserError, progress_bar

    with user_errors(DatasetError):
        if format not in ("openscene", "nuscenes"):
            raise UserError(f"unknown --format {format!r}; expected openscene or nuscenes")
        data = DriveDataset.open(dataset)
        if limit is not None and limit < 1:
            raise UserError(f"--limit must be positive, got {limit}")
        count = len(data) if limit is None else min(limit, len(data))
        with progress_bar("scenes") as bar:
            task = bar.add_task("exporting", total=count)
            if format == "openscene":
                from scenes.exporters.openscene_dataset import export_openscene

                export_openscene((data[i] for i in range(count)), out, location, on_scene=lambda: bar.advance(task))
                written = f"{count} logs to {out}/logs, maps of 4 locations to {out}/maps and {out}/scene_filter.yaml"
            else:
                from scenes.exporters.nuscenes import export_nuscenes

                scenes = []
                for i in range(count):
                    scenes.append(data[i])
                    bar.advance(task)
                exported = export_nuscenes(scenes, out, version, map_name)
                written = (f"{len(exported)} nuScenes scenes ({exported[0].name} ..) to {out}/{version}, the "
                           f"{map_name} map expansion and CAN bus files")
    console.print(f"wrote {written}")


@app.command()
def stats(dataset: DatasetArg) -> None:
    """Counts per scenario type, ego speeds and agent counts."""
    from scenes.stats import dataset_stats, stats_table

    with user_errors(DatasetError):
        data = DriveDataset.open(dataset)
        rows = dataset_stats(data.episodes)
    splits = ", ".join(sorted(set(data.episodes.column("split").to_pylist())))
    console.print(stats_table(rows, f"{dataset}: {len(data)} scenes, split {splits}"))


@app.command("show-nav")
def show_nav(
    source: Annotated[str, typer.Argument(
        help="A world id (e.g. cluttered-123) or a nav dataset folder (`diffplan datagen nav`).")],
    out: Annotated[Path, typer.Option(help="PNG file to write.")] = Path("nav.png"),
    episode: Annotated[int, typer.Option(help="Episode index (dataset) or episode seed (world id).")] = 0,
    robot: Annotated[str, typer.Option(help="Robot profile for a world id: wheeled or quadruped.")] = "wheeled",
    depth: Annotated[bool, typer.Option(help="Also draw the depth image at the start (needs MuJoCo).")] = False,
) -> None:
    """Draw a navigation world from above: obstacles, start, goal and the expert's path.

    For a world id, an episode is sampled with Habitat's rules (seed --episode) and the expert plans it;
    for a dataset, episode --episode is drawn with the poses the expert drove.
    """

    from diffplan.console import UserError
    from scenes.nav.generator import world_from_id
    from scenes.nav.render import save_nav_picture
    from scenes.nav.types import ROBOTS

    with user_errors(DatasetError):
        path = poses = None
        chosen: NavEpisode | None
        if Path(source).is_dir():
            from scenes.store.nav import NavDataset

            data = NavDataset.open(source)
            episodes = data.episodes()
            if not 0 <= episode < len(episodes):
                raise UserError(f"{source}: --episode {episode} is out of range ({len(episodes)} episodes)")
            chosen = episodes[episode]
            profile = ROBOTS[chosen.robot]
            world = world_from_id(chosen.world_id)
            poses = data.episode_poses(episode)
        else:
            if robot not in ROBOTS:
                raise UserError(f"unknown robot {robot!r}; expected one of {', '.join(ROBOTS)}")
            try:
                world = world_from_id(source)
            except ValueError as error:
                raise UserError(f"{source}: neither a dataset folder nor a world id ({error})") from None
            from datagen.nav_expert import expert_path
            from scenes.nav.episodes import sample_episode
            from scenes.nav.mujoco_world import MujocoNavWorld
            from scenes.portable import PortableRandom

            profile = ROBOTS[robot]
            chosen = sample_episode(MujocoNavWorld(world), profile, PortableRandom(episode), f"seed{episode}")
            if chosen is not None:
                path = expert_path(MujocoNavWorld(world), chosen.start[:2], chosen.goal, profile)
        # depth from the start, looking along the first stretch of the path (or at the goal)
        save_nav_picture(world, profile, out, chosen, path, poses, depth=depth and chosen is not None)
    console.print(f"{world.world_id} ({profile.name}) -> {out}")
