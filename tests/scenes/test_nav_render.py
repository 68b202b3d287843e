"""Navigation pictures: axes with units, a depth panel from a useful viewpoint, its view drawn on the map."""

from __future__ import annotations

import importlib.util
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.patches import Wedge

from scenes.nav.render import depth_hits, depth_viewpoint, render_nav_picture, save_nav_picture
from scenes.nav.types import WHEELED, CameraSpec, NavEpisode
from scenes.nav.world import ObstacleKind, boundary_walls, make_world

BOUNDS = (0.0, 0.0, 6.0, 4.0)
# A 1 m box whose near face is at x = 4; the robot starts at (1, 2) facing backwards (yaw pi).
WORLD = make_world("hand-render", BOUNDS, [(ObstacleKind.BOX, 4.5, 2.0, 1.0, 1.0, 0.0, 0.0, 1.0)],
                   boundary_walls(BOUNDS))
EPISODE = NavEpisode("hand-0", WORLD.world_id, np.array([1.0, 2.0, math.pi]), np.array([3.0, 0.8]), 3.0)
PATH = np.array([[1.0, 2.0], [1.4, 2.0], [2.5, 2.0], [3.0, 0.8]])


def test_depth_viewpoint_looks_along_the_first_path_segment():
    # The first path point at least 1 m from the start is (2.5, 2): straight along +x.
    np.testing.assert_allclose(depth_viewpoint(EPISODE, PATH), [1.0, 2.0, 0.0])
    # Without a path, the driven poses; without either, the goal.
    poses = np.array([[1.0, 2.0, 0.0], [1.0, 3.5, 0.0]])
    np.testing.assert_allclose(depth_viewpoint(EPISODE, None, poses), [1.0, 2.0, math.pi / 2])
    np.testing.assert_allclose(depth_viewpoint(EPISODE), [1.0, 2.0, math.atan2(-1.2, 2.0)])


def test_depth_hits_put_the_centre_row_on_the_map():
    camera = CameraSpec()
    frame = np.full((camera.height, camera.width), 2.0)
    frame[:, :10] = 0.0  # invalid columns on the left are skipped
    hits = depth_hits(frame, np.array([1.0, 2.0, math.pi / 2]), camera)  # looking along +y
    assert hits.shape == (camera.width - 10, 2)
    np.testing.assert_allclose(hits[:, 1], 4.0)  # z-depth 2 m ahead
    half = 2.0 * math.tan(math.radians(camera.hfov_deg) / 2)  # lateral reach at 2 m
    assert hits[0, 0] == pytest.approx(1.0 - half * (1 - 10.5 / 80), abs=1e-9)  # column 10: left = -x
    assert hits[-1, 0] == pytest.approx(1.0 + half * (1 - 0.5 / 80), abs=1e-9)


def test_nav_picture_has_metric_axes_a_depth_panel_and_the_field_of_view():
    camera = CameraSpec()
    frame = np.full((camera.height, camera.width), 3.0)
    pose = np.array([1.0, 2.0, 0.3])
    fig = render_nav_picture(WORLD, WHEELED, EPISODE, PATH, frame_depth=frame, depth_pose=pose)
    try:
        fig.canvas.draw()
        map_ax, depth_ax, bar_ax = fig.axes
        assert (map_ax.get_xlabel(), map_ax.get_ylabel()) == ("x [m] (world)", "y [m] (world)")
        assert "[px]" in depth_ax.get_xlabel() and "[px]" in depth_ax.get_ylabel()
        assert bar_ax.get_ylabel().startswith("depth [m]")
        image, = depth_ax.get_images()
        assert image.get_array().shape == (camera.height, camera.width) and image.get_clim() == (0.0, 5.0)
        wedge, = [p for p in map_ax.patches if isinstance(p, Wedge)]
        yaw = math.degrees(0.3)
        assert (wedge.theta1, wedge.theta2, wedge.r) == pytest.approx((yaw - 39.5, yaw + 39.5, 5.0))
        assert tuple(wedge.center) == (1.0, 2.0)
        labels = [t.get_text() for t in fig.legends[0].get_texts()]
        assert {"expert path", "goal", "depth camera view (79°, to 5 m)", "obstacle (blocks wheeled)",
                "depth at camera height (image centre row)"} <= set(labels)
        renderer = fig.canvas.get_renderer()
        for artist in (map_ax.title, depth_ax.title, fig.legends[0]):
            box = artist.get_window_extent(renderer)
            assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1 and fig.bbox.y0 <= box.y0
            assert box.y1 <= fig.bbox.y1
    finally:
        plt.close(fig)
    # Without depth: one panel, same labelled axes.
    fig = render_nav_picture(WORLD, WHEELED, EPISODE, PATH)
    assert len(fig.axes) == 1 and fig.axes[0].get_xlabel() == "x [m] (world)"
    assert not [p for p in fig.axes[0].patches if isinstance(p, Wedge)]
    plt.close(fig)


def test_nav_picture_renders_depth_along_the_path(tmp_path):
    if importlib.util.find_spec("mujoco") is None:  # not importorskip: MuJoCo must first be imported by
        pytest.skip("mujoco is not installed")  # scenes.nav.mujoco_world, which picks its GL backend
    out = save_nav_picture(WORLD, WHEELED, tmp_path / "nav.png", EPISODE, PATH, depth=True)
    assert out.stat().st_size > 10_000
    fig = render_nav_picture(WORLD, WHEELED, EPISODE, PATH, depth=True)
    try:
        map_ax, depth_ax, _ = fig.axes
        wedge, = [p for p in map_ax.patches if isinstance(p, Wedge)]
        assert wedge.theta1 == pytest.approx(-39.5) and wedge.theta2 == pytest.approx(39.5)  # yaw 0, not pi
        depth = np.ma.filled(depth_ax.get_images()[0].get_array(), 0.0)
        centre = depth[depth.shape[0] // 2, depth.shape[1] // 2]
        assert centre == pytest.approx(3.0, abs=0.05)  # the box face, 3 m ahead of the start
    finally:
        plt.close(fig)
