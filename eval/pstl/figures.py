"""Pictures of pSTL's samples and controllability sweeps (matplotlib, Agg): PNG bytes, optionally a file.

    samples_by_robustness  a BEV with the samples coloured by exact ρ (diverging colormap centred at ρ = 0)
    case_study             a BEV with several θ settings' samples overlaid, one colour each (pSTL's demo)
    sweep_plot             mean speed against v_max, min gap against d_safe, compliance on a second axis

BEVs are in the ego frame (x forward, y left, metres from the rear axle now) and reuse `scenes.render`'s map,
agent (now, their history and logged futures) and ego drawing. A sample is drawn from the origin through its
8 poses. Every figure is exactly `size_px` (width, height) pixels: no tight bounding box.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.collections import LineCollection
from matplotlib.colors import Colormap, TwoSlopeNorm
from matplotlib.figure import Figure

from eval.pstl.controllability import Metric, Sweep, expectation_for
from eval.pstl.scoring import check_plans
from scenes.drive import DriveScene
from scenes.render import (
    TITLE_SIZE,
    X_LABEL,
    Y_LABEL,
    _Legend,
    draw_agents,
    draw_ego,
    draw_map,
    view_window,
    wrap_title,
)
from scenes.store.layout import atomic_write_bytes

RHO_CMAP = "RdYlGn"  # diverging: red violates, yellow at ρ = 0, green satisfies
SETTING_COLORS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e")  # case-study settings, in order
VIOLATING_ALPHA = 0.45  # violating samples are dashed and faded
BEV_RADIUS = 25.0  # [m] base view: 12.5 m behind, 37.5 m ahead, 25 m to each side (grown to hold the samples)
BEV_SIZE = (1100, 800)  # [px]
SWEEP_SIZE = (1000, 420)  # [px]
DPI = 100
METRIC_LABELS = {Metric.MEAN_SPEED: "mean speed [m/s]", Metric.MIN_GAP: "min gap to agents [m]",
                 Metric.COMPLIANCE: "compliance (ρ > 0)"}


def rho_norm(rho: np.ndarray) -> TwoSlopeNorm:
    """A norm that maps ρ = 0 to 0.5 (the colormap centre), min ρ to 0 and max ρ to 1, each side linear on its
    own scale so small margins still read as clearly satisfying or violating. A side with no sample mirrors
    the other (all ρ = 0: ±1)."""
    rho = np.asarray(rho, dtype=np.float64)
    low = float(-rho.min()) if np.size(rho) and rho.min() < 0.0 else 0.0
    high = float(rho.max()) if np.size(rho) and rho.max() > 0.0 else 0.0
    low, high = (low or high or 1.0), (high or low or 1.0)
    return TwoSlopeNorm(vcenter=0.0, vmin=-low, vmax=high)


def rho_cmap() -> Colormap:
    """The diverging colormap of ρ."""
    return matplotlib.colormaps[RHO_CMAP]


def robustness_colors(rho: np.ndarray) -> np.ndarray:
    """(S, 4) RGBA of ρ (S,) under `rho_norm` and `rho_cmap`."""
    rho = np.asarray(rho, dtype=np.float64)
    return rho_cmap()(rho_norm(rho)(rho))


def _figure(size_px: tuple[int, int], dpi: int) -> Figure:
    width, height = size_px
    if width < 50 or height < 50:
        raise ValueError(f"size_px must be at least 50 x 50 pixels, got {size_px}")
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure, path: Path | str | None) -> bytes:
    """The PNG bytes of `fig` (written to `path` atomically when given)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=fig.dpi)
    data = buffer.getvalue()
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
    return data


def _paths(plans: np.ndarray) -> np.ndarray:
    """(S, 9, 2) sample paths from the origin through the plans (S, 8, 3), ego frame."""
    return np.concatenate([np.zeros((len(plans), 1, 2)), plans[..., :2]], axis=1)


def _fit_aspect(xlim: tuple[float, float], ylim: tuple[float, float], ratio: float
                ) -> tuple[tuple[float, float], tuple[float, float]]:
    """The limits [m] widened about their centre so that width / height = `ratio`: an equal-aspect view
    then fills the axes instead of leaving bands of empty figure."""
    width, height = xlim[1] - xlim[0], ylim[1] - ylim[0]
    if width / height < ratio:
        grow = 0.5 * (ratio * height - width)
        return (xlim[0] - grow, xlim[1] + grow), ylim
    grow = 0.5 * (width / ratio - height)
    return xlim, (ylim[0] - grow, ylim[1] + grow)


def _bev(fig: Figure, scene: DriveScene, extra: Sequence[np.ndarray], title: str, radius: float):
    """Axes with the scene drawn (map, agents, ego box now) and the view holding `extra` points (N, 2)."""
    ax = fig.add_subplot()
    legend = _Legend()
    draw_map(ax, scene, radius, legend)
    draw_agents(ax, scene, radius, legend)
    draw_ego(ax, scene, legend, expert=False)
    xlim, ylim = _fit_aspect(*view_window(radius, list(extra)), ratio=fig.bbox.width / fig.bbox.height)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    ax.set_anchor("C")
    ax.set_xlabel(X_LABEL)
    ax.set_ylabel(Y_LABEL)
    ax.set_facecolor("#f4f4f4")
    ax.set_title(wrap_title(title or scene.metadata.scene_id, 90), fontsize=TITLE_SIZE)
    return ax, legend


