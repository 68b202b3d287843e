"""One runner for every sharded job: dataset generation (scenes, driving demos, navigation demos) and evaluation.

A job (`UnitJob`) splits its work into units (a shard of scenes, demos or episodes; a chunk of evaluated
scenes). A unit is computed on its own, from seeds that depend only on (job seed, unit), and committed to the
job folder atomically, its unit record last. `run_job`:

- creates the folder and its job file (`meta/job.json`), or on resume checks that the job asks for the same
  thing and removes the temporary files a killed run left;
- skips the units an earlier run committed; a unit whose files are damaged is named and run again;
- runs the rest in this process, in a local pool of spawned processes (each with an equal share of the cores
  for torch and BLAS threads), or as Ray tasks (`ray="local"` starts a private loopback cluster);
- stops within seconds on Ctrl-C and never commits an interrupted unit: pool workers ignore SIGINT and are
  terminated; in this process the interrupt is also remembered (IPOPT swallows it inside a solve) and the
  unit is abandoned at its next item, before it commits. A resumed job so writes the bytes of a clean run.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, Self, TypeVar

from scenes.errors import ConfigError, DiffplanError
from scenes.store.layout import atomic_write_bytes

JOB_FILE = "meta/job.json"
ReportT = TypeVar("ReportT")


class JobError(DiffplanError):
    """A job folder cannot be created or resumed (one line naming the folder and why)."""


@dataclass(frozen=True)
class RunOptions:
    """How to run a job: `workers` local processes (1: this process), or Ray tasks at `ray`; `resume` continues
    the job in an existing folder."""

    workers: int = 1
    ray: str | None = None
    resume: bool = False

    def validate(self) -> RunOptions:
        """The options themselves; ConfigError naming the option when workers < 1 or Ray is not installed."""
        if self.ray is None and self.workers < 1:
            raise ConfigError("workers", f"{{field}} must be positive, got {self.workers}")
        if self.ray is not None:
            try:
                import ray  # noqa: F401
            except ImportError:
                raise ConfigError("ray", "{field} needs Ray, which is not installed: pip install "
                                         "'diffplan[ray]' (or 'ray[default]')") from None
        return self


class UnitJob(Protocol[ReportT]):
    """A job of independent units. Reports are small picklable records of what a unit did.

    `run_unit` computes unit `unit` and then commits it (data files, then its unit record); it calls
    `on_item(partial report)` after each item, before committing, and stops if that raises.
    """

    command: str  # what writes such folders, e.g. "diffplan datagen drive" (for messages)

    def job_record(self) -> dict[str, object]:
        """What the job file records; a resumed job must ask for the same."""
        ...

    def job_defaults(self) -> dict[str, object]:
        """Values of job-file fields that older job files lack (added by later versions)."""
        ...

    @property
    def num_units(self) -> int:
        """Number of units; they are numbered 0 .. num_units - 1."""
        ...

    def finished(self, root: Path) -> tuple[dict[int, ReportT], dict[int, str]]:
        """Units an earlier run committed, and {unit: why} of committed units whose files are damaged."""
        ...

    def run_unit(self, root: Path, unit: int, on_item: Callable[[ReportT], None]) -> ReportT:
        """Compute and commit unit `unit` (see the class docstring); its report."""
        ...

    def amount(self, report: ReportT) -> int:
        """Items a (partial) report counts for progress."""
        ...

    def finish(self, root: Path, run: JobRun[ReportT]) -> Any:
        """After every unit is committed: write what spans units (e.g. the dataset's index), return a summary."""
        ...


class JobProgress(Protocol):
    """What a job reports while it runs (diffplan.console.JobBar draws it)."""

    def done_before(self, amount: int) -> None:
        """Count `amount` items that an earlier run committed."""
        ...

    def advance(self, amount: int) -> None:
        """Count `amount` items done by this run."""
        ...

    def unit_report(self, report: Any) -> None:
        """A unit's report, once it is committed (or found committed)."""
        ...

    def warn(self, message: str) -> None:
        """Show a warning (e.g. a damaged unit that runs again)."""
        ...


@dataclass
class JobRun(Generic[ReportT]):
    """The reports of every unit (committed earlier or now) and which of them this run computed."""

    reports: dict[int, ReportT]
    new_units: set[int]


def run_job(job: UnitJob[ReportT], root: Path, options: RunOptions = RunOptions(),
            progress: JobProgress | None = None) -> Any:
    """Run every unit of `job` not yet committed in `root` (see the module docstring); return
    `job.finish(...)`."""
    options.validate()
    root = Path(root)
    if open_job_folder(root, job.job_record(), job.command, options.resume, job.job_defaults()):
        remove_leftovers(root)
    reports, damaged = job.finished(root)
    for unit, why in sorted(damaged.items()):
        if progress is not None:
            progress.warn(f"unit {unit}: {why}; running it again")
    if progress is not None:
        progress.done_before(sum(job.amount(r) for r in reports.values()))
        for report in reports.values():
            progress.unit_report(report)
    todo = [unit for unit in range(job.num_units) if unit not in reports]
    if options.ray is not None:
        results = _on_ray(job, root, todo, options.ray)
    elif options.workers == 1:
        results = _in_this_process(job, root, todo, progress)
    else:
        results = _in_a_pool(job, root, todo, options.workers)
    for unit, report in results:
        reports[unit] = report
        if progress is not None:
            if options.ray is not None or options.workers > 1:
                progress.advance(job.amount(report))
            progress.unit_report(report)
    return job.finish(root, JobRun(dict(sorted(reports.items())), set(todo)))


# --- the job folder ---

def open_job_folder(root: Path, record: dict[str, object], command: str, resume: bool,
                    defaults: dict[str, object] | None = None) -> bool:
    """Create `root` with its job file, or check that a resumed job asks for the same. True when resuming."""
    job = root / JOB_FILE
    if root.exists() and not root.is_dir():
        raise JobError(f"{root}: exists and is not a directory")
    if root.exists() and any(root.iterdir()):
        if not resume:
            raise ConfigError("resume", f"{root}: already exists and is not empty; pass {{field}} to continue it")
        if not job.is_file():
            raise JobError(f"{root}: not a `{command}` output (no {JOB_FILE}); cannot resume it")
        try:
            previous = json.loads(job.read_text())
        except (OSError, ValueError) as error:
            raise JobError(f"{job}: corrupt job file ({error})") from None
        for key, value in record.items():
            before = previous.get(key, (defaults or {}).get(key))
            if before != value:
                raise JobError(f"{root}: cannot resume, it was started with {key}={before!r}, not {value!r}")
        return True
    job.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(job, (json.dumps(dict(record), indent=2, sort_keys=True) + "\n").encode())
    return False


def remove_leftovers(root: Path) -> None:
    """Temporary files of writes a killed run left behind (never data; they would only pollute the folder)."""
    for folder, _, files in os.walk(root):
        for name in files:
            if ".tmp-" in name or name.endswith(".json.tmp"):
                (Path(folder) / name).unlink(missing_ok=True)


# --- backends ---

class _Interrupts:
    """Remembers Ctrl-C while units run in this process (a solver may swallow the KeyboardInterrupt)."""

    def __init__(self):
        self.seen = False
        self.installed = False

    def __enter__(self) -> Self:
        self.previous = signal.getsignal(signal.SIGINT)
        try:
            signal.signal(signal.SIGINT, self._handle)
            self.installed = True
        except ValueError:  # not the main thread: Ctrl-C cannot reach us anyway
            pass
        return self

    def __exit__(self, *exc) -> None:
        if self.installed:
            signal.signal(signal.SIGINT, self.previous if self.previous is not None else signal.default_int_handler)

    def _handle(self, signum, frame) -> None:
        self.seen = True
        raise KeyboardInterrupt

    def check(self) -> None:
        if self.seen:
            raise KeyboardInterrupt


def _in_this_process(job: UnitJob[ReportT], root: Path, todo: list[int], progress: JobProgress | None
                     ) -> Iterator[tuple[int, ReportT]]:
    with _Interrupts() as interrupts:
        def on_item(partial: ReportT) -> None:
            interrupts.check()  # before the unit commits: an interrupted unit is never written
            if progress is not None:
                progress.advance(job.amount(partial))

        for unit in todo:
            report = job.run_unit(root, unit, on_item)
            interrupts.check()
            yield unit, report


def _worker_setup(threads: int) -> None:
    """Pool worker: leave Ctrl-C to the parent, and use `threads` torch/BLAS threads."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)


def _unit_in_worker(job: UnitJob[ReportT], root: str, unit: int) -> tuple[int, ReportT]:
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    return unit, job.run_unit(Path(root), unit, lambda partial: None)


def _unit_star(arguments: tuple) -> tuple[int, Any]:
    return _unit_in_worker(*arguments)


def _in_a_pool(job: UnitJob[ReportT], root: Path, todo: list[int], workers: int
               ) -> Iterator[tuple[int, ReportT]]:
    """Spawned workers (a forked child of a parent that runs torch threads can deadlock), each with
    cores // workers threads; terminated at once when the parent stops (Ctrl-C, an error)."""
    if not todo:
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")
    pool = context.Pool(min(workers, len(todo)), initializer=_worker_setup, initargs=(threads,))
    try:
        yield from pool.imap_unordered(_unit_star, [(job, str(root), unit) for unit in todo])
        pool.close()
    finally:
        pool.terminate()
        pool.join()


def _on_ray(job: UnitJob[ReportT], root: Path, todo: list[int], address: str) -> Iterator[tuple[int, ReportT]]:
    """One Ray task per unit. "local" starts a private cluster bound to 127.0.0.1 (no dashboard) for this
    run; another address (e.g. "auto", "ray://host:10001") joins an existing cluster. A cluster started here is
    always shut down, and pending tasks are cancelled when the run stops."""
    import ray

    if not todo:
        return
    started_here = not ray.is_initialized()
    if started_here:
        if address == "local":
            ray.init(include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
        else:
            ray.init(address=address, log_to_driver=False)
    pending: dict = {}
    try:
        task: Any = ray.remote(_unit_in_worker)  # a ray RemoteFunction
        pending = {task.remote(job, str(root), unit): unit for unit in todo}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            pending.pop(done[0])
            yield ray.get(done[0])
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
        if started_here:
            ray.shutdown()
