"""The typed scene model: validation, frames and the observation/privileged split."""

import dataclasses

import numpy as np
import pytest
import shapely

from scenes import (
    NUM_PLAN_POSES,
    OBSERVED_HISTORY_STEPS,
    DriveObservation,
    EgoState,
    Frame,
    Trajectory,
    ValidationError,
)
from tests.factories import straight_scene


def test_hand_built_scene_validates():
    scene = straight_scene()
    assert scene.validate() is scene


@pytest.mark.parametrize(
    ("field", "bad", "message"),
    [
        ("pose", np.zeros((71, 2)), "EgoState.pose: shape (71, 2)"),
        ("yaw_rate", np.zeros(70), "EgoState.yaw_rate: shape (70,)"),
        ("velocity", np.full((71, 2), np.nan), "EgoState.velocity: 142 non-finite"),
        ("steering", np.zeros(71, np.int64), "EgoState.steering: dtype int64"),
    ],
)
def test_validate_rejects_bad_ego_arrays(field, bad, message):
    ego = dataclasses.replace(straight_scene().ego, **{field: bad})
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ego.validate()


def test_validate_rejects_bad_agents_and_map():
    scene = straight_scene()
    xy = scene.agents.xy.copy()
    xy[1, 20, 0] = np.inf
    with pytest.raises(ValidationError, match=r"AgentTracks.xy: 1 non-finite"):
        dataclasses.replace(scene.agents, xy=xy).validate()
    with pytest.raises(ValidationError, match=r"AgentTracks.valid: shape \(3, 10\)"):
        dataclasses.replace(scene.agents, valid=np.ones((3, 10), bool)).validate()
    with pytest.raises(ValidationError, match="MapLayers.lane_successors: has 1 entries for 2 lanes"):
        dataclasses.replace(scene.map, lane_successors=((),)).validate()
    bow_tie = np.array([shapely.Polygon([(0, 0), (2, 2), (2, 0), (0, 2)])], dtype=object)
    with pytest.raises(ValidationError, match=r"MapLayers.drivable_polygons: polygon 0 is invalid \(Self-inter"):
        dataclasses.replace(scene.map, drivable_polygons=bow_tie).validate()
    with pytest.raises(ValidationError, match="unknown split 'dev'"):
        dataclasses.replace(scene, metadata=dataclasses.replace(scene.metadata, split="dev")).validate()


def test_observation_is_in_the_ego_frame_and_crops():
    obs = straight_scene().observation()
    np.testing.assert_allclose(obs.ego_history.pose[-1], [0.0, 0.0, 0.0])
    np.testing.assert_allclose(obs.ego_history.pose[0], [-15.0, 0.0, 0.0], atol=1e-12)
    # Pedestrian 9 is 300 m away; both cars are present now.
    assert obs.agents.track_ids.tolist() == [7, 8]
    assert obs.agents.num_steps == OBSERVED_HISTORY_STEPS + 1
    np.testing.assert_allclose(obs.agents.xy[0, -1], [30.0, 0.0])
    # The parked car appears at CURRENT_INDEX only: its earlier entries stay invalid zeros.
    assert not obs.agents.valid[1, :-1].any() and obs.agents.valid[1, -1]
    assert obs.red_lane_ids.tolist() == [1]


def test_observation_exposes_no_privileged_field():
    scene = straight_scene()
    obs = scene.observation()
    names = {f.name for f in dataclasses.fields(DriveObservation)}
    assert names == {"ego_history", "ego_pose_global", "agents", "map", "route", "command", "red_lane_ids"}
    assert not hasattr(obs, "metadata") and not hasattr(obs, "expert_plan") and not hasattr(obs, "ego_future")
    # Nothing in the observation reaches past the current time step.
    assert len(obs.ego_history) == OBSERVED_HISTORY_STEPS + 1
    assert obs.agents.xy.shape[1] == OBSERVED_HISTORY_STEPS + 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        obs.map = scene.map  # type: ignore[misc]


def test_expert_plan_is_eight_poses_at_half_a_second():
    plan = straight_scene().expert_plan()
    assert plan.frame is Frame.EGO and plan.dt == 0.5 and plan.num_poses == NUM_PLAN_POSES
    np.testing.assert_allclose(plan.poses[:, 0], 10.0 * 0.5 * np.arange(1, 9))
    np.testing.assert_allclose(plan.times, 0.5 * np.arange(1, 9))


def test_trajectory_frame_round_trip():
    origin = np.array([12.0, -3.0, 0.7])
    poses = np.array([[1.0, 0.0, 0.0], [2.0, 1.0, 0.3], [3.0, 2.5, -3.1]])
    local = Trajectory(poses, 0.5).validate()
    back = local.to_global(origin).to_ego(origin)
    np.testing.assert_allclose(back.poses, poses, atol=1e-12)
    np.testing.assert_allclose(local.to_global(origin).poses[0], [12.0 + np.cos(0.7), -3.0 + np.sin(0.7), 0.7])
    with pytest.raises(ValidationError, match="dt: must be a positive"):
        Trajectory(poses, 0.0).validate()


def test_ego_state_speed():
    ego = EgoState(np.zeros(3), np.array([3.0, 4.0]), np.zeros(2), np.array(0.0), np.array(0.0)).validate()
    assert ego.speed == 5.0
