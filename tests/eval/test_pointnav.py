"""PointNav evaluation: habitat metrics, episode files, frames, the closed loop on a hand-built world, the CLI."""

import gzip
import json
import math

import numpy as np
import pytest
import shapely
from scipy.sparse.csgraph import dijkstra
from typer.testing import CliRunner

from diffplan.jobs import RunOptions, run_job
from eval.pointnav.episodes import episode_to_habitat, read_episodes, write_episodes
from eval.pointnav.loop import SLIDE_MARGIN, LoopConfig, run_episode, try_step
from eval.pointnav.metrics import habitat_success, navdp_success, soft_spl, spl, travelled_length
from eval.pointnav.results import Termination
from eval.pointnav.runner import PointNavConfig, PointNavEvaluation, evaluate_episodes
from planners.base import Plan
from planners.control import MPCTracker, PurePursuit
from planners.nav_base import NavPlanner
from planners.nav_rule_based import DWAPlanner, ExpertNavPlanner, GoToGoalPlanner, waypoints_plan
from scenes.nav import NAV_PLAN_POSES, WHEELED, CameraSpec, NavEpisode
from scenes.nav.habitat_frames import (
    points_from_habitat,
    points_to_habitat,
    pose_from_habitat,
    pose_to_habitat,
)

# ---------------------------------------------------------------------------------------------------------------
# A hand-built world: axis-aligned boxes on a floor inside rectangular bounds. Clearance is analytic, depth is
# ray-cast in numpy, geodesics come from a visibility graph over the boxes inflated by the robot radius + margin.


