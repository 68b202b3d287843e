"""Bird's-eye-view pictures of driving scenes with matplotlib, in the ego frame.

Axes are ego-centred: metres relative to the ego's current rear axle, x forward (to the right), y left (up).
The picture shows the map (drivable area, lane boundaries, centrelines, intersection connectors, crosswalks,
stop lines, red lights, route), agents now with their history and their futures as fading boxes every 0.5 s
up to 4 s, the ego with its history and expert future, and optionally a plan, a simulated ego path and the
metric failures located on it (`scenes.render_failures`). The legend lists only what is drawn.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import shapely
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, PathPatch
from matplotlib.patches import Polygon as PatchPolygon
from matplotlib.path import Path as MplPath

from scenes.agents import AgentCategory
from scenes.drive import CURRENT_INDEX, PLAN_DT, SIM_DT, DriveScene
from scenes.ego import PACIFICA
from scenes.geometry import box_corners, points_to_local, poses_to_local
from scenes.maps import DrivableKind
from scenes.render_failures import FailureMark, ego_footprints, ego_states

AGENT_COLORS = {
    AgentCategory.VEHICLE: "#1f77b4",
    AgentCategory.PEDESTRIAN: "#2ca02c",
    AgentCategory.BICYCLE: "#9467bd",
    AgentCategory.STATIC_OBJECT: "#7f7f7f",
}
EGO_COLOR = "#d62728"
PLAN_COLOR = "#ff7f0e"
SIMULATED_COLOR = "#6a3d9a"
ROUTE_COLOR = "#17becf"
DRIVABLE_COLORS = {
    DrivableKind.ROADBLOCK: ("#d9d9d9", "drivable area (road)"),
    DrivableKind.INTERSECTION: ("#c2c2c2", "drivable area (intersection)"),
    DrivableKind.CARPARK: ("#e3dccb", "drivable area (car park)"),
}
FAILURE_STYLES = {  # colour, edge line style, tag offset [points], z-order (NC on top: the worst outcome)
    "DAC": ("#e31a1c", "-", (25, -45), 13),
    "NC": ("#e000e0", "-", (-10, 50), 14),
    "TTC": ("#ff7f00", "--", (45, 30), 12),
}
FUTURE_STEP = round(0.5 / SIM_DT)  # agent future boxes every 0.5 s
FUTURE_BOXES = 8  # ... up to 4 s
X_LABEL = "x [m] (forward)"
Y_LABEL = "y [m] (left)"
TITLE_SIZE = 9
VIEW_BEHIND, VIEW_AHEAD = 0.5, 1.5  # x window [-0.5 r, 1.5 r] for a view "radius" r: more road ahead
CROP = 1.9  # map and agents within CROP * radius of the ego are drawn (covers the window's corners)


class _Legend:
    """Legend entries in drawing order, each label once: only what was drawn gets an entry."""

    def __init__(self) -> None:
        self.entries: dict[str, Artist] = {}

    def add(self, label: str, handle: Artist) -> None:
        self.entries.setdefault(label, handle)

    def line(self, label: str, **style) -> None:
        self.add(label, Line2D([], [], **style))

    def patch(self, label: str, **style) -> None:
        self.add(label, Patch(**style))


def _polygon_path(polygon: shapely.Geometry) -> MplPath:
    """A matplotlib path of a (multi)polygon, holes included."""
    verts, codes = [], []
    for part in shapely.get_parts(polygon):
        for ring in (part.exterior, *part.interiors):
            xy = np.asarray(ring.coords)[:, :2]
            if len(xy) < 3:
                continue
            code = np.full(len(xy), MplPath.LINETO)
            code[0], code[-1] = MplPath.MOVETO, MplPath.CLOSEPOLY
            verts.append(xy)
            codes.append(code)
    if not verts:
        return MplPath(np.zeros((1, 2)), [MplPath.MOVETO])
    return MplPath(np.concatenate(verts), np.concatenate(codes))


def _lines(ax: Axes, lines: np.ndarray, **style) -> bool:
    """Draw LineStrings as one collection; True if anything was drawn."""
    segments = [shapely.get_coordinates(line) for line in lines]
    segments = [xy for xy in segments if len(xy) >= 2]
    if segments:
        ax.add_collection(LineCollection(segments, **style))
    return bool(segments)


def _box(ax: Axes, center: np.ndarray, heading: float, length: float, width: float, color: str,
         alpha: float = 0.85, zorder: int = 5) -> None:
    corners = box_corners(center, np.asarray(heading), np.asarray(length), np.asarray(width))
    ax.add_patch(PatchPolygon(corners, closed=True, facecolor=color, edgecolor="black", lw=0.6,
                              alpha=alpha, zorder=zorder))
    tip = center + 0.5 * length * np.array([np.cos(heading), np.sin(heading)])
    ax.plot([center[0], tip[0]], [center[1], tip[1]], color="white", lw=1.0, zorder=zorder + 1)


def _to_local(scene: DriveScene, xy: np.ndarray) -> np.ndarray:
    return points_to_local(np.asarray(xy, dtype=np.float64), scene.current_pose)


def draw_map(ax: Axes, scene: DriveScene, radius: float, legend: _Legend) -> None:
    """Drivable area, lane boundaries and centrelines, connectors, crosswalks, stop lines, red lights and the
    route near the ego, in the ego frame."""
    origin = scene.current_pose
    layers = scene.map.crop(origin[:2], CROP * radius).to_local(origin)
    for polygon, kind in zip(layers.drivable_polygons, layers.drivable_kinds):
        face, label = DRIVABLE_COLORS.get(DrivableKind(int(kind)), DRIVABLE_COLORS[DrivableKind.ROADBLOCK])
        ax.add_patch(PathPatch(_polygon_path(polygon), facecolor=face, edgecolor="none", zorder=0))
        legend.patch(label, facecolor=face, edgecolor="none")
    lanes = ~np.asarray(layers.lane_is_connector, dtype=bool)
    boundaries = np.concatenate([layers.lane_left_boundaries[lanes], layers.lane_right_boundaries[lanes]])
    if _lines(ax, boundaries, colors="#6e6e6e", linewidths=0.6, zorder=1):
        legend.line("lane boundaries (markings)", color="#6e6e6e", lw=0.8)
    if _lines(ax, layers.lane_centerlines[lanes], colors="white", linewidths=0.8, linestyles=(0, (4, 4)),
              zorder=1):
        legend.line("lane centrelines", color="white", lw=1.0, ls=(0, (4, 4)))
    if _lines(ax, layers.lane_centerlines[~lanes], colors="#4f7cac", linewidths=0.6, linestyles=":",
              alpha=0.8, zorder=1):
        legend.line("intersection connectors (centrelines)", color="#4f7cac", lw=0.8, ls=":")
    for crosswalk in layers.crosswalks:
        ax.add_patch(PathPatch(_polygon_path(crosswalk), facecolor="none", edgecolor="#555555", hatch="////",
                               lw=0.5, zorder=1))
        legend.patch("crosswalks", facecolor="none", edgecolor="#555555", hatch="////", lw=0.5)
    if _lines(ax, layers.stop_lines, colors="black", linewidths=2.0, zorder=2):
        legend.line("stop lines", color="black", lw=2.0)
    lights = scene.traffic_lights
    red = lights.lane_ids[lights.is_red[:, CURRENT_INDEX]]
    if _lines(ax, layers.lane_centerlines[np.isin(layers.lane_ids, red)], colors="red", linewidths=1.3,
              alpha=0.75, zorder=2):
        legend.line("lane with a red light", color="red", lw=1.3)
    route = _to_local(scene, shapely.get_coordinates(scene.route.centerline))
    if len(route) >= 2:
        ax.plot(route[:, 0], route[:, 1], color=ROUTE_COLOR, lw=6, alpha=0.25, solid_capstyle="round",
                zorder=2)
        legend.line("route", color=ROUTE_COLOR, lw=6, alpha=0.25)


def _category_label(category: AgentCategory) -> str:
    return category.name.lower().replace("_", " ")


def draw_agents(ax: Axes, scene: DriveScene, radius: float, legend: _Legend) -> None:
    """Agents now (boxes with headings), their history (solid lines) and their privileged futures: boxes every
    0.5 s up to 4 s, fading with time, for agents that move. Ego frame."""
    agents = scene.agents.to_local(scene.current_pose)
    now = CURRENT_INDEX
    future_rows = now + FUTURE_STEP * np.arange(1, FUTURE_BOXES + 1)
    future_rows = future_rows[future_rows < agents.num_steps]
    fading = np.linspace(1.0, 0.2, FUTURE_BOXES)[: len(future_rows)]
    reach = CROP * radius
    boxes: list[np.ndarray]  # (4, 2) corners [m]
    faces: list[tuple[float, float, float, float]]  # RGBA
    edges: list[tuple[float, float, float, float]]
    boxes, faces, edges = [], [], []
    for i in range(agents.num_agents):
        valid = agents.valid[i]
        if not valid.any() or np.abs(agents.xy[i][valid]).max(axis=-1).min() > reach:
            continue
        category = AgentCategory(int(agents.category[i]))
        color = AGENT_COLORS[category]
        past = valid[: now + 1]
        if past.sum() >= 2:
            ax.plot(*agents.xy[i, : now + 1][past].T, color=color, lw=1.0, alpha=0.8, zorder=3)
            legend.line("agent history", color="#555555", lw=1.0)
        if valid[now]:
            _box(ax, agents.xy[i, now], agents.heading[i, now], *agents.size[i],  # type: ignore[misc]
                 color=color)  # (size (2,) gives length and width)
            legend.patch(f"{_category_label(category)} (now)", facecolor=color, edgecolor="black", lw=0.6)
        rows = future_rows[valid[future_rows]]
        if not len(rows):
            continue
        start = agents.xy[i, now] if valid[now] else agents.xy[i, rows[0]]
        if np.linalg.norm(agents.xy[i, rows] - start, axis=-1).max() < 0.3:
            continue  # a still agent: its future boxes would only stack on its current one
        corners = box_corners(agents.xy[i, rows], agents.heading[i, rows], *agents.size[i])
        boxes.extend(corners)
        faces.extend(to_rgba(color, 0.2 * a) for a in fading[valid[future_rows]])
        edges.extend(to_rgba(color, 0.75 * a) for a in fading[valid[future_rows]])
    if boxes:
        ax.add_collection(PolyCollection(boxes, facecolors=faces, edgecolors=edges, linewidths=0.6, zorder=3))
        legend.patch("agent futures (every 0.5 s to 4 s, fading)", facecolor=to_rgba("#1f77b4", 0.15),
                     edgecolor=to_rgba("#1f77b4", 0.6))


def draw_ego(ax: Axes, scene: DriveScene, legend: _Legend, expert: bool = True) -> None:
    """Ego box now (Pacifica), its history and, if `expert`, the logged (privileged) future with its poses
    every 0.5 s. Ego frame: the rear axle now is the origin."""
    pose = poses_to_local(scene.ego.pose, scene.current_pose)
    now = CURRENT_INDEX
    ax.plot(pose[: now + 1, 0], pose[: now + 1, 1], color=EGO_COLOR, lw=1.8, zorder=6)
    legend.line("ego history", color=EGO_COLOR, lw=1.8)
    if expert:
        stride = round(PLAN_DT / SIM_DT)
        ax.plot(pose[now:, 0], pose[now:, 1], color=EGO_COLOR, lw=1.2, ls="--", alpha=0.8, zorder=6)
        poses = pose[now + stride :: stride][:8]
        ax.scatter(poses[:, 0], poses[:, 1], s=10, color=EGO_COLOR, zorder=7)
        legend.line("expert future (logged; dots 0.5 s)", color=EGO_COLOR, lw=1.2, ls="--", marker="o", ms=3)
    heading = pose[now, 2]
    center = pose[now, :2] + PACIFICA.rear_axle_to_center * np.array([np.cos(heading), np.sin(heading)])
    _box(ax, center, pose[now, 2], PACIFICA.length, PACIFICA.width, color=EGO_COLOR, alpha=0.95, zorder=8)
    ax.plot(0.0, 0.0, "+", color="black", ms=7, mew=1.2, zorder=9)
    legend.patch("ego (now)", facecolor=EGO_COLOR, edgecolor="black", lw=0.6)
    legend.line("ego rear axle now (origin)", color="black", marker="+", ls="", ms=7, mew=1.2)


def draw_plan(ax: Axes, plan: np.ndarray, legend: _Legend) -> np.ndarray | None:
    """The plan (T, 3) in the ego frame, from the origin; returns its points, None if it is not finite."""
    plan = np.asarray(plan, dtype=np.float64)
    if plan.ndim != 2 or plan.shape[1] < 2 or not np.isfinite(plan[:, :2]).all():
        return None
    xy = np.vstack([np.zeros((1, 2)), plan[:, :2]])
    ax.plot(xy[:, 0], xy[:, 1], "-", color=PLAN_COLOR, lw=1.5, zorder=10)
    ax.plot(xy[1:, 0], xy[1:, 1], "o", color=PLAN_COLOR, ms=4, mec="black", mew=0.4, zorder=10)
    legend.line(f"plan ({len(plan)} poses, every {PLAN_DT:g} s)", color=PLAN_COLOR, lw=1.5, marker="o", ms=4,
                mec="black", mew=0.4)
    return xy


def draw_simulated(ax: Axes, scene: DriveScene, states: np.ndarray, legend: _Legend) -> np.ndarray | None:
    """The simulated rear-axle path (T, >=2) map frame, with ego footprint outlines every 1 s; returns the
    ego-frame points, None if there is nothing finite to draw."""
    states = np.asarray(states, dtype=np.float64)
    if states.ndim != 2 or states.shape[1] < 2 or len(states) < 2 or not np.isfinite(states[:, :2]).all():
        return None
    full = ego_states(states, float(scene.current_pose[2]))
    local = poses_to_local(full[:, :3], scene.current_pose)
    ax.plot(local[:, 0], local[:, 1], color=SIMULATED_COLOR, lw=2.0, zorder=9)
    legend.line(f"simulated ego path ({(len(states) - 1) * SIM_DT:g} s, rear axle)", color=SIMULATED_COLOR,
                lw=2.0)
    every = round(1.0 / SIM_DT)
    footprints = ego_footprints(local[every::every])
    if len(footprints):
        ax.add_collection(PolyCollection(footprints,  # type: ignore[arg-type]  # (K, 4, 2) array of polygons
                                         facecolors="none", edgecolors=SIMULATED_COLOR,
                                         linewidths=0.8, alpha=0.7, zorder=9))
        legend.patch("simulated ego footprint (every 1 s)", facecolor="none", edgecolor=SIMULATED_COLOR)
    return local[:, :2]


def draw_failures(ax: Axes, scene: DriveScene, marks: Sequence[FailureMark], legend: _Legend) -> np.ndarray:
    """Highlight each located failure (ego footprint, involved agent's box, a short tag) and list every
    mark's sentence in a box in the lower-left corner. Returns the highlighted points (ego frame)."""
    points = [np.zeros((0, 2))]
    for mark in marks:
        if not mark.located:
            continue
        color, ls, offset, z = FAILURE_STYLES.get(mark.metric, ("#e31a1c", "-", (30, 30), 13))
        if mark.agent_box is not None:
            box = _to_local(scene, mark.agent_box)
            ax.add_patch(PatchPolygon(box, closed=True, facecolor="none", edgecolor=color, lw=2.4, ls=ls,
                                      zorder=z))
            legend.patch(f"{mark.metric}: agent involved", facecolor="none", edgecolor=color, lw=2.0, ls=ls)
            points.append(box)
        if mark.footprint is not None:
            footprint = _to_local(scene, mark.footprint)
            ax.add_patch(PatchPolygon(footprint, closed=True, facecolor=to_rgba(color, 0.3), edgecolor=color,
                                      lw=2.0, ls=ls, zorder=z))
            what = "projected ego footprint" if mark.metric == "TTC" else "ego footprint at failure"
            legend.patch(f"{mark.metric}: {what}", facecolor=to_rgba(color, 0.3), edgecolor=color, lw=2.0,
                         ls=ls)
            points.append(footprint)
            ax.annotate(f"{mark.metric} t={mark.time:.1f} s", xy=footprint.mean(axis=0), xytext=offset,
                        textcoords="offset points", fontsize=8, color=color, fontweight="bold", zorder=15,
                        arrowprops={"arrowstyle": "->", "color": color, "lw": 1.0},
                        bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": color, "alpha": 0.85})
    if marks:
        text = "\n".join(textwrap.fill(mark.text, 60) for mark in marks)
        ax.text(0.01, 0.01, text, transform=ax.transAxes, fontsize=8, va="bottom", ha="left", zorder=16,
                bbox={"boxstyle": "round,pad=0.3", "fc": "white", "ec": "#e31a1c", "alpha": 0.9})
    return np.concatenate(points)


def wrap_title(text: str, width: int) -> str:
    """Each line of `text` wrapped to `width` characters."""
    return "\n".join(textwrap.fill(line, width) or line for line in text.splitlines())


def view_window(radius: float, extra: Sequence[np.ndarray] = ()
                ) -> tuple[tuple[float, float], tuple[float, float]]:
    """x and y limits [m], ego frame: x in [-0.5 r, 1.5 r], y in [-r, r] for r = `radius`, grown to hold the
    `extra` points (T, 2) with a 5 m margin."""
    base = np.array([[-VIEW_BEHIND * radius, -radius], [VIEW_AHEAD * radius, radius]])
    points = np.concatenate([base, *(e for e in extra if len(e))])
    low, high = points.min(axis=0), points.max(axis=0)
    low = np.where(low < base[0], low - 5.0, low)
    high = np.where(high > base[1], high + 5.0, high)
    return (float(low[0]), float(high[0])), (float(low[1]), float(high[1]))


def render_bev(scene: DriveScene, radius: float = 50.0, *, plan: np.ndarray | None = None,
               simulated: np.ndarray | None = None, failures: Sequence[FailureMark] = (), status: str = "",
               expert: bool = True, dpi: int = 110) -> Figure:
    """A BEV figure of `scene` in the ego frame around the ego's rear axle now: `radius` [m] to each side,
    0.5 `radius` behind and 1.5 `radius` ahead (the view is 2 `radius` wide and tall).

    Args:
        plan: optional (T, 3) plan in the ego frame.
        simulated: optional (T, 2..4) simulated ego states in the map frame (x, y[, heading[, speed]]).
        failures: located metric failures to highlight (`scenes.render_failures.locate_failures`).
        status: extra title text (e.g. the scores), wrapped to fit.
        expert: draw the logged expert future.
    The view grows beyond `radius` where the plan, the simulated path or a failure would leave it.
    """
    fig, ax = plt.subplots(figsize=(11.5, 8.5), dpi=dpi, layout="constrained")
    legend = _Legend()
    draw_map(ax, scene, radius, legend)
    draw_agents(ax, scene, radius, legend)
    draw_ego(ax, scene, legend, expert)
    extra = []
    if plan is not None:
        extra.append(draw_plan(ax, plan, legend))
    if simulated is not None:
        extra.append(draw_simulated(ax, scene, simulated, legend))
    if failures:
        extra.append(draw_failures(ax, scene, failures, legend))
    xlim, ylim = view_window(radius, [e for e in extra if e is not None])
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    ax.set_xlabel(X_LABEL)
    ax.set_ylabel(Y_LABEL)
    ax.grid(True, color="white", lw=0.4, alpha=0.5)
    ax.set_facecolor("#f4f4f4")
    speed = float(scene.ego.speed[CURRENT_INDEX])
    meta = scene.metadata
    title = (f"{meta.scene_id}  ·  {meta.scenario_type.value}  ·  command {scene.command.name}  ·  "
             f"ego {speed:.1f} m/s")
    if status:
        title += "\n" + status
    ax.set_title(wrap_title(title, 95), fontsize=TITLE_SIZE)
    fig.legend(handles=list(legend.entries.values()), labels=list(legend.entries), fontsize=7.5,
               loc="outside right upper", facecolor="#e4e4e4", framealpha=1.0)
    return fig


def legend_labels(fig: Figure) -> list[str]:
    """The legend labels of a figure made by `render_bev`."""
    legend = fig.legends[0] if fig.legends else fig.axes[0].get_legend()
    return [] if legend is None else [text.get_text() for text in legend.get_texts()]


def save_figure(fig: Figure, path: Path) -> Path:
    """Write `fig` to `path` atomically (the format from the suffix, PNG by default) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png")
        tmp.replace(path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path


def save_bev(scene: DriveScene, path: Path, radius: float = 50.0, **overlays) -> Path:
    """Render `scene` (with `render_bev`'s keyword `overlays`) and write it as a PNG to `path`, atomically."""
    return save_figure(render_bev(scene, radius, **overlays), path)

