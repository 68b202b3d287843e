"""Shape, dtype and finiteness checks shared by every `validate()` in `scenes`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn

import numpy as np
import shapely

from scenes.errors import DiffplanError

Dim = int | str | None  # int: fixed; str: a symbol bound on first use; None: any size


class ValidationError(DiffplanError, ValueError):
    """Raised by `validate()`; the message names the owner, the field and the offending value."""


class ShapeChecker:
    """Checks arrays of one object against symbolic shapes such as ("N", "T", 2).

    A symbol is bound by the first array that uses it; later arrays must agree.
    """

    def __init__(self, owner: str, **bound: int):
        self.owner = owner
        self.dims: dict[str, int] = dict(bound)

    def fail(self, field: str, problem: str) -> NoReturn:
        raise ValidationError(f"{self.owner}.{field}: {problem}")

    def array(self, field: str, value: object, shape: Sequence[Dim], kind: str, finite: bool = True) -> None:
        """Check `value` is an ndarray with dtype kind in `kind` ("f", "i", "b", "O", ...) and shape."""
        if not isinstance(value, np.ndarray):
            self.fail(field, f"expected a numpy array, got {type(value).__name__}")
        if value.dtype.kind not in kind:
            self.fail(field, f"dtype {value.dtype} is not of kind {kind!r}")
        if value.ndim != len(shape):
            self.fail(field, f"shape {value.shape} does not match {self._spec(shape)}")
        for axis, (size, dim) in enumerate(zip(value.shape, shape)):
            if dim is None:
                continue
            if isinstance(dim, str):
                expected = self.dims.setdefault(dim, size)
            else:
                expected = dim
            if size != expected:
                self.fail(field, f"shape {value.shape} does not match {self._spec(shape)} (axis {axis})")
        if finite and value.dtype.kind == "f" and not np.isfinite(value).all():
            bad = int((~np.isfinite(value)).sum())
            self.fail(field, f"{bad} non-finite value(s) (NaN or inf)")

    def geometries(self, field: str, value: object, geom_type: str, count: Dim) -> None:
        """Check an object array of valid, non-empty shapely geometries of one type."""
        self.array(field, value, (count,), "O", finite=False)
        assert isinstance(value, np.ndarray)
        if value.size == 0:
            return
        if not shapely.is_geometry(value).all():
            self.fail(field, "holds something that is not a shapely geometry")
        types = shapely.get_type_id(value)
        wanted = {"LineString": 1, "Polygon": 3}[geom_type]
        if (types != wanted).any():
            self.fail(field, f"every item must be a {geom_type}")
        if shapely.is_empty(value).any():
            self.fail(field, "holds an empty geometry")
        if geom_type == "Polygon" and not shapely.is_valid(value).all():
            row = int(np.flatnonzero(~shapely.is_valid(value))[0])
            self.fail(field, f"polygon {row} is invalid ({shapely.is_valid_reason(value[row])})")
        coords = shapely.get_coordinates(value)
        if not np.isfinite(coords).all():
            self.fail(field, "has non-finite coordinates (NaN or inf)")

    @staticmethod
    def _spec(shape: Sequence[Dim]) -> str:
        return "(" + ", ".join("*" if d is None else str(d) for d in shape) + ")"
