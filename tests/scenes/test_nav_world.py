"""Navigation worlds: the struct-of-arrays model, procedural generation, MuJoCo depth, ESDF, embodiment."""

import math
import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import pytest

from scenes._checks import ValidationError
from scenes.nav import (
    QUADRUPED,
    WHEELED,
    WORLD_KINDS,
    CameraSpec,
    ObstacleKind,
    generate_world,
    world_from_id,
)
from scenes.nav.grid import esdf, rasterize
from scenes.nav.mujoco_world import MujocoNavWorld, world_mjcf
from scenes.nav.world import TABLE_TOP, make_world

BOX, CYL, TABLE = int(ObstacleKind.BOX), int(ObstacleKind.CYLINDER), int(ObstacleKind.TABLE)


def _analytic_depth(camera: CameraSpec, planes: list[tuple]) -> np.ndarray:
    """z-depth of a camera at the origin looking along +x, against axis-aligned x = X faces.

    planes: (X, ymin, ymax, ztop) rectangles facing the camera; the floor is z = 0.
    """
    k = camera.intrinsics()
    u = (np.arange(camera.width) + 0.5 - k[0, 2]) / k[0, 0]  # right = -y
    v = (k[1, 2] - (np.arange(camera.height) + 0.5)) / k[1, 1]  # up = +z
    a, b = np.meshgrid(u, v)
    depth = np.where(b < 0, camera.mount_height / np.maximum(-b, 1e-12), np.inf)  # floor
    for x, y0, y1, top in planes:
        y, z = -a * x, camera.mount_height + b * x
        hit = (y >= y0) & (y <= y1) & (z >= 0) & (z <= top)
        depth = np.where(hit & (x < depth), x, depth)
    return np.where((depth >= 0.1) & (depth <= 5.0), depth, 0.0)


def test_depth_is_pinhole_z_depth_of_a_wall_and_a_box():
    # A wall whose face is at x = 2.9 and a box whose face is at x = 1.8, camera at the origin facing +x.
    world = make_world("hand-0", (-8, -8, 8, 8), [(BOX, 2.0, 0.0, 0.4, 0.6, 0.0, 0.0, 0.7)],
                       [(3.0, -3.0, 3.0, 3.0, 0.2, 2.0)])
    camera = CameraSpec(160, 120, 79.0, 0.4)
    with MujocoNavWorld(world) as sim:
        depth = sim.render_depth(np.zeros(3), camera)
        expected = _analytic_depth(camera, [(2.9, -3.1, 3.1, 2.0), (1.8, -0.3, 0.3, 0.7)])
        # Compare away from depth discontinuities (a pixel straddling two surfaces may show either).
        rows = np.abs(np.diff(expected, axis=0)) > 0.05
        cols = np.abs(np.diff(expected, axis=1)) > 0.05
        edge = np.zeros(expected.shape, bool)
        edge[:-1] |= rows
        edge[1:] |= rows
        edge[:, :-1] |= cols
        edge[:, 1:] |= cols
        assert depth.shape == (120, 160) and depth.dtype == np.float32
        assert np.isclose(depth[~edge], 2.9, atol=0.01).sum() > 1000  # the wall, flat in z-depth
        assert np.isclose(depth[~edge], 1.8, atol=0.01).sum() > 100  # the box face
        np.testing.assert_allclose(depth[~edge], expected[~edge], atol=0.01)
        # MuJoCo ray casting agrees: along the optical axis distance = z-depth; off-axis distance * cos.
        rays = np.array([[1.0, 0.0, 0.0], [math.cos(0.3), math.sin(0.3), 0.0]])
        np.testing.assert_allclose(sim.ray_distances([0, 0, 0.4], rays), [1.8, 2.9 / math.cos(0.3)], atol=1e-6)