class BoxWorld:
    """NavWorldInterface on boxes (xmin, ymin, xmax, ymax, height) [m] inside `bounds` (walls at the edges)."""

    plan_margin = 0.15  # [m] paths keep this much beyond the robot's radius from boxes

    def __init__(self, world_id: str, bounds, boxes):
        self.world_id = world_id
        self.bounds = np.asarray(bounds, dtype=np.float64)
        self.boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 5)

    def clearance(self, xy, robot=WHEELED):
        xy = np.atleast_2d(np.asarray(xy, dtype=np.float64))
        x0, y0, x1, y1 = self.bounds
        walls = np.minimum.reduce([xy[:, 0] - x0, x1 - xy[:, 0], xy[:, 1] - y0, y1 - xy[:, 1]])
        if not len(self.boxes):
            return walls
        dx = np.maximum(np.maximum(self.boxes[None, :, 0] - xy[:, :1], xy[:, :1] - self.boxes[None, :, 2]), 0.0)
        dy = np.maximum(np.maximum(self.boxes[None, :, 1] - xy[:, 1:], xy[:, 1:] - self.boxes[None, :, 3]), 0.0)
        return np.minimum(walls, np.hypot(dx, dy).min(axis=1))

    def collides(self, xy, robot=WHEELED):
        return self.clearance(xy, robot) < robot.radius

    def render_depth(self, pose, camera):
        k = camera.intrinsics()
        rows, cols = np.mgrid[0:camera.height, 0:camera.width]
        local = np.stack([np.ones(rows.shape), -(cols + 0.5 - k[0, 2]) / k[0, 0], -(rows + 0.5 - k[1, 2]) / k[1, 1]],
                         axis=-1).reshape(-1, 3)
        c, s = math.cos(pose[2]), math.sin(pose[2])
        direction = np.column_stack([c * local[:, 0] - s * local[:, 1], s * local[:, 0] + c * local[:, 1], local[:, 2]])
        origin = np.array([pose[0], pose[1], camera.mount_height])
        depth = np.full(len(direction), np.inf)
        down = direction[:, 2] < 0
        depth[down] = origin[2] / -direction[down, 2]  # the floor; t is the forward (z-)depth since local x = 1
        x0, y0, x1, y1 = self.bounds
        walls = [(x0 - 1, y0 - 1, x0, y1 + 1, 2.0), (x1, y0 - 1, x1 + 1, y1 + 1, 2.0),
                 (x0 - 1, y0 - 1, x1 + 1, y0, 2.0), (x0 - 1, y1, x1 + 1, y1 + 1, 2.0)]
        for box in [*self.boxes, *walls]:
            lo, hi = np.array([box[0], box[1], 0.0]), np.array([box[2], box[3], box[4]])
            with np.errstate(divide="ignore", invalid="ignore"):
                t0, t1 = (lo - origin) / direction, (hi - origin) / direction
            near = np.nanmax(np.minimum(t0, t1), axis=1)
            far = np.nanmin(np.maximum(t0, t1), axis=1)
            hit = (near <= far) & (far > 0)
            depth[hit] = np.minimum(depth[hit], np.maximum(near[hit], 0.0))
        depth = depth.reshape(camera.height, camera.width)
        depth[(depth < 0.1) | (depth > 5.0)] = 0.0
        return depth.astype(np.float32)

    def _inflated(self, robot, extra):
        grow = robot.radius + self.plan_margin + extra
        return [shapely.box(b[0] - grow, b[1] - grow, b[2] + grow, b[3] + grow) for b in self.boxes]

    def shortest_path(self, start, goal, robot=WHEELED):
        blocks = self._inflated(robot, 0.0)
        tight = self._inflated(robot, -self.plan_margin)  # start and goal may lie inside the planning margin
        corners = [np.array(p.exterior.coords[:4]) for p in self._inflated(robot, 0.01)]
        nodes = np.vstack([np.asarray(start, float)[:2], np.asarray(goal, float)[:2], *corners])
        inside = self.clearance(nodes, robot) >= robot.radius
        n = len(nodes)
        weights = np.zeros((n, n))
        for i in range(n):
            for j in range(i + 1, n):
                if not (inside[i] and inside[j]) and i > 1:
                    continue
                segment = shapely.LineString([nodes[i], nodes[j]])
                if all(segment.intersection(block).length < 1e-9 for block in (tight if i < 2 else blocks)):
                    weights[i, j] = weights[j, i] = np.linalg.norm(nodes[i] - nodes[j])
        distances, previous = dijkstra(weights, indices=0, return_predecessors=True)
        if not np.isfinite(distances[1]):
            return None
        order = [1]
        while order[-1] != 0:
            order.append(previous[order[-1]])
        return nodes[order[::-1]]

    def geodesic_distance(self, start, goal, robot=WHEELED):
        path = self.shortest_path(start, goal, robot)
        return math.inf if path is None else float(np.linalg.norm(np.diff(path, axis=0), axis=1).sum())

    def obstacle_footprints(self, robot=WHEELED):
        return [shapely.box(*b[:4]) for b in self.boxes]


WORLDS = {
    "box": BoxWorld("box", (-1.0, -3.0, 8.0, 3.0), [(2.5, -1.0, 3.5, 1.0, 0.8)]),
    "wall": BoxWorld("wall", (-1.0, -3.0, 8.0, 3.0), [(3.0, -3.0, 3.3, 1.8, 1.5)]),  # a 1.2 m gap at the top
    "open": BoxWorld("open", (-1.0, -3.0, 8.0, 3.0), []),
}


def fake_world(world_id: str) -> BoxWorld:
    """World factory for PointNavConfig.worlds ("tests.eval.test_pointnav:fake_world")."""
    return WORLDS[world_id]


def episode(world_id: str, start, goal, episode_id: str = "0") -> NavEpisode:
    world = WORLDS[world_id]
    return NavEpisode(episode_id, world_id, np.asarray(start, float), np.asarray(goal, float),
                      world.geodesic_distance(np.asarray(start, float)[:2], np.asarray(goal, float)))


# ---------------------------------------------------------------------------------------------------------------
# metrics


