"""`diffplan node sim`: PointNav episodes driven through the node's messages, as a robot would drive them.

A bridge stands in for the robot: at each control step (0.1 s) it publishes `nav_msgs/Odometry` (the pose and
the last command), at each planning step (every 3 control steps, as `eval pointnav`) a depth
`sensor_msgs/Image` (32FC1 [m]) rendered from the MuJoCo world, and once the goal as
`geometry_msgs/PoseStamped`; it takes the node's `/cmd_vel` Twist and integrates it on the unicycle with the
same collision sliding as `eval pointnav`. Metrics are habitat-lab's, from `eval.pointnav`.

The bridge runs on simulated time and calls the node core's ticks on `eval pointnav`'s timeline, so with the
node's goal tolerance set to 0 the episodes are the in-process evaluation's, message for message: any
difference comes from the messages (depth rounded through the image encoding, the node's own stop rules).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

import planners
from diffplan.node import messages
from diffplan.node.interface import InputRole, OutputRole
from diffplan.node.nav_core import NavNodeCore
from diffplan.node.params import NodeParams
from eval.pointnav.loop import LoopConfig, run_closed_loop
from eval.pointnav.metrics import EpisodeTrace, score_episode
from eval.pointnav.results import EpisodeResult
from eval.pointnav.runner import DEFAULT_WORLDS, WorldCache, episode_seed, seed_episode_rngs
from scenes.nav import ROBOTS, NavEpisode, NavWorldInterface, RobotProfile


def sim_params(loop: LoopConfig, params: NodeParams) -> NodeParams:
    """`params` with `eval pointnav`'s timeline and camera: planning every `plan_every` control steps."""
    camera = loop.camera
    return replace(params, plan_rate_hz=1.0 / (loop.plan_every * loop.dt), control_rate_hz=1.0 / loop.dt,
                   camera_width=camera.width, camera_height=camera.height, camera_hfov_deg=camera.hfov_deg,
                   camera_mount_height=camera.mount_height)


def drive_through_node(world: NavWorldInterface, episode: NavEpisode, core: NavNodeCore,
                       loop: LoopConfig, start_distance: float) -> EpisodeTrace:
    """One episode through a fresh node's messages (see the module docstring): what happened, not yet scored
    (the latencies are all of the core's, so give each episode its own core)."""
    frame, base = core.params.odom_frame, core.params.base_frame
    goal = np.asarray(episode.goal, dtype=np.float64)
    core.on_message(InputRole.GOAL, messages.pose_stamped(0.0, frame, goal[0], goal[1], 0.0), 0.0)

    def sense(pose: np.ndarray, velocity: np.ndarray, now: float) -> None:
        odometry = messages.odometry(now, frame, base, pose[0], pose[1], pose[2], velocity[0], velocity[1])
        core.on_message(InputRole.ODOMETRY, odometry, now)

    def plan(pose: np.ndarray, velocity: np.ndarray, now: float) -> None:
        depth = np.asarray(world.render_depth(pose, loop.camera), dtype=np.float32)
        core.on_message(InputRole.DEPTH, messages.depth_image(now, "camera", depth, "32FC1"), now)
        core.plan_tick(now)  # a planner failure is the node's safe stop, not the end of the episode

    def control(pose: np.ndarray, now: float) -> np.ndarray:
        twist = next(o.message for o in core.control_tick(now) if o.role is OutputRole.CMD_VEL)
        twist = getattr(twist, "twist", twist)  # TwistStamped carries the Twist
        return np.array([twist.linear.x, twist.angular.z])

    return run_closed_loop(world, episode, core.robot, loop, start_distance, plan, control,
                           core.safety.latencies_ms, sense)


def run_node_episodes(planner_name: str, episodes: Sequence[tuple[int, NavEpisode]], params: NodeParams,
                      loop: LoopConfig | None = None, seed: int = 0, worlds: str | None = None,
                      on_episode: Callable[[EpisodeResult], None] = lambda result: None) -> list[EpisodeResult]:
    """Run the (index, episode) pairs, each through a fresh node core, seeded per episode as `eval pointnav`
    (`loop`: its default LoopConfig)."""
    loop = loop or LoopConfig()
    planner = planners.load(planner_name)
    planners.require_domain(planner, planners.Domain.NAVIGATION, "node sim")
    cache = WorldCache(worlds or DEFAULT_WORLDS)
    params = sim_params(loop, params)
    results = []
    for index, episode in episodes:
        robot = ROBOTS[episode.robot]
        if isinstance(getattr(planner, "robot", None), RobotProfile):  # the rule-based baselines' footprint
            planner.robot = robot  # type: ignore[attr-defined]
        seed_episode_rngs(seed, index)
        core = NavNodeCore(planner, robot.name, replace(params, seed=episode_seed(seed, index)))  # a fresh node
        planner.reset()
        world = cache.get(episode.world_id)
        start_distance = float(world.geodesic_distance(np.asarray(episode.start[:2], np.float64),
                                                       np.asarray(episode.goal, np.float64), robot))
        trace = drive_through_node(world, episode, core, loop, start_distance)
        results.append(score_episode(trace, index, episode.episode_id, episode.world_id, loop.success_distance,
                                     loop.navdp_success_distance))
        on_episode(results[-1])
    return results
