"""trajopt: the driving expert (bicycle, IPOPT) and the unicycle goal reacher, on real solves."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import shapely

from scenes import CURRENT_INDEX, NUM_STEPS, PACIFICA, AgentCategory, AgentTracks, ScenarioType
from scenes.geometry import box_corners
from scenes.synthetic import generate_scene
from stl.rules import DEFAULT_PARAMS, RuleParams, SpeedBandParams
from stl.signals import controllable_gap
from tests.factories import constant_speed_ego, straight_scene
from trajopt import compiled
from trajopt import drive_data as dd
from trajopt.drive import (
    DriveExpert,
    DriveExpertConfig,
    linearisation_error,
    sample_targets,
)
from trajopt.expert import DriveTarget, ExpertStatus
from trajopt.models import BICYCLE

KEEP = DEFAULT_PARAMS.only(("speed_band", "lane_keeping", "safe_distance", "comfort"))
LEFT = DEFAULT_PARAMS.only(("speed_band", "lane_change_left", "safe_distance", "comfort"))


def _static_agents(xy: list[tuple[float, float]], size=(4.5, 2.0)) -> AgentTracks:
    n = len(xy)
    return AgentTracks(
        track_ids=np.arange(n, dtype=np.int64), category=np.full(n, AgentCategory.VEHICLE, np.int8),
        size=np.tile(size, (n, 1)).astype(float),
        xy=np.tile(np.asarray(xy, float)[:, None], (1, NUM_STEPS, 1)),
        heading=np.zeros((n, NUM_STEPS)), velocity=np.zeros((n, NUM_STEPS, 2)),
        valid=np.ones((n, NUM_STEPS), bool))


def _blocked_scene(speed: float = 10.0, agents: AgentTracks | None = None):
    """Straight two-lane road, ego in lane 1 at `speed`, a stopped car 35 m ahead in lane 1, lights green."""
    scene = straight_scene()
    lights = replace(scene.traffic_lights, is_red=np.zeros_like(scene.traffic_lights.is_red))
    return replace(scene, ego=constant_speed_ego(speed), agents=agents or _static_agents([(35.0, 0.0)]),
                   traffic_lights=lights)


@pytest.fixture(scope="module")
def expert() -> DriveExpert:
    return DriveExpert()


def _check_solution(scene, result):
    states, controls = result.states, result.controls
    assert states.shape == (41, 4) and controls.shape == (40, 2)
    replay = BICYCLE.rollout(states[0], controls, result.dt)
    assert np.abs(replay - states).max() < 1e-6
    assert (controls[:, 0] >= -6 - 1e-6).all() and (controls[:, 0] <= 3 + 1e-6).all()
    assert (np.abs(controls[:, 1]) <= 0.6 + 1e-6).all() and (states[:, 3] >= -1e-6).all()
    poses = result.states[:, :3]  # map-frame rear-axle poses every result.dt [s], state 0 = now
    centre = poses[:, :2] + PACIFICA.rear_axle_to_center * np.stack(
        [np.cos(poses[:, 2]), np.sin(poses[:, 2])], -1)
    ego = shapely.polygons(box_corners(centre, poses[:, 2], PACIFICA.length, PACIFICA.width))
    road = scene.map.drivable_area().buffer(1e-6)
    assert shapely.covers(road, ego).all()
    agents = scene.agents
    for k in range(1, len(poses)):
        step = min(CURRENT_INDEX + k, NUM_STEPS - 1)
        boxes = shapely.polygons(box_corners(agents.xy[:, step], agents.heading[:, step], agents.size[:, 0],
                                             agents.size[:, 1]))
        assert not shapely.intersects(ego[k], boxes[agents.valid[:, step]]).any()
    assert result.ok and all(r >= 0 for r in result.robustness.values()), result.robustness


def test_keep_lane_behind_stopped_car(expert):
    scene = _blocked_scene()
    result = expert.solve(scene, DriveTarget(10.0, 0, KEEP))
    _check_solution(scene, result)
    assert result.states[-1, 0] + PACIFICA.rear_axle_to_front < 35.0 - 2.25  # stopped behind it
    assert set(result.robustness) == set(KEEP.names) and result.params.safe_distance.d_safe == 0.5


def test_lane_change_passes_the_obstacle(expert):
    scene = _blocked_scene()
    result = expert.solve(scene, DriveTarget(10.0, 1, LEFT))
    _check_solution(scene, result)
    assert abs(result.states[-1, 1] - 3.5) < 0.5 and result.states[-1, 0] > 35.0


@pytest.mark.parametrize("solver", ["ipopt", "fatrop"])
def test_wall_across_the_road_is_infeasible(expert, solver):
    wall = _static_agents([(15.0, y) for y in (-1.0, 1.0, 3.0, 5.0)], size=(1.0, 2.2))
    scene = _blocked_scene(speed=15.0, agents=wall)
    params = KEEP.with_rule("speed_band", SpeedBandParams(v_min=5.0, v_max=20.0))
    solver_expert = expert if solver == "ipopt" else DriveExpert(DriveExpertConfig(solver=solver))
    result = solver_expert.solve(scene, DriveTarget(15.0, 0, params))
    assert bool(result.fallback_from) == (solver == "fatrop")  # fatrop's failure was re-solved by IPOPT
    assert not result.ok
    assert result.status in (ExpertStatus.INFEASIBLE, ExpertStatus.STL_VIOLATED)


def test_warm_start_reduces_iterations(expert):
    scene = generate_scene(1_100_000_001, "test", ScenarioType.SLOW_VEHICLE)
    target = sample_targets(scene, RuleParams(), np.random.default_rng(0), 1)[0]
    cold = expert.solve(scene, target)
    moved = scene.ego.pose.copy()
    moved[CURRENT_INDEX, 1] += 0.1  # neighbouring scene: the ego 0.1 m to the left
    near = replace(scene, ego=replace(scene.ego, pose=moved))
    again_cold = expert.solve(near, target)
    warm = expert.solve(near, target, warm_start=cold.warm_start)
    assert cold.ok and warm.ok and again_cold.ok
    assert warm.iterations < again_cold.iterations


def test_sample_targets_is_deterministic_and_uses_existing_lanes():
    scene = straight_scene()
    a = sample_targets(scene, RuleParams(), np.random.default_rng(3), 6)
    b = sample_targets(scene, RuleParams(), np.random.default_rng(3), 6)
    assert a == b and a[0].target_lane == 0
    assert {t.target_lane for t in a} <= {0, 1}


def test_synthetic_success_rate(expert):
    outcomes = []
    for scenario in (ScenarioType.STRAIGHT_ROAD, ScenarioType.CURVED_ROAD, ScenarioType.PARKED_VEHICLE,
                     ScenarioType.INTERSECTION_LEFT, ScenarioType.MERGE):
        for seed in (1_100_000_000, 1_100_000_002):
            scene = generate_scene(seed, "test", scenario)
            for target in sample_targets(scene, RuleParams(), np.random.default_rng(seed), 2):
                outcomes.append(expert.solve(scene, target).ok)
    rate = float(np.mean(outcomes))
    print(f"trajopt synthetic success rate: {rate:.2f} over {len(outcomes)} solves")
    assert rate >= 0.8


def test_obstacles_get_slots_only_at_the_steps_they_come_near():
    # ego rear axle at x = k [m] at step k, centre 1.461 m ahead; bounding radii 2.8314 (ego) + 2.4622
    # (4.5 x 2 m)
    # A at (20, 0): gap |k - 18.539| - 5.2936 < reach 4 + clearance 0.6 for k = 9..28
    # B at (20, 7): sqrt((k - 18.539)^2 + 49) - 5.2936 < 4.6 for k = 12..25, farther than A there
    scene = replace(straight_scene(), agents=_static_agents([(20.0, 0.0), (20.0, 7.0)]))
    path = np.column_stack([np.arange(41.0), np.zeros(41), np.zeros(41)])
    chosen = dd.select_obstacles(scene, [path], 0.1, slots=4, clearance=0.6, reach=4.0)
    k = np.arange(41)
    a_steps, b_steps = (k >= 9) & (k <= 28), (k >= 12) & (k <= 25)
    np.testing.assert_array_equal(chosen.ids[0], np.where(a_steps, 0, -1))
    np.testing.assert_array_equal(chosen.ids[1], np.where(b_steps, 1, -1))
    assert (chosen.ids[2:] == -1).all() and chosen.needed == 2 and chosen.agents.tolist() == [0, 1]
    np.testing.assert_allclose(chosen.boxes[1, b_steps], np.tile([20.0, 7.0, 1.0, 0.0], (b_steps.sum(), 1)))
    assert (chosen.boxes[1, ~b_steps, 0] >= dd.FAR_AWAY).all()
    np.testing.assert_allclose(chosen.half[0, a_steps], np.tile([2.25, 1.0], (20, 1)) + dd.EGO_RADIUS + 0.6)
    assert chosen.covers(chosen.first(1)) and not chosen.first(1).covers(chosen)


def test_compiled_nlp_gives_the_same_solution(tmp_path, monkeypatch):
    monkeypatch.setenv(compiled.CACHE_ENV, str(tmp_path))
    scene = _blocked_scene()
    target = DriveTarget(10.0, 0, KEEP)
    shape = replace(DriveExpertConfig().shape, horizon=12)
    plain = DriveExpert(DriveExpertConfig(shape=shape)).solve(scene, target)
    fast = DriveExpert(DriveExpertConfig(shape=shape, compiled=True)).solve(scene, target)
    assert plain.ok and fast.ok and fast.iterations == plain.iterations
    np.testing.assert_array_equal(fast.states, plain.states)
    libraries = sorted(p.name for p in (tmp_path / "trajopt").glob("*.so"))
    assert libraries and all(name.startswith("trajopt_ipopt_bicycle_12_2_") for name in libraries)
    monkeypatch.setattr(compiled, "COMPILER", "no-such-cc")
    with pytest.raises(compiled.CompileError, match="no-such-cc is not on PATH"):
        compiled.compiled_library(fast.multipliers.problem.solver)


@pytest.mark.parametrize("target", [DriveTarget(10.0, 0, KEEP), DriveTarget(10.0, 1, LEFT)])
def test_fatrop_finds_ipopts_solution(expert, target):
    scene = _blocked_scene()
    fast = DriveExpert(DriveExpertConfig(solver="fatrop")).solve(scene, target)
    _check_solution(scene, fast)
    assert fast.multipliers.problem.plugin == "fatrop"
    reference = expert.solve(scene, target)
    assert np.abs(fast.states - reference.states).max() < 0.05


def _moving_agents(x0: float, y: float, speed: float) -> AgentTracks:
    """One 4.5 x 2 m car driving east at `speed` [m/s], at x = x0 at CURRENT_INDEX."""
    t = (np.arange(NUM_STEPS) - CURRENT_INDEX) * 0.1
    agents = _static_agents([(x0, y)])
    xy = agents.xy.copy()
    xy[0, :, 0] = x0 + speed * t
    velocity = np.zeros_like(agents.velocity)
    velocity[0, :, 0] = speed
    return replace(agents, xy=xy, velocity=velocity)


def test_route_guess_follows_a_moving_leader_instead_of_stopping():
    # leader 25 m ahead at 8 m/s, ego at 10 m/s wants 12: the guess slows towards the leader's speed and keeps
    # its braking gap; it never brakes towards a stop, as a guess that took the leader for parked would
    scene = _blocked_scene(10.0, _moving_agents(25.0, 0.0, 8.0))
    n, dt = 50, 0.1
    data = dd.scene_data(scene)
    x0 = dd.initial_state(scene)
    obstacles = dd.select_obstacles(scene, [dd.expert_guess(scene, n, dt)], dt, 8, 0.6, 10.0)
    lights = np.full(n + 1, np.inf)
    guess = dd.route_guess(scene, data, BICYCLE, x0, n, dt, 12.0, np.zeros(n + 1), obstacles, lights)
    leader_rear = 25.0 + 8.0 * dt * np.arange(n + 1) - 2.25
    half_inflated = 2.25 + dd.EGO_RADIUS + 0.6
    assert guess[:, 3].min() >= 8.0 - 1e-9 and guess[-1, 3] < 9.5 and guess[:, 3].max() > 11.0
    # Gipps: the guess rear axle stays 3.5 m behind the leader's inflated box rear, at every step
    assert (guess[1:, 0] <= leader_rear[1:] + 2.25 - half_inflated - 3.5 + 1e-9).all()


def test_overlaps_counts_only_the_masked_slots_and_steps():
    scene = replace(straight_scene(), agents=_static_agents([(20.0, 0.0), (20.0, 7.0)]))
    path = np.column_stack([np.arange(41.0), np.zeros(41), np.zeros(41)])
    chosen = dd.select_obstacles(scene, [path], 0.1, slots=4, clearance=0.6, reach=4.0)
    # the path runs through A (slot 0) at steps 12..23 and never enters B's box (7 m to the left)
    from trajopt.drive import _overlaps

    assert _overlaps(path, chosen)
    where = np.zeros(chosen.ids.shape, bool)
    where[1] = True
    assert not _overlaps(path, chosen, where)
    where[0, 30:] = True  # A's slot after the path has passed it
    assert not _overlaps(path, chosen, where)
    where[0, 20] = True
    assert _overlaps(path, chosen, where)


def test_linearisation_error_is_zero_on_a_straight_road_and_grows_with_curvature(expert):
    target = DriveTarget(10.0, 0, KEEP)
    scene = _blocked_scene()
    result = expert.solve(scene, target)
    assert result.ok and result.passes == 1
    curved = generate_scene(1_100_000_000, "test", ScenarioType.CURVED_ROAD)
    for sc, straight in ((scene, True), (curved, False)):
        res = expert.solve(sc, DriveTarget(float(sc.ego.speed[CURRENT_INDEX]), 0, KEEP))
        assert res.ok
        pr, states = res.multipliers.problem, res.states
        data, x0 = expert._data(sc), dd.initial_state(sc)
        params = res.params
        stop = np.full(len(states), np.inf)
        obstacles = dd.select_obstacles(sc, [states], 0.1, pr.shape.obstacles, 0.6)
        s = data.ref.project(states[:, :2])
        t = DriveTarget(float(sc.ego.speed[CURRENT_INDEX]), 0, KEEP)
        w = pr.pack_w(states, res.controls)
        setup = expert._setup(pr, sc, data, t, params, x0, s, obstacles, stop)
        values, _, _, lbg, ubg = setup
        g = pr.constraints(w, pr.pack(values))
        same = linearisation_error(pr, w, g, lbg, ubg, setup)
        moved = expert._setup(pr, sc, data, t, params, x0, s + 2.0, obstacles, stop)
        shifted = linearisation_error(pr, w, g, lbg, ubg, moved)
        assert same == 0.0
        if straight:
            assert shifted < 1e-9  # the rows do not depend on where along a straight reference they are taken
        else:
            # the heading rows alone move by the reference's heading change over 2 m
            _, h0, _ = data.ref.at(s[1:])
            _, h1, _ = data.ref.at(s[1:] + 2.0)
            assert shifted >= np.abs(h1 - h0).max() - 1e-9 > 0.01


def test_along_route_speeds_are_per_agent_and_zero_where_a_difference_needs_an_invalid_step():
    agents = _moving_agents(25.0, 0.0, 8.0)
    valid = agents.valid.copy()
    valid[0, CURRENT_INDEX + 10] = False
    scene = _blocked_scene(10.0, replace(agents, valid=valid))
    speeds = dd._along_route_speeds(scene, dd.scene_data(scene).ref, 20, 0.1)  # (1, 21)
    used = np.ones(21, bool)
    used[9:12] = False
    np.testing.assert_allclose(speeds[0, used], 8.0, atol=1e-9)
    assert (speeds[0, ~used] == 0.0).all()


def _least_gaps(scene, poses: np.ndarray) -> np.ndarray:
    """(T,) shapely distance [m] from the ego box at each map-frame rear-axle pose (T, 3) to the nearest agent
    box at the same step (from CURRENT_INDEX on, 0.1 s apart): the oracle of stl's "s" signal."""
    offset = PACIFICA.rear_axle_to_center
    out = []
    for k, (x, y, h) in enumerate(poses):
        ego = shapely.Polygon(box_corners(np.array([x + offset * np.cos(h), y + offset * np.sin(h)]), h,
                                          PACIFICA.length, PACIFICA.width))
        a = scene.agents
        step = CURRENT_INDEX + k
        boxes = [shapely.Polygon(box_corners(a.xy[i, step], a.heading[i, step], *a.size[i]))
                 for i in range(a.num_agents) if a.valid[i, step]]
        out.append(min(ego.distance(b) for b in boxes))
    return np.array(out)


