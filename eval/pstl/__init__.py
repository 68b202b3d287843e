"""pSTL (Meng & Fan, STL-conditioned diffusion policy) evaluation.

    metrics  open-loop compliance, success, valid area and the two entropies (pure numpy)
    scoring  exact STL robustness of plans under a condition, on the privileged scene (the evaluator)
    guide    the objective of test-time STL guidance, from the observation only (smooth robustness on
             surrogate signals)
    closed_loop  Table II's closed-loop test on the nuPlan-style closed loop (exact compliance vs the world)
"""

from eval.pstl.closed_loop import (
    PstlClosedLoopConfig,
    PstlClosedLoopSummary,
    PstlScenarioRecord,
    observation_scorer,
    pstl_condition,
    run_pstl_closed_loop,
    with_stl_feedback,
)
from eval.pstl.guide import (
    GuideConfigError,
    SurrogateSignals,
    smooth_mode_robustness,
    stl_objective,
)
from eval.pstl.metrics import (
    PstlMetricInputError,
    SampleSetMetrics,
    compliance,
    control_entropy,
    mean_valid_area,
    sample_set_metrics,
    score_entropy,
    success,
    valid_area,
)
from eval.pstl.scoring import (
    PLAN_DT,
    ModeRobustness,
    RuleRobustness,
    ScoringInputError,
    mode_formula,
    mode_robustness,
    mode_rule_params,
    plan_states,
)

__all__ = [
    "PLAN_DT",
    "GuideConfigError",
    "ModeRobustness",
    "PstlClosedLoopConfig",
    "PstlClosedLoopSummary",
    "PstlMetricInputError",
    "PstlScenarioRecord",
    "RuleRobustness",
    "SampleSetMetrics",
    "ScoringInputError",
    "SurrogateSignals",
    "compliance",
    "control_entropy",
    "mean_valid_area",
    "mode_formula",
    "mode_robustness",
    "mode_rule_params",
    "observation_scorer",
    "plan_states",
    "pstl_condition",
    "run_pstl_closed_loop",
    "sample_set_metrics",
    "score_entropy",
    "smooth_mode_robustness",
    "stl_objective",
    "success",
    "valid_area",
    "with_stl_feedback",
]
