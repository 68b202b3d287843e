"""NLP functions as compiled C: CasADi generates the code, gcc builds it once, a disk cache keeps the library.

A solver on the library runs the same operations as CasADi's SX virtual machine (the same iterates on
datagen's problems) at about 1.5x the speed per IPOPT iteration. Building a variant takes gcc -O1 about a
minute per 2 obstacle slots, once per machine: the library is named by a hash of its C source, written
atomically, and built by one process while the others wait on a file lock.

The cache is $DIFFPLAN_CACHE/trajopt, by default ~/.cache/diffplan/trajopt.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import casadi as ca

from scenes.errors import DiffplanError

CACHE_ENV = "DIFFPLAN_CACHE"
COMPILER = "gcc"
FLAGS = ("-O1", "-ffp-contract=off", "-fPIC", "-shared")  # no fused multiply-adds: the VM's rounding


class CompileError(DiffplanError, RuntimeError):
    """No C compiler, or it failed on the generated code."""


def cache_dir() -> Path:
    """Where compiled solvers are cached: $DIFFPLAN_CACHE/trajopt, default ~/.cache/diffplan/trajopt."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "diffplan") / "trajopt"


def compiled_library(solver: ca.Function) -> Path:
    """Path of the shared library holding `solver`'s NLP functions (generate_dependencies), built if
    missing."""
    compiler = shutil.which(COMPILER)
    if compiler is None:
        raise CompileError(f"compiled trajopt needs a C compiler: {COMPILER} is not on PATH")
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory, prefix=".build-") as tmp:
        source = Path(tmp) / f"{solver.name()}.c"
        cwd = os.getcwd()
        try:  # generate_dependencies writes into the working directory
            os.chdir(tmp)
            solver.generate_dependencies(source.name)
        finally:
            os.chdir(cwd)
        digest = hashlib.sha256(source.read_bytes() + " ".join(FLAGS).encode()).hexdigest()[:16]
        target = directory / f"{solver.name()}-{digest}.so"
        if target.is_file():
            return target
        with open(directory / f"{target.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building the same library
            if not target.is_file():
                built = Path(tmp) / target.name
                result = subprocess.run([compiler, *FLAGS, str(source), "-o", str(built)], check=False,
                                        capture_output=True,
                                        text=True)
                if result.returncode != 0:
                    raise CompileError(f"{COMPILER} failed on {source.name}: {result.stderr.strip()[:500]}")
                os.replace(built, target)
    return target
