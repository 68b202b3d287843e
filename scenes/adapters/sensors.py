"""Sensor blobs referenced by OpenScene logs: binary PCD point clouds and JPEG camera images (optional use).

`read_pcd` follows nuPlan's `LidarPointCloud.from_buffer(..., "pcd")`: a text header, `DATA binary`, `COUNT`
all 1, integer `VIEWPOINT`, and fields x y z intensity ring lidar_info with their own TYPE (F, U, I) and SIZE
[bytes]; the result has those six rows as float32, as navsim's `LidarIndex` expects.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scenes.adapters.errors import SourceError

PCD_FIELDS: tuple[str, ...] = ("x", "y", "z", "intensity", "ring", "lidar_info")
_KINDS = {("F", 4): "<f4", ("F", 8): "<f8", ("U", 1): "u1", ("U", 2): "<u2", ("U", 4): "<u4", ("U", 8): "<u8",
          ("I", 1): "i1", ("I", 2): "<i2", ("I", 4): "<i4", ("I", 8): "<i8"}
_MAX_HEADER_LINES = 32


def read_pcd(path: str | Path) -> np.ndarray:
    """(6, N) float32 rows x, y, z [m], intensity, ring, lidar id of binary PCD file `path`.

    Raises:
        SourceError: naming the file and the header field, for anything nuPlan's reader would refuse.
    """
    source = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise SourceError(f"{source}: cannot be read ({error.strerror or error})") from error
    header: dict[str, list[str]] = {}
    offset = 0
    for _ in range(_MAX_HEADER_LINES):
        end = data.find(b"\n", offset)
        if end < 0:
            raise SourceError(f"{source}: PCD header ends before its DATA line")
        try:
            line = data[offset:end].decode("ascii").strip()
        except UnicodeDecodeError:
            raise SourceError(f"{source}: PCD header is not ASCII text") from None
        offset = end + 1
        if not line or line.startswith("#"):
            continue
        key, *values = line.split()
        header[key.upper()] = values
        if key.upper() == "DATA":
            break
    else:
        raise SourceError(f"{source}: PCD header has no DATA line")
    dtype, count = _record(source, header)
    need = count * dtype.itemsize
    if len(data) - offset < need:
        raise SourceError(f"{source}: PCD data holds {len(data) - offset} bytes for {count} points of "
                          f"{dtype.itemsize} bytes (truncated)")
    records = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    return np.stack([records[name].astype(np.float32) for name in PCD_FIELDS])


def _record(source: str, header: dict[str, list[str]]) -> tuple[np.dtype, int]:
    for key in ("FIELDS", "SIZE", "TYPE", "COUNT", "WIDTH", "HEIGHT", "VIEWPOINT", "POINTS", "DATA"):
        if key not in header:
            raise SourceError(f"{source}: PCD header lacks {key}")
    fields = header["FIELDS"]
    missing = [f for f in PCD_FIELDS if f not in fields]
    if missing:
        raise SourceError(f"{source}: PCD FIELDS lacks {', '.join(missing)} (needs {' '.join(PCD_FIELDS)})")
    for key in ("SIZE", "TYPE", "COUNT"):
        if len(header[key]) != len(fields):
            raise SourceError(f"{source}: PCD {key} has {len(header[key])} entries for {len(fields)} FIELDS")
    if any(c != "1" for c in header["COUNT"]):
        raise SourceError(f"{source}: PCD COUNT must be all 1, got {' '.join(header['COUNT'])}")
    if header["DATA"] != ["binary"]:
        raise SourceError(f"{source}: PCD DATA must be binary, got {' '.join(header['DATA'])}")
    try:
        viewpoint = [int(v) for v in header["VIEWPOINT"]]
        width, height, points = (int(header[k][0]) for k in ("WIDTH", "HEIGHT", "POINTS"))
        sizes = [int(s) for s in header["SIZE"]]
    except (ValueError, IndexError):
        raise SourceError(f"{source}: PCD VIEWPOINT, WIDTH, HEIGHT, POINTS and SIZE must be integers") from None
    if len(viewpoint) != 7:
        raise SourceError(f"{source}: PCD VIEWPOINT must have 7 integers, got {len(viewpoint)}")
    if points != width * height or points < 0:
        raise SourceError(f"{source}: PCD POINTS {points} is not WIDTH x HEIGHT = {width * height}")
    layout = []
    for name, kind, size in zip(fields, header["TYPE"], sizes):
        if (kind, size) not in _KINDS:
            raise SourceError(f"{source}: PCD field {name} has unsupported TYPE {kind} SIZE {size}")
        layout.append((name, _KINDS[(kind, size)]))
    try:
        return np.dtype(layout), points
    except (TypeError, ValueError) as error:
        raise SourceError(f"{source}: PCD FIELDS are not usable ({error})") from None


def read_camera(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB image of file `path` (JPEG, read with PIL).

    Raises:
        SourceError: naming the file, when it cannot be read as an image.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise SourceError(f"{path}: is not a readable image ({' '.join(str(error).split())})") from error
