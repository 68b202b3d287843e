"""pSTL (Meng & Fan, STL-conditioned diffusion policy) open-loop metrics: compliance, success, valid area and
the two entropies, as pure numpy functions."""

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

__all__ = [
    "PstlMetricInputError",
    "SampleSetMetrics",
    "compliance",
    "control_entropy",
    "mean_valid_area",
    "sample_set_metrics",
    "score_entropy",
    "success",
    "valid_area",
]
