"""Top-down pictures of navigation worlds (matplotlib): obstacles, start, goal, the expert path, and a depth
image from a useful viewpoint with the camera's field of view drawn on the map.

The map panel is in the world frame, x and y in metres. The depth panel shows what the robot's camera sees
(z-depth [m], 0 = outside NavDP's valid range) from `depth_viewpoint`: the start position looking along the
first segment of the path (or towards the goal), not the episode's random start yaw.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Wedge
from matplotlib.patches import Polygon as PatchPolygon

from scenes.nav.types import DEPTH_MAX, CameraSpec, NavEpisode, RobotProfile
from scenes.nav.world import NavWorld

LOOKAHEAD = 1.0  # [m] the viewpoint looks at the first path point at least this far from the start
FOV_COLOR = "#9467bd"
MAP_X_LABEL, MAP_Y_LABEL = "x [m] (world)", "y [m] (world)"


def _patches(ax, polygons, **style) -> bool:
    drawn = False
    for polygon in polygons:
        ax.add_patch(PatchPolygon(np.asarray(polygon.exterior.coords), closed=True, **style))
        drawn = True
    return drawn


def depth_viewpoint(episode: NavEpisode, path: np.ndarray | None = None, poses: np.ndarray | None = None,
                    lookahead: float = LOOKAHEAD) -> np.ndarray:
    """(3,) x [m], y [m], yaw [rad]: the episode's start, looking at the first point of `path` (P, 2) or else
    of the driven `poses` (T, >=2) at least `lookahead` [m] away, or else at the goal."""
    start = np.asarray(episode.start[:2], dtype=np.float64)
    target = np.asarray(episode.goal, dtype=np.float64)
    for points in (path, poses):
        if points is None or len(points) == 0:
            continue
        xy = np.asarray(points, dtype=np.float64)[:, :2]
        far = np.flatnonzero(np.hypot(*(xy - start).T) >= lookahead)
        if far.size:
            target = xy[far[0]]
            break
    delta = target - start
    yaw = math.atan2(delta[1], delta[0]) if np.hypot(*delta) > 1e-9 else float(episode.start[2])
    return np.array([start[0], start[1], yaw])


def render_view_depth(world: NavWorld, episode: NavEpisode, path: np.ndarray | None = None,
                      poses: np.ndarray | None = None, camera: CameraSpec | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(pose (3,), depth (H, W) [m]) rendered with MuJoCo from `depth_viewpoint`."""
    from scenes.nav.mujoco_world import MujocoNavWorld

    pose = depth_viewpoint(episode, path, poses)
    with MujocoNavWorld(world) as sim:
        return pose, sim.render_depth(pose, camera or CameraSpec())


def draw_field_of_view(ax, pose: np.ndarray, camera: CameraSpec, reach: float = DEPTH_MAX) -> None:
    """The camera's horizontal field of view from `pose` (3,) as a wedge of radius `reach` [m]."""
    x, y, yaw = (float(v) for v in pose)
    half = camera.hfov_deg / 2.0
    heading = math.degrees(yaw)
    ax.add_patch(Wedge((x, y), reach, heading - half, heading + half, facecolor=FOV_COLOR, alpha=0.12,
                       edgecolor=FOV_COLOR, lw=1.2, zorder=4))
    ax.annotate("", xy=(x + 0.8 * math.cos(yaw), y + 0.8 * math.sin(yaw)), xytext=(x, y), zorder=6,
                arrowprops={"arrowstyle": "-|>", "color": FOV_COLOR, "lw": 1.5})


