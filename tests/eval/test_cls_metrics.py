"""nuPlan closed-loop metrics on hand-built straight roads, thresholds at their edges."""

import numpy as np
import pytest
import shapely

from eval.closed_loop import (
    ClosedLoopRollout,
    ClsMetrics,
    TimedPlan,
    aggregate,
    score_rollout,
    temporal_consistency,
)
from eval.closed_loop import cls_metrics as m
from planners.pdm.states import NUM_STATE_FIELDS, StateIndex
from scenes.agents import AgentCategory
from scenes.ego import PACIFICA
from scenes.maps import DrivableKind, MapLayers

D = PACIFICA.rear_axle_to_center
HALF_LENGTH, HALF_WIDTH = PACIFICA.length / 2, PACIFICA.width / 2


def road(reverse=False, limit=10.0):
    """One 4 m lane, y in [-2, 2], x in [-50, 250]; its centreline runs +x (or -x when reverse)."""
    xs = (250.0, -50.0) if reverse else (-50.0, 250.0)
    center = shapely.LineString([(xs[0], 0.0), (xs[1], 0.0)])
    left = shapely.LineString([(xs[0], 2.0), (xs[1], 2.0)])
    right = shapely.LineString([(xs[0], -2.0), (xs[1], -2.0)])
    poly = shapely.box(-50.0, -2.0, 250.0, 2.0)

    def arr(*items):
        out = np.empty(len(items), dtype=object)
        out[:] = list(items)
        return out

    return MapLayers(
        lane_ids=np.array([1]), lane_centerlines=arr(center), lane_left_boundaries=arr(left),
        lane_right_boundaries=arr(right), lane_polygons=arr(poly), lane_successors=((),),
        lane_speed_limits=np.array([limit]), lane_roadblock_ids=np.array([1]), lane_is_connector=np.array([False]),
        drivable_polygons=arr(poly), drivable_kinds=np.array([DrivableKind.ROADBLOCK], dtype=np.int8),
        drivable_ids=np.array([1]), stop_lines=arr(), stop_line_lane_ids=np.zeros(0, np.int64), crosswalks=arr(),
    ).validate()


def rollout(speed=10.0, steps=151, y=0.0, x0=0.0, agents=(), expert_speed=None, accel=None, yaw_rate=0.0,
            reverse=False, limit=10.0):
    """Ego (rear axle) along +x at a constant speed; agents: (category, x, y, vx, length) at constant velocity."""
    t = np.arange(steps) * 0.1
    pose = np.stack([x0 + speed * t, np.full(steps, y), yaw_rate * t], axis=-1)
    expert_speed = speed if expert_speed is None else expert_speed
    expert = np.stack([x0 + expert_speed * t, np.zeros(steps), np.zeros(steps)], axis=-1)
    n = len(agents)
    xy = np.zeros((n, steps, 2))
    vel = np.zeros((n, steps, 2))
    for i, (_, ax, ay, avx, _) in enumerate(agents):
        xy[i, :, 0], xy[i, :, 1], vel[i, :, 0] = ax + avx * t, ay, avx
    return ClosedLoopRollout(
        ego_pose=pose,
        ego_velocity=np.tile([speed, 0.0], (steps, 1)),
        ego_acceleration=np.zeros((steps, 2)) if accel is None else accel,
        ego_yaw_rate=np.full(steps, yaw_rate),
        agent_xy=xy, agent_heading=np.zeros((n, steps)), agent_velocity=vel,
        agent_valid=np.ones((n, steps), bool),
        agent_size=np.array([[a[4], 2.0] for a in agents]).reshape(n, 2),
        agent_category=np.array([a[0] for a in agents], dtype=np.int8),
        map=road(reverse, limit), route_lane_ids=np.array([1]), expert_pose=expert,
    )


def test_clean_drive_scores_one():
    result = score_rollout(rollout(speed=8.0), reactive=False)
    for name in ClsMetrics.MULTIPLIERS + ClsMetrics.WEIGHTED:
        assert getattr(result, name) == 1.0, name
    assert result.score == 1.0


def test_speed_limit_at_limit_and_one_percent_above():
    assert score_rollout(rollout(speed=10.0), reactive=False).speed_limit_compliance == 1.0
    over = score_rollout(rollout(speed=10.1), reactive=False)
    expected = 1.0 - (0.1 * 151 * 0.1) / (2.23 * 15.0)
    assert over.speed_limit_compliance == pytest.approx(expected, abs=1e-9)
    assert over.score == pytest.approx((5 + 5 + 4 * expected + 2) / 16)
    # NaN limit: no violation
    assert score_rollout(rollout(speed=30.0, limit=np.nan), reactive=False).speed_limit_compliance == 1.0


def test_stopped_ego_is_not_making_progress():
    result = score_rollout(rollout(speed=0.0, expert_speed=10.0), reactive=False)
    assert result.ego_is_making_progress == 0.0
    assert result.ego_progress_along_expert_route == pytest.approx(2.0 / 150.0)
    assert result.score == 0.0


