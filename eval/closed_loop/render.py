"""Animated bird's-eye-view GIFs of closed-loop roll-outs (`eval.closed_loop.simulation.simulate_log`).

Axes are in the frame of the ego's start pose: metres relative to its rear axle at step 0, x forward then,
y left. The static map (`scenes.render.draw_map`) is drawn once; each frame adds the lights red at that step,
the expert path, the ego box and trail, the agents valid then, the latest plan and its candidates, and a
status line. The view is a WINDOW-metre square that follows the ego, LOOK_AHEAD metres ahead of it.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import shapely
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from PIL import Image

from eval.closed_loop.simulation import ClosedLoopResult, PlannerCall
from planners.pdm.interpolation import plan_to_global_poses
from scenes.agents import AgentCategory
from scenes.drive import CURRENT_INDEX, DriveLog, TrafficLights
from scenes.ego import PACIFICA
from scenes.geometry import points_to_local, poses_to_local
from scenes.render import (
    AGENT_COLORS,
    CROP,
    EGO_COLOR,
    PLAN_COLOR,
    _box,
    _category_label,
    _Legend,
    _lines,
    draw_map,
)

WINDOW = 80.0  # [m] side of the square view
LOOK_AHEAD = 15.0  # [m] the view's centre ahead of the ego's rear axle
FIGSIZE = (10.0, 7.2)  # [in]
DPI = 80  # 800 x 576 pixel frames
CANDIDATE_COLOR = "#8c564b"


def frame_steps(num_steps: int, every: int) -> list[int]:
    """Simulation steps drawn for a roll-out of `num_steps` steps: every `every`-th one, and the last."""
    steps = list(range(0, num_steps, max(1, every)))
    return steps if steps[-1] == num_steps - 1 else [*steps, num_steps - 1]


def _latest_call(calls: list[PlannerCall], step: int) -> PlannerCall | None:
    """The last planner call made at or before `step`."""
    made = [call for call in calls if call.step <= step]
    return made[-1] if made else None


def _draw_frame(ax: Axes, log: DriveLog, result: ClosedLoopResult, step: int, origin: np.ndarray,
                legend: _Legend) -> None:
    """The dynamic artists of simulation step `step`, in the frame of pose `origin` (3,) (the ego's start)."""
    rollout = result.rollout
    red = np.isin(log.map.lane_ids, log.red_lane_ids(CURRENT_INDEX + step))
    red_lanes = shapely.transform(log.map.lane_centerlines[red], lambda xy: points_to_local(xy, origin))
    if _lines(ax, red_lanes, colors="red", linewidths=1.3, alpha=0.75, zorder=2):
        legend.line("lane with a red light", color="red", lw=1.3)
    expert = poses_to_local(rollout.expert_pose, origin)
    ax.plot(expert[:, 0], expert[:, 1], color=EGO_COLOR, lw=1.2, ls="--", alpha=0.7, zorder=6)
    legend.line("expert (log) path", color=EGO_COLOR, lw=1.2, ls="--")
    pose = poses_to_local(rollout.ego_pose[: step + 1], origin)
    ax.plot(pose[:, 0], pose[:, 1], color=EGO_COLOR, lw=2.0, zorder=7)
    legend.line("ego driven path", color=EGO_COLOR, lw=2.0)
    heading = pose[-1, 2]
    centre = pose[-1, :2] + PACIFICA.rear_axle_to_center * np.array([np.cos(heading), np.sin(heading)])
    _box(ax, centre, heading, PACIFICA.length, PACIFICA.width, color=EGO_COLOR, alpha=0.95, zorder=8)
    legend.patch("ego", facecolor=EGO_COLOR, edgecolor="black", lw=0.6)
    view = np.array([WINDOW, WINDOW])  # agents within the view (plus a box length) are drawn
    for i in np.flatnonzero(rollout.agent_valid[:, step]):
        xy = points_to_local(rollout.agent_xy[i, step], origin)
        if np.any(np.abs(xy - _view_centre(pose[-1])) > view / 2 + 10.0):
            continue
        category = AgentCategory(int(rollout.agent_category[i]))
        length, width = rollout.agent_size[i]
        _box(ax, xy, float(rollout.agent_heading[i, step] - origin[2]), float(length), float(width),
             color=AGENT_COLORS[category])
        legend.patch(_category_label(category), facecolor=AGENT_COLORS[category], edgecolor="black", lw=0.6)
    call = _latest_call(result.calls, step)
    if call is not None:
        if call.candidates is not None and len(call.candidates):
            paths = poses_to_local(plan_to_global_poses(call.candidates, call.origin), origin)
            ax.add_collection(LineCollection(list(paths[..., :2]), colors=CANDIDATE_COLOR, linewidths=0.7,
                                             alpha=0.35, zorder=9))
            legend.line(f"candidates ({len(paths)})", color=CANDIDATE_COLOR, lw=0.7, alpha=0.5)
        plan = poses_to_local(plan_to_global_poses(call.plan, call.origin), origin)
        ax.plot(plan[:, 0], plan[:, 1], "-o", color=PLAN_COLOR, lw=1.5, ms=3, mec="black", mew=0.4, zorder=10)
        legend.line(f"plan (call at step {call.step})", color=PLAN_COLOR, lw=1.5, marker="o", ms=3)


def _view_centre(pose: np.ndarray) -> np.ndarray:
    """(2,) the view's centre for an ego pose (3,) [m, m, rad]: LOOK_AHEAD metres ahead of it."""
    return pose[:2] + LOOK_AHEAD * np.array([np.cos(pose[2]), np.sin(pose[2])])


def save_rollout_animation(log: DriveLog, result: ClosedLoopResult, path: Path, every: int = 2, fps: int = 10,
                           title: str = "") -> Path:
    """Write the roll-out of `result` on `log` as an animated GIF at `path`, atomically; returns `path`.

    One frame every `every` simulation steps (and the last step), shown at `fps` frames per second. If the
    planner failed (`result.error`), the last frame says so in red.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rollout = result.rollout
    origin = rollout.ego_pose[0].copy()  # == log.current_pose: the simulation starts from the log
    local = poses_to_local(rollout.ego_pose, origin)
    reach = float(np.linalg.norm(local[:, :2], axis=-1).max()) + LOOK_AHEAD + WINDOW
    fig = Figure(figsize=FIGSIZE, dpi=DPI)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0.07, 0.08, 0.6, 0.84))
    ax.set_facecolor("#f4f4f4")
    ax.set_aspect("equal")
    ax.set_xlabel("x [m] (ego frame at the start, forward)")
    ax.set_ylabel("y [m] (left)")
    ax.set_title(title or f"{result.scene_id}  ·  {result.scenario_type}", fontsize=9)
    no_lights = TrafficLights(np.zeros(0, np.int64), np.zeros((0, log.num_steps), bool))  # drawn per frame
    base = _Legend()
    draw_map(ax, replace(log, traffic_lights=no_lights), reach / CROP, base)  # type: ignore[arg-type]
    static = set(ax.get_children())
    steps = frame_steps(rollout.num_steps, every)
    frames: list[Image.Image] = []
    for step in steps:
        legend = _Legend()
        legend.entries = dict(base.entries)
        _draw_frame(ax, log, result, step, origin, legend)
        centre = _view_centre(local[step])
        ax.set_xlim(centre[0] - WINDOW / 2, centre[0] + WINDOW / 2)
        ax.set_ylim(centre[1] - WINDOW / 2, centre[1] + WINDOW / 2)
        ax.text(0.01, 0.99, f"t = {step * rollout.dt:.1f} s  ·  step {step}/{rollout.num_steps - 1}  ·  "
                f"{result.scene_id}", transform=ax.transAxes, fontsize=8.5, va="top", ha="left", zorder=20,
                bbox={"boxstyle": "round,pad=0.3", "fc": "white", "ec": "#999999", "alpha": 0.9})
        if result.error and step == steps[-1]:
            ax.text(0.01, 0.01, f"planner failed: {result.error}"[:110], transform=ax.transAxes, fontsize=8.5,
                    color="red", va="bottom", ha="left", zorder=20,
                    bbox={"boxstyle": "round,pad=0.3", "fc": "white", "ec": "red", "alpha": 0.9})
        ax.legend(handles=list(legend.entries.values()), labels=list(legend.entries), fontsize=7,
                  loc="upper left", bbox_to_anchor=(1.02, 1.0), facecolor="#e4e4e4", framealpha=1.0)
        canvas.draw()
        rgb = np.asarray(canvas.buffer_rgba())[..., :3]
        frames.append(Image.fromarray(rgb).quantize(colors=256))
        dynamic: list[Artist] = [artist for artist in ax.get_children() if artist not in static]
        for artist in dynamic:
            artist.remove()
    tmp = path.with_name(f".{path.stem}.tmp.gif")
    try:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:],
                       duration=round(1000 / max(1, fps)), loop=0)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
