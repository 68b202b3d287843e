"""nuScenes open-loop planning metrics (L2, collision rate at 1/2/3 s) under the ST-P3, VAD, UniAD and
SparseDrive definitions, by name: `evaluate(batch, PRESETS["uniad"])`."""

from eval.nuscenes.metrics import (
    PRESETS,
    BoxModel,
    InvalidFrames,
    MetricDefinition,
    MetricInputError,
    Obstacles,
    PerStep,
    PlanningBatch,
    PlanningMetrics,
    StepReduce,
    evaluate,
    per_step,
    planning_sample,
)
from eval.nuscenes.occupancy import RasterAxis, RasterGrid, occupancy_grid

__all__ = [
    "PRESETS",
    "BoxModel",
    "InvalidFrames",
    "MetricDefinition",
    "MetricInputError",
    "Obstacles",
    "PerStep",
    "PlanningBatch",
    "PlanningMetrics",
    "RasterAxis",
    "RasterGrid",
    "StepReduce",
    "evaluate",
    "occupancy_grid",
    "per_step",
    "planning_sample",
]