def test_spl_and_soft_spl_on_hand_built_episodes():
    # 3 m to the goal, a 1 m detour: L = 4 m
    positions = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 0.5], [1.0, 0.0], [3.0, 0.0]])
    length = travelled_length(positions)
    assert length == pytest.approx(4.0)
    assert spl(1.0, 3.0, length) == pytest.approx(0.75)
    assert spl(0.0, 3.0, length) == 0.0
    assert spl(1.0, 3.0, 2.5) == pytest.approx(1.0)  # shorter than d0 (cut inside the success radius): capped
    assert soft_spl(3.0, 0.5, length) == pytest.approx((1 - 0.5 / 3) * 3 / 4)
    assert soft_spl(3.0, 4.0, 1.0) == 0.0  # ended further away than it started
    assert soft_spl(3.0, 0.0, 3.0) == pytest.approx(1.0)
    assert travelled_length(positions[:1]) == 0.0


def test_success_rules_habitat_stop_at_0_2_m_and_navdp_1_m():
    assert habitat_success(True, 0.19) == 1.0
    assert habitat_success(True, 0.2) == 0.0
    assert habitat_success(False, 0.0) == 0.0  # no STOP, no success
    assert navdp_success(0.99) == 1.0 and navdp_success(1.0) == 0.0


# ---------------------------------------------------------------------------------------------------------------
# frames and episode files


def test_frame_conversions_known_cases():
    np.testing.assert_allclose(points_to_habitat(np.array([1.0, 2.0]), 0.3), [1.0, 0.3, -2.0])
    position, rotation = pose_to_habitat(np.array([1.0, 2.0, math.pi / 2]))
    np.testing.assert_allclose(position, [1.0, 0.0, -2.0])
    np.testing.assert_allclose(rotation, [0, 0, 0, 1], atol=1e-12)  # facing world +y = habitat -Z: identity
    _, rotation = pose_to_habitat(np.array([0.0, 0.0, 0.0]))  # facing world +x = habitat +X: -90 deg about Y
    np.testing.assert_allclose(rotation, [0, -math.sqrt(0.5), 0, math.sqrt(0.5)], atol=1e-12)
    # habitat's generator: yaw a about +Y -> [0, sin(a/2), 0, cos(a/2)]; a = 90 deg faces habitat -X = world -x
    pose = pose_from_habitat(np.array([2.0, 0.1, 3.0]), np.array([0, math.sin(math.pi / 4), 0, math.cos(math.pi / 4)]))
    np.testing.assert_allclose(pose, [2.0, -3.0, -math.pi], atol=1e-12)
    # a small roll about the forward axis does not change the yaw
    roll = np.array([0.0, 0.0, math.sin(0.1), math.cos(0.1)])  # about habitat Z, with identity yaw
    assert pose_from_habitat(np.zeros(3), roll)[2] == pytest.approx(math.pi / 2)


