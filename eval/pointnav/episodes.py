"""PointNav-v1 episode files (`*.json.gz`), read and written, as habitat-lab's PointNavDatasetV1 stores them.

Each episode: episode_id (string), scene_id (for synthetic worlds the world_id), start_position [x, y, z]
(y up), start_rotation [x, y, z, w], goals [{position, radius}], info {geodesic_distance, robot}. Frames are
converted by scenes.nav.habitat_frames only.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np

from eval.pointnav.metrics import SUCCESS_DISTANCE
from scenes.nav import ROBOTS, WHEELED, NavEpisode
from scenes.nav.habitat_frames import (
    points_from_habitat,
    points_to_habitat,
    pose_from_habitat,
    pose_to_habitat,
)
from scenes.store.errors import DatasetError
from scenes.store.layout import atomic_write_bytes


def episode_to_habitat(episode: NavEpisode) -> dict:
    """One PointNav-v1 episode dict."""
    position, rotation = pose_to_habitat(episode.start)
    return {
        "episode_id": episode.episode_id,
        "scene_id": episode.world_id,
        "start_position": position.tolist(),
        "start_rotation": rotation.tolist(),
        "goals": [{"position": points_to_habitat(episode.goal).tolist(), "radius": SUCCESS_DISTANCE}],
        "info": {"geodesic_distance": float(episode.geodesic_distance), "robot": episode.robot},
    }


def episode_from_habitat(body: dict) -> NavEpisode:
    """A NavEpisode from one PointNav-v1 episode dict (the first goal is used; the robot defaults to wheeled)."""
    info = body.get("info") or {}
    start = pose_from_habitat(np.asarray(body["start_position"], float), np.asarray(body["start_rotation"], float))
    goal = points_from_habitat(np.asarray(body["goals"][0]["position"], float))
    return NavEpisode(episode_id=str(body["episode_id"]), world_id=str(body["scene_id"]), start=start, goal=goal,
                      geodesic_distance=float(info.get("geodesic_distance", np.nan)),
                      robot=str(info.get("robot", WHEELED.name)))


def write_episodes(path: Path, episodes: list[NavEpisode]) -> None:
    """Write `{"episodes": [...]}` to a gzip JSON file, atomically."""
    body = json.dumps({"episodes": [episode_to_habitat(e) for e in episodes]}).encode()
    atomic_write_bytes(Path(path), gzip.compress(body, mtime=0))


def read_episodes(path: Path) -> list[NavEpisode]:
    """Episodes of a PointNav-v1 `.json.gz` (or plain `.json`) file; bad files raise a one-line DatasetError."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: episode file not found (expected a PointNav-v1 .json.gz or a benchmark name)")
    try:
        raw = path.read_bytes()
        text = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
        bodies = json.loads(text)["episodes"]
        episodes = [episode_from_habitat(body) for body in bodies]
    except (OSError, EOFError, ValueError, KeyError, IndexError, TypeError) as error:
        raise DatasetError(f"{path}: not a PointNav-v1 episode file ({type(error).__name__}: {error})") from None
    for episode in episodes:
        if episode.robot not in ROBOTS:
            raise DatasetError(f"{path}: episode {episode.episode_id}: unknown robot {episode.robot!r}")
        try:
            episode.validate()
        except ValueError as error:
            raise DatasetError(f"{path}: {error}") from None
    return episodes
