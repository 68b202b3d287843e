"""pSTL: an STL-conditioned diffusion policy (Meng & Fan, RA-L 2024) on diffplan's vector scene encoder.

    condition  DrivingMode, θ = (v_min, v_max, d_lat, h_max, d_safe) and their (B, 9) tensor
    schedule   pSTL's 100-step DDPM schedule (cosine β scaled by 0.2), ancestral and DDIM steps
    model      PstlConfig, PstlModel (ε-prediction MLP; ancestral or DDIM sampling, optionally guided)
    guidance   GuidanceSettings, Guide: Adam on the posterior mean against an STL objective
    vae        PstlVaeConfig, PstlVaeModel (the conditional VAE baseline on the same encoder)

Importing this package imports torch; it registers no planner yet.
"""

from planners.pstl.condition import (
    CONDITION_DIM,
    DEFAULT_THETA,
    THETA_FIELDS,
    THETA_RANGE,
    THETA_UNITS,
    ConditionError,
    DrivingMode,
    STLCondition,
    condition_tensor,
)
from planners.pstl.guidance import GuidanceSettings, Guide, Objective
from planners.pstl.model import PstlConfig, PstlModel, PstlTarget, headings_from_xy
from planners.pstl.schedule import Schedule, pstl_schedule
from planners.pstl.vae import PstlVaeConfig, PstlVaeModel

__all__ = [
    "CONDITION_DIM",
    "DEFAULT_THETA",
    "THETA_FIELDS",
    "THETA_RANGE",
    "THETA_UNITS",
    "ConditionError",
    "DrivingMode",
    "GuidanceSettings",
    "Guide",
    "Objective",
    "PstlConfig",
    "PstlModel",
    "PstlTarget",
    "PstlVaeConfig",
    "PstlVaeModel",
    "STLCondition",
    "Schedule",
    "condition_tensor",
    "headings_from_xy",
    "pstl_schedule",
]
