"""pSTL test-time guidance: hand-computed surrogate signals, differentiability, and guidance that raises the
evaluator's exact robustness on a hand-built road (the acceptance test), signed and deterministic."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import shapely
import torch

from eval.pstl import (
    GuideConfigError,
    SurrogateSignals,
    mode_formula,
    mode_robustness,
    plan_states,
    smooth_mode_robustness,
    stl_objective,
)
from eval.pstl.guide import box_gap
from planners.learned.vector import denormalise_xy, normalise_xy
from planners.pstl.actions import OMEGA_MAX, controls_to_plan
from planners.pstl.condition import DrivingMode, STLCondition
from planners.pstl.guidance import GuidanceSettings, Guide, guided_mean
from planners.pstl.model import headings_from_xy
from scenes.ego import PACIFICA
from scenes.geometry import box_corners
from scenes.synthetic import generate_scene, scene_seed
from stl.robustness import Mode, robustness
from stl.signals import ABSENT, FAR, _sat_distance, signals_from_poses
from tests.factories import straight_scene

TIMES = 0.5 * np.arange(1, 9)  # [s]
STEPS = np.arange(1, 9)
KEEP = STLCondition(DrivingMode.KEEP, np.array([0.0, 10.0, 0.5, 0.2, 0.5]))
LEFT = STLCondition(DrivingMode.LEFT, np.array([0.0, 10.0, 0.5, 0.3, 0.5]))


def open_road():
    """`straight_scene` (ego at the origin heading east in lane 1, y = 0; lane 2 at y = 3.5 to its left) with
    only the pedestrian 300 m away (outside the observation)."""
    scene = straight_scene()
    return dataclasses.replace(scene, agents=scene.agents.select(np.array([2])))


def column(signals, name: str) -> np.ndarray:
    return signals.values[..., signals.names.index(name)].detach().numpy()


def xy_of(x: np.ndarray, y: np.ndarray) -> torch.Tensor:
    return torch.tensor(np.stack([x, y], -1)[None])


def exact_rho(scene, condition: STLCondition, xy: torch.Tensor) -> float:
    """The evaluator's exact robustness of plans xy with the model's headings."""
    plan = torch.cat([xy, headings_from_xy(xy)[..., None]], -1).numpy()
    return float(mode_robustness(scene, condition, plan).rho[0])


def step(observation, condition: STLCondition, xy: torch.Tensor, settings: GuidanceSettings) -> torch.Tensor:
    """xy [m] after one guided step: Adam on the normalised waypoints (a waypoint model's sample space)."""
    guide = Guide(stl_objective(observation, condition), settings)
    return denormalise_xy(guided_mean(normalise_xy(xy), denormalise_xy, guide))


def guided(scene, condition: STLCondition, xy: torch.Tensor, settings: GuidanceSettings, times: int
           ) -> list[float]:
    """Exact robustness before and after each of `times` guided steps."""
    out = [exact_rho(scene, condition, xy)]
    for _ in range(times):
        xy = step(scene.observation(), condition, xy, settings)
        out.append(exact_rho(scene, condition, xy))
    return out


# ------------------------------------------------------------------------------------------ surrogate signals


def test_surrogate_speed_offsets_and_headings_equal_hand_computed_values():
    surrogate = SurrogateSignals.from_observation(open_road().observation())
    assert surrogate.right is None and surrogate.left is not None and len(surrogate.agent_xy) == 0
    # x = 4 t + t^2 / 2 (vx = 4 + t exactly), y = 0.5 t (vy = 0.5): v = hypot(4 + t, 0.5) at t = 0 .. 4 s
    signals = surrogate.signals(xy_of(4.0 * TIMES + 0.5 * TIMES ** 2, 0.5 * TIMES))
    t = np.r_[0.0, TIMES]
    np.testing.assert_allclose(column(signals, "v")[0], np.hypot(4.0 + t, 0.5), atol=1e-12)
    np.testing.assert_allclose(column(signals, "d_c")[0], 0.5 * t, atol=1e-12)  # lane 1: y = 0, left +
    np.testing.assert_allclose(column(signals, "d_l")[0], 0.5 * t - 3.5, atol=1e-12)  # lane 2: y = 3.5
    np.testing.assert_array_equal(column(signals, "d_r")[0], ABSENT)
    np.testing.assert_array_equal(column(signals, "h_r")[0], 0.0)
    x = np.r_[0.0, 4.0 * TIMES + 0.5 * TIMES ** 2]
    heading = np.r_[0.0, np.arctan2(0.25, np.diff(x))]  # of each step; the ego now heads along x
    np.testing.assert_allclose(column(signals, "h_c")[0], heading, atol=1e-12)
    np.testing.assert_allclose(column(signals, "h_l")[0], heading, atol=1e-12)
    np.testing.assert_array_equal(column(signals, "s")[0], FAR)


def test_surrogate_offset_sign_and_heading_on_a_bent_lane_and_box_distance():
    # the lane runs east to (10, 0), then north-east; an agent the ego's size 10 m ahead of it, parked
    surrogate = SurrogateSignals(
        centre=np.array([[-10.0, 0.0], [10.0, 0.0], [20.0, 10.0]]), left=None, right=None,
        agent_xy=np.tile([PACIFICA.rear_axle_to_center + 10.0, 0.0], (1, 9, 1)), agent_heading=np.zeros(1),
        agent_size=np.array([[PACIFICA.length, PACIFICA.width]]))
    x = np.array([2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 15.0])
    y = np.array([0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0])
    signals = surrogate.signals(xy_of(x, y))
    d_c, h_c = column(signals, "d_c")[0], column(signals, "h_c")[0]
    # (15, 0) lies 5 / sqrt(2) m right of the north-east segment, nearer than the east one's end (5 m)
    assert d_c[8] == pytest.approx(-5.0 / math.sqrt(2.0), abs=1e-12)
    assert d_c[2] == pytest.approx(1.0, abs=1e-12)
    # step 7 -> 8 heads at atan2(-1, 1) = -pi/4; the segment at pi/4: error -pi/2
    assert h_c[8] == pytest.approx(-math.pi / 2.0, abs=1e-12)
    assert h_c[1] == pytest.approx(math.atan2(0.5, 2.0), abs=1e-12)
    # state 0: the ego's front bumper to the agent's rear one, box centres 10 m apart
    assert column(signals, "s")[0, 0] == pytest.approx(10.0 - PACIFICA.length, abs=1e-12)


@pytest.mark.parametrize("index", [0, 3, 5])
def test_surrogate_matches_the_evaluator_where_the_observation_allows(index):
    # speed and route offset equal stl.signals on the expert plan; so does the agent gap at state 0 (the same
    # agents' boxes, where no future is involved)
    scene = generate_scene(scene_seed("val", 0, index), "val")
    plan = scene.expert_plan().poses[None]
    exact = signals_from_poses(scene, plan_states(scene, plan), 0.5)
    surrogate = SurrogateSignals.from_observation(scene.observation()).signals(torch.tensor(plan[..., :2]))
    for name in ("v", "d_c", "d_l", "d_r"):
        np.testing.assert_allclose(column(surrogate, name), exact.values[..., exact.names.index(name)],
                                   atol=1e-6)
    s_exact = exact.values[0, 0, exact.names.index("s")]
    assert column(surrogate, "s")[0, 0] == pytest.approx(s_exact, abs=1e-9)


def test_box_gap_equals_shapely_apart_and_the_evaluators_depth_on_overlap():
    rng = np.random.default_rng(0)
    centre = rng.uniform(-6.0, 6.0, (400, 2, 2))
    heading = rng.uniform(-np.pi, np.pi, (400, 2))
    size = rng.uniform([2.0, 1.0], [6.0, 2.5], (400, 2, 2))
    corners = box_corners(centre, heading, size[..., 0], size[..., 1])  # (400, 2, 4, 2)
    gap = box_gap(torch.tensor(corners[:, 0]), torch.tensor(corners[:, 1])).numpy()
    np.testing.assert_allclose(gap, _sat_distance(corners[:, 0], corners[:, 1]), atol=1e-12)
    polygons = [(shapely.Polygon(c[0]), shapely.Polygon(c[1])) for c in corners]
    apart = np.array([not a.intersects(b) for a, b in polygons])
    assert 50 < apart.sum() < 350  # both cases are tested
    np.testing.assert_allclose(gap[apart], [a.distance(b) for (a, b), far in zip(polygons, apart) if far],
                               atol=1e-12)
    assert (gap[~apart] <= 0.0).all()


def test_smooth_robustness_is_differentiable_and_below_the_exact_one():
    scene = straight_scene()  # with the lead car 30 m ahead and the parked car in lane 2
    surrogate = SurrogateSignals.from_observation(scene.observation())
    xy = torch.stack([xy_of(8.0 * TIMES, 0.1 * STEPS)[0], xy_of(0 * TIMES, 0 * TIMES)[0],  # the second stands
                      xy_of(3.0 * TIMES, np.minimum(STEPS, 3.5))[0]]).requires_grad_(True)
    rho = smooth_mode_robustness(surrogate, KEEP, xy)
    (grad,) = torch.autograd.grad(rho.sum(), xy)
    assert torch.isfinite(grad).all() and (grad.abs().sum(dim=(1, 2)) > 0).all()
    exact = robustness(mode_formula(KEEP), surrogate.signals(xy.detach()), mode=Mode.EXACT)
    assert (rho.detach() <= exact).all() and (exact - rho.detach()).max() < 0.05  # τ = 100: close


# ------------------------------------------------------------------------------- guidance (acceptance test)


def test_guidance_raises_exact_robustness_of_a_too_fast_plan():
    # 12 m/s under v_max = 10: speed_band = -2. pSTL's single lr 0.01 step per call is a sign step of
    # 0.28 m per coordinate, which oscillates on the finite-difference speeds; 10 smaller steps do not
    rho = guided(open_road(), KEEP, xy_of(12.0 * TIMES, 0 * TIMES), GuidanceSettings(iterations=10, lr=0.003), 30)
    assert rho[0] == pytest.approx(-2.0, abs=1e-9)
    # not monotone step by step (the soft-min moves between states), but steadily up, then satisfied
    assert rho[10] > -1.5 and rho[20] > -0.5 and rho[-1] > 0.0
    assert np.diff(rho).min() > -0.15


def test_guidance_raises_exact_robustness_of_a_plan_off_the_lane():
    # 0.15 m further left each step: d_c(8) = 1.2 m > d_lat = 0.5, lane_keeping = -0.7
    rho = guided(open_road(), KEEP, xy_of(8.0 * TIMES, 0.15 * STEPS), GuidanceSettings(), 10)
    assert rho[0] == pytest.approx(-0.7, abs=1e-9)
    assert rho[1] > rho[0] and rho[-1] > 0.0


def test_guidance_finishes_a_late_lane_change():
    # LEFT: y stops at 2.5 m, 1 m short of lane 2's centre (d_band 0.5): -0.5
    rho = guided(open_road(), LEFT, xy_of(8.0 * TIMES, np.minimum(0.5 * STEPS, 2.5)), GuidanceSettings(), 5)
    assert rho[0] == pytest.approx(-0.5, abs=1e-9) and rho[-1] > 0.0


def test_guide_keeps_the_sign_a_plan_too_far_left_moves_right():
    observation = open_road().observation()
    xy = xy_of(8.0 * TIMES, 0.15 * STEPS)
    delta = (normalise_xy(step(observation, KEEP, xy, GuidanceSettings())) - normalise_xy(xy))[0].numpy()
    # Adam's first step is lr in the sign of -grad on every coordinate with a gradient: the worst poses
    # (the last ones) move right by lr = 0.01; nothing moves left (pSTL's |Δμ| would move them left)
    assert delta[-1, 1] == pytest.approx(-0.01, rel=1e-3) and delta[:, 1].max() <= 1e-9
    short = xy_of(8.0 * TIMES, np.minimum(0.5 * STEPS, 2.5))
    towards_lane_2 = (normalise_xy(step(observation, LEFT, short, GuidanceSettings())) - normalise_xy(short))
    assert towards_lane_2[0, -1, 1] == pytest.approx(0.01, rel=1e-3) and towards_lane_2[0, :, 1].min() >= -1e-9


def test_guide_is_deterministic_clipped_and_leaves_satisfied_plans_alone():
    observation = straight_scene().observation()
    z = normalise_xy(torch.cat([xy_of(12.0 * TIMES, 0.2 * STEPS), xy_of(5.0 * TIMES, 0 * TIMES)])).float()
    settings = GuidanceSettings(iterations=3)
    guide = Guide(stl_objective(observation, KEEP), settings)
    a = guided_mean(z, denormalise_xy, guide)
    b = guided_mean(z.clone(), denormalise_xy, Guide(stl_objective(observation, KEEP), settings))
    assert a.dtype == torch.float32 and a.shape == z.shape
    assert torch.equal(a, b) and (a[0] - z[0]).abs().max() > 0.0
    assert torch.equal(a[1], z[1])  # 5 m/s in lane: ρ̃ >= margin, no loss, no move
    clipped = guided_mean(z, denormalise_xy, Guide(guide.objective, GuidanceSettings(iterations=3, clip=0.005)))
    assert (clipped - z).abs().max() == pytest.approx(0.005, rel=1e-5)
    torch.testing.assert_close(clipped - z, (a - z).clamp(-0.005, 0.005), atol=1e-6, rtol=0)


def test_guide_through_a_unicycle_rollout_steers_the_controls():
    # a controls model's sample space: Adam on (ω, a) through the rollout; a plan drifting left of lane 1 at
    # ω = 0.05 rad/s is steered back: every iteration turns it right and the exact robustness rises above 0
    observation = open_road().observation()
    v0 = torch.full((1,), 8.0, dtype=torch.float64)
    u = torch.zeros(1, 8, 2, dtype=torch.float64)
    u[..., 0] = 0.05 / OMEGA_MAX

    def decode(z: torch.Tensor) -> torch.Tensor:
        return controls_to_plan(z, v0)[..., :2]

    guide = Guide(stl_objective(observation, KEEP), GuidanceSettings(iterations=1, lr=0.01))
    rho = [exact_rho(open_road(), KEEP, decode(u))]
    for _ in range(20):
        u = guided_mean(u, decode, guide)
        rho.append(exact_rho(open_road(), KEEP, decode(u)))
    assert rho[0] < -0.05 and rho[-1] > 0.0 and np.diff(rho).min() > -1e-3


@pytest.mark.parametrize("field, value, words", [
    ("iterations", -1, "iterations = -1"), ("iterations", 1.5, "iterations = 1.5"), ("lr", -0.1, "lr = -0.1"),
    ("margin", math.inf, "margin = inf"), ("clip", 0.0, "clip = 0.0"), ("last_steps", -1, "last_steps = -1"),
])
def test_bad_guidance_settings_are_one_line_errors(field, value, words):
    with pytest.raises(ValueError) as error:
        dataclasses.replace(GuidanceSettings(), **{field: value}).validate()
    assert words in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("temperature", [math.nan, 0.0, -1.0])
def test_bad_temperature_is_a_one_line_error(temperature):
    with pytest.raises(GuideConfigError) as error:
        stl_objective(open_road().observation(), KEEP, temperature)
    assert f"temperature = {temperature!r}" in str(error.value) and "\n" not in str(error.value)


def test_objective_refuses_a_bad_shape():
    objective = stl_objective(open_road().observation(), KEEP)
    with pytest.raises(ValueError, match=r"\(N, 8, 2\).*\(8, 2\)"):
        objective(torch.zeros(8, 2))