def test_frame_conversions_round_trip_and_agree_with_the_rotation_matrix():
    rng = np.random.default_rng(0)
    for pose in np.column_stack([rng.uniform(-20, 20, (50, 2)), rng.uniform(-math.pi, math.pi, 50)]):
        position, rotation = pose_to_habitat(pose, floor_height=0.5)
        np.testing.assert_allclose(pose_from_habitat(position, rotation), pose, atol=1e-9)
        x, y, z, w = rotation
        matrix = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                           [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                           [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
        forward = matrix @ np.array([0.0, 0.0, -1.0])  # the agent looks along its local -Z
        np.testing.assert_allclose(forward, points_to_habitat(np.array([math.cos(pose[2]), math.sin(pose[2])])),
                                   atol=1e-12)
    np.testing.assert_allclose(points_from_habitat(points_to_habitat(np.array([[1.0, -2.0], [3.0, 4.0]]))),
                               [[1.0, -2.0], [3.0, 4.0]])


def test_episode_file_round_trips(tmp_path):
    episodes = [NavEpisode("ep-1", "cluttered-17", np.array([1.0, 2.0, 0.3]), np.array([-4.0, 5.5]), 9.25),
                NavEpisode("ep-2", "rooms-3", np.array([0.0, -1.0, -3.0]), np.array([2.0, 0.5]), 3.5, "quadruped")]
    path = tmp_path / "val.json.gz"
    write_episodes(path, episodes)
    body = json.loads(gzip.decompress(path.read_bytes()))
    first = body["episodes"][0]
    assert first["scene_id"] == "cluttered-17" and first["start_position"] == [1.0, 0.0, -2.0]
    assert first["goals"][0]["position"] == [-4.0, 0.0, -5.5] and first["info"]["geodesic_distance"] == 9.25
    back = read_episodes(path)
    assert [(e.episode_id, e.world_id, e.geodesic_distance, e.robot) for e in back] == \
        [(e.episode_id, e.world_id, e.geodesic_distance, e.robot) for e in episodes]
    for a, b in zip(back, episodes, strict=True):
        np.testing.assert_allclose(a.start, b.start, atol=1e-12)
        np.testing.assert_allclose(a.goal, b.goal, atol=1e-12)
    assert episode_to_habitat(back[1]) == episode_to_habitat(episodes[1])


# ---------------------------------------------------------------------------------------------------------------
# the fake world itself


def test_box_world_depth_and_geodesic_are_analytic():
    world = WORLDS["box"]
    camera = CameraSpec(width=64, height=64, hfov_deg=80.0, mount_height=0.4)
    depth = world.render_depth(np.array([1.0, 0.0, 0.0]), camera)
    assert depth[32, 32] == pytest.approx(1.5, abs=1e-6)  # the box face at x = 2.5, 1.5 m ahead
    assert depth[63, 32] == pytest.approx(0.4 / ((63.5 - 32) / camera.intrinsics()[0, 0]), rel=1e-5)  # the floor
    grow = WHEELED.radius + world.plan_margin
    d = world.geodesic_distance(np.array([0.0, 0.0]), np.array([6.0, 0.0]))
    corner = np.array([2.5 - grow, 1.0 + grow])
    expected = 2 * np.linalg.norm(corner) + (1.0 + 2 * grow)
    assert d == pytest.approx(expected, abs=0.05)  # the 0.01 m corner offset lengthens it a little


# ---------------------------------------------------------------------------------------------------------------
# closed loop


@pytest.mark.parametrize("tracker", [MPCTracker(WHEELED), PurePursuit(WHEELED)], ids=["mpc", "pure-pursuit"])
def test_expert_reaches_a_goal_around_a_box_without_collisions(tracker):
    run = episode("box", [0.0, 0.0, 0.0], [6.0, 0.0])
    result = run_episode(WORLDS["box"], run, ExpertNavPlanner(), tracker, WHEELED)
    assert result.termination is Termination.STOP and result.error == ""
    assert result.success == 1.0 and result.success_navdp == 1.0
    assert result.collisions == 0
    assert result.final_euclidean < 0.2
    assert result.spl == pytest.approx(min(1.0, result.start_distance / result.path_length), rel=1e-9)
    d0, d_t, length = result.start_distance, result.final_distance, result.path_length
    assert result.soft_spl == pytest.approx((1 - d_t / d0) * d0 / max(d0, length), rel=1e-12)
    assert 0.9 < result.spl <= 1.0 and d_t < 0.1
    assert np.all(WORLDS["box"].clearance(result.positions) >= WHEELED.radius)


class DriveStraight(NavPlanner):
    """Drives forward whatever it sees."""

    name = "drive-straight"

    def plan(self, observation) -> Plan:
        return waypoints_plan(np.column_stack([0.125 * np.arange(1, NAV_PLAN_POSES + 1), np.zeros(NAV_PLAN_POSES)]))


def test_a_planner_that_drives_into_a_wall_collides_and_does_not_pass():
    run = episode("wall", [0.0, 0.0, 0.0], [6.0, 0.0])
    result = run_episode(WORLDS["wall"], run, DriveStraight(), PurePursuit(WHEELED), WHEELED,
                         LoopConfig(max_time_s=30.0))
    assert result.termination is Termination.STUCK
    assert result.collisions > 10
    assert result.positions[:, 0].max() < 3.0 - WHEELED.radius + 1e-9  # never through the wall's near face
    assert result.positions[:, 0].max() > 3.0 - WHEELED.radius - 0.06  # but right up against it
    assert result.success == 0.0 and result.spl == 0.0 and result.success_navdp == 0.0
    d0, d_t, length = result.start_distance, result.final_distance, result.path_length
    assert d_t < d0 and result.soft_spl == pytest.approx((1 - d_t / d0) * d0 / max(d0, length), rel=1e-12)


def test_a_move_into_a_wall_slides_along_it_as_habitat_allow_sliding():
    wall = WORLDS["wall"]  # its near face is x = 3.0
    start = np.array([3.0 - WHEELED.radius - 0.01, 0.0, math.pi / 4])
    control = np.array([0.5, 0.0])  # 0.05 m along 45 deg in 0.1 s: into the wall
    slid, collided = try_step(wall, start, control, WHEELED, 0.1)
    assert collided
    assert slid[0] == pytest.approx(3.0 - WHEELED.radius - SLIDE_MARGIN, abs=1e-6)  # against the face
    assert slid[1] == pytest.approx(0.05 * math.sqrt(0.5), abs=1e-9)  # the tangential part is kept
    assert slid[2] == pytest.approx(math.pi / 4)
    refused, collided = try_step(wall, start, control, WHEELED, 0.1, allow_sliding=False)
    assert collided and np.array_equal(refused[:2], start[:2])
    free, collided = try_step(wall, np.array([0.0, 0.0, math.pi / 4]), control, WHEELED, 0.1)
    assert not collided and free[:2] == pytest.approx([0.05 * math.sqrt(0.5)] * 2, abs=1e-12)


def test_go_to_goal_stops_before_a_wall_and_reaches_an_open_goal():
    blocked = run_episode(WORLDS["wall"], episode("wall", [0.0, 0.0, 0.0], [6.0, 0.0]), GoToGoalPlanner(),
                          PurePursuit(WHEELED), WHEELED)
    assert blocked.termination is Termination.STOP and blocked.success == 0.0 and blocked.collisions == 0
    assert 3.0 - blocked.positions[-1, 0] < 1.2  # drove up to the wall, then gave up
    free = run_episode(WORLDS["open"], episode("open", [0.0, 0.0, 1.0], [5.0, 1.0]), GoToGoalPlanner(),
                       MPCTracker(WHEELED), WHEELED)
    assert free.success == 1.0 and free.collisions == 0 and free.spl > 0.85


def test_dwa_drives_around_a_box():
    result = run_episode(WORLDS["box"], episode("box", [0.0, 0.3, 0.0], [6.0, 0.0]), DWAPlanner(),
                         PurePursuit(WHEELED), WHEELED)
    assert result.collisions == 0
    assert result.success_navdp == 1.0


@pytest.mark.slow
def test_results_do_not_depend_on_the_number_of_workers_and_resume(tmp_path):
    episodes = [episode("open", [0.0, 0.0, 2.0], [3.0, 1.0], "a"), episode("box", [1.0, 0.3, 0.0], [4.5, 0.0], "b")]
    config = PointNavConfig(planner="dwa", tracker="pure-pursuit", worlds="tests.eval.test_pointnav:fake_world",
                            loop=LoopConfig(camera=CameraSpec(64, 64, 79.0, 0.4), max_time_s=30.0))
    one = evaluate_episodes(episodes, config)
    job = PointNavEvaluation(tuple(enumerate(episodes)), config, "dwa", "test", chunk_size=1)
    two = run_job(job, tmp_path / "two", RunOptions(workers=2))
    assert [r.episode_id for r in two] == ["a", "b"] and one[0].n_plans > 5
    (tmp_path / "two" / "units" / "unit-00001.json").unlink()  # as if the job had stopped after the first
    again = run_job(job, tmp_path / "two", RunOptions(resume=True))

    def rows(results):
        return [{k: v for k, v in r.csv_row().items() if k != "latency_ms"} for r in results]

    assert rows(one) == rows(two) == rows(again)
    assert [r.positions.tobytes() for r in again] == [r.positions.tobytes() for r in one]
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a.positions, b.positions)


# ---------------------------------------------------------------------------------------------------------------
# CLI


def test_cli_bad_episodes_path_is_one_line_and_exit_2(tmp_path):
    from diffplan.cli import app

    result = CliRunner().invoke(app, ["eval", "pointnav", "--planner", "expert", "--episodes",
                                      str(tmp_path / "missing.json.gz")])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "missing.json.gz" in lines[0] and "Traceback" not in result.output


# ---------------------------------------------------------------------------------------------------------------
# Habitat adapter


def test_habitat_adapter_without_habitat_sim_says_how_to_install():
    import importlib.util

    from scenes.nav.habitat import HabitatNotInstalledError, HabitatWorld

    if importlib.util.find_spec("habitat_sim"):
        pytest.skip("habitat-sim is installed")
    with pytest.raises(HabitatNotInstalledError) as error:
        HabitatWorld("data/scene_datasets/habitat-test-scenes/skokloster-castle.glb")
    message = str(error.value)
    assert "\n" not in message and "aihabitat-nightly" in message and "--no-build-isolation" in message


@pytest.mark.habitat
def test_habitat_world_geodesics_depth_and_collisions():
    import os

    from scenes.nav.habitat import HabitatWorld

    scene = os.environ.get("DIFFPLAN_HABITAT_SCENE")
    if not scene:
        pytest.skip("set DIFFPLAN_HABITAT_SCENE to a habitat scene (.glb) to run")
    world = HabitatWorld(scene)
    start = points_from_habitat(np.asarray(world.pathfinder.get_random_navigable_point()))
    goal = points_from_habitat(np.asarray(world.pathfinder.get_random_navigable_point()))
    assert not world.collides(np.array([start, goal]), WHEELED).any()
    distance = world.geodesic_distance(start, goal, WHEELED)
    path = world.shortest_path(start, goal, WHEELED)
    if path is not None:
        assert distance >= np.linalg.norm(goal - start) - 1e-3
        np.testing.assert_allclose(path[0], start, atol=0.05)
        assert distance == pytest.approx(np.linalg.norm(np.diff(path, axis=0), axis=1).sum(), rel=1e-3)
    depth = world.render_depth(np.array([*start, 0.3]), CameraSpec())
    assert depth.shape == (CameraSpec().height, CameraSpec().width) and depth.max() <= 5.0
    outside = np.array([world.bounds[2] + 5.0, world.bounds[3] + 5.0])
    assert world.collides(outside[None], WHEELED)[0]


def test_eval_table_combines_pointnav_runs_and_labels_them(tmp_path):
    from diffplan.commands.eval import app as eval_app

    def run(name: str, success: float, **extra) -> str:
        body = {"planner": name, "n_episodes": 4, "n_failed": 0, "success": success, "success_navdp": 1.0,
                "spl": 0.5, "soft_spl": 0.625, "collisions_per_episode": 2.5, "mean_time_s": 10.0,
                "terminations": {"stop": 4, "timeout": 0, "stuck": 0, "error": 0}, **extra}
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps(body))
        return str(tmp_path / name)

    runs = [run("navdp", 0.75), run("navdp-ablation", 0.5, no_critic=True), run("expert", 1.0, oracle=True)]
    result = CliRunner().invoke(eval_app, ["table", *runs])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("| ")]
    assert lines[1] == "| navdp | 4 | 75.0 | 100.0 | 50.0 | 62.5 | 2.50 |"
    assert lines[2].startswith("| navdp-ablation (no critic) | 4 | 50.0 |")
    assert lines[3].startswith("| expert (privileged oracle) | 4 | 100.0 |")  # as in the run's own output
    bad = CliRunner().invoke(eval_app, ["table", str(tmp_path / "missing")])
    assert bad.exit_code == 2 and "not found" in bad.output
