"""pSTL run folders and tables: summary.json, cases.csv and a Markdown table in pSTL's Table I columns."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from eval.pstl.open_loop import CaseResult, OpenLoopSummary
from planners.pstl.condition import THETA_FIELDS, DrivingMode
from scenes.store.layout import atomic_write_bytes


def summary_table(rows: Sequence[tuple[str, OpenLoopSummary]]) -> str:
    """Markdown: method, success, compliance, valid area [m^2], entropy (ent_wa) [bit], ent_s [bit], time per
    sample [s], windows, cases."""
    header = ("| method | Success | Compliance | Valid area [m^2] | Entropy (ent_wa) | ent_s | Time / sample [s] "
              "| windows | cases |")
    lines = [header, "|---|---|---|---|---|---|---|---|---|"]
    for label, s in rows:
        m = s.metrics
        lines.append(f"| {label} | {m.success:.3f} | {m.compliance:.3f} | {m.valid_area:.3f} | "
                     f"{m.control_entropy:.3f} | {m.score_entropy:.3f} | {s.time_per_sample_s:.4f} | "
                     f"{s.n_windows} | {s.n_cases} |")
    return "\n".join(lines)


def cases_csv(results: Sequence[CaseResult]) -> str:
    """One row per case: window, episode index, mode, θ, compliance, success, best ρ, seconds."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["window", "index", "mode", *THETA_FIELDS, "compliance", "success", "best_rho", "seconds"])
    for r in results:
        c = r.case.condition
        writer.writerow([r.case.window, r.case.index, c.mode.name.lower(), *(f"{v:g}" for v in c.theta),
                         f"{float(np.mean(r.rho > 0)):.6f}", int(bool((r.rho > 0).any())),
                         f"{float(np.max(r.rho)):.6f}", f"{r.seconds:.6f}"])
    return buffer.getvalue()


def write_open_loop_run(out: Path, label: str, results: Sequence[CaseResult], summary: OpenLoopSummary,
                        modes: Sequence[tuple[DrivingMode, OpenLoopSummary]],
                        extra: Mapping[str, object] | None = None) -> None:
    """`out`/summary.json (the --json object, `extra` (e.g. controllability), the label and each mode's
    figures), cases.csv and table.md, each written atomically."""
    out.mkdir(parents=True, exist_ok=True)
    body = {"label": label, **summary.as_json(), **(extra or {}),
            "per_mode": {mode.name.lower(): s.as_json() for mode, s in modes}}
    atomic_write_bytes(out / "summary.json", (json.dumps(body, indent=2, sort_keys=True) + "\n").encode())
    atomic_write_bytes(out / "cases.csv", cases_csv(results).encode())
    table = summary_table([(label, summary)] + [(f"  {m.name.lower()}", s) for m, s in modes])
    atomic_write_bytes(out / "table.md", (table + "\n").encode())
