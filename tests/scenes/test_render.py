"""Driving BEVs: failure locators on hand-built scenes, ego-centred axes, complete legends, titles in bounds,
and the worst-scene pictures of an evaluation."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from matplotlib.patches import Polygon as PatchPolygon

from scenes import CURRENT_INDEX, NUM_STEPS, SIM_DT, AgentCategory, AgentTracks, ScenarioType
from scenes.ego import PACIFICA
from scenes.geometry import box_corners, points_to_local
from scenes.render import X_LABEL, Y_LABEL, legend_labels, render_bev
from scenes.render_failures import (
    ego_states,
    first_collision,
    first_offroad_index,
    first_ttc_violation,
    likely_at_fault_collision,
    locate_failures,
)
from tests.factories import straight_scene

T = np.arange(41) * SIM_DT  # [s] simulated state times


def straight_states(speed: float, x0: float = 0.0, y: np.ndarray | float = 0.0, heading: bool = True
                    ) -> np.ndarray:
    """Rear-axle states (41, 3) driving east at `speed` [m/s] from x0, or (41, 2) without heading."""
    xy = np.stack([x0 + speed * T, np.broadcast_to(y, T.shape)], axis=-1)
    return np.column_stack([xy, np.zeros(41)]) if heading else xy


@pytest.fixture(scope="module")
def intersection():
    from scenes.synthetic import generate_scene

    return generate_scene(3, "val", ScenarioType.INTERSECTION_LEFT)


def figure_polygons(fig) -> list[np.ndarray]:
    return [patch.get_xy()[:4] for patch in fig.axes[0].patches if isinstance(patch, PatchPolygon)]


# --- failure locators (the road is y in [-1.75, 5.25] from x = -50 to 150; the lead car, agent 0, is 4.5 m
# long at x = 30 + 5 t on y = 0) ---


def test_no_failure_when_driving_behind_the_lead():
    scene = straight_scene()
    states = straight_states(5.0)  # same speed as the lead, 30 m behind it
    assert first_offroad_index(scene, states) is None
    assert first_collision(scene, states) is None
    assert first_ttc_violation(scene, states) is None
    assert locate_failures(scene, states) == []


def test_first_offroad_index_is_the_first_pose_with_a_corner_off_the_road():
    scene = straight_scene()
    # Crabbing right at 1 m/s, heading 0: the right edge (y - 1.1485) crosses y = -1.75 after 0.6015 s.
    states = straight_states(10.0, y=-1.0 * T)
    assert first_offroad_index(scene, states) == 7
    # Straight on from x = 130 (headings from positions): the front (x + 4.049) passes x = 150 after 1.5951 s.
    assert first_offroad_index(scene, straight_states(10.0, x0=130.0, heading=False)) == 16
    mark, = locate_failures(scene, states, dac=0.0)
    assert mark.text == "DAC: leaves drivable area at t=0.7 s" and mark.step == 7
    assert mark.time == pytest.approx(0.7)
    np.testing.assert_allclose(mark.footprint.min(axis=0), [0.7 * 10 - PACIFICA.rear_axle_to_rear,
                                                            -0.7 - PACIFICA.width / 2])


def test_first_collision_finds_the_lead_car_at_the_step_of_contact():
    scene = straight_scene()
    # At 15 m/s the front (15 t + 4.049) meets the lead's rear (27.75 + 5 t) at t = 2.370 s: step 24.
    for states in (straight_states(15.0), straight_states(15.0, heading=False)):
        assert first_collision(scene, states) == (24, 0)
    mark, = locate_failures(scene, straight_states(15.0), nc=0.0)
    assert mark.text == "NC: collision with vehicle at t=2.4 s"
    assert (mark.step, mark.agent) == (24, 0)
    np.testing.assert_allclose(mark.agent_box.mean(axis=0), [30.0 + 5.0 * 2.4, 0.0])


def with_agents(scene, category: AgentCategory, size: tuple[float, float], x: np.ndarray, valid: np.ndarray):
    """`scene` plus agents on y = 0 heading east: centres x (K, NUM_STEPS) [m], validity (K, NUM_STEPS)."""
    count = len(x)
    extra = AgentTracks(
        track_ids=np.arange(100, 100 + count, dtype=np.int64), category=np.full(count, category, np.int8),
        size=np.tile(size, (count, 1)).astype(float), xy=np.stack([x, np.zeros_like(x)], axis=-1),
        heading=np.zeros((count, NUM_STEPS)), velocity=np.zeros((count, NUM_STEPS, 2)), valid=valid)
    merged = AgentTracks(*(np.concatenate([getattr(scene.agents, f), getattr(extra, f)]) for f in (
        "track_ids", "category", "size", "xy", "heading", "velocity", "valid")))
    return replace(scene, agents=merged.validate())


def test_collision_uses_the_agent_at_the_same_time_step():
    # A pedestrian standing at x = 25 on the ego's lane, present only from 2.5 s on: the ego (10 m/s) covers
    # x = 25 from t = 2.07 s, but the first contact is when it appears.
    scene = with_agents(straight_scene(), AgentCategory.PEDESTRIAN, (0.6, 0.6), np.full((1, NUM_STEPS), 25.0),
                        (np.arange(NUM_STEPS) >= CURRENT_INDEX + 25)[None])
    assert first_collision(scene, straight_states(10.0)) == (25, 3)
    mark, = locate_failures(scene, straight_states(10.0), nc=0.0)
    assert mark.text == "NC: collision with pedestrian at t=2.5 s"


def test_a_contact_from_behind_is_passed_over_for_the_ego_s_own_collision():
    # Agent 3 comes from behind at 25 m/s (centre -20 + 25 t) and hits the ego (10 m/s) at t = 1.11 s: step
    # 12, behind the ego. Agent 4 stands at x = 35: the ego's front (10 t + 4.049) reaches it at 2.87 s.
    seconds = (np.arange(NUM_STEPS) - CURRENT_INDEX) * SIM_DT
    x = np.stack([-20.0 + 25.0 * seconds, np.full(NUM_STEPS, 35.0)])
    scene = with_agents(straight_scene(), AgentCategory.VEHICLE, (4.5, 1.9), x, np.ones((2, NUM_STEPS), bool))
    states = straight_states(10.0)
    assert first_collision(scene, states) == (12, 3)
    assert likely_at_fault_collision(scene, states) == (29, 4)
    mark, = locate_failures(scene, states, nc=0.0)
    assert (mark.step, mark.agent, mark.text) == (29, 4, "NC: collision with vehicle at t=2.9 s")


def test_ttc_violation_projects_the_ego_forward():
    scene = straight_scene()
    # Projected 0.9 s at 15 m/s the front reaches 15 t + 17.549; the lead's rear at t + 0.9 is 32.25 + 5 t:
    # they meet from t = 1.47 s, so step 15 with the 0.9 s projection.
    violation = first_ttc_violation(scene, straight_states(15.0))
    assert (violation.step, violation.agent, violation.horizon) == (15, 0, pytest.approx(0.9))
    front = 15 * 1.5 + 13.5 + PACIFICA.rear_axle_to_front  # at step 15, moved 0.9 s at 15 m/s
    np.testing.assert_allclose(violation.footprint.max(axis=0)[0], front)
    mark, = locate_failures(scene, straight_states(15.0), ttc=0.0)
    assert mark.text == "TTC: vehicle within 0.9 s ahead at t=1.5 s"


def test_unlocatable_failures_say_so():
    scene = straight_scene()
    marks = locate_failures(scene, straight_states(5.0), nc=0.0, dac=0.0, ttc=0.0)
    assert [m.metric for m in marks] == ["NC", "DAC", "TTC"]
    assert not any(m.located for m in marks)
    assert "no simulated footprint touches" in marks[0].text
    assert "no simulated footprint leaves" in marks[1].text
    nan = locate_failures(scene, np.full((41, 2), np.nan), nc=0.5)
    assert nan[0].text == "NC: failed; no simulated path to locate it on" and nan[0].step is None


def test_headings_come_from_positions_and_speeds_from_steps():
    states = ego_states(np.column_stack([3.0 * T, 3.0 * T]))
    np.testing.assert_allclose(states[:, 2], np.pi / 4)
    np.testing.assert_allclose(states[:, 3], 3.0 * np.sqrt(2))
    still = ego_states(np.zeros((41, 2)), initial_heading=1.0)
    np.testing.assert_allclose(still[:, 2:], np.column_stack([np.ones(41), np.zeros(41)]))


def test_locators_agree_with_the_scorer():
    """The DAC and NC steps found here are where the NAVSIM scorer first flags the simulated states."""
    from eval.scoring import simulate_plans
    from planners.pdm.scoring import SceneGeometry
    from planners.pdm.scoring.areas import CENTER, ego_areas, ego_coords
    from planners.pdm.scoring.collisions import _overlaps
    from planners.pdm.states import StateIndex

    scene = straight_scene()
    plan = np.column_stack([7.5 * np.arange(1, 9), -0.12 * np.arange(1, 9) ** 2, np.zeros(8)])
    states = simulate_plans(scene, plan[None])
    geometry = SceneGeometry.from_scene(scene)
    coords = ego_coords(states)
    offroad = np.flatnonzero(ego_areas(geometry, states, coords).non_drivable[0])
    _, steps, _ = _overlaps(geometry, coords[:, :, CENTER], states[..., StateIndex.HEADING], np.arange(41))
    compact = states[0][:, [StateIndex.X, StateIndex.Y, StateIndex.HEADING, StateIndex.VELOCITY_X]]
    assert offroad.size and first_offroad_index(scene, compact) == offroad[0]
    assert first_offroad_index(scene, compact[:, :2]) == offroad[0]
    hit = first_collision(scene, compact)
    assert (hit is None and steps.size == 0) or hit[0] == steps.min()


# --- pictures ---


def test_bev_axes_are_ego_centred(intersection):
    scene = intersection
    assert np.abs(scene.current_pose[:2]).min() > 100  # the map frame is far from the ego frame here
    fig = render_bev(scene, radius=40.0, dpi=40)
    try:
        ax = fig.axes[0]
        assert (ax.get_xlabel(), ax.get_ylabel()) == (X_LABEL, Y_LABEL) == ("x [m] (forward)", "y [m] (left)")
        assert ax.get_xlim() == (-20.0, 60.0) and ax.get_ylim() == (-40.0, 40.0)
        polygons = figure_polygons(fig)
        ego = box_corners(np.array([PACIFICA.rear_axle_to_center, 0.0]), np.asarray(0.0),
                          np.asarray(PACIFICA.length), np.asarray(PACIFICA.width))
        assert any(np.allclose(p, ego, atol=1e-6) for p in polygons)  # the ego box around the origin
        agents = scene.agents
        near = np.flatnonzero(agents.valid[:, CURRENT_INDEX] & (np.linalg.norm(
            points_to_local(agents.xy[:, CURRENT_INDEX], scene.current_pose), axis=-1) < 40))
        assert near.size
        i = near[0]
        agent = points_to_local(box_corners(agents.xy[i, CURRENT_INDEX], agents.heading[i, CURRENT_INDEX],
                                            *agents.size[i]), scene.current_pose)
        assert any(np.allclose(p, agent, atol=1e-6) for p in polygons)
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)


def test_bev_legend_lists_what_is_drawn(intersection):
    fig = render_bev(intersection, dpi=40)
    labels = legend_labels(fig)
    expected = {"drivable area (road)", "drivable area (intersection)", "lane boundaries (markings)",
                "lane centrelines", "intersection connectors (centrelines)", "crosswalks", "stop lines",
                "route",
                "agent history", "vehicle (now)", "agent futures (every 0.5 s to 4 s, fading)", "ego history",
                "expert future (logged; dots 0.5 s)", "ego (now)", "ego rear axle now (origin)"}
    assert expected <= set(labels)
    assert len(labels) == len(set(labels))
    assert not any(label.startswith(("plan", "simulated", "NC", "DAC", "TTC")) for label in labels)
    import matplotlib.pyplot as plt

    plt.close(fig)
    # A small view of the straight road: its stop line (100 m ahead) and crosswalk are not drawn.
    fig = render_bev(straight_scene(), radius=20.0, dpi=40)
    labels = set(legend_labels(fig))
    plt.close(fig)
    assert "stop lines" not in labels and "crosswalks" not in labels
    assert "intersection connectors (centrelines)" not in labels and "lane centrelines" in labels


def test_failure_bev_title_stays_inside_the_figure():
    import matplotlib.pyplot as plt

    scene = straight_scene()
    plan = np.column_stack([7.5 * np.arange(1, 9), np.zeros(8), np.zeros(8)])
    states = straight_states(15.0)
    marks = locate_failures(scene, states, nc=0.0, ttc=0.0)
    status = "worst #1 · " + "a long status line that would run past the figure edge " * 4
    fig = render_bev(scene, plan=plan, simulated=states, failures=marks, status=status, dpi=50)
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        title = fig.axes[0].title
        box, frame = title.get_window_extent(renderer), fig.bbox
        assert "\n" in title.get_text()  # wrapped
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
        legend = fig.legends[0].get_window_extent(renderer)
        assert frame.x0 <= legend.x0 and legend.x1 <= frame.x1
        labels = legend_labels(fig)
        for label in ("plan (8 poses, every 0.5 s)", "simulated ego path (4 s, rear axle)",
                      "NC: agent involved", "NC: ego footprint at failure", "TTC: projected ego footprint"):
            assert label in labels
        texts = [t.get_text() for t in fig.axes[0].texts]
        assert any("NC: collision with vehicle at t=2.4 s" in t and "TTC: vehicle within" in t for t in texts)
        assert "NC t=2.4 s" in texts
        # the ego footprint at contact is drawn in the ego frame (here the map frame, pose 0)
        assert any(np.allclose(p, marks[0].footprint, atol=1e-6) for p in figure_polygons(fig))
    finally:
        plt.close(fig)


def test_save_worst_bevs_marks_the_collision(tmp_path, monkeypatch):
    import scenes.render
    from eval.report import save_worst_bevs
    from eval.results import SceneResult
    from eval.scoring import simulate_plans

    scene = straight_scene()
    plan = np.column_stack([8.0 * np.arange(1, 9) + 0.25 * np.arange(1, 9) ** 2, np.zeros(8), np.zeros(8)])
    simulated = simulate_plans(scene, plan[None])[0]
    expected = first_collision(scene, simulated[:, :2])
    assert expected is not None and expected[1] == 0
    good = SceneResult(index=1, scene_id="good", scenario_type="x", nc=1, dac=1, ttc=1, ep=1, comfort=1,
                       score=1.0, plan=plan, simulated_xy=simulated[:, :2])
    bad = replace(good, index=0, scene_id="bad", nc=0.0, ttc=0.0, score=0.0)
    broken = SceneResult(index=2, scene_id="broken", scenario_type="x", error="ValueError: NaN plan")
    captured = {}
    save = scenes.render.save_figure

    def capture(fig, path):
        captured[path.name] = (legend_labels(fig), [t.get_text() for t in fig.axes[0].texts],
                               fig.axes[0].get_title())
        return save(fig, path)

    monkeypatch.setattr(scenes.render, "save_figure", capture)
    paths = save_worst_bevs(tmp_path, [scene, scene, scene], [good, bad, broken], count=2)
    assert [p.name for p in paths] == ["00_broken.png", "01_bad.png"]
    assert all(p.stat().st_size > 10_000 for p in paths)
    labels, texts, title = captured["01_bad.png"]
    assert f"NC: collision with vehicle at t={expected[0] * SIM_DT:.1f} s" in "\n".join(texts)
    assert "NC: agent involved" in labels and "plan (8 poses, every 0.5 s)" in labels
    assert "worst #2" in title and "NC 0.0" in title
    labels, texts, title = captured["00_broken.png"]
    assert "FAILED: ValueError: NaN plan" in title and not any(label.startswith("plan") for label in labels)
