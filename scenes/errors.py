"""The errors library code raises for bad input, and the base the command line turns into one-line messages.

Every package's typed errors (ValidationError, DatasetError, ManifestError, FormulaError, ...) derive from
`DiffplanError`; `diffplan.console.user_errors` prints any of them as `error: <message>` with exit code 2.
Library messages name the field, file or value, never a command-line flag: a `ConfigError` keeps the field
apart so that the command line can show it as its option (`n` as `--n`).
"""

from __future__ import annotations


class DiffplanError(Exception):
    """Bad input found by library code; the message is one line naming the file, field or value."""

    def __init__(self, message: object = ""):
        super().__init__(" ".join(str(message).split()))


class ConfigError(DiffplanError, ValueError):
    """A configuration field has a bad value.

    `template` names the field as "{field}": str(error) fills in the field's name ("n must be positive, got
    0"), `as_option()` its command-line option ("--n must be positive, got 0").
    """

    def __init__(self, field: str, template: str):
        self.field, self.template = field, template
        super().__init__(template.format(field=field))

    def as_option(self) -> str:
        """The message with the field written as its command-line option."""
        return " ".join(self.template.format(field="--" + self.field.replace("_", "-")).split())

    def __reduce__(self):  # picklable across worker processes
        return type(self), (self.field, self.template)
