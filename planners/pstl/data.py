"""Training data of pSTL: demonstrations of `datagen drive` and the (mode, θ) each was solved under.

`datagen drive` writes, per demonstration, privileged extras (`datagen.demos.demo_extras`) that name the
target's mode and the rule parameters the trajopt expert met with exact robustness > 0:

    target.mode                       keep | left | right | stop   (older datasets: target.lane 0 / +1 / -1)
    stl.speed_band.v_min, .v_max      [m/s]
    stl.lane_keeping.d_max, .h_max    [m], [rad]   (KEEP, STOP)
    stl.lane_change_left.d_band, .h_max           (LEFT; right likewise)
    stl.safe_distance.d_safe          [m]

Datasets from this version on also hold `flex.RULE.PARAM`: pSTL's per-window calibration of each demo's
own 4 s plan under its mode's rules (its tight θ: max speed + 1 m/s, least gap - 0.1 m, ...). pSTL
conditions on such calibrated θ, and a tight θ is what makes the policy follow it: the θ a solve was merely
asked to meet is often slack (v_max 16-18 m/s at any speed). `condition_of_extras` reads the flex θ when
present (clipped into THETA_RANGE: a 23 m gap conditions as 10 m), else the solve's, into an STLCondition;
`PstlDemoDataset` pairs each demonstration's features with `PstlTarget(expert plan (8, 3), condition (9,))`.
A dataset without these extras (a log import, plain generated scenes) has no condition to learn from: it is
refused with a one-line error naming the field.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from planners.learned.base import ExpertPlanTarget
from planners.pstl.condition import (
    LANE_RULE,
    LANE_WIDTH_PARAM,
    ConditionError,
    DrivingMode,
    STLCondition,
    condition_tensor,
)
from planners.pstl.model import PstlTarget
from scenes.drive import DriveObservation
from scenes.store import DriveDataset
from scenes.store.errors import DatasetError

MODE_NAMES = {mode.name.lower(): mode for mode in DrivingMode}  # "keep" -> DrivingMode.KEEP, ...
LANE_MODES = {0: DrivingMode.KEEP, 1: DrivingMode.LEFT, -1: DrivingMode.RIGHT}  # target.lane -> mode


def mode_of_extras(extras: Mapping[str, object]) -> DrivingMode:
    """The demo's mode: `target.mode` by name, else from `target.lane`; ConditionError naming the field."""
    name = extras.get("target.mode")
    if name is not None:
        if name not in MODE_NAMES:
            raise ConditionError(f"target.mode = {name!r} is not a driving mode; expected "
                                 + ", ".join(MODE_NAMES))
        return MODE_NAMES[str(name)]
    lane = extras.get("target.lane")
    if lane is None:
        raise ConditionError("target.mode and target.lane are missing: not a `datagen drive` demonstration")
    if lane not in LANE_MODES:
        raise ConditionError(f"target.lane = {lane!r}; expected -1, 0 or 1")
    return LANE_MODES[int(lane)]  # checked above


def condition_of_extras(extras: Mapping[str, object], prefix: str | None = None) -> STLCondition:
    """The validated (mode, θ) of a demonstration (module docstring): θ from the `prefix` extras, "flex" (the
    tight θ of its plan) when the demonstration has them, else "stl" (the θ it was solved under).
    ConditionError naming the first missing or bad field."""
    mode = mode_of_extras(extras)
    lane = LANE_RULE[mode]
    if prefix is None:
        prefix = "flex" if "flex.speed_band.v_max" in extras else "stl"
    names = (f"{prefix}.speed_band.v_min", f"{prefix}.speed_band.v_max",
             f"{prefix}.{lane}.{LANE_WIDTH_PARAM[lane]}", f"{prefix}.{lane}.h_max",
             f"{prefix}.safe_distance.d_safe")
    values = []
    for name in names:
        value = extras.get(name)
        if value is None:
            raise ConditionError(f"{name} is missing: mode {mode.name} needs it")
        values.append(float(value))  # type: ignore[arg-type]  # extras are numbers or strings
    if prefix == "flex":  # a tight θ can lie outside the calibrated range (d_safe 23 m: no agent near)
        return STLCondition.within_range(mode, np.array(values))
    return STLCondition(mode, np.array(values)).validate()


class PstlDemoDataset(Dataset):
    """(features, PstlTarget) per demonstration of a `datagen drive` dataset folder (one split or all).

    The condition is read from the privileged extras; the target plan is the demonstration's future (the
    expert's solve) as 8 poses at 0.5 s in the ego frame.
    """

    def __init__(self, root: Path | str, feature_builder: Callable[[DriveObservation], Any],
                 split: str | None = None, cache_size: int = 4):
        self.root = Path(root)
        self.feature_builder = feature_builder
        self.plan = ExpertPlanTarget()
        self.data = DriveDataset.open(root, privileged=True, cache_size=cache_size)
        self.index = self.data.indices(split=split)
        if len(self.index):
            self.condition(0)  # a dataset without conditions fails here, before training starts

    def __len__(self) -> int:
        return len(self.index)

    def condition(self, i: int) -> STLCondition:
        """The condition of item `i`; DatasetError naming the dataset and the scene."""
        episode = int(self.index[i])
        try:
            return condition_of_extras(self.data.extras(episode))
        except ConditionError as error:
            raise DatasetError(f"{self.root}: scene {episode}: {error} (pSTL trains on `diffplan datagen "
                               "drive` demonstrations)") from None

    def __getitem__(self, i: int) -> Any:
        scene = self.data[int(self.index[i])]
        obs = scene.observation()
        condition = condition_tensor([self.condition(i)])[0]
        return self.feature_builder(obs), PstlTarget(self.plan(scene, obs), condition)
