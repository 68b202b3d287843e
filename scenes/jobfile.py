"""The job file of a resumable dataset job: what the job was asked to do, checked again on --resume."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from scenes.errors import ConfigError, DiffplanError
from scenes.store.layout import atomic_write_bytes


def open_job_dir(root: Path, job_file: str, config: Mapping[str, object], command: str, resume: bool,
                 defaults: Mapping[str, object] | None = None) -> bool:
    """Create `root` with `root/job_file` holding `config`, or check that a resumed job asks for the same.

    Args:
        command: the CLI command that writes such folders, for messages.
        defaults: values of fields that older job files may lack.
    Returns:
        True when an existing job is resumed.
    """
    job = root / job_file
    if root.exists() and not root.is_dir():
        raise DiffplanError(f"{root}: exists and is not a directory")
    if root.exists() and any(root.iterdir()):
        if not resume:
            raise ConfigError("resume", f"{root}: already exists and is not empty; continue it with {{field}}")
        if not job.is_file():
            raise DiffplanError(f"{root}: not a `{command}` output (no {job_file}); cannot resume")
        try:
            previous = json.loads(job.read_text())
        except json.JSONDecodeError as error:
            raise DiffplanError(f"{job}: corrupt job file ({error.msg})") from None
        for key, value in config.items():
            before = previous.get(key, (defaults or {}).get(key))
            if before != value:
                raise DiffplanError(f"{root}: cannot resume, it was started with {key}={before!r}, not {value!r}")
        return True
    job.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(job, (json.dumps(dict(config), indent=2, sort_keys=True) + "\n").encode())
    return False
