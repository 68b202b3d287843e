"""Command-line plumbing shared by every command: one-line errors and progress bars."""

from __future__ import annotations

import contextlib
import datetime
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from scenes.errors import ConfigError, DiffplanError

stderr = Console(stderr=True)


def quantity_table(title: str, rows: list[tuple[str, str]]) -> Table:
    """A two-column "quantity | value" table, as the data jobs print at the end."""
    table = Table(title=title)
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for quantity, value in rows:
        table.add_row(quantity, value)
    return table


def output_console() -> Console:
    """Console for results on stdout; 160 columns (or $COLUMNS) when piped, so tables stay readable in logs."""
    if sys.stdout.isatty():
        return Console()
    return Console(width=int(os.environ.get("COLUMNS", "160")))


class UserError(DiffplanError):
    """Bad input the command line itself finds (an option's value): one line, exit code 2, no traceback."""


def fail(message: str) -> typer.Exit:
    """Print `error: message` on stderr and return the Exit to raise."""
    stderr.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


@contextlib.contextmanager
def user_errors(*extra: type[BaseException]) -> Iterator[None]:
    """Turn expected errors (bad input, bad files: every DiffplanError, and `extra`) into one clear line and
    exit code 2; a ConfigError names its field as the command-line option."""
    try:
        yield
    except ConfigError as error:
        raise fail(error.as_option()) from None
    except (DiffplanError, *extra) as error:  # type: ignore[misc]  # mypy does not take a starred tuple here
        raise fail(str(error)) from None
    except KeyboardInterrupt:
        stderr.print("[yellow]interrupted[/]: committed units are kept; rerun with --resume to continue")
        raise typer.Exit(code=130) from None


class RateColumn(ProgressColumn):
    """Items per second, e.g. '37.2 scenes/s'."""

    def __init__(self, unit: str):
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        """The task's rate, e.g. ' 37.2 scenes/s' (its finished speed once done); dashes before it has one."""
        speed = task.finished_speed or task.speed
        return Text(f"{speed:6.1f} {self.unit}/s" if speed else f"   -- {self.unit}/s", style="cyan")


def progress_bar(unit: str) -> Progress:
    """A rich progress bar on stderr with count, rate and ETA; when stderr is not a terminal (nohup, a
    cluster's log file), a plain line every 30 s and at the end instead (`LogLines`)."""
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(unit),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    if sys.stderr.isatty():
        return Progress(*columns, console=stderr)
    return LogLines(unit)


def count_done_before(bar: Progress, task: TaskID, amount: float) -> None:
    """Count `amount` items that an earlier run finished (a resumed job): the bar moves, the rate does not (it
    would otherwise read hundreds of thousands per second). Call it before this run's own work."""
    if amount:
        current = next(t for t in bar.tasks if t.id == task)
        # (rich keeps `completed` as a float; `reset` is annotated int)
        bar.reset(task, total=current.total, completed=current.completed + amount,  # type: ignore[arg-type]
                  description=current.description)


class LogLines(Progress):
    """Progress that draws nothing live and writes `description  done/total (pct)  rate unit/s  ETA` lines to
    stderr: every `interval` [s] of wall time and when the bar stops (tasks that have done nothing are left
    out, so an error before any work stays the only line)."""

    def __init__(self, unit: str, interval: float = 30.0, console: Console | None = None,
                 get_time: Callable[[], float] | None = None):
        super().__init__(console=console or stderr, disable=True, get_time=get_time)
        self.unit, self.interval = unit, interval
        self._last = time.monotonic()
        self._done_before: dict[TaskID, float] = {}  # work an earlier run finished, left out of the rate

    def reset(self, task_id: TaskID, **fields) -> None:
        """Reset the task; a `completed` given here is work done before this run (left out of the rate)."""
        super().reset(task_id, **fields)
        self._done_before[task_id] = fields.get("completed", 0)

    def update(self, task_id: TaskID, **fields) -> None:
        """Update the task, then write the lines if `interval` has passed."""
        super().update(task_id, **fields)
        self._maybe_log()

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        """Advance the task, then write the lines if `interval` has passed."""
        super().advance(task_id, advance)
        self._maybe_log()

    def stop(self) -> None:
        """Write the final lines, then stop."""
        self.log_lines()
        super().stop()

    def _maybe_log(self) -> None:
        if time.monotonic() - self._last >= self.interval:
            self.log_lines()

    def log_lines(self) -> None:
        """One line per task now."""
        self._last = time.monotonic()
        for task in self.tasks:
            if not task.completed:
                continue
            total = f"/{task.total:.0f} ({task.percentage:.0f}%)" if task.total else ""
            new = task.completed - self._done_before.get(task.id, 0)
            speed = new / task.elapsed if new > 0 and task.elapsed else None  # this run's mean rate
            rate = f"  {speed:.2f} {self.unit}/s" if speed else ""
            left = (task.total - task.completed) / speed if speed and task.total else None
            eta = f"  ETA {datetime.timedelta(seconds=round(left))}" if left and not task.finished else ""
            self.console.print(f"{task.description}  {task.completed:.0f}{total}{rate}{eta}", highlight=False,
                               markup=False, soft_wrap=True)


# --- the option block and the progress of every sharded job (diffplan.jobs) ---

WorkersOption = Annotated[int, typer.Option(
    help="Local worker processes (spawned; they share the cores). Ignored with --ray.")]
RayOption = Annotated[str | None, typer.Option(
    "--ray", help="Run the units as Ray tasks on this cluster address (e.g. auto, ray://host:10001), or 'local' "
                  "for a private loopback cluster.")]
ResumeOption = Annotated[bool, typer.Option(
    help="Continue an interrupted job in its folder: committed units are kept, the rest run.")]


class JobBar:
    """A sharded job's progress on a `progress_bar`: work an earlier run committed moves the bar without a
    rate; `describe(report)` (optional) turns each unit report into the bar's description."""

    def __init__(self, bar: Progress, task: TaskID, describe: Callable[[object], str | None] | None = None):
        self.bar, self.task, self.describe = bar, task, describe

    def done_before(self, amount: int) -> None:
        """Count `amount` items an earlier run finished (`count_done_before`)."""
        count_done_before(self.bar, self.task, amount)

    def advance(self, amount: int) -> None:
        """Count `amount` items done now."""
        self.bar.advance(self.task, amount)

    def unit_report(self, report: object) -> None:
        """Show `describe(report)` as the bar's description, when it gives one."""
        if self.describe is not None and (description := self.describe(report)):
            self.bar.update(self.task, description=description)

    def warn(self, message: str) -> None:
        """Print `warning: message` on stderr."""
        stderr.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)


def run_with_bar(job, out: Path, options, unit: str, total: int, description: str,
                 describe: Callable[[object], str | None] | None = None):
    """`diffplan.jobs.run_job(job, out, options)` with a progress bar of `total` `unit`s."""
    from diffplan.jobs import run_job

    with progress_bar(unit) as bar:
        task = bar.add_task(description, total=total)
        return run_job(job, out, options, JobBar(bar, task, describe))
