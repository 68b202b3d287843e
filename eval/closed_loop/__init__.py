"""Closed-loop evaluation: nuPlan's CLS-NR / CLS-R over simulated roll-outs, and plan temporal consistency."""

from eval.closed_loop.cls import (
    CLS_METRIC_VERSION,
    ClosedLoopRollout,
    ClsMetrics,
    ClsSummary,
    TemporalConsistency,
    TimedPlan,
    aggregate,
    scenario_score,
    score_rollout,
    temporal_consistency,
)

__all__ = [
    "CLS_METRIC_VERSION",
    "ClosedLoopRollout",
    "ClsMetrics",
    "ClsSummary",
    "TemporalConsistency",
    "TimedPlan",
    "aggregate",
    "scenario_score",
    "score_rollout",
    "temporal_consistency",
]
