"""The diffplan dataset store: scenes as Parquet shards (LeRobot v3 style), observation and privileged
columns in separate files.

    write_shard(root, k, scenes)        # per shard, parallel-safe, atomic, resumable
    completed_shards(root)              # shards already done
    finalize_dataset(root, config, n)   # episodes.parquet + info.json
    DriveDataset(root)[i]               # DriveScene; .observation(i) reads shards/ only
"""

from scenes.store.errors import DatasetError
from scenes.store.layout import DatasetInfo, completed_shards
from scenes.store.reader import DriveDataset, committed_unit_records, damaged_shard
from scenes.store.schema import FIELDS, STORE_SCHEMA_VERSION, FieldSpec
from scenes.store.writer import finalize_dataset, write_shard

__all__ = [
    "FIELDS",
    "STORE_SCHEMA_VERSION",
    "DatasetError",
    "DatasetInfo",
    "DriveDataset",
    "FieldSpec",
    "committed_unit_records",
    "completed_shards",
    "damaged_shard",
    "finalize_dataset",
    "write_shard",
]
