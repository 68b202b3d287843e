"""The privileged nav expert: grid search, string pulling, NavDP's critic targets, episodes, demonstrations."""

import math
import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import pytest

from datagen.critic import (
    critic_from_clearance,
    critic_from_distances,
    critic_targets,
    critic_value,
    crop_obstacles,
    rotate_future,
)
from datagen.nav_expert import DEPTH_SCALE, critic_labels, expert_path, record_demo
from scenes.geometry import poses_to_local
from scenes.nav import (
    NAV_CAMERA_DT,
    NAV_PLAN_POSES,
    QUADRUPED,
    WHEELED,
    CameraSpec,
    ObstacleKind,
    generate_world,
)
from scenes.nav.episodes import keep_probability, sample_episode
from scenes.nav.grid import grid_graph, path_length, pull_string, shortest_field, trace
from scenes.nav.mujoco_world import MujocoNavWorld
from scenes.nav.world import make_world

SQ2 = math.sqrt(2.0)


def _grid_path(free: np.ndarray, start: tuple, goal: tuple, res: float = 1.0) -> tuple[float, np.ndarray]:
    w = free.shape[1]
    graph = grid_graph(free, res)
    dist, pred = shortest_field(graph, start[0] * w + start[1])
    nodes = trace(pred, start[0] * w + start[1], goal[0] * w + goal[1])
    return float(dist[goal[0] * w + goal[1]]), nodes


def test_grid_search_finds_the_known_shortest_paths():
    free = np.ones((5, 7), bool)
    # Open grid: (0, 0) -> (2, 6) is 2 diagonal + 4 straight steps.
    length, nodes = _grid_path(free, (0, 0), (2, 6))
    assert length == pytest.approx(4 + 2 * SQ2) and len(nodes) == 7
    # A wall in column 3 with a gap at row 4 only: down to the gap and up again, no corner cutting.
    free[:4, 3] = False
    length, nodes = _grid_path(free, (0, 0), (0, 6))
    # The gap (4, 3) can only be entered from (4, 2) and left to (4, 4) (diagonals past the wall's corner
    # (3, 3) are not allowed): (0,0)->(4,2) is 2 diagonals + 2 straight, the gap 2 straight, and
    # (4,4)->(0,6) 2 diagonals + 2 straight again.
    assert length == pytest.approx(6 + 4 * SQ2)
    assert (4, 3) in {(int(n) // 7, int(n) % 7) for n in nodes}
    # Weighted cells: a costly band makes the detour cheaper.
    cost = np.ones((3, 5))
    cost[1, :] = 10.0
    graph = grid_graph(np.ones((3, 5), bool), 1.0, cost)
    dist, _ = shortest_field(graph, 0)
    assert dist[4] == pytest.approx(4.0) and dist[2 * 5] == pytest.approx(11.0)  # 2 x (1 + 10) / 2
    # Unreachable.
    blocked = np.ones((3, 3), bool)
    blocked[:, 1] = False
    length, nodes = _grid_path(blocked, (0, 0), (0, 2))
    assert length == math.inf and nodes is None


def test_string_pulling_straightens_and_respects_obstacles():
    path = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0], [3.0, 1.0], [4.0, 0.0]])
    straight = pull_string(path, lambda xy: np.full(len(xy), 9.0), 1.0, 0.05)
    np.testing.assert_array_equal(straight, path[[0, -1]])
    # An obstacle disc of radius 0.5 at (2, 0): the chord through it is refused.
    clear = lambda xy: np.linalg.norm(xy - [2.0, 0.0], axis=1) - 0.5
    bent = pull_string(np.array([[0.0, 0.0], [2.0, 1.0], [4.0, 0.0]]), clear, 0.2, 0.05)
    assert len(bent) == 3


def test_geodesic_distance_and_path_clearance():
    world = make_world("hand-5", (0, 0, 10, 6), [], [(5.0, 0.0, 5.0, 4.0, 0.2, 1.5)])
    sim = MujocoNavWorld(world)
    assert sim.geodesic_distance(np.array([1.0, 5.0]), np.array([9.0, 5.0]), WHEELED) == pytest.approx(8.0)
    start, goal = np.array([3.0, 1.0]), np.array([7.0, 1.0])
    path = sim.shortest_path(start, goal, WHEELED)
    length = sim.geodesic_distance(start, goal, WHEELED)
    # Over the wall's end (x 4.9..5.1, top y = 4.1) at least `need` (radius + margin) above it.
    need = sim.robot_map(WHEELED).need
    lower = 2 * math.hypot(1.9, 3.1 + need) + 0.2
    assert lower <= length <= lower + 0.5 and path_length(path) == length
    assert (sim.clearance(path, WHEELED) >= WHEELED.radius).all()
    smooth = expert_path(sim, start, goal, WHEELED)
    np.testing.assert_allclose(smooth[[0, -1]], [start, goal])
    assert (sim.clearance(smooth, WHEELED) >= WHEELED.radius).all()