def test_gap_targets_ask_a_d_safe_between_the_logged_least_gap_and_the_gap_now():
    scene = straight_scene()  # a leader 30 m ahead at 5 m/s, a car parked in the next lane 20 m ahead
    a = scene.agents
    scene = replace(scene, agents=AgentTracks(a.track_ids[:1], a.category[:1], a.size[:1], a.xy[:1],
                                              a.heading[:1], a.velocity[:1], a.valid[:1]))  # the leader only
    logged = _least_gaps(scene, scene.ego.pose[CURRENT_INDEX:CURRENT_INDEX + 41])
    low, high = controllable_gap(scene, 4.0)
    assert low == pytest.approx(max(logged.min(), 0.5), abs=1e-6)  # the logged ego closes in on the leader
    assert high == pytest.approx(min(logged[0] - 0.3, 8.0), abs=1e-6)
    assert (round(low, 3), high) == (3.701, 8.0)  # by hand: 30 - 4.5 / 2 - 4.049 - (10 - 5) * 4 s
    plain = sample_targets(scene, RuleParams(), np.random.default_rng(5), 6)
    assert sample_targets(scene, RuleParams(), np.random.default_rng(5), 6, gap_fraction=0.0) == plain
    gapped = sample_targets(scene, RuleParams(), np.random.default_rng(5), 6, gap_fraction=1.0, horizon_s=4.0)
    assert gapped[0] == plain[0]
    for target in gapped[1:]:
        assert target.target_lane == 0 and target.reference_speed == 10.0 and not target.stop
        assert low <= target.rule_params.safe_distance.d_safe <= high
    # the expert keeps the gap it is asked, more than the logged least gap, by slowing down
    target = max(gapped[1:], key=lambda t: t.rule_params.safe_distance.d_safe)
    config = DriveExpertConfig()
    result = DriveExpert(replace(config, shape=replace(config.shape, horizon=40))).solve(scene, target)
    assert result.ok, result.status
    kept = _least_gaps(scene, result.states[:, :3]).min()
    assert kept >= target.rule_params.safe_distance.d_safe - 1e-3 > logged.min() + 1.0
    assert result.states[-1, 3] < 10.0 - 0.5  # it slowed down
    far = replace(scene, agents=_static_agents([(300.0, 0.0)]))
    assert controllable_gap(far, 4.0) is None  # nothing near: gap targets are ordinary lane keeps