@pytest.mark.parametrize("ego_metres,passes", [(19.8, False), (20.2, True)])
def test_progress_ratio_edge(ego_metres, passes):
    result = score_rollout(rollout(speed=ego_metres / 15.0, expert_speed=100.0 / 15.0), reactive=False)
    assert result.ego_progress_along_expert_route == pytest.approx(ego_metres / 100.0)
    assert result.ego_is_making_progress == float(passes)


def test_progress_ratio_rules():
    assert m.progress_ratio(-2.1, 50.0) == 0.0
    assert m.progress_ratio(-1.0, 50.0) == pytest.approx(2.0 / 50.0)
    assert m.progress_ratio(1.0, 1.5) == 1.0  # expert below 2 m
    assert m.progress_ratio(60.0, 50.0) == 1.0


@pytest.mark.parametrize("outside,compliant", [(0.1, 1.0), (0.29, 1.0), (0.31, 0.0)])
def test_drivable_area_tolerance(outside, compliant):
    # left corners at y = 2 + outside, the lane / drivable edge is at y = 2
    result = score_rollout(rollout(speed=8.0, y=2.0 + outside - HALF_WIDTH), reactive=False)
    assert result.drivable_area_compliance == compliant


@pytest.mark.parametrize("metres,score", [(1.9, 1.0), (2.1, 0.5), (5.9, 0.5), (6.1, 0.0)])
def test_driving_direction_against_lane(metres, score):
    # nuPlan's 1 s window sums samples t-10..t, i.e. 11 steps of 0.1 s of movement
    result = score_rollout(rollout(speed=metres / 1.1, reverse=True), reactive=False)
    assert result.driving_direction_compliance == score
    assert result.worst_wrong_way == pytest.approx(metres)


def test_rear_end_by_other_agent_is_not_at_fault():
    # ego at 5 m/s, a vehicle 20 m behind at 10 m/s catches up and hits the ego's rear
    agent = (AgentCategory.VEHICLE, -20.0 + D, 0.0, 10.0, 4.0)
    result = score_rollout(rollout(speed=5.0, agents=[agent]), reactive=False)
    assert result.no_ego_at_fault_collisions == 1.0
    assert result.time_to_collision_within_bound == 1.0  # behind: never in TTC


def test_hitting_a_stopped_car_is_at_fault():
    agent = (AgentCategory.VEHICLE, 60.0, 0.0, 0.0, 4.0)
    result = score_rollout(rollout(speed=8.0, agents=[agent]), reactive=False)
    assert result.no_ego_at_fault_collisions == 0.0
    assert result.at_fault_collisions == 1
    assert result.time_to_collision_within_bound == 0.0
    assert result.min_ttc == 0.0
    assert result.score == 0.0


@pytest.mark.parametrize("count,score", [(1, 0.5), (2, 0.0)])
def test_static_objects_count(count, score):
    cones = [(AgentCategory.STATIC_OBJECT, 60.0 + 30.0 * i, 0.0, 0.0, 0.5) for i in range(count)]
    assert score_rollout(rollout(speed=8.0, agents=cones), reactive=False).no_ego_at_fault_collisions == score


def test_stopped_ego_hit_from_front_is_not_at_fault():
    agent = (AgentCategory.VEHICLE, 40.0, 0.0, -10.0, 4.0)
    result = score_rollout(rollout(speed=0.0, expert_speed=0.0, agents=[agent]), reactive=False)
    assert result.no_ego_at_fault_collisions == 1.0


def test_pedestrian_hit_head_on_is_at_fault():
    # closing at 0.2 m per step, so the front bumper is inside the 0.5 m box at first contact
    agent = (AgentCategory.PEDESTRIAN, 20.0, 0.0, 1.0, 0.5)
    result = score_rollout(rollout(speed=3.0, agents=[agent]), reactive=False)
    assert result.no_ego_at_fault_collisions == 0.0


@pytest.mark.parametrize("gap,ttc,within", [(0.85, 0.9, 0.0), (0.95, 1.0, 1.0)])
def test_ttc_edge(gap, ttc, within):
    # one step; ego at 1 m/s, a stopped car `gap` metres ahead of the front bumper
    agent = (AgentCategory.VEHICLE, HALF_LENGTH + D + gap + 2.0, 0.0, 0.0, 4.0)
    result = score_rollout(rollout(speed=1.0, steps=1, agents=[agent]), reactive=False)
    assert result.min_ttc == pytest.approx(ttc)
    assert result.time_to_collision_within_bound == within


def test_ttc_ignores_slow_ego():
    agent = (AgentCategory.VEHICLE, HALF_LENGTH + D + 0.3 + 2.0, 0.0, 0.0, 4.0)
    result = score_rollout(rollout(speed=0.004, steps=1, agents=[agent]), reactive=False)
    assert result.min_ttc == np.inf