def test_critic_formula_on_hand_built_paths():
    x = 0.25 * np.arange(25)
    line = np.column_stack([x, np.zeros(25)])
    # One obstacle point 1 m to the side of the start: L1 distances 1 + x_i, no collision, net gain 6 m.
    assert critic_value(line, np.array([[0.0, 1.0]])) == pytest.approx(0.5 * 6.0)
    # A point 5 cm beside waypoint 12 (x = 3 m): one of the first 24 within 0.1 m; d_0 = d_24 = 3.05.
    assert critic_value(line, np.array([[3.0, 0.05]])) == pytest.approx(-5.0 / 24.0)
    # L1, not Euclidean: (1, 1) is 2 m from the start.
    assert critic_value(line[:2], np.array([[1.0, 1.0]])) == pytest.approx(0.5 * (1.75 - 2.0))
    # No obstacle points: 2.0.
    assert critic_value(line, np.zeros((0, 2))) == 2.0
    # The formula on distances: -5 * mean([0.05, 0.05] < 0.1) + 0.5 * (0.5 - 0.05).
    assert critic_from_distances(np.array([0.05, 0.05, 0.5])) == pytest.approx(-5.0 + 0.225)
    # Moving towards an obstacle and touching it at the end (d_24 is not in the collision mean).
    d = np.linspace(2.4, 0.05, 25)
    assert critic_from_distances(d) == pytest.approx(0.5 * (0.05 - 2.4))
    # Batched: one value per row.
    np.testing.assert_allclose(critic_from_distances(np.stack([d, d[::-1]])), [0.5 * (0.05 - 2.4), -5 / 24 + 1.175])


def test_esdf_critic_label_sees_the_robot_body():
    # Margins clearance - radius: [0.2, 0.05, 0.0, -0.3]; 2 of the first 3 below 0.1 m; net change -0.5 m.
    assert critic_from_clearance(np.array([0.5, 0.35, 0.3, 0.0]), 0.3) == pytest.approx(-10 / 3 - 0.25)
    # Margins are capped at OBSTACLE_CROP (2 m): far from everything the value is 0.
    assert critic_from_clearance(np.array([5.0, 2.3, 9.0]), 0.3) == pytest.approx(0.0)
    # Driving 1.5 m straight through a 10 cm wall whose face is 0.35 m ahead of the robot's centre.
    sim = MujocoNavWorld(make_world("hand-7", (-2, -5, 10, 5), [], [(2.0, -4.0, 2.0, 4.0, 0.1, 2.0)]))
    future = np.column_stack([0.0625 * np.arange(1, 25), np.zeros(24), np.zeros(24)])[None]
    frame = np.array([[1.6, 0.0, 0.0]])
    # ESDF: waypoints 0..13 (x < 2.451) have margin |x - 2| - 0.05 - r < 0.1; margins 0.35 - r -> 1.05 - r.
    r = WHEELED.radius
    assert critic_labels(sim, WHEELED, frame, future, "esdf")[0] == pytest.approx(-5 * 14 / 24 + 0.5 * 0.7)
    # The released code's label only counts the 4 waypoints within 0.1 m (L1) of the wall's faces.
    points = critic_labels(sim, WHEELED, frame, future, "points")[0]
    assert -5 * 5 / 24 < points < -5 * 3 / 24 + 0.5 * 0.7 and r > 0.3
    with pytest.raises(ValueError, match="unknown critic label"):
        critic_labels(sim, WHEELED, frame, future, "lidar")


def test_negatives_rotate_the_future_about_the_robot():
    future = np.column_stack([0.25 * np.arange(1, 25), np.zeros(24), np.zeros(24)])
    rotated = rotate_future(future, math.radians(60))
    np.testing.assert_allclose(rotated[:, 0], future[:, 0] * 0.5, atol=1e-12)
    np.testing.assert_allclose(rotated[:, 1], future[:, 0] * math.sqrt(3) / 2, atol=1e-12)
    np.testing.assert_allclose(rotated[:, 2], math.radians(60))
    # Critic targets of both in the world frame (robot at (1, 2) facing +y): the negative runs into a point.
    pose = np.array([1.0, 2.0, math.pi / 2])
    wall = np.array([[1.0 - 3.0 * math.sqrt(3) / 2, 2.0 + 1.5]])  # on the negative at 3 m
    value, negative = critic_targets(pose, future, rotated, wall)
    d0 = 3.0 * math.sqrt(3) / 2 + 1.5  # L1 from the robot to the point
    assert value == pytest.approx(0.5 * ((3.0 * math.sqrt(3) / 2 + 4.5) - d0))  # moving away along +y
    assert negative == pytest.approx(-5.0 / 24.0)  # waypoint 12 hits it; start and end are as far
    assert len(crop_obstacles(np.array([[0.0, 0.0], [10.0, 0.0]]), np.array([[1.0, 1.0], [3.0, 1.0]]))) == 1


