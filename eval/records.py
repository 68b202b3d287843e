"""Result records as exact JSON, for the unit files of resumable evaluations.

Floats are written as Python's shortest round-trip text (NaN and inf as NaN and Infinity), arrays as shape and
flat values, nested dataclasses and enums by their fields' types: a record read back equals the one written,
bit for bit.
"""

from __future__ import annotations

import dataclasses
import enum
import typing

import numpy as np

if typing.TYPE_CHECKING:
    from _typeshed import DataclassInstance

_Record = typing.TypeVar("_Record", bound="DataclassInstance")  # a result dataclass


def to_json(value: object) -> object:
    """A JSON-able copy of a result dataclass, array, enum or plain value."""
    if isinstance(value, np.ndarray):
        return {"shape": list(value.shape), "values": value.ravel().tolist()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    return value


def array_from_json(body: dict) -> np.ndarray:
    """A float64 array written by `to_json`."""
    return np.asarray(body["values"], dtype=np.float64).reshape(body["shape"])


def from_json(kind: type[_Record], body: dict) -> _Record:
    """The dataclass of `kind` that `to_json` wrote (arrays, enums and nested dataclasses by field type)."""
    hints = typing.get_type_hints(kind)
    values = {}
    for field in dataclasses.fields(kind):
        raw, hint = body[field.name], hints[field.name]
        if hint is np.ndarray:
            raw = array_from_json(raw)
        elif isinstance(hint, type) and issubclass(hint, enum.Enum):
            raw = hint(raw)
        elif dataclasses.is_dataclass(hint):
            raw = from_json(hint, raw)  # type: ignore[arg-type]  # a field's hint: a dataclass type
        values[field.name] = raw
    return kind(**values)
