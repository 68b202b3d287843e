"""The one error type of the store."""

from __future__ import annotations

from scenes.errors import ConfigError, DiffplanError


class DatasetError(DiffplanError):
    """A dataset cannot be written or read. The message is one line naming the path, field or value."""


class IncompleteDatasetError(DatasetError, ConfigError):
    """A dataset folder whose job stopped before it finished: resuming the job completes it."""

    def __init__(self, root: object):
        self.root = root
        ConfigError.__init__(self, "resume", f"{root}: incomplete dataset, its job stopped before the end; "
                                             "rerun the job with {field} to finish it")

    def __reduce__(self):
        return type(self), (self.root,)


def first_line(error: BaseException) -> str:
    """The first non-empty line of an exception's message, for one-line DatasetErrors."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