def test_habitat_keep_probability():
    assert keep_probability(1.2) == 1.0 and keep_probability(1.1) == 1.0
    assert keep_probability(1.0) == pytest.approx(20 * 0.02**2)
    assert keep_probability(1.05) == pytest.approx(20 * 0.07**2)


@pytest.mark.parametrize("robot", [WHEELED, QUADRUPED], ids=lambda r: r.name)
def test_sampled_episodes_follow_habitat_rules(robot):
    sim = MujocoNavWorld(generate_world("cluttered", 4))
    rng = np.random.default_rng(0)
    episodes = [sample_episode(sim, robot, rng, f"e{k}") for k in range(6)]
    assert all(e is not None for e in episodes)
    for e in episodes:
        assert 1.0 <= e.geodesic_distance <= 30.0 and e.robot == robot.name
        assert not sim.collides(np.vstack([e.start[:2], e.goal]), robot).any()
        assert e.geodesic_distance == pytest.approx(sim.geodesic_distance(e.start[:2], e.goal, robot), rel=0.05)
        assert e.geodesic_distance >= np.linalg.norm(e.goal - e.start[:2]) - 1e-9


def test_recorded_demonstration():
    sim = MujocoNavWorld(generate_world("rooms", 2))
    rng = np.random.default_rng(5)
    episode = sample_episode(sim, WHEELED, rng, "demo")
    camera = CameraSpec(64, 64)
    demo = record_demo(sim, episode, WHEELED, camera, rng)
    assert not isinstance(demo, str), demo
    t = demo.num_frames
    assert demo.depth.shape == (t, 64, 64) and demo.depth.max() <= 5.0 * DEPTH_SCALE
    np.testing.assert_allclose(demo.poses[0], episode.start)
    assert np.linalg.norm(demo.poses[-1, :2] - episode.goal) < 0.2
    assert np.abs(demo.goal[-1, :2]).max() < 0.2 and (demo.goal[:, 2] == 0).all()
    assert not sim.collides(demo.poses[:, :2], WHEELED).any()
    step = np.linalg.norm(np.diff(demo.poses[:, :2], axis=0), axis=1)
    assert step.max() <= WHEELED.v_max * NAV_CAMERA_DT + 1e-9
    # future[k] holds frames k+1.. in frame k's robot frame, padded with the last frame.
    np.testing.assert_allclose(demo.future[0], poses_to_local(demo.poses[1:NAV_PLAN_POSES + 1], demo.poses[0]))
    np.testing.assert_allclose(demo.future[-1], 0.0, atol=1e-12)
    assert (np.abs(demo.augment_yaw) <= math.radians(60)).all()
    np.testing.assert_allclose(demo.augmented_future, rotate_future(demo.future, demo.augment_yaw))
    assert np.isfinite(demo.critic).all() and np.isfinite(demo.augmented_critic).all()
    assert demo.velocity[0].tolist() == [0.0, 0.0] and (demo.velocity[:, 0] <= WHEELED.v_max).all()
    # Depth at the first frame is what the world renders there.
    for k in (0, t // 2, t - 1):
        again = np.rint(sim.render_depth(demo.poses[k], camera) * DEPTH_SCALE)
        assert np.abs(demo.depth[k] - again).max() <= 1  # frames are rendered in batches: same to 0.1 mm
    sim.close()


def test_expert_walks_under_a_table_only_on_four_legs():
    table = (int(ObstacleKind.TABLE), 5.0, 1.0, 1.9, 1.4, math.pi / 2, 0.0, 0.75)
    walls = [(0.0, -0.05, 10.0, -0.05, 0.1, 1.5), (0.0, 2.05, 10.0, 2.05, 0.1, 1.5)]
    sim = MujocoNavWorld(make_world("hand-6", (0, -0.1, 10, 2.1), [table], walls))
    start, goal = np.array([1.0, 1.0]), np.array([9.0, 1.0])
    assert expert_path(sim, start, goal, WHEELED) is None
    path = expert_path(sim, start, goal, QUADRUPED)
    assert path is not None and np.abs(path[:, 1] - 1.0).max() < 0.05
