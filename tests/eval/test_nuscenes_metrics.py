"""nuScenes planning metrics: hand-checkable cases, the four presets against transcriptions of their code."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from eval.nuscenes import (
    PRESETS,
    BoxModel,
    InvalidFrames,
    MetricInputError,
    Obstacles,
    PlanningBatch,
    StepReduce,
    evaluate,
    occupancy_grid,
    per_step,
    planning_sample,
)
from scenes.agents import AgentCategory
from tests.eval import nuscenes_reference as ref
from tests.factories import straight_scene

T = np.arange(1, 7, dtype=float)  # steps 1..6 (0.5 s .. 3 s)
PED = AgentCategory.PEDESTRIAN


def batch(plan, gt, boxes=None, gt_valid=None, agent_valid=None, category=None) -> PlanningBatch:
    """Batch from (N, 6, 2) plans and GT; boxes (N, A, 6, 5), all valid pedestrians unless given."""
    plan, gt = np.asarray(plan, float), np.asarray(gt, float)
    n = plan.shape[0]
    boxes = np.zeros((n, 0, 6, 5)) if boxes is None else np.asarray(boxes, float)
    a = boxes.shape[1]
    return PlanningBatch(
        plan_xy=plan,
        gt_xy=gt,
        gt_valid=np.ones((n, 6), bool) if gt_valid is None else gt_valid,
        agent_boxes=boxes,
        agent_valid=np.ones((n, a, 6), bool) if agent_valid is None else agent_valid,
        agent_category=np.full((n, a), int(PED)) if category is None else category,
    )


def straight(speed=10.0, lateral=0.0):
    return np.stack([speed * 0.5 * T, np.full(6, lateral)], axis=-1)


def values(metrics):
    return [metrics.l2_1s, metrics.l2_2s, metrics.l2_3s, metrics.collision_1s, metrics.collision_2s,
            metrics.collision_3s]


# ------------------------------------------------------------------------------------------ hand-checked


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_constant_lateral_offset_is_l2_one_for_every_preset(name):
    result = evaluate(batch([straight(lateral=1.0)], [straight()]), PRESETS[name])
    assert values(result) == pytest.approx([1.0, 1.0, 1.0, 0.0, 0.0, 0.0], abs=1e-12)
    assert (result.n_samples, result.n_used, result.definition) == (1, 1, name)


def test_growing_offset_separates_at_from_avg():
    plan = straight() + np.stack([np.zeros(6), 0.5 * T], axis=-1)  # per-step L2 0.5, 1.0, ..., 3.0
    b = batch([plan], [straight()])
    at = evaluate(b, PRESETS["uniad"])
    assert [at.l2_1s, at.l2_2s, at.l2_3s] == pytest.approx([1.0, 2.0, 3.0], abs=1e-12)
    for name in ("stp3", "vad", "sparsedrive"):  # (0.5+1)/2, (0.5+..+2)/4, (0.5+..+3)/6
        avg = evaluate(b, PRESETS[name])
        assert [avg.l2_1s, avg.l2_2s, avg.l2_3s] == pytest.approx([0.75, 1.25, 1.75], abs=1e-12)


def diagonal_case(obstacle_xy):
    """Plan along 45 deg: (t, t) at step t; GT mirrored, (t, -t). One 0.3 m pedestrian, present at step 3 only."""
    plan = np.stack([T, T], axis=-1)
    gt = np.stack([T, -T], axis=-1)
    boxes = np.zeros((1, 1, 6, 5))
    boxes[0, 0, :] = [*obstacle_xy, 0.0, 0.3, 0.3]
    agent_valid = np.zeros((1, 1, 6), bool)
    agent_valid[0, 0, 2] = True
    return batch([plan], [gt], boxes, agent_valid=agent_valid)


def test_corner_obstacle_hit_by_axis_aligned_raster_only():
    # Step 3, ego point (3, 3). ST-P3's footprint: rows floor(2*3) + 97..104, columns 6 + 98..101, on its grid
    # of centres -50 + 0.5 k: x 1.5..5.0, y 2.0..3.5. The obstacle (5.0, 2.0) sits on a cell centre -> hit.
    # UniAD and VAD shift the footprint a quarter cell left (columns counted from the right): y 2.5..4.0 -> miss.
    # The rotated box (centre (3, 3) + 0.5 (cos 45, sin 45)) has the point at along 0.21 m, across -2.12 m,
    # beyond its half width 0.925 m (and 0.21 m of obstacle) -> miss.
    b = diagonal_case((5.0, 2.0))
    expected = {"stp3": [False, False, True, False, False, False], "uniad": [False] * 6, "vad": [False] * 6,
                "sparsedrive": [False] * 6}
    for name, flags in expected.items():
        steps = per_step(b, PRESETS[name])
        assert steps.collision[0].tolist() == flags, name
        assert not steps.gt_collision.any()
    stp3 = evaluate(b, PRESETS["stp3"])
    assert [stp3.collision_1s, stp3.collision_2s, stp3.collision_3s] == pytest.approx([0.0, 1 / 4, 1 / 6])


def test_obstacle_ahead_of_the_diagonal_hit_by_rotated_polygon_only():
    # (4.5, 5.0) against the rotated box centred (3.354, 3.354): along (1.146 + 1.646) / sqrt2 = 1.97 < 2.042,
    # across (1.646 - 1.146) / sqrt2 = 0.35 < 0.925 -> hit. Every axis-aligned footprint stops at y <= 4.0.
    b = diagonal_case((4.5, 5.0))
    for name in ("stp3", "uniad", "vad"):
        assert not per_step(b, PRESETS[name]).collision.any(), name
    assert per_step(b, PRESETS["sparsedrive"]).collision[0].tolist() == [False, False, True, False, False, False]
    result = evaluate(b, PRESETS["sparsedrive"])
    assert [result.collision_1s, result.collision_2s, result.collision_3s] == pytest.approx([0.0, 1 / 4, 1 / 6])


def test_rotated_box_faces_forward_when_the_plan_barely_moves():
    # |p6 - p1| = 0.25 m < 0.5 m: SparseDrive's yaw is pi/2 in LiDAR, i.e. forward in ours, although the plan
    # creeps sideways. The forward box ends at x = 0.5 + 2.042 = 2.542 m; a sideways one would end at 0.925 m.
    plan = np.stack([np.zeros(6), 0.05 * T], axis=-1)
    boxes = np.zeros((1, 1, 6, 5))
    boxes[0, 0, :] = [2.8, 0.0, 0.0, 0.2, 0.2]  # rear edge at 2.7 m: clear
    steps = per_step(batch([plan], [plan + [0.0, -30.0]], boxes), PRESETS["sparsedrive"])
    assert not steps.collision.any()
    boxes[0, 0, :, 0] = 2.6  # rear edge at 2.5 m: inside the forward-facing box
    steps = per_step(batch([plan], [plan + [0.0, -30.0]], boxes), PRESETS["sparsedrive"])
    assert steps.collision.all()


def test_incomplete_sample_is_dropped_or_masked():
    # Sample 1: complete, 1 m off. Sample 2: GT steps 5 and 6 missing, 2 m off, and its plan meets a 1 m box at
    # steps 2 and 6 (GT 2 m away from it: no GT collision).
    plans = [straight(lateral=1.0), straight(lateral=2.0)]
    gts = [straight(), straight()]
    gt_valid = np.ones((2, 6), bool)
    gt_valid[1, 4:] = False
    boxes = np.zeros((2, 1, 6, 5))
    boxes[:, 0, :] = [100.0, 100.0, 0.0, 1.0, 1.0]
    boxes[1, 0, :, :2] = plans[1] + [0.5, 0.0]
    agent_valid = np.zeros((2, 1, 6), bool)
    agent_valid[1, 0, [1, 5]] = True
    b = batch(plans, gts, boxes, gt_valid=gt_valid, agent_valid=agent_valid)
    for name in ("stp3", "vad", "sparsedrive"):  # dropped / skipped: only sample 1 counts
        result = evaluate(b, PRESETS[name])
        assert values(result) == pytest.approx([1.0, 1.0, 1.0, 0.0, 0.0, 0.0], abs=1e-12), name
        assert (result.n_samples, result.n_used) == (2, 1)
    uniad = evaluate(b, PRESETS["uniad"])  # masked: both count; steps 5-6 of sample 2 add 0 error, 0 collision
    assert values(uniad) == pytest.approx([(1 + 2) / 2, (1 + 2) / 2, (1 + 0) / 2, 1 / 2, 0.0, 0.0], abs=1e-12)
    assert uniad.n_used == 2
    # UniAD's "stp3" strategy: per-step L2 rates 1.5 (steps 1-4) and 0.5 (steps 5-6); collisions 1/2 at step 2
    masked_avg = evaluate(b, dataclasses.replace(PRESETS["uniad"], step_reduce=StepReduce.AVG))
    assert masked_avg.l2_3s == pytest.approx((1.5 * 4 + 0.5 * 2) / 6, abs=1e-12)
    assert masked_avg.collision_3s == pytest.approx(1 / 2 / 6, abs=1e-12)


def test_gt_collision_is_excluded_from_the_numerator_only():
    # Sample A: GT and plan drive through a box at every step (GT collides: nothing counted). Sample B: only
    # the plan does. The numerator drops A's steps, the denominator keeps A: 1/2, not 1/1. SparseDrive's
    # `box_coll and not gt_box_coll` is the same count as ST-P3's `box_coll[not gt_box_coll]`.
    plans = [straight(), straight(lateral=10.0)]
    gts = [straight(), straight()]
    boxes = np.zeros((2, 1, 6, 5))
    boxes[:, 0, :, 2:] = [0.0, 1.0, 1.0]
    boxes[0, 0, :, :2] = gts[0] + [0.5, 0.0]
    boxes[1, 0, :, :2] = plans[1] + [0.5, 0.0]
    b = batch(plans, gts, boxes)
    for name, definition in PRESETS.items():
        steps = per_step(b, definition)
        assert steps.gt_collision[0].all() and not steps.gt_collision[1].any(), name
        assert steps.collision.tolist() == [[False] * 6, [True] * 6], name
        result = evaluate(b, definition)
        assert [result.collision_1s, result.collision_2s, result.collision_3s] == pytest.approx([0.5] * 3)


def test_categories_per_preset():
    # A static object (barrier, cone) counts only for SparseDrive, which tests every GT box.
    b = batch([straight()], [straight(lateral=-20.0)], np.tile([[[[10.5, 0.0, 0.0, 1.0, 1.0]]]], (1, 1, 6, 1)),
              category=np.array([[int(AgentCategory.STATIC_OBJECT)]]))
    assert evaluate(b, PRESETS["sparsedrive"]).collision_3s == pytest.approx(1 / 6)
    for name in ("stp3", "vad", "uniad"):
        assert evaluate(b, PRESETS[name]).collision_3s == 0.0


def test_to_json_keys():
    record = evaluate(batch([straight(lateral=1.0)], [straight()]), PRESETS["vad"]).to_json()
    assert list(record) == ["preset", "n_scenes", "l2_1s", "l2_2s", "l2_3s", "collision_1s", "collision_2s",
                            "collision_3s"]
    assert record["preset"] == "vad" and record["n_scenes"] == 1


def test_planning_sample_from_a_scene():
    scene = straight_scene()
    expert = scene.expert_plan().poses[:, :2]
    one = planning_sample(scene, expert)  # 8 poses: the first 6 are used
    assert one.plan_xy.shape == (1, 6, 2) and one.gt_valid.all()
    np.testing.assert_allclose(one.gt_xy[0], expert[:6])
    # agent 7: 30 m ahead at 5 m/s; agent 8: parked at (20, 3.5); both in the ego frame at now
    np.testing.assert_allclose(one.agent_boxes[0, 0, :, 0], 30.0 + 2.5 * T)
    np.testing.assert_allclose(one.agent_boxes[0, 1, :, :2], np.tile([20.0, 3.5], (6, 1)))
    np.testing.assert_allclose(one.agent_boxes[0, 0, 0, 3:], [4.5, 1.9])
    off = planning_sample(scene, expert[:6] + [0.0, 1.0])
    both = PlanningBatch.concatenate([one, off])
    for name, definition in PRESETS.items():
        result = evaluate(both, definition)
        assert result.l2_3s == pytest.approx(0.5) and result.collision_3s == 0.0, name


# --------------------------------------------------------------------------------- against transcriptions


def random_batch(seed: int, n: int = 50, a: int = 8) -> PlanningBatch:
    """Plans near curving GT paths, agents scattered along them (some near the grid edge), some samples with
    a truncated GT future and NaN where nothing is valid."""
    rng = np.random.default_rng(seed)
    speed = rng.uniform(0.0, 24.0, n)
    speed[:3] = [0.0, 0.3, 0.6]  # SparseDrive's "barely moves" yaw rule
    yaw_rate = rng.uniform(-0.4, 0.4, n)
    theta = yaw_rate[:, None] * 0.5 * T
    gt = np.cumsum(np.stack([np.cos(theta), np.sin(theta)], -1) * (speed[:, None, None] * 0.5), axis=1)
    plan = gt + np.cumsum(rng.normal(0.0, 0.6, (n, 6, 2)), axis=1)
    anchor = gt[np.arange(n)[:, None], rng.integers(0, 6, (n, a))] + rng.normal(0.0, 3.0, (n, a, 2))
    anchor[:4, :2] = rng.uniform(47.0, 53.0, (4, 2, 2)) * rng.choice([-1.0, 1.0], (4, 2, 2))  # grid edges
    velocity = rng.normal(0.0, 3.0, (n, a, 1, 2))
    boxes = np.zeros((n, a, 6, 5))
    boxes[..., :2] = anchor[:, :, None] + velocity * 0.5 * T[:, None]
    boxes[..., 2] = rng.uniform(-np.pi, np.pi, (n, a, 1)) + rng.normal(0.0, 0.1, (n, a, 6))
    boxes[..., 3] = rng.uniform(0.4, 8.0, (n, a, 1))
    boxes[..., 4] = rng.uniform(0.4, 2.8, (n, a, 1))
    agent_valid = rng.random((n, a, 6)) < 0.85
    boxes[~agent_valid] = np.nan
    gt_valid = np.ones((n, 6), bool)
    for i in rng.choice(n, n // 5, replace=False):
        gt_valid[i, rng.integers(1, 6):] = False
    gt[~gt_valid] = np.nan
    return PlanningBatch(plan, gt, gt_valid, boxes, agent_valid, rng.integers(0, 4, (n, a)))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_matches_transcription_of_its_repository(name):
    b = random_batch(seed=sorted(PRESETS).index(name))
    ours = evaluate(b, PRESETS[name])
    theirs = ref.TRANSCRIPTIONS[name](b.plan_xy, b.gt_xy, b.gt_valid, b.agent_boxes, b.agent_valid,
                                      b.agent_category)
    assert ours.n_used == theirs["n_used"]
    expected = [theirs[k] for k in ("l2_1s", "l2_2s", "l2_3s", "collision_1s", "collision_2s", "collision_3s")]
    np.testing.assert_allclose(values(ours), expected, rtol=0, atol=1e-12)
    steps = per_step(b, PRESETS[name])  # the batch does collide, with GT collisions too, or this says little
    assert steps.collision.sum() >= 10 and (steps.gt_collision & steps.used[:, None]).sum() >= 5


@pytest.mark.parametrize("name", ["stp3", "uniad", "vad"])
def test_occupancy_grid_is_the_label_raster_of_the_repository(name):
    b = random_batch(seed=7, n=6)
    boxes, valid = b.agent_boxes[0], b.agent_valid[0]
    category = np.zeros(boxes.shape[0], int)
    labels = {"stp3": ref.stp3_labels, "vad": ref.vad_labels}.get(name)
    theirs = (labels(boxes, valid, category) if labels is not None
              else ref.uniad_labels(boxes, valid, category, np.ones(6, bool))).astype(bool)
    flip = {"stp3": (slice(None), slice(None)), "uniad": (slice(None), slice(None, None, -1)),
            "vad": (slice(None, None, -1), slice(None, None, -1))}[name]
    for t in range(6):
        ours = occupancy_grid(boxes[:, t], valid[:, t], PRESETS[name].raster)
        np.testing.assert_array_equal(ours, theirs[t][flip])
    assert theirs.any()


# -------------------------------------------------------------------------------------------- bad input


def good():
    return batch([straight(lateral=1.0)], [straight()], np.tile([[[[10.5, 0.0, 0.0, 1.0, 1.0]]]], (1, 1, 6, 1)))


@pytest.mark.parametrize("change, field", [
    ({"plan_xy": np.zeros((1, 5, 2))}, "plan_xy"),
    ({"plan_xy": np.full((1, 6, 2), np.nan)}, "plan_xy"),
    ({"gt_xy": np.zeros((2, 6, 2))}, "gt_xy"),
    ({"gt_valid": np.ones((1, 6), int)}, "gt_valid"),
    ({"agent_boxes": np.zeros((1, 1, 6, 4))}, "agent_boxes"),
    ({"agent_boxes": np.full((1, 1, 6, 5), np.nan)}, "agent_boxes"),
    ({"agent_boxes": np.zeros((1, 1, 6, 5))}, "agent_boxes"),  # zero size
    ({"agent_valid": np.ones((1, 2, 6), bool)}, "agent_valid"),
    ({"agent_category": np.array([[9]])}, "agent_category"),
    ({"agent_category": np.array([[0.0]])}, "agent_category"),
])
def test_bad_batch_is_a_one_line_error(change, field):
    with pytest.raises(MetricInputError, match=f"PlanningBatch.{field}") as error:
        evaluate(dataclasses.replace(good(), **change), PRESETS["stp3"])
    assert "\n" not in str(error.value) and isinstance(error.value, ValueError)


def test_nan_where_invalid_is_ignored():
    b = good()
    gt = b.gt_xy.copy()
    gt_valid = np.ones((1, 6), bool)
    gt[0, 5], gt_valid[0, 5] = np.nan, False
    result = evaluate(dataclasses.replace(b, gt_xy=gt, gt_valid=gt_valid), PRESETS["uniad"])
    assert result.l2_1s == pytest.approx(1.0) and result.l2_3s == 0.0


def test_bad_definition_and_empty_denominator():
    with pytest.raises(MetricInputError, match="only published with"):
        dataclasses.replace(PRESETS["stp3"], box_model=BoxModel.ROTATED_POLYGON).validate()
    with pytest.raises(MetricInputError, match="raster layout"):
        dataclasses.replace(PRESETS["sparsedrive"], obstacles=Obstacles.OCCUPANCY,
                            box_model=BoxModel.AXIS_ALIGNED_RASTER).validate()
    b = dataclasses.replace(good(), gt_valid=np.zeros((1, 6), bool))
    with pytest.raises(MetricInputError, match="no sample has a complete GT future"):
        evaluate(b, PRESETS["vad"])
    assert dataclasses.replace(PRESETS["vad"], invalid_frames=InvalidFrames.MASK).validate()
    with pytest.raises(MetricInputError, match=r"\(6 or more, 2\)"):
        planning_sample(straight_scene(), np.zeros((5, 2)))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_chunked_collision_passes_agree(name, monkeypatch):
    from eval.nuscenes import metrics

    b = random_batch(seed=11, n=20)
    whole = per_step(b, PRESETS[name])
    monkeypatch.setattr(metrics, "_CHUNK", 7)
    chunked = per_step(b, PRESETS[name])
    np.testing.assert_array_equal(whole.collision, chunked.collision)
    np.testing.assert_array_equal(whole.gt_collision, chunked.gt_collision)
