"""Closed-loop run outputs: scenes.csv, summary.json, table.md (the nuPlan CLS layout) and the worst
scenarios as animated BEV GIFs."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

from eval.closed_loop.cls import ClsMetrics
from eval.closed_loop.job import ClosedLoopConfig, ClosedLoopSummary, LogSource, ScenarioRecord
from scenes.store.layout import atomic_write_bytes

LABELS = {"no_ego_at_fault_collisions": "NC", "drivable_area_compliance": "DAC",
          "driving_direction_compliance": "DDC", "ego_is_making_progress": "MP",
          "ego_progress_along_expert_route": "EP", "time_to_collision_within_bound": "TTC",
          "speed_limit_compliance": "SLC", "ego_is_comfortable": "C"}


def csv_text(records: Sequence[ScenarioRecord]) -> str:
    """One row per scenario: every CLS sub-metric, the score, EC, latency, duration and error."""
    buffer = io.StringIO()
    names = ClsMetrics.MULTIPLIERS + ClsMetrics.WEIGHTED
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["index", "scene_id", "scenario_type", *names, "score", "ego_progress_m",
                     "expert_progress_m", "min_ttc_s", "ec", "plan_gap_m", "latency_ms_mean", "calls",
                     "network_steps", "duration_s", "failed_step", "error"])
    for r in records:
        m = r.metrics
        writer.writerow([r.index, r.scene_id, r.scenario_type, *(f"{getattr(m, n):.6g}" for n in names),
                         f"{m.score:.6g}", f"{m.ego_progress:.3f}", f"{m.expert_progress:.3f}",
                         f"{m.min_ttc:.3g}",
                         f"{r.ec:.6g}", f"{r.plan_gap_m:.4f}",
                         f"{r.latency_ms.mean():.3f}" if r.latency_ms.size else "", r.latency_ms.size,
                         f"{r.network_steps:g}", f"{r.duration:.1f}", r.failed_step, r.error])
    return buffer.getvalue()


def markdown_table(rows: Sequence[tuple[str, ClosedLoopSummary]]) -> str:
    """nuPlan's CLS columns in percent, then EC, latency p50/p95 [ms] and denoising steps per call."""
    names = ClsMetrics.MULTIPLIERS + ClsMetrics.WEIGHTED
    metric = rows[0][1].metric.upper() if rows else "CLS"
    head = ("| Method | " + " | ".join(LABELS[n] for n in names)
            + f" | {metric} | EC | latency p50 [ms] | p95 [ms] | steps/call | failed |")
    lines = [head, "|" + "---|" * (len(names) + 7)]
    for method, s in rows:
        values = " | ".join(f"{100 * s.sub_metrics[n]:.1f}" for n in names)
        steps = "-" if s.network_steps != s.network_steps else f"{s.network_steps:g}"
        lines.append(f"| {method} | {values} | {s.cls:.2f} | {100 * s.ec:.1f} | {s.latency_ms_p50:.1f} | "
                     f"{s.latency_ms_p95:.1f} | {steps} | {s.n_failed} |")
    return "\n".join(lines) + "\n"


def write_run(out: Path, label: str, config: ClosedLoopConfig, records: Sequence[ScenarioRecord],
              summary: ClosedLoopSummary, extra: dict) -> None:
    """scenes.csv, summary.json and table.md into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "scenes.csv", csv_text(records).encode())
    failed = [{"index": r.index, "scene_id": r.scene_id, "step": r.failed_step, "error": r.error}
              for r in records if r.failed]
    simulation = config.simulation
    body = {"planner": config.planner, **summary.as_json(), "agents": simulation.agents.value,
            "replan_every": simulation.replan_every, "duration": simulation.duration, "seed": simulation.seed,
            "warm_start": (None if config.warm_start is None
                           else dict(zip(("start_t", "steps"), config.warm_start))),
            **extra, "failed_scenes": failed}
    atomic_write_bytes(out / "summary.json", (json.dumps(body, indent=2) + "\n").encode())
    note = (f"\n{extra.get('subset', '')}; {summary.metric.upper()} ({summary.version}), {summary.n_scenes} "
            f"scenarios of {summary.duration_s:.1f} s mean, {summary.n_failed} failed (scored 0); agents "
            f"{simulation.agents.value}, re-planning every {0.1 * simulation.replan_every:.1f} s.\n")
    atomic_write_bytes(out / "table.md", (markdown_table([(label, summary)]) + note).encode())


def worst_records(records: Sequence[ScenarioRecord], count: int) -> list[ScenarioRecord]:
    """The `count` lowest-scoring scenarios (failures first), ties by index."""
    return sorted(records, key=lambda r: (not r.failed, r.metrics.score, r.index))[:count]


def save_worst_animations(out: Path, source: LogSource, config: ClosedLoopConfig,
                          records: Sequence[ScenarioRecord], count: int) -> list[Path]:
    """Simulate the worst scenarios again (the loop is deterministic) and write worst/NN-<scene>.gif."""
    from eval.closed_loop.render import save_rollout_animation
    from eval.closed_loop.simulation import simulate_log

    planner = config.load_planner()
    log = source.open()
    paths = []
    for rank, record in enumerate(worst_records(records, count)):
        scenario = log(record.index)
        result = simulate_log(scenario, planner, config.simulation)
        title = f"{Path(config.planner).stem}: {summary_line(record)}"
        paths.append(save_rollout_animation(scenario, result,
                                            out / "worst" / f"{rank:02d}-{record.scene_id}.gif",
                                            title=title))
    return paths


def summary_line(record: ScenarioRecord) -> str:
    """e.g. "score 0.00 (NC 0, DAC 1, ...)" or the failure."""
    if record.failed:
        return f"failed at step {record.failed_step}: {record.error}"
    m = record.metrics
    parts = ", ".join(f"{LABELS[n]} {getattr(m, n):.2g}"
                      for n in ClsMetrics.MULTIPLIERS + ClsMetrics.WEIGHTED)
    return f"score {m.score:.2f} ({parts})"