def samples_by_robustness(scene: DriveScene, plans: np.ndarray, rho: np.ndarray,
                          path: Path | str | None = None, title: str = "",
                          size_px: tuple[int, int] = BEV_SIZE, dpi: int = DPI,
                          radius: float = BEV_RADIUS) -> bytes:
    """PNG of a BEV of `scene` with samples (S, 8, 3) [m, m, rad] (ego frame) coloured by ρ (S,): satisfying
    (ρ > 0) solid, violating dashed and faded; a colour bar labelled ρ. Written to `path` if given."""
    plans = check_plans(plans)
    rho = np.asarray(rho, dtype=np.float64).reshape(-1)
    if rho.shape != (len(plans),):
        raise ValueError(f"rho must have one value per sample, shape ({len(plans)},), got {rho.shape}")
    paths = _paths(plans)
    fig = _figure(size_px, dpi)
    ax, legend = _bev(fig, scene, [paths.reshape(-1, 2)], title, radius)
    colors = robustness_colors(rho)
    good = rho > 0.0
    if good.any():
        ax.add_collection(LineCollection(list(paths[good]), colors=colors[good], linewidths=1.4, zorder=11))
        legend.line(f"satisfying sample, ρ > 0 ({int(good.sum())})", color="#1a9850", lw=1.4)
    if (~good).any():
        faded = colors[~good].copy()
        faded[:, 3] = VIOLATING_ALPHA
        ax.add_collection(LineCollection(list(paths[~good]), colors=faded, linewidths=1.1, linestyles="--",
                                         zorder=10))
        legend.line(f"violating sample, ρ ≤ 0 ({int((~good).sum())})", color="#d73027", lw=1.1, ls="--",
                    alpha=VIOLATING_ALPHA)
    norm = rho_norm(rho)
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=rho_cmap()), ax=ax, label="ρ (exact robustness)",
                       shrink=0.8)
    low, high = float(norm.vmin or 0.0), float(norm.vmax or 0.0)
    bar.set_ticks([low, 0.5 * low, 0.0, 0.5 * high, high])
    ax.legend(handles=list(legend.entries.values()), labels=list(legend.entries), fontsize=7,
              loc="upper left", facecolor="#e4e4e4", framealpha=0.9)
    return _png(fig, path)


def case_study(scene: DriveScene, plans_per_setting: Sequence[tuple[str, np.ndarray]],
               path: Path | str | None = None, title: str = "", size_px: tuple[int, int] = BEV_SIZE,
               dpi: int = DPI, radius: float = BEV_RADIUS) -> bytes:
    """PNG of one BEV of `scene` with each setting's samples (S, 8, 3) (ego frame) overlaid in its own colour
    (`SETTING_COLORS`, in order) and labelled, as pSTL's controllability case study. Written to `path` if
    given."""
    if not plans_per_setting or len(plans_per_setting) > len(SETTING_COLORS):
        raise ValueError(f"case_study draws 1 to {len(SETTING_COLORS)} settings, "
                         f"got {len(plans_per_setting)}")
    sets = [(label, _paths(check_plans(plans, f"plans of {label!r}"))) for label, plans in plans_per_setting]
    fig = _figure(size_px, dpi)
    ax, legend = _bev(fig, scene, [p.reshape(-1, 2) for _, p in sets],
                      title or f"{scene.metadata.scene_id}: samples per θ setting", radius)
    for (label, paths), color in zip(sets, SETTING_COLORS, strict=False):
        ax.add_collection(LineCollection(list(paths), colors=color, linewidths=1.0, alpha=0.5, zorder=10))
        ax.scatter(paths[:, -1, 0], paths[:, -1, 1], s=8, color=color, zorder=11)
        legend.line(f"{label} ({len(paths)} samples)", color=color, lw=1.5, marker="o", ms=3)
    ax.legend(handles=list(legend.entries.values()), labels=list(legend.entries), fontsize=7,
              loc="upper left", facecolor="#e4e4e4", framealpha=0.9)
    return _png(fig, path)


def sweep_plot(sweeps: Sequence[Sweep], path: Path | str | None = None, title: str = "",
               size_px: tuple[int, int] = SWEEP_SIZE, dpi: int = DPI) -> bytes:
    """PNG with one panel per sweep: the metric MONOTONE_EXPECTATIONS names for its field (mean speed for
    v_max, min gap for d_safe; mean speed for other fields) against the swept value, with the bound y = x
    dotted, and compliance on a second axis. Written to `path` if given."""
    if not sweeps:
        raise ValueError("sweep_plot needs at least one sweep")
    fig = _figure(size_px, dpi)
    axes = fig.subplots(1, len(sweeps), squeeze=False)[0]
    for ax, item in zip(axes, sweeps, strict=True):
        expectation = expectation_for(item.field)
        metric = Metric.MEAN_SPEED if expectation is None else expectation.metric
        x, y = item.values, item.series(metric)
        ax.plot(x, y, "-o", color="#1f77b4", lw=1.6, ms=4, label=METRIC_LABELS[metric])
        if item.field in ("v_max", "d_safe"):
            ax.plot(x, x, ":", color="#555555", lw=1.0, label=f"y = {item.field}")
        ax.set_xlabel(f"θ.{item.field}")
        ax.set_ylabel(METRIC_LABELS[metric])
        ax.grid(True, alpha=0.3)
        twin = ax.twinx()
        twin.plot(x, item.series(Metric.COMPLIANCE), "--s", color="#2ca02c", lw=1.2, ms=3,
                  label=METRIC_LABELS[Metric.COMPLIANCE])
        twin.set_ylim(-0.05, 1.05)
        twin.set_ylabel(METRIC_LABELS[Metric.COMPLIANCE])
        lines = ax.get_lines() + twin.get_lines()
        ax.legend(lines, [line.get_label() for line in lines], fontsize=7, loc="best")
        ax.set_title(f"sweep of {item.field} ({len(item.points)} points)", fontsize=TITLE_SIZE)
    if title:
        fig.suptitle(title, fontsize=TITLE_SIZE)
    return _png(fig, path)