def depth_hits(frame: np.ndarray, pose: np.ndarray, camera: CameraSpec) -> np.ndarray:
    """(K, 2) [m] world points seen by the image's centre row (camera height): each valid pixel's z-depth
    along its ray, for drawing what the depth image sees on the map."""
    frame = np.asarray(frame, dtype=np.float64)
    row = frame[frame.shape[0] // 2]
    fx, cx = camera.intrinsics()[0, 0], camera.intrinsics()[0, 2]
    u = np.arange(row.shape[0]) + 0.5
    lateral = (cx - u) / fx  # left of the optical axis per metre of depth (image columns run left to right)
    valid = row > 0.0
    x, y, yaw = (float(v) for v in pose)
    forward, left = row[valid], row[valid] * lateral[valid]
    c, s = math.cos(yaw), math.sin(yaw)
    return np.stack([x + forward * c - left * s, y + forward * s + left * c], axis=-1)


def save_nav_picture(world: NavWorld, robot: RobotProfile, out: Path, episode: NavEpisode | None = None,
                     path: np.ndarray | None = None, poses: np.ndarray | None = None,
                     frame_depth: np.ndarray | None = None, *, depth_pose: np.ndarray | None = None,
                     camera: CameraSpec | None = None, depth: bool = False) -> Path:
    """Draw `world` from above for `robot` (see `render_nav_picture`) and write a PNG to `out`."""
    fig = render_nav_picture(world, robot, episode, path, poses, frame_depth, depth_pose=depth_pose,
                             camera=camera, depth=depth)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(out, dpi=110)
    finally:
        plt.close(fig)
    return out


def render_nav_picture(world: NavWorld, robot: RobotProfile, episode: NavEpisode | None = None,
                       path: np.ndarray | None = None, poses: np.ndarray | None = None,
                       frame_depth: np.ndarray | None = None, *, depth_pose: np.ndarray | None = None,
                       camera: CameraSpec | None = None, depth: bool = False) -> Figure:
    """A figure of `world` from above for `robot`: the map panel and, with depth, a depth panel.

    Obstacles that block the robot are dark; those it passes (table slabs over a short robot) are hatched.
    `path`: (P, 2) planned path [m]; `poses`: (T, 3) driven poses, drawn as dots with headings every 2 s.
    Depth: `frame_depth` (H, W) [m] is drawn beside the map as rendered from `depth_pose` (3,) (default: the
    episode's start) with `camera` (default CameraSpec()); with `depth` and no `frame_depth`, the picture
    renders it itself (MuJoCo) from `depth_viewpoint`: the start, looking along the first path segment.
    The camera's field of view is drawn on the map.
    """
    camera = camera or CameraSpec()
    if depth and frame_depth is None and episode is not None:
        depth_pose, frame_depth = render_view_depth(world, episode, path, poses, camera)
    if frame_depth is not None and depth_pose is None and episode is not None:
        depth_pose = np.asarray(episode.start, dtype=np.float64)
    prims = world.primitives()
    blocking = prims.blocking(robot)
    passable = prims.select(~((prims.z[:, 0] < robot.height) & (prims.z[:, 1] > 0.0)))
    columns = 2 if frame_depth is not None else 1
    widths = [1.0, 0.9] if columns == 2 else [1.0]
    fig, axes = plt.subplots(1, columns, figsize=(7.5 * columns, 7.0), squeeze=False, layout="constrained",
                             gridspec_kw={"width_ratios": widths})
    ax = axes[0, 0]
    handles: list = []
    xmin, ymin, xmax, ymax = world.bounds
    ax.add_patch(plt.Rectangle((xmin, ymin), xmax - xmin, ymax - ymin, fill=False, color="k", lw=0.5))
    if _patches(ax, passable.footprints(), facecolor="none", edgecolor="#8c564b", hatch="//", lw=0.8):
        handles.append(Patch(facecolor="none", edgecolor="#8c564b", hatch="//",
                             label=f"passable for {robot.name} (overhead)"))
    if _patches(ax, blocking.footprints(), facecolor="#444444", edgecolor="none"):
        handles.append(Patch(facecolor="#444444", label=f"obstacle (blocks {robot.name})"))
    if path is not None:
        ax.plot(path[:, 0], path[:, 1], "-", color="#1f77b4", lw=1.5, zorder=5)
        handles.append(Line2D([], [], color="#1f77b4", lw=1.5, label="expert path"))
    if poses is not None:
        ax.plot(poses[:, 0], poses[:, 1], ".", color="#ff7f0e", ms=2.5, zorder=5)
        every = poses[::8]
        ax.quiver(every[:, 0], every[:, 1], np.cos(every[:, 2]), np.sin(every[:, 2]), color="#ff7f0e",
                  scale=30, width=0.003, zorder=5)
        handles.append(Line2D([], [], color="#ff7f0e", marker=".", ls="", label="driven poses (arrows: 8th)"))
    title = f"{world.world_id} / {robot.name}"
    if episode is not None:
        sx, sy, yaw = episode.start
        ax.plot(sx, sy, "o", color="#2ca02c", ms=9, zorder=7)
        ax.arrow(sx, sy, 0.6 * np.cos(yaw), 0.6 * np.sin(yaw), color="#2ca02c", width=0.04, zorder=7)
        ax.plot(*episode.goal, "*", color="#d62728", ms=15, zorder=7)
        ax.add_patch(plt.Circle(episode.start[:2], robot.radius,  # type: ignore[arg-type]  # (2,) array
                                fill=False, color="#2ca02c", lw=1, zorder=7))
        handles += [Line2D([], [], color="#2ca02c", marker="o", ls="", ms=8, label="start (arrow: its yaw)"),
                    Line2D([], [], color="#2ca02c", marker="o", ms=12, ls="", mfc="none",
                           label=f"robot radius {robot.radius:.2f} m"),
                    Line2D([], [], color="#d62728", marker="*", ls="", ms=12, label="goal")]
        title += f": {episode.episode_id}, geodesic {episode.geodesic_distance:.1f} m"
    if frame_depth is not None and depth_pose is not None:
        draw_field_of_view(ax, depth_pose, camera)
        handles.append(Patch(facecolor=FOV_COLOR, alpha=0.3, edgecolor=FOV_COLOR,
                             label=f"depth camera view ({camera.hfov_deg:g}°, to {DEPTH_MAX:g} m)"))
        hits = depth_hits(np.asarray(frame_depth, dtype=np.float64), depth_pose, camera)
        if len(hits):
            ax.plot(hits[:, 0], hits[:, 1], ".", color=FOV_COLOR, ms=2.5, zorder=6)
            handles.append(Line2D([], [], color=FOV_COLOR, marker=".", ls="",
                                  label="depth at camera height (image centre row)"))
    ax.set_title(textwrap.fill(title, 70), fontsize=10)
    ax.set_xlim(xmin - 0.5, xmax + 0.5)
    ax.set_ylim(ymin - 0.5, ymax + 0.5)
    ax.set_aspect("equal")
    ax.set_xlabel(MAP_X_LABEL)
    ax.set_ylabel(MAP_Y_LABEL)
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=min(4, len(handles)), fontsize=8)
    if frame_depth is not None:
        _draw_depth(fig, axes[0, 1], np.asarray(frame_depth, dtype=np.float64), depth_pose, camera)
    return fig


def _draw_depth(fig, ax, frame: np.ndarray, pose: np.ndarray | None, camera: CameraSpec) -> None:
    """The depth image [m] with invalid pixels (0) in grey and a colorbar in metres."""
    cmap = plt.get_cmap("viridis").with_extremes(bad="#bdbdbd")
    image = ax.imshow(np.ma.masked_less_equal(frame, 0.0), cmap=cmap, vmin=0.0, vmax=DEPTH_MAX,
                      interpolation="nearest")
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02, shrink=0.8)
    bar.set_label("depth [m] (grey: invalid, outside 0.1-5 m)")
    ax.set_xlabel("image column u [px] (left to right)")
    ax.set_ylabel("image row v [px] (top to bottom)")
    where = "" if pose is None else (f" from ({pose[0]:.1f} m, {pose[1]:.1f} m), yaw "
                                     f"{math.degrees(pose[2]):.0f}° (view drawn on the map)")
    ax.set_title(textwrap.fill(f"depth image{where}; {camera.hfov_deg:g}° horizontal FOV, camera "
                               f"{camera.mount_height:g} m above the floor", 60), fontsize=10)
