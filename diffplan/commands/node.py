"""`diffplan node`: a planner as a ROS 2 node (rclpy or plain DDS), its bag replay, and `node sim`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

import planners
from diffplan.console import UserError, output_console, user_errors

app = typer.Typer(help="Run a planner as a ROS 2 node.", add_completion=False, rich_markup_mode="markdown",
                  invoke_without_command=True)
console = output_console()
ROBOTS = ("wheeled", "quadruped", "vehicle")


@app.callback()
def node(
    ctx: typer.Context,
    planner: Annotated[str | None, typer.Option(help="Planner name or checkpoint: a navigation planner for "
                                                     "--robot wheeled|quadruped, a driving one for vehicle.")] = None,
    robot: Annotated[str, typer.Option(help="wheeled, quadruped (depth + odometry + goal in, cmd_vel out) or "
                                            "vehicle (odometry + detections + route in, plan out).")] = "wheeled",
    transport: Annotated[str, typer.Option(help="auto (rclpy when importable, else dds), rclpy, or dds "
                                                "(cyclonedds speaking ROS 2's wire format; no ROS install).")
                         ] = "auto",
    params: Annotated[Path | None, typer.Option(help="ROS 2 parameters YAML (`diffplan_node: ros__parameters: "
                                                     "{...}`): rates, ages, tolerances, frames, remap.")] = None,
    map: Annotated[Path | None, typer.Option("--map", help="vehicle: the map, a dataset of driving scenes (its "
                                                           "first scene's map) or a nuPlan maps root with "
                                                           "--location.")] = None,
    stamped_cmd_vel: Annotated[bool, typer.Option(help="Publish geometry_msgs/TwistStamped (Nav2 Kilted's "
                                                       "default) instead of Twist.")] = False,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds (default: until "
                                                        "Ctrl-C).")] = None,
    replay: Annotated[Path | None, typer.Option(help="Replay this rosbag2 (mcap or sqlite3) through the node "
                                                     "instead of running live.")] = None,
    record: Annotated[Path | None, typer.Option(help="With --replay: the bag to write, inputs and outputs.")] = None,
) -> None:
    """Run a planner behind ROS 2 topics: Nav2's QoS, remappable topics, REP-103/105 frames.

    Navigation robots subscribe to `/camera/depth/image_raw` (16UC1 mm or 32FC1 m), `/camera/depth/camera_info`,
    `/odom` (best effort) and `/goal_pose`, plan at 4 Hz and publish `/diffplan/plan` (nav_msgs/Path),
    `/diffplan/candidates` (MarkerArray coloured by critic value), `/cmd_vel` at 10 Hz and
    `/diffplan/diagnostics` (latency p50/p95/p99, input ages, state). Vehicles subscribe to `/odom`,
    `/detections` (vision_msgs/Detection3DArray) and `/route` (nav_msgs/Path) and publish the 8-pose plan,
    all modes and diagnostics. Learned models propose, simple rules dispose: stale inputs, bad messages, a
    planner error or timeout, a time jump or the goal reached give a zero command, and the node never crashes.
    """
    if ctx.invoked_subcommand is not None:
        return
    from diffplan.node.params import NodeParams

    with user_errors():
        if planner is None:
            raise UserError("--planner is required (or a subcommand: sim)")
        if robot not in ROBOTS:
            raise UserError(f"unknown --robot {robot!r}; expected one of {', '.join(ROBOTS)}")
        settings = NodeParams() if params is None else NodeParams.from_yaml(params)
        if stamped_cmd_vel:
            from dataclasses import replace

            settings = replace(settings, stamped_cmd_vel=True)
        core = _core(planner, robot, settings, map)
        if replay is not None:
            from diffplan.node.bag import replay_bag

            if record is None:
                raise UserError("--replay needs --record OUT (the bag to write)")
            counts = replay_bag(replay, core, record, storage="sqlite3" if record.suffix == ".db3" else "mcap")
            console.print(f"replayed {replay} -> {record}: {counts}", highlight=False)
            return
        chosen = _transport(transport, core, settings)
        console.print(f"diffplan node: {planner} ({robot}) on {transport}; Ctrl-C stops", highlight=False)
        stats = chosen.run(duration)
        chosen.close()
    console.print(f"stopped: {stats}", highlight=False)


def _core(planner: str, robot: str, settings, road_source: Path | None):
    """The node core for `robot`, its planner loaded and checked for the domain."""
    loaded = planners.load(planner)
    if robot == "vehicle":
        from diffplan.node.core import VehicleNodeCore

        planners.require_domain(loaded, planners.Domain.DRIVING, "node --robot vehicle")
        if road_source is None:
            raise UserError("--robot vehicle needs --map (a dataset of driving scenes)")
        from planners.pstl.planner import PstlPlanner
        from scenes.store import DriveDataset

        if isinstance(loaded, PstlPlanner):  # pSTL's "Ours": STL objective, RefineNet, robustness ranking
            from eval.pstl.closed_loop import with_stl_feedback

            with_stl_feedback(loaded)
        return VehicleNodeCore(loaded, DriveDataset.open(road_source)[0].map, settings)
    from diffplan.node.nav_core import NavNodeCore

    planners.require_domain(loaded, planners.Domain.NAVIGATION, f"node --robot {robot}")
    core = NavNodeCore(loaded, robot, settings)
    core.warm_up()
    return core


def _transport(choice: str, core, settings):
    """The transport `choice` (auto: rclpy when importable, else dds) around `core`."""
    from diffplan.node.rclpy_transport import available_transport

    if choice not in ("auto", "rclpy", "dds"):
        raise UserError(f"unknown --transport {choice!r}; expected auto, rclpy or dds")
    if available_transport(choice) == "rclpy":
        from diffplan.node.rclpy_transport import RclpyTransport

        return RclpyTransport(core)
    from diffplan.node.dds import DdsTransport

    return DdsTransport(core)


@app.command()
def sim(
    planner: Annotated[str, typer.Option(help="A navigation planner name or checkpoint.")],
    episodes: Annotated[str, typer.Option(help="pointnav-synth (the benchmark eval pointnav runs).")
                        ] = "pointnav-synth",
    limit: Annotated[int | None, typer.Option(help="Only K episodes, spread over the set.")] = None,
    robot: Annotated[str, typer.Option(help="wheeled or quadruped.")] = "wheeled",
    params: Annotated[Path | None, typer.Option(help="Node parameters YAML (the timeline and camera are "
                                                     "eval pointnav's).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for stochastic planners (per episode, as eval pointnav).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line: success, spl, n_episodes, "
                                                         "...")] = False,
) -> None:
    """Drive `eval pointnav`'s episodes through the node's ROS messages, as a robot would.

    A bridge publishes odometry and depth images rendered from our MuJoCo worlds, sends the goal, and
    integrates the node's `/cmd_vel` on the unicycle (with eval pointnav's collision sliding). Metrics are
    habitat-lab's. The node's goal tolerance is 0 here unless --params sets it, so success is the planner's
    own, and the episodes match `eval pointnav` step for step (tests/diffplan/test_node_sim.py).
    """
    from dataclasses import replace

    from diffplan.console import progress_bar
    from diffplan.node.params import NodeParams
    from diffplan.node.sim import run_node_episodes
    from eval.pointnav.benchmark import load_benchmark, select_episodes
    from eval.pointnav.report import markdown_table
    from eval.pointnav.results import summarize

    with user_errors():
        if episodes != "pointnav-synth":
            raise UserError(f"unknown --episodes {episodes!r}; expected pointnav-synth")
        if limit is not None and limit < 1:
            raise UserError(f"--limit must be positive, got {limit}")
        settings = NodeParams(goal_tolerance_m=0.0) if params is None else NodeParams.from_yaml(params)
        settings = replace(settings, seed=seed)
        pool = load_benchmark(episodes, robot)
        chosen = [(i, pool[i]) for i in select_episodes(len(pool), limit, True)]
        with progress_bar("episodes") as bar:
            task = bar.add_task(f"node sim {planner}", total=len(chosen))
            results = run_node_episodes(planner, chosen, settings, seed=seed,
                                        on_episode=lambda result: bar.advance(task))
        summary = summarize(results)
    console.print(markdown_table([(f"node sim {Path(planner).stem}", summary)]), highlight=False, markup=False)
    if as_json:
        print(json.dumps(summary.as_json()))