def test_depth_is_zero_beyond_five_metres_and_under_a_tenth():
    world = make_world("hand-1", (-10, -10, 10, 10), [], [(6.0, -9.0, 6.0, 9.0, 0.2, 3.0)])
    camera = CameraSpec(64, 64, 90.0, 0.4)
    with MujocoNavWorld(world) as sim:
        far = sim.render_depth(np.zeros(3), camera)
        near = sim.render_depth(np.array([5.85, 0.0, 0.0]), camera)  # 0.05 m from the wall face
    assert (far[: camera.height // 2] == 0).all()  # wall at 5.9 m and sky: invalid
    assert (far[-5:] > 0).all()  # the floor close by is seen
    assert (near[: camera.height // 2] == 0).all()


def test_rendering_follows_the_pose():
    world = make_world("hand-2", (-8, -8, 8, 8), [], [(3.0, -3.0, 3.0, 3.0, 0.2, 2.0)])
    camera = CameraSpec(64, 64, 79.0, 0.4)
    with MujocoNavWorld(world) as sim:
        ahead = sim.render_depth(np.array([1.0, 0.0, 0.0]), camera)
        turned = sim.render_depth(np.array([1.0, 0.0, math.pi]), camera)
    assert np.isclose(ahead[32, 32], 1.9, atol=0.01)
    assert turned[32, 32] == 0.0  # looking away from the wall: nothing within 5 m at the horizon


def test_batched_rendering_matches_single_frames():
    sim = MujocoNavWorld(generate_world("rooms", 1))
    camera = CameraSpec(160, 120)
    rng = np.random.default_rng(0)
    poses = np.column_stack([rng.uniform(1, 5, 25), rng.uniform(1, 5, 25), rng.uniform(-3, 3, 25)])
    batch = sim.render_depth_batch(poses, camera)  # 20 tiles of 160 x 120 per 640 x 640 buffer: two buffers
    assert batch.shape == (25, 120, 160)
    for k in (0, 3, 19, 20, 24):
        single = sim.render_depth(poses[k], camera)
        valid = (single > 0) & (batch[k] > 0)
        assert (valid == (single > 0)).mean() > 0.999
        np.testing.assert_allclose(batch[k][valid], single[valid], atol=1e-4)
    sim.close()


def test_esdf_matches_brute_force():
    rng = np.random.default_rng(3)
    occupied = rng.random((13, 17)) < 0.12
    res = 0.1
    got = esdf(occupied, res)
    rows, cols = np.mgrid[-1:14, -1:18]
    ring = (rows < 0) | (rows > 12) | (cols < 0) | (cols > 16)
    occ = ring.copy()
    occ[1:-1, 1:-1] = occupied
    obstacles = np.column_stack([rows[occ], cols[occ]]).astype(float)
    cells = np.column_stack([rows[1:-1, 1:-1].ravel(), cols[1:-1, 1:-1].ravel()]).astype(float)
    brute = np.linalg.norm(cells[:, None] - obstacles[None], axis=-1).min(axis=1).reshape(13, 17) * res
    np.testing.assert_allclose(got, brute, atol=1e-12)
    assert (got[occupied] == 0).all()


def test_rasterize_and_exact_clearance():
    world = make_world("hand-3", (0, 0, 10, 10), [(BOX, 5.0, 5.0, 2.0, 1.0, 0.0, 0.0, 1.0),
                                                 (CYL, 2.0, 2.0, 1.0, 1.0, 0.0, 0.0, 1.0)], [])
    sim = MujocoNavWorld(world)
    points = np.array([[7.0, 5.0], [5.0, 6.5], [7.0, 7.5], [2.0, 3.5], [5.0, 5.0], [0.1, 8.0]])
    np.testing.assert_allclose(sim.clearance(points, WHEELED), [1.0, 1.0, math.hypot(1.0, 2.0), 1.0, 0.0, 0.1])
    assert sim.collides(points, WHEELED).tolist() == [False, False, False, False, True, True]
    grid = rasterize(world.primitives(), world.bounds, 0.1)
    assert grid.occupied.shape == (100, 100)
    assert grid.occupied[50, 50] and not grid.occupied[50, 70]  # (row, col) = (y, x) / 0.1
    assert abs(grid.occupied.sum() * 0.01 - (2.0 + math.pi * 0.25)) < 0.6  # areas, up to the border cells


def test_table_blocks_the_wheeled_robot_but_not_the_quadruped():
    # A 2 m wide corridor barred by a table: its slab (0.75 m) is lower than the wheeled robot's top (1.0 m)
    # but higher than the quadruped's (0.45 m), which walks between the legs.
    walls = [(0.0, -0.05, 10.0, -0.05, 0.1, 1.5), (0.0, 2.05, 10.0, 2.05, 0.1, 1.5)]
    table = (TABLE, 5.0, 1.0, 1.9, 1.2, math.pi / 2, 0.0, 0.75)
    world = make_world("hand-4", (0, -0.1, 10, 2.1), [table], walls)
    sim = MujocoNavWorld(world)
    under = np.array([[5.0, 1.0]])
    assert sim.collides(under, WHEELED)[0] and not sim.collides(under, QUADRUPED)[0]
    assert sim.clearance(under, WHEELED)[0] == 0.0 and sim.clearance(under, QUADRUPED)[0] > 0.7
    start, goal = np.array([1.0, 1.0]), np.array([9.0, 1.0])
    assert sim.shortest_path(start, goal, WHEELED) is None
    assert sim.geodesic_distance(start, goal, WHEELED) == math.inf
    assert sim.geodesic_distance(start, goal, QUADRUPED) == pytest.approx(8.0, abs=1e-9)
    # Wheeled: 2 walls, the slab and 4 legs; quadruped: the walls and the legs.
    assert (len(sim.obstacle_footprints(WHEELED)), len(sim.obstacle_footprints(QUADRUPED))) == (7, 6)
    assert world.primitives().z[0, 0] == pytest.approx(0.75 - TABLE_TOP)  # the slab's underside


@pytest.mark.parametrize("kind", WORLD_KINDS)
def test_generated_worlds_are_seeded_valid_and_navigable(kind):
    a, b, c = generate_world(kind, 11), generate_world(kind, 11), generate_world(kind, 12)
    assert a.world_id == f"{kind}-11" and world_from_id(a.world_id).world_id == a.world_id
    for field in ("bounds", "kind", "center", "size", "yaw", "z_range", "wall_start", "wall_end"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.num_obstacles != c.num_obstacles or not np.array_equal(a.center, c.center)
    assert a.validate() is a
    sim = MujocoNavWorld(a)
    for robot in (WHEELED, QUADRUPED):
        free = sim.robot_map(robot).traversable
        assert free.mean() > 0.2, f"{kind}: too little room for {robot.name}"
    assert "<mujoco" in world_mjcf(a)


def test_world_ids_and_validation_errors():
    with pytest.raises(ValueError, match="not a world id"):
        world_from_id("forest-3")
    with pytest.raises(ValueError, match="not a world id"):
        world_from_id("rooms-x")
    with pytest.raises(ValidationError, match="z_range"):
        make_world("bad", (0, 0, 5, 5), [(BOX, 1, 1, 1, 1, 0, 0.5, 0.2)], [])
    with pytest.raises(ValidationError, match="size"):
        make_world("bad", (0, 0, 5, 5), [(BOX, 1, 1, 0, 1, 0, 0, 1)], [])
    with pytest.raises(ValidationError, match="outside bounds"):
        make_world("bad", (0, 0, 5, 5), [(BOX, 7, 1, 1, 1, 0, 0, 1)], [])


def test_mujoco_world_implements_the_interface_and_pickles():
    import inspect
    import pickle

    from scenes.nav import NavWorldInterface

    sim = MujocoNavWorld(generate_world("passages", 2))
    for name, member in inspect.getmembers(NavWorldInterface, inspect.isfunction):
        if not name.startswith("_"):
            ours = getattr(sim, name)
            assert list(inspect.signature(ours).parameters) == list(inspect.signature(member).parameters)[1:]
    assert sim.world_id == "passages-2" and sim.bounds.shape == (4,)
    camera = CameraSpec(64, 64)
    before = sim.render_depth(np.array([1.0, 1.0, 0.3]), camera)
    copy = pickle.loads(pickle.dumps(sim))
    np.testing.assert_array_equal(copy.render_depth(np.array([1.0, 1.0, 0.3]), camera), before)
    sim.close()
    np.testing.assert_array_equal(sim.render_depth(np.array([1.0, 1.0, 0.3]), camera), before)  # rebuilt
    copy.close()
    sim.close()
