"""Scenes, worlds and episodes depend on (seed, generator version) only: not on the CPU, BLAS or threads.

- FINGERPRINTS: exact content digests (every bit, `scenes.digest`) of one scene of every scenario type, one
  world of every kind and PointNav episodes of both robots, recorded with synthetic-drive/3 and
  synthetic-nav/2. They must hold on any x86-64 (with or without AVX-512) and on aarch64.
- The same digests in subprocesses under other OpenBLAS kernels, numpy CPU-feature settings and threads.
- A tripwire: generation calls none of the functions whose last bit depends on the machine.
- `scenes.portable` itself: accuracy against numpy / libm, and recorded bits of its kernels.
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from scenes import portable
from tests import fingerprints

ROOT = Path(__file__).resolve().parents[2]

FINGERPRINTS = {
    "STRAIGHT_ROAD": "b56703748f3edc1e",
    "CURVED_ROAD": "b9ac99835c23a2af",
    "INTERSECTION_LEFT": "a0a5374b8152514f",
    "INTERSECTION_RIGHT": "75a0d53d51c11159",
    "INTERSECTION_STRAIGHT": "35fec624b203c546",
    "MERGE": "27ddf35120e2e22a",
    "LANE_DROP": "2531915d0435f128",
    "PARKED_VEHICLE": "c733afd273c47c1d",
    "SLOW_VEHICLE": "a55098dde972775a",
    "PEDESTRIAN_CROSSING": "faa21dd3705ccfea",
    "world:rooms": "caddfb64fc790917",
    "world:cluttered": "215cf382a1251d53",
    "world:passages": "74e74eeef8e8083a",
    "episodes:rooms:wheeled": "8d43014760bf38c6",
    "episodes:rooms:quadruped": "44a003414cfd92d7",
    "episodes:cluttered:wheeled": "630dc23b261a2dfb",
    "episodes:cluttered:quadruped": "b3a9d9f82a204358",
    "episodes:passages:wheeled": "22c829eeb46490b4",
    "episodes:passages:quadruped": "18d304c9bc09a7bb",
}


def test_every_scenario_world_and_episode_matches_its_recorded_fingerprint():
    assert fingerprints.compute() == FINGERPRINTS


def _environments() -> dict[str, dict[str, str]]:
    """Settings that change which kernels numpy and OpenBLAS run, as the CPU allows."""
    from numpy.core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    envs = {"one thread": {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}}
    if platform.machine() in ("x86_64", "AMD64"):
        for core in ("Nehalem", "Sandybridge", "Haswell"):
            envs[f"OpenBLAS {core}"] = {"OPENBLAS_CORETYPE": core}
    else:
        envs["OpenBLAS ARMV8"] = {"OPENBLAS_CORETYPE": "ARMV8"}
    dispatched = [f for f in __cpu_dispatch__ if __cpu_features__.get(f)]
    avx512 = [f for f in dispatched if f.startswith("AVX512")]
    if avx512:  # SVML and numpy's own AVX-512 kernels off
        envs["numpy without AVX-512"] = {"NPY_DISABLE_CPU_FEATURES": " ".join(avx512)}
    if dispatched:
        envs["numpy baseline only"] = {"NPY_DISABLE_CPU_FEATURES": " ".join(dispatched)}
    return envs


def _fingerprints_in_subprocess(extra_env: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES")}
    env.update(extra_env)
    done = subprocess.run([sys.executable, "-m", "tests.fingerprints"], cwd=ROOT, env=env, capture_output=True,
                          check=False, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_fingerprints_do_not_depend_on_blas_kernels_cpu_features_or_threads():
    envs = _environments()
    assert len(envs) >= 3
    with ThreadPoolExecutor(2) as pool:
        results = dict(zip(envs, pool.map(_fingerprints_in_subprocess, envs.values())))
    for name, result in results.items():
        differing = [key for key in FINGERPRINTS if result.get(key) != FINGERPRINTS[key]]
        assert not differing, f"{name}: {differing} differ"


# --- the tripwire: machine-dependent functions must not run while a scene, world or episode is made ---

_NUMPY_BANNED = ("sin", "cos", "tan", "arcsin", "arccos", "arctan", "arctan2", "sinh", "cosh", "tanh", "exp",
                 "exp2", "expm1", "log", "log2", "log10", "log1p", "power", "float_power", "hypot", "cbrt",
                 "dot", "vdot", "inner", "outer", "matmul", "einsum", "tensordot", "convolve", "correlate",
                 "interp", "angle", "deg2rad", "rad2deg")
_MATH_BANNED = ("sin", "cos", "tan", "asin", "acos", "atan", "atan2", "sinh", "cosh", "tanh", "exp", "expm1",
                "log", "log2", "log10", "log1p", "pow", "hypot", "dist", "erf", "erfc", "gamma", "lgamma")
_GENERATOR_EXACT = ("random", "integers", "choice", "permutation", "shuffle", "bytes")  # integer arithmetic


class _ExactDrawsOnly:
    """A numpy Generator that refuses the distributions computed with libm (uniform's C code may be fused)."""

    def __init__(self, generator: np.random.Generator):
        self.generator = generator

    def __getattr__(self, name: str):
        if name in _GENERATOR_EXACT:
            return getattr(self.generator, name)
        return _tripped(f"Generator.{name}")


def _tripped(name: str):
    def call(*args, **kwargs):
        raise AssertionError(f"{name} was called while generating (its last bit depends on the CPU)")

    return call


def test_generation_calls_no_machine_dependent_function(monkeypatch):
    from scenes.nav import ROBOTS
    from scenes.nav.episodes import sample_episode
    from scenes.nav.generator import WORLD_KINDS, generate_world
    from scenes.nav.mujoco_world import MujocoNavWorld
    from scenes.portable import PortableRandom
    from scenes.synthetic import SYNTHETIC_SCENARIOS, generate_scene

    for name in _NUMPY_BANNED:
        monkeypatch.setattr(np, name, _tripped(f"numpy.{name}"))
    monkeypatch.setattr(np.linalg, "norm", _tripped("numpy.linalg.norm"))
    for name in _MATH_BANNED:
        monkeypatch.setattr(math, name, _tripped(f"math.{name}"))
    default_rng = np.random.default_rng
    monkeypatch.setattr(np.random, "default_rng", lambda *args: _ExactDrawsOnly(default_rng(*args)))
    for k, scenario in enumerate(SYNTHETIC_SCENARIOS):
        generate_scene(fingerprints.SCENE_SEED + k, "val", scenario)
    for kind in WORLD_KINDS:
        world = MujocoNavWorld(generate_world(kind, 5))
        for robot in ROBOTS.values():
            assert sample_episode(world, robot, PortableRandom(1), "e") is not None
    with pytest.raises(AssertionError, match="numpy.sin"):  # the tripwire itself works
        np.sin(1.0)


GENERATOR_MODULES = ("scenes/synthetic", "scenes/nav/generator.py", "scenes/nav/world.py", "scenes/nav/grid.py",
                     "scenes/nav/episodes.py", "scenes/geometry.py", "eval/pointnav/benchmark.py")


def _sources() -> list[Path]:
    files = []
    for entry in GENERATOR_MODULES:
        path = ROOT / entry
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return files


def test_generator_sources_use_no_matrix_product_or_float_power():
    """`@` calls BLAS and `x ** y` calls libm's pow (numpy's SVML pow on AVX-512), which the tripwire cannot
    intercept; only integer literals may be raised to a power."""
    found = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.BinOp | ast.AugAssign) and isinstance(node.op, ast.MatMult):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} @")
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow) and not (
                    isinstance(node.left, ast.Constant) and isinstance(node.right, ast.Constant)
                    and isinstance(node.left.value, int)):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} **")
    assert not found


