"""The one error type of the store."""

from __future__ import annotations

from scenes.errors import DiffplanError


class DatasetError(DiffplanError):
    """A dataset cannot be written or read. The message is one line naming the path, field or value."""


def first_line(error: BaseException) -> str:
    """The first non-empty line of an exception's message, for one-line DatasetErrors."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
