"""The vectorised geometry behind stl.signals equals shapely / numpy reference computations."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import shapely

from scenes import NUM_STEPS, AgentCategory, AgentTracks
from scenes.ego import PACIFICA
from scenes.geometry import box_corners, wrap_angle
from scenes.synthetic import generate_scene, scene_seed
from stl.signals import (
    FAR,
    _agent_steps,
    _frenet,
    _Polyline,
    _sat_distance,
    signals_from_poses,
)
from tests.factories import straight_scene


def reference_box_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Shapely distance [m] of boxes a, b (4, 2); on overlap, minus the least overlap along edge normals."""
    if shapely.Polygon(a).distance(shapely.Polygon(b)) > 0:
        return shapely.Polygon(a).distance(shapely.Polygon(b))
    depth = np.inf
    for box in (a, b):
        for k in range(2):
            edge = box[k + 1] - box[k]
            axis = np.array([-edge[1], edge[0]]) / np.hypot(*edge)
            pa, pb = a @ axis, b @ axis
            depth = min(depth, min(pa.max(), pb.max()) - max(pa.min(), pb.min()))
    return -depth


def box(x: float, y: float, heading: float, length: float = 4.0, width: float = 2.0) -> np.ndarray:
    return box_corners(np.array([x, y]), np.array(heading), length, width)


# (box a, box b): apart, corner to corner, touching, overlapping, nested, crossed (no corner inside), ...
HAND_BUILT = [
    (box(0, 0, 0), box(10, 0, 0)), (box(0, 0, 0), box(4.5, 2.5, np.pi / 4)), (box(0, 0, 0), box(4, 0, 0)),
    (box(0, 0, 0), box(3, 1, 0.3)), (box(0, 0, 0), box(0.2, 0.1, 0.1, 1.0, 0.5)),
    (box(0, 0, 0, 8.0, 1.0), box(0, 0, np.pi / 2, 8.0, 1.0)), (box(0, 0, 1.0), box(-3, 7, -2.0, 1.0, 0.4)),
    (box(100, -50, 2.0), box(104.1, -48.0, 0.5)),
]


def test_box_distance_matches_shapely_and_axis_test_on_hand_built_pairs():
    a = np.stack([p[0] for p in HAND_BUILT])
    b = np.stack([p[1] for p in HAND_BUILT])
    expected = np.array([reference_box_distance(x, y) for x, y in HAND_BUILT])
    np.testing.assert_allclose(_sat_distance(a, b), expected, atol=1e-9)
    assert (expected < 0).sum() == 3 and expected[2] == pytest.approx(0.0)
    # broadcasting (M, 1) x (1, N), and random pairs from far apart to deeply overlapping
    rng = np.random.default_rng(0)
    n = 300
    centre = rng.normal(size=(n, 2)) * rng.choice([0.5, 3.0, 10.0], size=(n, 1))
    boxes = box_corners(centre, rng.uniform(-np.pi, np.pi, n), rng.uniform(0.5, 6, n), rng.uniform(0.3, 3, n))
    got = _sat_distance(boxes[:20, None], boxes[None, 20:])
    assert got.shape == (20, n - 20)
    want = np.array([[reference_box_distance(x, y) for y in boxes[20:]] for x in boxes[:20]])
    np.testing.assert_allclose(got, want, atol=1e-9)


LINES = [
    shapely.LineString([(0, 0), (10, 0)]),
    shapely.LineString([(0, 0), (5, 0), (5, 0), (8, 3), (8, 3.0), (2, 9), (-4, 1)]),  # repeated vertices
    shapely.LineString([(100.0, 20.0), (103.3, 21.1), (107.0, 21.0), (110.0, 18.0), (109.0, 14.0)]),
    shapely.LineString(np.stack([np.linspace(-30, 30, 61), 5 * np.sin(np.linspace(-3, 3, 61))], -1)),
]


@pytest.mark.filterwarnings("ignore:invalid value encountered in line_locate_point")
@pytest.mark.parametrize("line", LINES)
def test_polyline_projection_equals_shapely_bit_for_bit(line):
    rng = np.random.default_rng(1)
    coords = shapely.get_coordinates(line)
    points = np.concatenate([coords, (coords[:-1] + coords[1:]) / 2,
                             coords[rng.integers(len(coords), size=200)] + rng.normal(size=(200, 2)) * 3,
                             rng.normal(size=(50, 2)) * 60])
    poly = _Polyline.of(line)
    for chunk in (points, points[:7], points[-5:]):  # the segment pruning depends on the point set
        dist, seg = poly.nearest(chunk)
        np.testing.assert_array_equal(dist, shapely.distance(line, shapely.points(chunk)))
        want = shapely.line_locate_point(line, shapely.points(chunk))
        np.testing.assert_array_equal(poly.locate(chunk, seg), want)
    s = np.concatenate([[0.0, line.length, line.length + 2.0], poly.start, rng.uniform(0, line.length, 100)])
    want = shapely.get_coordinates(shapely.line_interpolate_point(line, s))
    np.testing.assert_array_equal(poly.interpolate(s), want)
    assert poly.start[-1] == line.length