# --- scenes.portable ---

def _ulps(a: np.ndarray, b: np.ndarray) -> float:
    scale = np.spacing(np.maximum(np.abs(a), np.abs(b)))
    return float(np.max(np.abs(a - b) / scale))


def _libm(function, *arrays: np.ndarray) -> np.ndarray:
    """The C library's `function` (Python's math module calls libm) elementwise: numpy's own ufuncs may take
    SIMD paths (AVX-512 SVML) that are themselves 2 ulp from libm on some CPUs."""
    return np.vectorize(function, otypes=[np.float64])(*arrays)


def test_portable_functions_are_within_one_ulp_of_the_c_library():
    rng = np.random.default_rng(0)
    angles = np.concatenate([rng.uniform(-4, 4, 50_000), rng.uniform(-3000, 3000, 50_000)])
    sin, cos = portable.sincos(angles)
    assert _ulps(sin, _libm(math.sin, angles)) <= 1 and _ulps(cos, _libm(math.cos, angles)) <= 1
    values = np.concatenate([rng.uniform(-3, 3, 50_000), rng.uniform(-1e4, 1e4, 5_000)])
    assert _ulps(portable.arctan(values), _libm(math.atan, values)) <= 1
    y, x = rng.normal(size=(2, 50_000))
    assert _ulps(portable.arctan2(y, x), _libm(math.atan2, y, x)) <= 1
    positive = np.concatenate([rng.uniform(1e-9, 10, 50_000), np.exp(rng.uniform(-700, 700, 5_000))])
    assert _ulps(portable.log(positive), _libm(math.log, positive)) <= 1


