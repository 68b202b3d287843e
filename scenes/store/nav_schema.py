"""Column layout of a navigation dataset (`scenes.store.nav`): one row per recorded depth frame.

Each field: (shape per row, arrow value type, unit, doc); "H", "W" are the camera's image size. Depth is raw
little-endian uint16 bytes (one value per row: fast to write, compresses well with zstd).
"""

from __future__ import annotations

import math

import pyarrow as pa

from scenes.nav.types import NAV_PLAN_DT, NAV_PLAN_POSES, CameraSpec
from scenes.store.schema import PART_KEY, PRIVILEGED, SCHEMA_KEY, SHARDS

NAV_SCHEMA_VERSION = "diffplan-nav-store/1"
ROW_GROUP = 16  # frames per Parquet row group (the unit of random access: ~0.6 MB of depth at 160 x 120)
P = NAV_PLAN_POSES

FieldSpec = tuple[tuple, pa.DataType, str, str]  # (shape per row, arrow value type, unit, doc)

# name -> (part, shape per frame, arrow value type, unit, doc)
FRAME_FIELDS: dict[str, dict[str, FieldSpec]] = {
    SHARDS: {
        "episode_id": ((), pa.string(), "", ""),
        "frame": ((), pa.int32(), "", "frame number within the episode"),
        "time_s": ((), pa.float64(), "s", "since the episode started"),
        "depth": (("H", "W"), pa.binary(), "0.1 mm",
                  "uint16 little-endian bytes, row-major, top row first: z-depth x 10000; 0 = invalid"),
        "goal": ((3,), pa.float64(), "m, m, rad", "point goal in the robot frame: x forward, y left, yaw 0"),
        "velocity": ((2,), pa.float64(), "m/s, rad/s", "forward speed, yaw rate"),
    },
    PRIVILEGED: {
        "episode_id": ((), pa.string(), "", "same rows, same order as shards/"),
        "world_id": ((), pa.string(), "", "scenes.nav.world_from_id rebuilds the world"),
        "pose": ((3,), pa.float64(), "m, m, rad", "robot pose, world frame"),
        "future": ((P, 3), pa.float64(), "m, m, rad", f"next {P} poses, robot frame, {NAV_PLAN_DT} s apart"),
        "augmented_future": ((P, 3), pa.float64(), "m, m, rad", "NavDP's negative: future rotated about the robot"),
        "augment_yaw": ((), pa.float64(), "rad", "rotation of the negative, U[-60, 60] deg"),
        "critic_target": ((), pa.float64(), "", "NavDP's value of future"),
        "augmented_critic_target": ((), pa.float64(), "", "NavDP's value of augmented_future"),
    },
}
EPISODE_FIELDS: dict[str, FieldSpec] = {
    "episode_index": ((), pa.int64(), "", "only in episodes.parquet"),
    "episode_id": ((), pa.string(), "", ""),
    "world_id": ((), pa.string(), "", ""),
    "world_kind": ((), pa.string(), "", "rooms | cluttered | passages"),
    "robot": ((), pa.string(), "", "RobotProfile name"),
    "start": ((3,), pa.float64(), "m, m, rad", "world frame"),
    "goal": ((2,), pa.float64(), "m", "world frame"),
    "geodesic_distance": ((), pa.float64(), "m", "shortest path for the robot"),
    "path_length": ((), pa.float64(), "m", "driven by the expert"),
    "num_frames": ((), pa.int32(), "", ""),
    "shard": ((), pa.int32(), "", ""),
    "row": ((), pa.int32(), "", "the episode's first frame row in its shard"),
    "frame_index": ((), pa.int64(), "", "the episode's first frame in the dataset; only in episodes.parquet"),
}


def _arrow_type(shape: tuple, value: pa.DataType, camera: CameraSpec) -> pa.DataType:
    if pa.types.is_binary(value):  # an image as raw bytes: one value per row, fast to write and read
        return value
    dims = [camera.height if d == "H" else camera.width if d == "W" else d for d in shape]
    return pa.list_(value, math.prod(dims)) if dims else value


def _schema(fields: dict, camera: CameraSpec, part: str, skip: tuple = ()) -> pa.Schema:
    return pa.schema([pa.field(n, _arrow_type(s, t, camera), nullable=False)
                      for n, (s, t, _, _) in fields.items() if n not in skip],
                     metadata={SCHEMA_KEY: NAV_SCHEMA_VERSION.encode(), PART_KEY: part.encode()})


def part_schema(part: str, camera: CameraSpec) -> pa.Schema:
    """Arrow schema of `part` (shards/ or privileged/) files for `camera`'s image size, with the store's
    metadata."""
    return _schema(FRAME_FIELDS[part], camera, part)


def episode_schema(with_index: bool) -> pa.Schema:
    """Arrow schema of episodes.parquet (`with_index`: with episode_index and frame_index), with the store's
    metadata."""
    skip = () if with_index else ("episode_index", "frame_index")
    return _schema(EPISODE_FIELDS, CameraSpec(), "episodes", skip)


def field_descriptions(camera: CameraSpec) -> dict[str, dict]:
    """'part/name' -> part, shape (camera size filled in), dtype, unit, privileged and doc of each column."""
    out = {}
    for part, fields in (*FRAME_FIELDS.items(), ("episodes", EPISODE_FIELDS)):
        for name, (shape, kind, unit, doc) in fields.items():
            dims = [camera.height if d == "H" else camera.width if d == "W" else d for d in shape]
            dtype = "uint16 (raw bytes)" if pa.types.is_binary(kind) else str(kind)
            out[f"{part}/{name}"] = {"part": part, "shape": dims, "dtype": dtype, "unit": unit,
                                     "privileged": part == PRIVILEGED, "doc": doc}
    return out
