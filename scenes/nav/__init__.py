"""Navigation worlds for mobile robots: types, procedural worlds on MuJoCo, occupancy grids and episodes."""

from scenes.nav.generator import NAV_GENERATOR_VERSION, WORLD_KINDS, generate_world, world_from_id
from scenes.nav.types import (
    DEPTH_MAX,
    DEPTH_MIN,
    DEPTH_SCALE,
    NAV_CAMERA_DT,
    NAV_CONTROL_DT,
    NAV_PLAN_DT,
    NAV_PLAN_POSES,
    NAVDP_ACTION_SCALE,
    QUADRUPED,
    ROBOTS,
    WHEELED,
    CameraSpec,
    NavEpisode,
    NavObservation,
    NavTrainingSample,
    NavWorldInterface,
    RobotKind,
    RobotProfile,
)
from scenes.nav.world import NavWorld, ObstacleKind, make_world

__all__ = [
    "DEPTH_MAX",
    "DEPTH_MIN",
    "DEPTH_SCALE",
    "NAVDP_ACTION_SCALE",
    "NAV_CAMERA_DT",
    "NAV_CONTROL_DT",
    "NAV_GENERATOR_VERSION",
    "NAV_PLAN_DT",
    "NAV_PLAN_POSES",
    "QUADRUPED",
    "ROBOTS",
    "WHEELED",
    "WORLD_KINDS",
    "CameraSpec",
    "MujocoNavWorld",
    "NavEpisode",
    "NavObservation",
    "NavTrainingSample",
    "NavWorld",
    "NavWorldInterface",
    "ObstacleKind",
    "RobotKind",
    "RobotProfile",
    "generate_world",
    "make_world",
    "world_from_id",
]


def __getattr__(name: str):
    if name == "MujocoNavWorld":  # scipy's graph and image modules load only when a world is simulated
        from scenes.nav.mujoco_world import MujocoNavWorld

        return MujocoNavWorld
    raise AttributeError(f"module 'scenes.nav' has no attribute {name!r}")