def reference_frenet(line: shapely.LineString, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lateral offset [m] (left +) and lane heading [rad] of points (P, 2) by shapely project/interpolate."""
    s = np.array([line.project(shapely.Point(p)) for p in xy])
    at = lambda d: np.array([line.interpolate(v).coords[0] for v in d])
    tangent = at(np.minimum(s + 0.5, line.length)) - at(np.maximum(s - 0.5, 0.0))
    tangent /= np.maximum(np.linalg.norm(tangent, axis=-1, keepdims=True), 1e-9)
    rel = xy - at(s)
    return tangent[:, 0] * rel[:, 1] - tangent[:, 1] * rel[:, 0], np.arctan2(tangent[:, 1], tangent[:, 0])


@pytest.mark.filterwarnings("ignore:invalid value encountered in line_locate_point")
def test_frenet_equals_shapely_reference():
    rng = np.random.default_rng(2)
    for line in LINES:
        xy = shapely.get_coordinates(line)[rng.integers(len(line.coords), size=40)] + rng.normal(size=(40, 2))
        _, offset, heading = _frenet(line, xy)
        want_offset, want_heading = reference_frenet(line, xy)
        np.testing.assert_array_equal(offset, want_offset)
        np.testing.assert_array_equal(heading, want_heading)


def random_agents(rng: np.random.Generator, count: int) -> AgentTracks:
    """`count` agents wandering around the origin, some invalid at some steps."""
    xy = rng.normal(size=(count, 1, 2)) * 15 + np.cumsum(rng.normal(size=(count, NUM_STEPS, 2)) * 0.3, axis=1)
    return AgentTracks(np.arange(count, dtype=np.int64), np.full(count, AgentCategory.VEHICLE, np.int8),
                       rng.uniform([2.0, 1.0], [6.0, 2.5], size=(count, 2)), xy,
                       rng.uniform(-np.pi, np.pi, (count, 1)) + np.zeros((1, NUM_STEPS)),
                       np.zeros((count, NUM_STEPS, 2)), rng.random((count, NUM_STEPS)) > 0.2)


def test_agent_distance_equals_every_pair_reference():
    rng = np.random.default_rng(3)
    scene = replace(straight_scene(), agents=random_agents(rng, 12))
    poses = np.concatenate([rng.normal(size=(3, 1, 2)) * 8 + np.cumsum(rng.normal(size=(3, 21, 2)), axis=1),
                            rng.uniform(-np.pi, np.pi, (3, 21, 1))], -1)
    got = signals_from_poses(scene, poses, 0.2, names=["s"]).values[..., 0]
    agents, steps = scene.agents, _agent_steps(21, 0.2)
    forward = np.stack([np.cos(poses[..., 2]), np.sin(poses[..., 2])], -1)
    ego = box_corners(poses[..., :2] + PACIFICA.rear_axle_to_center * forward, poses[..., 2], PACIFICA.length,
                      PACIFICA.width)
    want = np.full((3, 21), FAR)
    for b in range(3):
        for t, step in enumerate(steps):
            for n in np.flatnonzero(agents.valid[:, step]):
                other = box_corners(agents.xy[n, step], agents.heading[n, step], *agents.size[n])
                want[b, t] = min(want[b, t], reference_box_distance(ego[b, t], other))
    assert (want < 0).any() and (want > 0).any()
    np.testing.assert_allclose(got, want, atol=1e-9)


def test_batch_equals_single_trajectories_and_kinematics_equal_numpy():
    scene = generate_scene(scene_seed("train", 0, 2), "train")
    rng = np.random.default_rng(4)
    now = scene.current_pose
    heading = now[2] + np.cumsum(rng.normal(size=(4, 31)) * 0.05, axis=1)
    step = np.stack([np.cos(heading), np.sin(heading)], -1) * rng.uniform(0.2, 1.5, (4, 1, 1))
    poses = np.concatenate([now[:2] + np.cumsum(step, axis=1) - step[:, :1], heading[..., None]], -1)
    batch = signals_from_poses(scene, poses, 0.1)
    for b in range(4):
        single = signals_from_poses(scene, poses[b:b + 1], 0.1)
        np.testing.assert_array_equal(batch.values[b], single.values[0])
    column = {name: batch.values[..., i] for i, name in enumerate(batch.names)}
    velocity = np.gradient(poses[..., :2], 0.1, axis=1, edge_order=2)
    np.testing.assert_array_equal(np.abs(column["v"]), np.linalg.norm(velocity, axis=-1))
    np.testing.assert_array_equal(column["a"], np.gradient(column["v"], 0.1, axis=1, edge_order=2))
    w = np.gradient(np.unwrap(heading, axis=1), 0.1, axis=1, edge_order=2)
    np.testing.assert_array_equal(column["w"], w)
    # the centre lane offset is the shapely reference on the route lane nearest each point
    m = scene.map
    lines = [m.lane_centerlines[m.lane_index(lane)] for lane in scene.route.lane_ids]
    flat = poses[..., :2].reshape(-1, 2)
    nearest = np.argmin([shapely.distance(line, shapely.points(flat)) for line in lines], axis=0)
    for k, line in enumerate(lines):
        mask = nearest == k
        if mask.any():
            offset, lane_heading = reference_frenet(line, flat[mask])
            np.testing.assert_array_equal(column["d_c"].reshape(-1)[mask], offset)
            np.testing.assert_array_equal(column["h_c"].reshape(-1)[mask],
                                          wrap_angle(poses[..., 2].reshape(-1)[mask] - lane_heading))
