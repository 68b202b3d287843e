"""Command-line plumbing shared by every package's Typer sub-app: one-line errors and progress bars."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from scenes._checks import ValidationError

stderr = Console(stderr=True)


def output_console() -> Console:
    """Console for results on stdout; 160 columns (or $COLUMNS) when piped, so tables stay readable in logs."""
    if sys.stdout.isatty():
        return Console()
    return Console(width=int(os.environ.get("COLUMNS", "160")))


class UserError(Exception):
    """Bad input from the user: reported as one line, exit code 2, no traceback."""


def fail(message: str) -> typer.Exit:
    """Print `error: message` on stderr and return the Exit to raise."""
    stderr.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


@contextlib.contextmanager
def user_errors(*extra: type[BaseException]) -> Iterator[None]:
    """Turn expected errors (bad input, bad files) into one clear line and a non-zero exit."""
    try:
        yield
    except (UserError, ValidationError, *extra) as error:
        raise fail(str(error)) from None
    except KeyboardInterrupt:
        stderr.print("[yellow]interrupted[/]: finished shards are kept; rerun with --resume to continue")
        raise typer.Exit(code=130) from None


class RateColumn(ProgressColumn):
    """Items per second, e.g. '37.2 scenes/s'."""

    def __init__(self, unit: str):
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:6.1f} {self.unit}/s" if speed else f"   -- {self.unit}/s", style="cyan")


def progress_bar(unit: str) -> Progress:
    """A rich progress bar on stderr with count, rate and ETA; silent when stderr is not a terminal."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(unit),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=stderr,
        disable=not sys.stderr.isatty(),
    )
