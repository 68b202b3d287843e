"""A heuristic (mode, θ) for a logged window without `datagen drive` extras (imported nuScenes / OpenScene).

pSTL labels nuScenes windows by hand (mengyuest/nuscenes-lane-annotator; real_data_ros2.md §6); those
annotations are not available here, so the label is a heuristic on the logged future, 8 poses at 0.5 s:

    LEFT / RIGHT  the window ends nearer the left / right neighbour lane's centreline than its own
                  (`stl.calibrate.lane_change_side`)
    STOP          not a lane change, and the ego ends below STOP_SPEED having started above it
    KEEP          otherwise

Imported logs route along the lane the ego ends in, so a logged lane change is the ego converging onto its
route from a neighbour lane: that is KEEP here, with a lane band as wide as the change (the templates' lane
change is towards the route lane's neighbour, which such a route does not have). Only windows whose route
stays in the starting lane, as `datagen drive`'s, can be labelled LEFT or RIGHT.

θ is pSTL's per-window calibration (`infer_gt_stlp --flex`, pstl_stl_trajopt.md §1.3;
`stl.calibrate.flex_params`, as `datagen drive` records for its demos) of the logged future under the label's
spec: v_min = max(min v - 1, -0.3), v_max = max v + 1, the lane band's tightest half-width + 0.3 m, h_max +
0.1 rad, d_safe = min gap - 0.1 m (0 with no agent), clipped into THETA_RANGE.
"""

from __future__ import annotations

import numpy as np

from eval.pstl.scoring import PLAN_DT, PLAN_POSES, plan_states
from planners.pstl.condition import DrivingMode, STLCondition, mode_rules
from scenes.drive import DriveScene
from stl.calibrate import flex_params, lane_change_side
from stl.rules import rule_set
from stl.signals import signals_from_poses

STOP_SPEED = 0.5  # [m/s]


def heuristic_mode(side: int, speeds: np.ndarray) -> DrivingMode:
    """The label of a window: `side` +1 / -1 / 0 (lane change left / right / none), speeds (T,) [m/s]."""
    if side > 0:
        return DrivingMode.LEFT
    if side < 0:
        return DrivingMode.RIGHT
    if speeds[-1] < STOP_SPEED <= speeds[0]:
        return DrivingMode.STOP
    return DrivingMode.KEEP


def heuristic_condition(scene: DriveScene) -> STLCondition:
    """The heuristic (mode, θ) of `scene`'s logged future (module docstring)."""
    plan = scene.expert_plan(PLAN_POSES, PLAN_DT).poses[None]
    signals = signals_from_poses(scene, plan_states(scene, plan), PLAN_DT)
    speeds = np.asarray(signals.values)[0, :, signals.names.index("v")]
    mode = heuristic_mode(int(lane_change_side(signals)[0]), speeds)
    params = flex_params(rule_set(mode_rules(mode)), signals)
    return STLCondition.from_rule_params(mode, params, clip=True)
