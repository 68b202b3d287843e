"""PDM-Closed reference states, cached on disk next to the dataset (NAVSIM's metric cache).

An entry is reused only when its scene hash and the hash of the PDM-Closed / simulator source match, so a
regenerated scene or a code change recomputes it.
"""

from __future__ import annotations

import hashlib
import os
from functools import cache
from pathlib import Path

import numpy as np
import shapely

from planners import pdm
from scenes import DriveScene

CACHE_FILE = "cache/pdm_reference.npz"


@cache
def code_hash() -> str:
    """Hash of every source file that shapes the reference (PDM-Closed, simulator, scorer)."""
    digest = hashlib.sha1()
    for path in sorted(Path(pdm.__file__).parent.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def scene_hash(scene: DriveScene) -> str:
    """Hash of what PDM-Closed and the simulator read from a scene."""
    digest = hashlib.sha1()
    for array in (scene.ego.pose, scene.ego.velocity, scene.ego.acceleration, scene.agents.xy,
                  scene.agents.velocity, scene.agents.heading, scene.agents.valid, scene.agents.size,
                  scene.traffic_lights.is_red, scene.traffic_lights.lane_ids, scene.map.lane_ids,
                  np.asarray(scene.route.lane_ids)):
        digest.update(np.ascontiguousarray(array).tobytes())
    for geometry in (scene.map.lane_centerlines, scene.map.lane_left_boundaries, scene.map.drivable_polygons):
        digest.update(b"".join(shapely.to_wkb(geometry)))
    return digest.hexdigest()


class ReferenceCache:
    """scene id -> (scene hash, (41, 11) simulated reference states), for one code version."""

    def __init__(self, entries: dict[str, tuple[str, np.ndarray]] | None = None):
        self.entries = dict(entries or {})

    def get(self, scene_id: str, digest: str) -> np.ndarray | None:
        """The cached states of `scene_id`, if cached for this scene hash `digest`; else None."""
        hit = self.entries.get(scene_id)
        return hit[1] if hit is not None and hit[0] == digest else None

    def put(self, scene_id: str, digest: str, states: np.ndarray) -> None:
        """Cache `states` for `scene_id` with scene hash `digest`."""
        self.entries[scene_id] = (digest, states)

    @classmethod
    def load(cls, dataset: Path) -> ReferenceCache:
        """The cache of `dataset`, or an empty one if missing, unreadable or from another code version."""
        path = Path(dataset) / CACHE_FILE
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["code_hash"]) != code_hash():
                    return cls()
                return cls({str(i): (str(h), s) for i, h, s in zip(data["scene_ids"], data["scene_hashes"],
                                                                    data["states"])})
        except (OSError, KeyError, ValueError):
            return cls()

    def save(self, dataset: Path) -> bool:
        """Write atomically; False if the dataset folder is not writable."""
        path = Path(dataset) / CACHE_FILE
        ids = sorted(self.entries)
        try:
            path.parent.mkdir(exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
            with open(tmp, "wb") as handle:
                np.savez(handle, code_hash=np.array(code_hash()), scene_ids=np.array(ids, dtype=str),
                         scene_hashes=np.array([self.entries[i][0] for i in ids], dtype=str),
                         states=np.array([self.entries[i][1] for i in ids]).reshape(len(ids), 41, -1))
            os.replace(tmp, path)
            return True
        except OSError:
            return False
