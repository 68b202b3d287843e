"""Top-down pictures of navigation worlds (matplotlib): obstacles, start, goal and the expert path."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Polygon as PatchPolygon

from scenes.nav.types import NavEpisode, RobotProfile
from scenes.nav.world import NavWorld


def _patches(ax, polygons, **style) -> None:
    for polygon in polygons:
        ax.add_patch(PatchPolygon(np.asarray(polygon.exterior.coords), closed=True, **style))


def save_nav_picture(world: NavWorld, robot: RobotProfile, out: Path, episode: NavEpisode | None = None,
                     path: np.ndarray | None = None, poses: np.ndarray | None = None,
                     frame_depth: np.ndarray | None = None) -> Path:
    """Draw `world` from above for `robot` and write a PNG.

    Obstacles that block the robot are dark; those it passes (table slabs over a short robot) are hatched.
    `path`: (P, 2) planned path [m]; `poses`: (T, 3) driven poses, drawn as dots with headings every 2 s;
    `frame_depth`: an optional (H, W) depth image [m] shown beside the map.
    """
    prims = world.primitives()
    blocking = prims.blocking(robot)
    passable = prims.select(~((prims.z[:, 0] < robot.height) & (prims.z[:, 1] > 0.0)))
    columns = 2 if frame_depth is not None else 1
    fig, axes = plt.subplots(1, columns, figsize=(7 * columns, 7), squeeze=False)
    ax = axes[0, 0]
    xmin, ymin, xmax, ymax = world.bounds
    ax.add_patch(plt.Rectangle((xmin, ymin), xmax - xmin, ymax - ymin, fill=False, color="k", lw=0.5))
    _patches(ax, passable.footprints(), facecolor="none", edgecolor="#8c564b", hatch="//", lw=0.8)
    _patches(ax, blocking.footprints(), facecolor="#444444", edgecolor="none")
    if path is not None:
        ax.plot(path[:, 0], path[:, 1], "-", color="#1f77b4", lw=1.5, label="expert path")
    if poses is not None:
        ax.plot(poses[:, 0], poses[:, 1], ".", color="#ff7f0e", ms=2.5, label="driven (frames)")
        every = poses[::8]
        ax.quiver(every[:, 0], every[:, 1], np.cos(every[:, 2]), np.sin(every[:, 2]), color="#ff7f0e",
                  scale=30, width=0.003)
    if episode is not None:
        sx, sy, yaw = episode.start
        ax.plot(sx, sy, "o", color="#2ca02c", ms=9, label="start")
        ax.arrow(sx, sy, 0.6 * np.cos(yaw), 0.6 * np.sin(yaw), color="#2ca02c", width=0.04)
        ax.plot(*episode.goal, "*", color="#d62728", ms=15, label="goal")
        ax.add_patch(plt.Circle(episode.start[:2], robot.radius, fill=False, color="#2ca02c", lw=1))
        ax.set_title(f"{world.world_id} / {robot.name}: {episode.episode_id}, geodesic "
                     f"{episode.geodesic_distance:.1f} m")
    else:
        ax.set_title(f"{world.world_id} / {robot.name}")
    ax.set_xlim(xmin - 0.5, xmax + 0.5)
    ax.set_ylim(ymin - 0.5, ymax + 0.5)
    ax.set_aspect("equal")
    ax.set_xlabel("x [m]")
    ax.set_ylabel("y [m]")
    if episode is not None or path is not None:
        ax.legend(loc="upper right", fontsize=8)
    if frame_depth is not None:
        image = axes[0, 1].imshow(frame_depth, cmap="viridis", vmin=0.0, vmax=5.0)
        axes[0, 1].set_title("depth at the start [m] (0 = invalid)")
        fig.colorbar(image, ax=axes[0, 1], fraction=0.035)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