def _comfort(ax=0.0, ay=0.0, yaw_rate=0.0, jerk=0.0, steps=151):
    t = np.arange(steps) * 0.1
    accel = np.stack([ax + jerk * t, np.full(steps, ay)], axis=-1)
    return score_rollout(rollout(speed=8.0, steps=steps, accel=accel, yaw_rate=yaw_rate),
                         reactive=False).ego_is_comfortable


@pytest.mark.parametrize("kwargs,expected", [
    ({"ax": 2.39}, 1.0), ({"ax": 2.41}, 0.0),
    ({"ax": -4.04}, 1.0), ({"ax": -4.06}, 0.0),
    ({"ay": 4.88}, 1.0), ({"ay": 4.90}, 0.0),
    ({"yaw_rate": 0.94}, 1.0), ({"yaw_rate": 0.96}, 0.0),
    ({"ax": -3.0, "jerk": 1.0, "steps": 30}, 1.0), ({"ax": -3.0, "jerk": 6.0, "steps": 30}, 0.0),
])
def test_comfort_bounds(kwargs, expected):
    assert _comfort(**kwargs) == expected


@pytest.mark.parametrize("name,value,ok", [
    ("lon_jerk", 4.12, 1.0), ("lon_jerk", -4.14, 0.0), ("jerk", 8.36, 1.0), ("jerk", 8.38, 0.0),
    ("lon_accel", 2.40, 0.0), ("lon_accel", -4.05, 0.0), ("lat_accel", -4.89, 0.0),
])
def test_comfort_strict_bounds(name, value, ok):
    signals = {key: np.zeros(5) for key in ("lon_accel", "lat_accel", "lon_jerk", "jerk", "yaw_rate", "yaw_accel")}
    signals[name] = np.full(5, value)
    assert m.is_comfortable(signals) == ok


def test_comfort_yaw_acceleration_bound():
    t = np.arange(31) * 0.1
    states = np.zeros((31, NUM_STATE_FIELDS))
    for accel, ok in ((1.92, 1.0), (1.94, 0.0)):
        states[:, StateIndex.HEADING] = 0.5 * accel * t**2
        signals = m.comfort_signals(states, D, 0.1)
        assert signals["yaw_accel"] == pytest.approx(np.full(31, accel))
        signals["yaw_rate"] = np.zeros(31)  # isolate the yaw acceleration bound
        assert m.is_comfortable(signals) == ok


def _metrics(score, reactive=False, **values):
    base = dict.fromkeys(ClsMetrics.MULTIPLIERS + ClsMetrics.WEIGHTED, 1.0)
    base.update(values)
    return ClsMetrics(**base, score=score, reactive=reactive)


def test_aggregate_three_scenarios():
    results = [
        _metrics(1.0),
        _metrics(0.0, no_ego_at_fault_collisions=0.0),
        _metrics((5 * 0.5 + 5 + 4 * 0.8 + 2) / 16, ego_progress_along_expert_route=0.5, speed_limit_compliance=0.8),
    ]
    summary = aggregate(results)
    assert summary.metric == "cls-nr"
    assert summary.n_scenes == 3
    assert summary.cls == pytest.approx(100 * (1.0 + 0.0 + 12.7 / 16) / 3)  # 59.791...
    assert summary.sub_metrics["no_ego_at_fault_collisions"] == pytest.approx(2 / 3)
    assert summary.sub_metrics["speed_limit_compliance"] == pytest.approx(2.8 / 3)
    assert aggregate([_metrics(0.5, reactive=True)]).metric == "cls-r"
    with pytest.raises(ValueError):
        aggregate([_metrics(1.0), _metrics(1.0, reactive=True)])


def _plan(time, accel, steps=41):
    states = np.zeros((steps, NUM_STATE_FIELDS))
    tt = np.arange(steps) * 0.1
    states[:, StateIndex.X] = 5.0 * (time + tt) + 0.5 * accel * tt**2
    states[:, StateIndex.VELOCITY_X] = 5.0 + accel * tt
    states[:, StateIndex.ACCELERATION_X] = accel
    return TimedPlan(time, states)


def test_temporal_consistency():
    same = temporal_consistency([_plan(0.0, 0.0), _plan(0.5, 0.0), _plan(1.0, 0.0)])
    assert same.ec == 1.0 and same.pairs == ((0, 1), (1, 2))
    assert same.max_l2 == pytest.approx(0.0, abs=1e-9)
    changed = temporal_consistency([_plan(0.0, 0.0), _plan(0.5, 0.69)])
    assert changed.ec == 1.0
    changed = temporal_consistency([_plan(0.0, 0.0), _plan(0.5, 0.71)])
    assert changed.ec == 0.0 and changed.ec_per_pair == (0.0,)
    assert temporal_consistency([_plan(0.0, 0.0), _plan(0.3, 0.0)]).pairs == ()
