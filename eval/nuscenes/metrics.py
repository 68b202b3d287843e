"""nuScenes open-loop planning metrics (L2 and collision rate at 1/2/3 s) under each published definition.

ST-P3, VAD, UniAD and SparseDrive report "L2" and "collision rate" on nuScenes with the same ego box
(W 1.85 x L 4.084 m, centre 0.5 m ahead of the trajectory point) and the same 6 steps at 0.5 s, but they
differ in how steps are reduced, how the ego box meets the obstacles, which obstacles count, and what
happens to samples whose GT future is incomplete. `MetricDefinition` names those choices and `PRESETS`
holds the four published ones; always report the preset with the numbers.

What is the same in all four, and so not an option here:
- GT-collision exclusion. ST-P3/VAD/UniAD add `box_coll` only where `not gt_box_coll` while `total` counts
  every sample (stp3/metrics.py:362-364, 389); SparseDrive adds `box_coll and not gt_box_coll` and also
  counts every sample (planning_eval.py:100). Both give the same numerator and denominator.
- "Cumulative mean" (SparseDrive planning_eval.py:161-162, UniAD's "stp3" strategy) equals the mean over
  steps 1..2k of the per-step rates, which is ST-P3's per-horizon mean and VAD's per-sample mean averaged
  over samples: each step divides by the same sample count. `StepReduce.AVG` covers all of them.
- Skipping incomplete samples (SparseDrive :143-144, VAD's `fut_valid_flag`/`num_valid`) and dropping them
  from the dataset (ST-P3 NuscenesData.py:124-148) both take them out of numerator and denominator:
  `InvalidFrames.DROP`.

Collision rates are fractions here; SparseDrive prints them x100 with a % sign and papers quote percent.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np
import shapely

from eval.nuscenes.occupancy import (
    RasterAxis,
    RasterGrid,
    box_corners,
    ego_boxes,
    footprint_centres,
    plan_yaw,
    points_in_quads,
)
from scenes.agents import AgentCategory
from scenes.drive import CURRENT_INDEX, PLAN_DT, SIM_DT, DriveScene
from scenes.errors import DiffplanError
from scenes.geometry import points_to_local, wrap_angle

NUM_STEPS = 6  # 3 s at 0.5 s
_CHUNK = 256  # samples per collision pass


class MetricInputError(DiffplanError, ValueError):
    """Planning-metric input of the wrong shape, dtype or value."""


class StepReduce(enum.Enum):
    """How the value at horizon k s comes from the per-step values."""

    AT = "at"  # the value at step 2k only (UniAD's default "uniad" strategy)
    AVG = "avg"  # the mean over steps 1..2k (ST-P3, VAD, SparseDrive's cumulative mean)


class BoxModel(enum.Enum):
    """How the ego box is placed at a trajectory point."""

    AXIS_ALIGNED_RASTER = "axis_aligned_raster"  # a fixed footprint of cells shifted to the point, never rotated
    ROTATED_POLYGON = "rotated_polygon"  # a box rotated to the plan's finite-difference heading


class Obstacles(enum.Enum):
    """What the ego box is tested against."""

    OCCUPANCY = "occupancy"  # a BEV occupancy raster of the GT boxes at each future step
    BOXES = "boxes"  # the GT boxes at each future step, polygon against polygon


class InvalidFrames(enum.Enum):
    """What a sample with missing GT future steps does."""

    DROP = "drop"  # left out of numerator and denominator (ST-P3 drop, VAD and SparseDrive skip)
    MASK = "mask"  # counted in the denominator; missing steps add 0 error and 0 collisions (UniAD)


@dataclass(frozen=True)
class MetricDefinition:
    """One definition of the nuScenes planning metrics.

    Attributes:
        name: the preset's name, printed with every table.
        step_reduce: how horizons reduce steps.
        box_model: how the ego box is placed.
        obstacles: what it is tested against (occupancy goes with the raster, boxes with the polygon).
        invalid_frames: what incomplete samples do.
        categories: agent categories that are obstacles.
        raster: the occupancy grid's layout; None for box obstacles.
    """

    name: str
    step_reduce: StepReduce
    box_model: BoxModel
    obstacles: Obstacles
    invalid_frames: InvalidFrames
    categories: frozenset[AgentCategory]
    raster: RasterGrid | None = field(default=None)

    def validate(self) -> MetricDefinition:
        """The definition itself; MetricInputError unless it is one of the published combinations."""
        pairs = {BoxModel.AXIS_ALIGNED_RASTER: Obstacles.OCCUPANCY, BoxModel.ROTATED_POLYGON: Obstacles.BOXES}
        if pairs[self.box_model] is not self.obstacles:
            raise MetricInputError(f"{self.name}: box model {self.box_model.value} is only published with "
                                   f"{pairs[self.box_model].value} obstacles, got {self.obstacles.value}")
        if (self.raster is None) != (self.obstacles is Obstacles.BOXES):
            raise MetricInputError(f"{self.name}: occupancy obstacles need a raster layout and boxes none")
        if not self.categories or not all(isinstance(c, AgentCategory) for c in self.categories):
            raise MetricInputError(f"{self.name}: categories must be a non-empty set of AgentCategory")
        return self


_MOVERS = frozenset({AgentCategory.VEHICLE, AgentCategory.BICYCLE, AgentCategory.PEDESTRIAN})

PRESETS: dict[str, MetricDefinition] = {
    # ST-P3: evaluate.py:71-73 builds PlanningMetric(n_future=2k), :133-137 feeds [:, :2k], :163-166 takes
    # value.mean(); metrics.py:292-331 axis-aligned footprint on trajectories with x negated; labels
    # (NuscenesData.py:303-348) rows forward, columns left, vehicle.* (bicycles included) or human.*.
    "stp3": MetricDefinition(
        "stp3", StepReduce.AVG, BoxModel.AXIS_ALIGNED_RASTER, Obstacles.OCCUPANCY, InvalidFrames.DROP,
        _MOVERS, RasterGrid(RasterAxis(-50.0), RasterAxis(-50.0))),
    # VAD: metric_stp3.py:86-163 rasterises GT boxes moved along their futures (rows forward-to-back,
    # columns left-to-right, centres at 0.5 m multiples), :166-240 footprint row = 200 - (x / 0.5 + offset);
    # VAD.py:622-635 per-sample mean over steps 1..2k; nuscenes_vad_dataset.py:1797-1813 over num_valid.
    "vad": MetricDefinition(
        "vad", StepReduce.AVG, BoxModel.AXIS_ALIGNED_RASTER, Obstacles.OCCUPANCY, InvalidFrames.DROP,
        _MOVERS, RasterGrid(RasterAxis(-49.5, True, True), RasterAxis(-49.5, True))),
    # UniAD: planning_metrics.py:43-82 footprint (x negated twice: :133-134 and :94), rows forward, columns
    # right (occflow_label.py:146-158); :119-141 masked L2 with total counting every sample; value[i] at
    # step 2k under the default "uniad" strategy (base_e2e.py:61, nuscenes_e2e_dataset.py:1037-1040).
    "uniad": MetricDefinition(
        "uniad", StepReduce.AT, BoxModel.AXIS_ALIGNED_RASTER, Obstacles.OCCUPANCY, InvalidFrames.MASK,
        _MOVERS, RasterGrid(RasterAxis(-50.0), RasterAxis(-49.5, True))),
    # SparseDrive (and DiffusionDrive's nusc branch): planning_eval.py:13-33 shapely box-box intersects with
    # every GT box of the future frame, :35-53 yaw, :143-144 skips incomplete GT, :161-162 cumulative mean.
    "sparsedrive": MetricDefinition(
        "sparsedrive", StepReduce.AVG, BoxModel.ROTATED_POLYGON, Obstacles.BOXES, InvalidFrames.DROP,
        frozenset(AgentCategory)),
}


@dataclass(frozen=True, eq=False)
class PlanningBatch:
    """N samples of the nuScenes planning metrics, struct of arrays, ego frame at now (x forward, y left).

    Attributes:
        plan_xy: (N, 6, 2) predicted points at 0.5 s .. 3 s [m].
        gt_xy: (N, 6, 2) ground-truth ego points [m]; values where `gt_valid` is False are ignored.
        gt_valid: (N, 6) bool, False for GT steps beyond the log.
        agent_boxes: (N, A, 6, 5) GT agent boxes (x, y, yaw, length, width) [m, rad] at the same steps.
        agent_valid: (N, A, 6) bool; invalid boxes (padding, agents out of the log) are ignored.
        agent_category: (N, A) int `AgentCategory`.
    """

    plan_xy: np.ndarray
    gt_xy: np.ndarray
    gt_valid: np.ndarray
    agent_boxes: np.ndarray
    agent_valid: np.ndarray
    agent_category: np.ndarray

    @property
    def num_samples(self) -> int:
        """Samples N."""
        return int(self.plan_xy.shape[0])

    def validate(self) -> PlanningBatch:
        """The batch itself; MetricInputError naming the field on a bad shape, dtype or value."""
        n = self.plan_xy.shape[0] if np.ndim(self.plan_xy) == 3 else None
        a = self.agent_boxes.shape[1] if np.ndim(self.agent_boxes) == 4 else None
        for name, kind, shape in (("plan_xy", "f", (n, NUM_STEPS, 2)), ("gt_xy", "f", (n, NUM_STEPS, 2)),
                                  ("gt_valid", "b", (n, NUM_STEPS)), ("agent_boxes", "f", (n, a, NUM_STEPS, 5)),
                                  ("agent_valid", "b", (n, a, NUM_STEPS)), ("agent_category", "i", (n, a))):
            value = getattr(self, name)
            if not isinstance(value, np.ndarray) or value.dtype.kind != kind or value.shape != shape:
                got = f"{value.dtype} {value.shape}" if isinstance(value, np.ndarray) else type(value).__name__
                raise MetricInputError(f"PlanningBatch.{name}: expected {kind}-kind array of shape {shape}, "
                                       f"got {got}")
        if not np.isfinite(self.plan_xy).all():
            raise MetricInputError("PlanningBatch.plan_xy: has non-finite values (NaN or inf)")
        if not np.isfinite(self.gt_xy[self.gt_valid]).all():
            raise MetricInputError("PlanningBatch.gt_xy: has non-finite values (NaN or inf) at valid steps")
        boxes = self.agent_boxes[self.agent_valid]
        if not np.isfinite(boxes).all():
            raise MetricInputError("PlanningBatch.agent_boxes: has non-finite values (NaN or inf) at valid boxes")
        if (boxes[:, 3:] <= 0).any():
            raise MetricInputError("PlanningBatch.agent_boxes: lengths and widths must be positive")
        known = [c.value for c in AgentCategory]
        if not np.isin(self.agent_category, known).all():
            raise MetricInputError(f"PlanningBatch.agent_category: values must be in {known}")
        return self

    @classmethod
    def concatenate(cls, batches: list[PlanningBatch]) -> PlanningBatch:
        """One batch of all samples of `batches`, agents padded with invalid boxes to the largest A."""
        if not batches:
            raise MetricInputError("PlanningBatch.concatenate: no batches")
        width = max(b.agent_boxes.shape[1] for b in batches)

        def pad(x: np.ndarray) -> np.ndarray:
            return np.pad(x, [(0, 0), (0, width - x.shape[1])] + [(0, 0)] * (x.ndim - 2))

        return cls(
            plan_xy=np.concatenate([b.plan_xy for b in batches]),
            gt_xy=np.concatenate([b.gt_xy for b in batches]),
            gt_valid=np.concatenate([b.gt_valid for b in batches]),
            agent_boxes=np.concatenate([pad(b.agent_boxes) for b in batches]),
            agent_valid=np.concatenate([pad(b.agent_valid) for b in batches]),
            agent_category=np.concatenate([pad(b.agent_category) for b in batches]),
        )


def planning_sample(scene: DriveScene, plan_xy: np.ndarray) -> PlanningBatch:
    """One sample (N = 1) from a scene and a plan, with the scene's privileged future as ground truth.

    Args:
        scene: the scene; its expert's poses and its agents at 0.5 s .. 3 s after now are the GT.
        plan_xy: (8, 2) or (6, 2) plan points [m] at 0.5 s steps, ego frame at now; the first 6 are used.

    Returns:
        PlanningBatch with N = 1 and A = the scene's agents; GT steps are all valid (the scene's future
        covers 3 s), agent boxes valid where the agent is.
    """
    plan_xy = np.asarray(plan_xy, dtype=np.float64)
    if plan_xy.ndim != 2 or plan_xy.shape[1] != 2 or plan_xy.shape[0] < NUM_STEPS:
        raise MetricInputError(f"planning_sample: plan_xy must be ({NUM_STEPS} or more, 2), got {plan_xy.shape}")
    origin = scene.current_pose
    rows = CURRENT_INDEX + round(PLAN_DT / SIM_DT) * np.arange(1, NUM_STEPS + 1)
    agents = scene.agents
    valid = agents.valid[:, rows]
    boxes = np.zeros((agents.num_agents, NUM_STEPS, 5))
    boxes[..., :2] = points_to_local(agents.xy[:, rows], origin)
    boxes[..., 2] = wrap_angle(agents.heading[:, rows] - origin[2])
    boxes[..., 3:] = agents.size[:, None, :]
    boxes[~valid] = 0.0
    return PlanningBatch(
        plan_xy=plan_xy[None, :NUM_STEPS].copy(),
        gt_xy=scene.expert_plan(num_poses=NUM_STEPS).poses[None, :, :2].copy(),
        gt_valid=np.ones((1, NUM_STEPS), bool),
        agent_boxes=boxes[None],
        agent_valid=valid[None].copy(),
        agent_category=agents.category[None].astype(np.int64),
    ).validate()


@dataclass(frozen=True, eq=False)
class PerStep:
    """Per-sample, per-step values of one definition.

    Attributes:
        l2: (N, 6) [m] distance between plan and GT (0 at missing GT steps).
        collision: (N, 6) bool, counted collisions: plan box hits, GT box does not, GT step present.
        gt_collision: (N, 6) bool, the GT ego box itself hits an obstacle.
        used: (N,) bool, the sample counts in the denominator.
    """

    l2: np.ndarray
    collision: np.ndarray
    gt_collision: np.ndarray
    used: np.ndarray


def _hits(xy: np.ndarray, batch: PlanningBatch, definition: MetricDefinition) -> np.ndarray:
    """(N, 6) bool: the ego box at trajectory points xy (N, 6, 2) [m] meets an obstacle."""
    counted = np.isin(batch.agent_category, [c.value for c in definition.categories])[..., None]
    out = np.zeros(xy.shape[:2], bool)
    for start in range(0, xy.shape[0], _CHUNK):  # bounded memory: (chunk, 6, 32, A) point-in-box tests
        rows = slice(start, start + _CHUNK)
        valid = batch.agent_valid[rows]
        obstacle = np.moveaxis(valid & counted[rows], 1, 2)  # (n, 6, A)
        corners = np.moveaxis(box_corners(np.where(valid[..., None], batch.agent_boxes[rows], 0.0)), 1, 2)
        if definition.box_model is BoxModel.ROTATED_POLYGON:
            ego = shapely.polygons(box_corners(ego_boxes(xy[rows], plan_yaw(xy[rows]))))  # (n, 6)
            agents = np.full(obstacle.shape, None, dtype=object)
            agents[obstacle] = shapely.polygons(corners[obstacle])
            out[rows] = (shapely.intersects(ego[..., None], agents) & obstacle).any(axis=-1)
        else:
            assert definition.raster is not None
            cx, cy = footprint_centres(xy[rows], definition.raster)  # (n, 6, K)
            inside = points_in_quads(cx, cy, corners)  # (n, 6, K, A)
            out[rows] = (inside & obstacle[:, :, None, :]).any(axis=(-1, -2))
    return out


def per_step(batch: PlanningBatch, definition: MetricDefinition) -> PerStep:
    """Per-sample, per-step L2 and collision flags under `definition` (validated, both)."""
    batch.validate()
    definition.validate()
    gt_xy = np.where(batch.gt_valid[..., None], batch.gt_xy, 0.0)
    l2 = np.where(batch.gt_valid, np.linalg.norm(batch.plan_xy - gt_xy, axis=-1), 0.0)
    gt_hit = _hits(gt_xy, batch, definition)
    hit = _hits(batch.plan_xy, batch, definition)
    complete = batch.gt_valid.all(axis=1)
    used = complete if definition.invalid_frames is InvalidFrames.DROP else np.ones_like(complete)
    return PerStep(l2=l2, collision=hit & ~gt_hit & batch.gt_valid, gt_collision=gt_hit, used=used)


@dataclass(frozen=True)
class PlanningMetrics:
    """The metrics of one definition over a batch.

    Attributes:
        definition: the preset's name.
        l2_1s, l2_2s, l2_3s: [m].
        collision_1s, collision_2s, collision_3s: fractions in [0, 1] (papers print percent).
        n_samples: samples given.
        n_used: samples in the denominator (complete ones under DROP, all under MASK).
    """

    definition: str
    l2_1s: float
    l2_2s: float
    l2_3s: float
    collision_1s: float
    collision_2s: float
    collision_3s: float
    n_samples: int
    n_used: int

    @property
    def l2_avg(self) -> float:
        """[m] mean of the 1/2/3 s values (SparseDrive's "avg", the usual "Avg." column)."""
        return (self.l2_1s + self.l2_2s + self.l2_3s) / 3.0

    @property
    def collision_avg(self) -> float:
        """Mean of the 1/2/3 s collision fractions."""
        return (self.collision_1s + self.collision_2s + self.collision_3s) / 3.0

    def to_json(self) -> dict[str, str | int | float]:
        """JSON-ready record; `n_scenes` is `n_used`, the samples the averages run over."""
        return {"preset": self.definition, "n_scenes": self.n_used,
                "l2_1s": self.l2_1s, "l2_2s": self.l2_2s, "l2_3s": self.l2_3s,
                "collision_1s": self.collision_1s, "collision_2s": self.collision_2s,
                "collision_3s": self.collision_3s}


def evaluate(batch: PlanningBatch, definition: MetricDefinition) -> PlanningMetrics:
    """L2 and collision rate at 1/2/3 s of `batch` under `definition`.

    Args:
        batch: the samples.
        definition: one of `PRESETS` or a validated variant.

    Returns:
        PlanningMetrics; MetricInputError when no sample counts (every sample incomplete under DROP).
    """
    steps = per_step(batch, definition)
    n_used = int(steps.used.sum())
    if n_used == 0:
        raise MetricInputError(f"{definition.name}: no sample has a complete GT future; nothing to average")
    l2_rate = steps.l2[steps.used].sum(axis=0) / n_used  # (6,)
    collision_rate = steps.collision[steps.used].sum(axis=0) / n_used

    def reduce(rate: np.ndarray, seconds: int) -> float:
        end = 2 * seconds
        return float(rate[end - 1] if definition.step_reduce is StepReduce.AT else rate[:end].mean())

    return PlanningMetrics(
        definition=definition.name,
        l2_1s=reduce(l2_rate, 1), l2_2s=reduce(l2_rate, 2), l2_3s=reduce(l2_rate, 3),
        collision_1s=reduce(collision_rate, 1), collision_2s=reduce(collision_rate, 2),
        collision_3s=reduce(collision_rate, 3),
        n_samples=batch.num_samples, n_used=n_used,
    )
