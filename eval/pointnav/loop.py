"""One closed-loop PointNav episode: depth -> planner -> tracker -> unicycle -> collision check, habitat metrics.

Timeline (control step dt = NAV_CONTROL_DT = 0.1 s):
    every `plan_every` = 3 steps (0.3 s, the InternNav real-robot client's planning period and the nearest
    multiple of 0.1 s not below NAV_PLAN_DT): render depth at the pose, NavObservation with the goal in the robot
    frame -> planner.plan_privileged (NavPrivileged: only oracles read it) -> plan to the world frame;
    every step: tracker (v, omega) on the latest plan -> unicycle_step -> world.collides on the new position.
    A move that would collide counts one collision and, as habitat-sim's `step_filter` with habitat-lab's
    default `allow_sliding: True`, ends at the nearest free position to its target (the disc slides along the
    obstacle); where that fails (corners) or `allow_sliding` is False, the position stays (the yaw still
    turns: the enclosing disc does not care).

STOP: habitat-lab's VelocityAction semantics. A commanded (v, omega) below (0.025 m/s, 1 deg/s) is STOP, which
ends the episode; habitat success needs STOP within 0.2 m (geodesic) of the goal. Trackers command rest when
the plan's end is reached, so a planner stops by returning a plan that ends where the robot is.
Other terminations: timeout (120 s, NavDP's limit) and stuck (less than 0.1 m of movement over 30 planning
steps = 9 s, longer than a 180 deg turn in place at 0.5 rad/s).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from eval.pointnav.metrics import NAVDP_SUCCESS_DISTANCE, SUCCESS_DISTANCE, EpisodeTrace, score_episode
from eval.pointnav.results import EpisodeResult, Termination
from planners.base import Planner
from planners.control import Tracker, clip_control, plan_to_world, unicycle_step
from planners.nav_base import NavPrivileged
from scenes.geometry import points_to_local
from scenes.nav import NAV_CONTROL_DT, CameraSpec, NavEpisode, NavObservation, NavWorldInterface, RobotProfile

STOP_SPEED = 0.025  # [m/s] habitat-lab VelocityAction: below this and STOP_YAW_RATE the command is STOP
STOP_YAW_RATE = math.radians(1.0)  # [rad/s]


@dataclass(frozen=True)
class LoopConfig:
    """How an episode is run.

    Attributes:
        camera: the depth camera. plan_every: control steps per planning step. max_time_s: timeout [s].
        stuck_plans, stuck_distance: stuck if the robot moved less than stuck_distance [m] over stuck_plans
            planning steps. success_distance, navdp_success_distance: [m].
        allow_sliding: colliding moves slide along the obstacle (habitat-lab's default) instead of stopping.
    """

    camera: CameraSpec = field(default_factory=CameraSpec)
    dt: float = NAV_CONTROL_DT
    plan_every: int = 3
    max_time_s: float = 120.0
    stuck_plans: int = 30
    stuck_distance: float = 0.1
    success_distance: float = SUCCESS_DISTANCE
    navdp_success_distance: float = NAVDP_SUCCESS_DISTANCE
    allow_sliding: bool = True


def is_stop(control: np.ndarray) -> bool:
    """Habitat's VelocityAction: a command below (0.025 m/s, 1 deg/s) is STOP."""
    return abs(control[0]) < STOP_SPEED and abs(control[1]) < STOP_YAW_RATE


def observe(world: NavWorldInterface, pose: np.ndarray, goal: np.ndarray, velocity: np.ndarray,
            camera: CameraSpec, time_s: float) -> NavObservation:
    """What the planner sees at `pose`: depth and the goal (x forward, y left, yaw 0) in the robot frame."""
    local = points_to_local(goal, pose)
    return NavObservation(depth=np.asarray(world.render_depth(pose, camera), dtype=np.float32),
                          goal=np.array([local[0], local[1], 0.0], dtype=np.float32),
                          velocity=np.asarray(velocity, dtype=np.float32), camera=camera, time_s=time_s)


SLIDE_STEP = 1e-3  # [m] finite-difference step of the clearance gradient
SLIDE_MARGIN = 1e-4  # [m] a slid position keeps this much more than the robot's radius


def slide(world: NavWorldInterface, start: np.ndarray, target: np.ndarray, robot: RobotProfile) -> np.ndarray:
    """(2,) the free position nearest `target` (2,) [m], reached by pushing it out of the obstacle along the
    clearance gradient (habitat-sim's navmesh `try_step`); `start` (2,) when that position collides or is
    farther from `start` than `target` is."""
    offsets = SLIDE_STEP * np.array([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    here, east, west, north, south = np.asarray(world.clearance(target[None, :] + offsets, robot), np.float64)
    gradient = np.array([east - west, north - south])
    norm = float(np.linalg.norm(gradient))
    if norm < 1e-9:
        return start
    depth = robot.radius + SLIDE_MARGIN - here
    slid = target + max(depth, 0.0) * gradient / norm
    if np.linalg.norm(slid - start) > np.linalg.norm(target - start) + 1e-9 or \
            bool(np.asarray(world.collides(slid[None, :], robot))[0]):
        return start
    return slid


def try_step(world: NavWorldInterface, pose: np.ndarray, control: np.ndarray, robot: RobotProfile, dt: float,
             allow_sliding: bool = True) -> tuple[np.ndarray, bool]:
    """(next pose (3,), collided): the unicycle step; when its position collides, the slid position
    (`allow_sliding`) or the old one, with the new yaw."""
    moved = unicycle_step(pose, control, dt)
    if np.allclose(moved[:2], pose[:2]) or not bool(np.asarray(world.collides(moved[None, :2], robot))[0]):
        return moved, False
    position = slide(world, pose[:2], moved[:2], robot) if allow_sliding else pose[:2]
    return np.array([position[0], position[1], moved[2]]), True


def run_episode(world: NavWorldInterface, episode: NavEpisode,
                planner: Planner[NavObservation, NavPrivileged], tracker: Tracker, robot: RobotProfile,
                config: LoopConfig = LoopConfig(), index: int = 0,
                on_plan: Callable[[np.ndarray], None] | None = None) -> EpisodeResult:
    """Drive one episode in closed loop (`drive_episode`) and score it with habitat-lab's metrics."""
    pose = np.asarray(episode.start, dtype=np.float64)
    start_distance = float(world.geodesic_distance(pose[:2], np.asarray(episode.goal, np.float64), robot))
    if not (math.isfinite(start_distance) and start_distance > 0):
        return EpisodeResult(index=index, episode_id=episode.episode_id, world_id=episode.world_id,
                             termination=Termination.ERROR,
                             error=f"the goal is unreachable from the start for {robot.name}",
                             start_distance=start_distance, positions=pose[None, :2].copy())
    trace = drive_episode(world, episode, planner, tracker, robot, config, start_distance, on_plan)
    return score_episode(trace, index, episode.episode_id, episode.world_id, config.success_distance,
                         config.navdp_success_distance)


def drive_episode(world: NavWorldInterface, episode: NavEpisode,
                  planner: Planner[NavObservation, NavPrivileged], tracker: Tracker, robot: RobotProfile,
                  config: LoopConfig, start_distance: float,
                  on_plan: Callable[[np.ndarray], None] | None = None) -> EpisodeTrace:
    """The closed loop of one episode (see the module docstring): what happened, not yet scored."""
    planner.reset()
    tracker.reset()
    goal = np.asarray(episode.goal, dtype=np.float64)
    start = np.asarray(episode.start, dtype=np.float64)
    path = np.repeat(start[None, :2], 2, axis=0)
    latencies: list[float] = []

    def plan(pose: np.ndarray, velocity: np.ndarray, time_s: float) -> str | None:
        nonlocal path
        observation = observe(world, pose, goal, velocity, config.camera, time_s)
        started = time.perf_counter()
        try:
            context = NavPrivileged(world, pose.copy(), goal.copy(), robot)  # only oracles read it
            result = planner.plan_privileged(observation, context)
            result.validate(planner.plan_spec)
            if not np.isfinite(result.trajectory.poses).all():
                raise ValueError("the plan has non-finite poses")
        except Exception as exception:  # noqa: BLE001 - any planner failure ends the episode as a failure
            return f"{type(exception).__name__}: {exception}".splitlines()[0]
        latencies.append(1e3 * (time.perf_counter() - started))
        path = plan_to_world(result.trajectory.poses, pose)
        if on_plan is not None:
            on_plan(path)
        return None

    def control(pose: np.ndarray, time_s: float) -> np.ndarray:
        return clip_control(tracker.control(pose, path), robot)

    return run_closed_loop(world, episode, robot, config, start_distance, plan, control, latencies)


def run_closed_loop(world: NavWorldInterface, episode: NavEpisode, robot: RobotProfile, config: LoopConfig,
                    start_distance: float, plan: Callable[[np.ndarray, np.ndarray, float], str | None],
                    control: Callable[[np.ndarray, float], np.ndarray], latencies: Sequence[float],
                    sense: Callable[[np.ndarray, np.ndarray, float], None] = lambda pose, velocity, time_s: None,
                    ) -> EpisodeTrace:
    """The loop's timeline and physics, whoever plans (see the module docstring). Every control step:
    `sense(pose, last command, t)`; every `plan_every` steps the stuck check, then `plan(pose, last command,
    t)` (an error message ends the episode as ERROR); then `control(pose, t)` -> (v, omega), STOP below
    habitat's threshold, else the unicycle step with collision sliding. `latencies` [ms] are read at the end."""
    pose = np.asarray(episode.start, dtype=np.float64).copy()
    goal = np.asarray(episode.goal, dtype=np.float64)
    positions, plan_positions = [pose[:2].copy()], []
    velocity = np.zeros(2)
    collisions, termination, error = 0, Termination.TIMEOUT, ""
    steps = round(config.max_time_s / config.dt)
    step = 0
    for step in range(steps):
        time_s = step * config.dt
        sense(pose, velocity, time_s)
        if step % config.plan_every == 0:
            plan_positions.append(pose[:2].copy())
            back = config.stuck_plans
            if len(plan_positions) > back and np.linalg.norm(plan_positions[-1] - plan_positions[-1 - back]) \
                    < config.stuck_distance:
                termination = Termination.STUCK
                break
            error = plan(pose, velocity, time_s) or ""
            if error:
                termination = Termination.ERROR
                break
        command = control(pose, time_s)
        if is_stop(command):
            termination = Termination.STOP
            break
        pose, collided = try_step(world, pose, command, robot, config.dt, config.allow_sliding)
        collisions += int(collided)
        velocity = command
        positions.append(pose[:2].copy())
    else:
        step = steps
    return EpisodeTrace(termination, error, np.array(positions), start_distance,
                        float(world.geodesic_distance(pose[:2], goal, robot)), float(np.linalg.norm(pose[:2] - goal)),
                        collisions, step * config.dt, tuple(latencies))
