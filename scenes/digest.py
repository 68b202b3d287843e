"""Content digests: a sha256 of every bit a value holds, the same on every machine and Python version.

`content_digest` walks frozen dataclasses, numpy arrays, shapely geometries, enums and plain values and
hashes a canonical encoding of them: each array's dtype (little-endian), shape and raw bytes, each geometry's
little-endian WKB, each field's name. Floats are hashed bit for bit, not rounded, so two scenes share a
digest only when they are identical. Benchmark manifests (`scenes.manifest`) list these digests.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import struct
from collections.abc import Iterable

import numpy as np
import shapely


def content_digest(value: object) -> str:
    """Hex sha256 of `value`'s canonical encoding (see the module docstring)."""
    h = hashlib.sha256()
    _encode(value, h)
    return h.hexdigest()


def combined_digest(digests: Iterable[str]) -> str:
    """Hex sha256 of an ordered list of digests: the digest of a whole set."""
    h = hashlib.sha256()
    for digest in digests:
        h.update(bytes.fromhex(digest))
    return h.hexdigest()


def _tag(h, tag: bytes, text: str = "") -> None:
    raw = text.encode()
    h.update(tag + struct.pack("<I", len(raw)) + raw)


def _encode(value: object, h) -> None:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        _tag(h, b"D", type(value).__name__)
        for field in dataclasses.fields(value):
            _tag(h, b"F", field.name)
            _encode(getattr(value, field.name), h)
    elif isinstance(value, enum.Enum):
        _tag(h, b"E", type(value).__name__)
        _encode(value.value, h)
    elif isinstance(value, np.ndarray):
        if value.dtype == object:
            _tag(h, b"O", repr(value.shape))
            for item in value.ravel():
                _encode(item, h)
        else:
            array = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<"))
            _tag(h, b"A", f"{array.dtype.str}{array.shape}")
            h.update(array.tobytes())
    elif isinstance(value, shapely.Geometry):
        _tag(h, b"G")
        h.update(shapely.to_wkb(value, byte_order=1, output_dimension=3, include_srid=False))
    elif isinstance(value, bool | np.bool_):
        _tag(h, b"B", str(bool(value)))
    elif isinstance(value, int | np.integer):
        _tag(h, b"I", str(int(value)))
    elif isinstance(value, float | np.floating):
        _tag(h, b"R")
        h.update(struct.pack("<d", float(value)))
    elif isinstance(value, str):
        _tag(h, b"S", value)
    elif value is None:
        _tag(h, b"N")
    elif isinstance(value, tuple | list):
        _tag(h, b"L", str(len(value)))
        for item in value:
            _encode(item, h)
    elif isinstance(value, dict):
        _tag(h, b"M", str(len(value)))
        for key in sorted(value, key=str):
            _encode(key, h)
            _encode(value[key], h)
    else:
        raise TypeError(f"content_digest cannot encode a {type(value).__name__}")
