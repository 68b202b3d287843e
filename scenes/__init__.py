"""diffplan's typed data model, synthetic worlds and dataset store. Imports no other project package."""

from scenes._checks import ValidationError
from scenes.agents import AgentCategory, AgentTracks
from scenes.drive import (
    CURRENT_INDEX,
    NUM_FUTURE_STEPS,
    NUM_HISTORY_STEPS,
    NUM_PLAN_POSES,
    NUM_STEPS,
    OBSERVED_HISTORY_STEPS,
    PLAN_DT,
    PREVIOUS_PLAN_STEPS,
    SIM_DT,
    SPLITS,
    DriveLog,
    DriveObservation,
    DriveScene,
    DrivingCommand,
    Route,
    ScenarioType,
    SceneMetadata,
    TrafficLights,
)
from scenes.ego import PACIFICA, EgoState, Frame, Trajectory, VehicleGeometry
from scenes.maps import DrivableKind, MapLayers

__all__ = [
    "CURRENT_INDEX",
    "NUM_FUTURE_STEPS",
    "NUM_HISTORY_STEPS",
    "NUM_PLAN_POSES",
    "NUM_STEPS",
    "OBSERVED_HISTORY_STEPS",
    "PACIFICA",
    "PLAN_DT",
    "PREVIOUS_PLAN_STEPS",
    "SIM_DT",
    "SPLITS",
    "AgentCategory",
    "AgentTracks",
    "DrivableKind",
    "DriveLog",
    "DriveObservation",
    "DriveScene",
    "DrivingCommand",
    "EgoState",
    "Frame",
    "MapLayers",
    "Route",
    "ScenarioType",
    "SceneMetadata",
    "TrafficLights",
    "Trajectory",
    "ValidationError",
    "VehicleGeometry",
]
