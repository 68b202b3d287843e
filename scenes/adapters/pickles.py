"""Restricted unpickling of user files: only the builtins and numpy objects that plain OpenScene logs hold.

`pickle.load` runs whatever callable a file names, so a log pickle from elsewhere could execute code. Every
user pickle in diffplan is read through `restricted_load`, whose unpickler resolves only:

- builtin containers and scalars (set, frozenset, bytearray, complex, ...; lists, dicts, tuples, str, int,
  float and bool need no lookup), never `eval`, `getattr`, `__import__` or any other builtin callable;
- `_codecs.encode`, which protocol-2 pickles use to carry the bytes of a numpy array;
- numpy arrays, dtypes and scalars (`numpy.ndarray`, `numpy.dtype`, `numpy.core.multiarray._reconstruct`,
  `numpy.core.multiarray.scalar`, `numpy.core.numeric._frombuffer`), also under their numpy 2 spelling
  `numpy._core....`, which resolves to the numpy 1 objects so that pickles written under numpy 2 load.
"""

from __future__ import annotations

import _codecs
import builtins
import io
import pickle
import struct
from pathlib import Path

import numpy as np
import numpy.core.multiarray as np_multiarray
import numpy.core.numeric as np_numeric

from scenes.adapters.errors import SourceError

_BUILTINS = frozenset({"set", "frozenset", "bytearray", "bytes", "complex", "str", "int", "float", "bool",
                       "list", "dict", "tuple", "slice", "range"})

_NUMPY: dict[tuple[str, str], object] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): np_multiarray._reconstruct,  # type: ignore[attr-defined]
    ("numpy.core.multiarray", "scalar"): np_multiarray.scalar,  # type: ignore[attr-defined]
    ("numpy.core.numeric", "_frombuffer"): np_numeric._frombuffer,  # type: ignore[attr-defined]
    ("_codecs", "encode"): _codecs.encode,
}
# numpy 2 writes the same objects under numpy._core.*
_NUMPY.update({(module.replace("numpy.core", "numpy._core"), name): obj
               for (module, name), obj in list(_NUMPY.items()) if module.startswith("numpy.core")})


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the names listed above; anything else raises SourceError."""

    def __init__(self, file: io.BufferedIOBase, source: str):
        super().__init__(file)
        self._source = source

    def find_class(self, module: str, name: str) -> object:
        """The allowed object `module.name`; SourceError for every other class or function."""
        if module in ("builtins", "__builtin__") and name in _BUILTINS:
            return getattr(builtins, name)
        found = _NUMPY.get((module, name))
        if found is not None:
            return found
        raise SourceError(f"{self._source}: refuses to unpickle {module}.{name} "
                          "(only builtins and numpy arrays are allowed)")

    def persistent_load(self, pid: object) -> object:
        """Persistent ids are never part of a plain log: refuse them."""
        raise SourceError(f"{self._source}: refuses to unpickle a persistent id "
                          "(only builtins and numpy arrays are allowed)")


def restricted_load(path: str | Path) -> object:
    """The object pickled in file `path`, unpickling only builtins and numpy arrays, dtypes and scalars.

    Raises:
        SourceError: naming the file, when it cannot be read, is truncated or corrupt, or names any other
            class or function.
    """
    source = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise SourceError(f"{source}: cannot be read ({error.strerror or error})") from error
    try:
        return _RestrictedUnpickler(io.BytesIO(data), source).load()
    except SourceError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            struct.error, UnicodeDecodeError, MemoryError, OverflowError, RecursionError) as error:
        raise SourceError(f"{source}: is not a readable pickle (truncated or corrupt: "
                          f"{type(error).__name__}: {error})") from error
