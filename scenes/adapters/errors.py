"""The error every adapter and exporter raises for bad input: one line naming the file and the field."""

from __future__ import annotations

from scenes.errors import DiffplanError


class SourceError(DiffplanError, ValueError):
    """A log, map or filter file that cannot be read as its format says; the message names file and field."""