def test_portable_special_values():
    assert portable.sin(0.0) == 0.0 and portable.cos(0.0) == 1.0
    assert portable.sincos(np.pi / 2) == (1.0, pytest.approx(6.123233995736766e-17, rel=1e-12))
    assert abs(portable.sin(np.pi)) < 1.3e-16 and portable.cos(np.pi) == -1.0
    assert portable.arctan(1.0) == math.pi / 4 and portable.arctan(np.inf) == math.pi / 2
    assert portable.log(1.0) == 0.0 and portable.log(2.0) == math.log(2.0)
    for y, x, expected in ((0.0, 0.0, 0.0), (0.0, -0.0, math.pi), (-0.0, -1.0, -math.pi), (1.0, 0.0, math.pi / 2),
                           (1.0, -0.0, math.pi / 2), (-1.0, 0.0, -math.pi / 2), (0.0, 2.0, 0.0), (1.0, 1.0, math.pi / 4)):
        assert portable.arctan2(y, x) == expected, (y, x)
    assert math.copysign(1.0, portable.arctan2(-0.0, 1.0)) == -1.0
    assert portable.hypot(3.0, 4.0) == 5.0 and portable.norm(np.array([[3.0, 4.0]]))[0] == 5.0
    with pytest.raises(ValueError, match="finite"):
        portable.sin(np.nan)
    with pytest.raises(ValueError, match="positive"):
        portable.log(0.0)


def test_portable_scalars_and_arrays_give_the_same_bits():
    angles = np.random.default_rng(1).uniform(-50, 50, 2_000)
    scalar = np.array([portable.sincos(float(a)) for a in angles])
    assert scalar.tobytes() == np.stack(portable.sincos(angles), -1).tobytes()


def test_portable_kernels_give_recorded_bits():
    """The bits of sin, cos, arctan2 and log over a fixed grid: the same on every machine."""
    x = np.linspace(-20.0, 20.0, 4001)
    h = hashlib.sha256()
    for array in (*portable.sincos(x), portable.arctan2(x, x[::-1] + 0.5), portable.log(np.abs(x) + 1e-3)):
        h.update(np.ascontiguousarray(array, dtype="<f8").tobytes())
    assert h.hexdigest()[:16] == "f03d6fb0055bd5a4"


def test_interp_moving_average_and_rotation_match_numpy():
    rng = np.random.default_rng(2)
    xp, fp = np.sort(rng.uniform(0, 10, 40)), rng.normal(size=40)
    x = np.concatenate([rng.uniform(-1, 11, 500), xp])
    assert portable.interp(x, xp, fp).tobytes() == np.interp(x, xp, fp).tobytes()
    v = rng.normal(size=200)
    assert np.allclose(portable.moving_average(v, 5), np.convolve(v, np.ones(5) / 5, mode="same"), atol=1e-15)
    points = rng.normal(size=(30, 2))
    c, s = math.cos(0.7), math.sin(0.7)
    assert np.allclose(portable.rotate(points, (c, s)), points @ np.array([[c, s], [-s, c]]), atol=1e-15)


def test_portable_random_draws_like_numpy():
    ours, theirs = portable.PortableRandom(7), np.random.default_rng(7)
    a, b = ours.uniform(-3.0, 5.0, 10_000), theirs.uniform(-3.0, 5.0, 10_000)
    assert np.allclose(a, b, rtol=0, atol=1e-14)  # the same draws
    if platform.machine() == "x86_64":  # numpy's C code is not fused there: the same bits
        assert a.tobytes() == b.tobytes()
    assert isinstance(ours.uniform(1.0, 2.0), float)
    e = portable.PortableRandom(3).exponential(2.0, 200_000)
    assert abs(e.mean() - 2.0) < 0.02 and abs(e.var() - 4.0) < 0.1 and e.min() >= 0.0
