"""Bird's-eye-view pictures of driving scenes with matplotlib (map frame, centred on the ego)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import shapely
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Polygon as PatchPolygon

from scenes.agents import AgentCategory
from scenes.drive import CURRENT_INDEX, DriveScene
from scenes.ego import PACIFICA
from scenes.geometry import box_corners
from scenes.maps import DrivableKind

AGENT_COLORS = {
    AgentCategory.VEHICLE: "#1f77b4",
    AgentCategory.PEDESTRIAN: "#2ca02c",
    AgentCategory.BICYCLE: "#9467bd",
    AgentCategory.STATIC_OBJECT: "#7f7f7f",
}
EGO_COLOR = "#d62728"


def _polygon(ax: Axes, polygon: shapely.Polygon, **style) -> None:
    ax.add_patch(PatchPolygon(np.asarray(polygon.exterior.coords), closed=True, **style))


def _lines(ax: Axes, lines: np.ndarray, **style) -> None:
    for line in lines:
        xy = shapely.get_coordinates(line)
        ax.plot(xy[:, 0], xy[:, 1], **style)


def _box(ax: Axes, center: np.ndarray, heading: float, length: float, width: float, color: str,
         alpha: float = 0.85, zorder: int = 5) -> None:
    corners = box_corners(center, np.asarray(heading), np.asarray(length), np.asarray(width))
    ax.add_patch(PatchPolygon(corners, closed=True, facecolor=color, edgecolor="black", lw=0.6,
                              alpha=alpha, zorder=zorder))
    tip = center + 0.5 * length * np.array([np.cos(heading), np.sin(heading)])
    ax.plot([center[0], tip[0]], [center[1], tip[1]], color="white", lw=1.0, zorder=zorder + 1)


def draw_map(ax: Axes, scene: DriveScene) -> None:
    """Drivable area, lanes, stop lines, crosswalks, red lights and the route."""
    layers = scene.map
    for polygon, kind in zip(layers.drivable_polygons, layers.drivable_kinds):
        face = "#d9d9d9" if kind == DrivableKind.ROADBLOCK else "#c6c6c6"
        _polygon(ax, polygon, facecolor=face, edgecolor="none", zorder=0)
    _lines(ax, layers.lane_left_boundaries, color="#8c8c8c", lw=0.5, zorder=1)
    _lines(ax, layers.lane_right_boundaries, color="#8c8c8c", lw=0.5, zorder=1)
    _lines(ax, layers.lane_centerlines, color="white", lw=0.6, ls=(0, (4, 4)), zorder=1)
    for crosswalk in layers.crosswalks:
        _polygon(ax, crosswalk, facecolor="none", edgecolor="#555555", hatch="////", lw=0.5, zorder=1)
    _lines(ax, layers.stop_lines, color="black", lw=1.5, zorder=2)
    red = scene.traffic_lights.lane_ids[scene.traffic_lights.is_red[:, CURRENT_INDEX]]
    red_rows = np.isin(layers.lane_ids, red)
    _lines(ax, layers.lane_centerlines[red_rows], color="red", lw=1.2, alpha=0.7, zorder=2)
    route = shapely.get_coordinates(scene.route.centerline)
    ax.plot(route[:, 0], route[:, 1], color="#17becf", lw=6, alpha=0.25, solid_capstyle="round", zorder=2,
            label="route")


def draw_agents(ax: Axes, scene: DriveScene) -> None:
    """Agents now (boxes with headings), their history (solid) and privileged future (dotted)."""
    agents = scene.agents
    now = CURRENT_INDEX
    for i in range(agents.num_agents):
        color = AGENT_COLORS[AgentCategory(int(agents.category[i]))]
        past = agents.valid[i, : now + 1]
        future = agents.valid[i, now:]
        ax.plot(*agents.xy[i, : now + 1][past].T, color=color, lw=1.0, alpha=0.8, zorder=3)
        ax.plot(*agents.xy[i, now:][future].T, color=color, lw=1.0, ls=":", alpha=0.8, zorder=3)
        if agents.valid[i, now]:
            _box(ax, agents.xy[i, now], agents.heading[i, now], *agents.size[i], color=color)


def draw_ego(ax: Axes, scene: DriveScene) -> None:
    """Ego box (Pacifica) now, its history, and the expert future with its 0.5 s plan poses."""
    pose = scene.ego.pose
    now = CURRENT_INDEX
    ax.plot(pose[: now + 1, 0], pose[: now + 1, 1], color=EGO_COLOR, lw=1.8, zorder=6, label="ego history")
    ax.plot(pose[now:, 0], pose[now:, 1], color=EGO_COLOR, lw=1.5, ls="--", zorder=6,
            label="expert future (privileged)")
    plan = pose[now + 5 : now + 41 : 5]
    ax.scatter(plan[:, 0], plan[:, 1], s=12, color=EGO_COLOR, zorder=7, label="plan poses (0.5 s)")
    heading = pose[now, 2]
    center = pose[now, :2] + PACIFICA.rear_axle_to_center * np.array([np.cos(heading), np.sin(heading)])
    _box(ax, center, heading, PACIFICA.length, PACIFICA.width, color=EGO_COLOR, alpha=0.95, zorder=8)


def render_bev(scene: DriveScene, radius: float = 50.0) -> Figure:
    """A BEV figure of `scene` around the current ego pose, `radius` [m] each way."""
    fig, ax = plt.subplots(figsize=(10, 8), dpi=110)
    draw_map(ax, scene)
    draw_agents(ax, scene)
    draw_ego(ax, scene)
    cx, cy = scene.current_pose[:2]
    ax.set_xlim(cx - radius, cx + radius)
    ax.set_ylim(cy - radius, cy + radius)
    ax.set_aspect("equal")
    ax.set_xlabel("x [m]")
    ax.set_ylabel("y [m]")
    speed = float(scene.ego.speed[CURRENT_INDEX])
    meta = scene.metadata
    ax.set_title(f"{meta.scene_id}  ·  {meta.scenario_type.value}  ·  command {scene.command.name}  ·  "
                 f"{speed:.1f} m/s", fontsize=9)
    handles = [plt.Line2D([], [], color=c, marker="s", ls="", label=k.name.lower().replace("_", " "))
               for k, c in AGENT_COLORS.items()]
    ax.legend(handles=ax.get_legend_handles_labels()[0] + handles, fontsize=8, loc="upper left",
              bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    return fig


def save_bev(scene: DriveScene, path: Path, radius: float = 50.0) -> Path:
    """Render `scene` and write it as a PNG to `path`, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = render_bev(scene, radius)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png")
        tmp.replace(path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path
