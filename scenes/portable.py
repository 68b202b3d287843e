"""Portable float math: results that are the same bits on every CPU, BLAS and thread count.

Why this module exists. The synthetic generators (driving scenes, navigation worlds, PointNav episodes) must
depend on (seed, generator version) only. Three things in numpy make the last bit of a result depend on
the machine, and discrete decisions downstream turn one last-bit difference into a different scene. The one
seen in the driving scenes is the map's clean-up: Douglas-Peucker simplification at 1e-6 m keeps or drops a
vertex of a lane strip where a connector's curve fades into a straight (its offset from the chord passes
through 1e-6 m), and the drivable polygon's validity repair follows, so the intersection polygons of
INTERSECTION_* scenes had different vertices under OpenBLAS's Haswell and Nehalem kernels (the traffic
simulation itself came out bit-identical there, but its leader, gap and red-light comparisons are the same
kind of knife edge). The three sources:

- **BLAS.** `a @ b`, `np.dot`, `np.convolve` and `np.linalg.norm` of a vector call OpenBLAS, which picks
  its kernels by CPU at run time (`OPENBLAS_CORETYPE` overrides it). The Haswell and Zen kernels use fused
  multiply-adds, Nehalem and Sandybridge do not, SkylakeX has its own: a 2x2 rotation or a 2-vector norm
  rounds differently on each.
- **numpy's CPU dispatch.** On AVX512_SKX CPUs numpy 1.26 runs float64 `sin`, `cos`, `arctan`, `arctan2`,
  `power` and other transcendental ufuncs through Intel SVML, and `exp` / `log` through its own AVX-512
  kernels; elsewhere they call the C library. The results differ in the last bit.
- **The C library.** glibc's `sin`, `cos`, `atan`, `pow`, `exp`, `log` (numpy's non-SIMD path, Python's
  `math` module, `x ** y` on floats, numpy's random distributions that use them) pick FMA variants by CPU
  and are compiled differently on aarch64; they are not correctly rounded, so variants may differ.

What stays portable, and what this module builds on: IEEE-754 binary64 `+ - * /` and `sqrt` are correctly
rounded on every CPU, and each numpy ufunc call or Python float operation is one such operation, so no
compiler can fuse a multiply and an add across them. Comparisons, `floor`, `rint`, `abs`, `minimum`,
`where`, `cumsum` and numpy's pairwise `sum` (a fixed order of additions) are exact or fixed. The
functions below are written with only those: sine and cosine, arctangent and logarithm follow fdlibm's
algorithms and coefficients (accurate to about 1 ulp); rotations, norms and interpolation are spelt out
element by element instead of calling BLAS; random draws other than `rng.random()` and `rng.integers()`
(whose bits are exact) are derived from `rng.random()` here.

The generators use this module for every operation that is not exact. `tests/scenes/test_portability.py`
checks the source of the generator modules for calls that bypass it, and regenerates every scenario
type and world kind under several BLAS kernels and numpy CPU-feature settings.
"""

from __future__ import annotations

import math

import numpy as np

ArrayLike = np.ndarray | float

# fdlibm k_sin.c / k_cos.c
_S1, _S2, _S3 = -1.66666666666666324348e-01, 8.33333333332248946124e-03, -1.98412698298579493134e-04
_S4, _S5, _S6 = 2.75573137070700676789e-06, -2.50507602534068634195e-08, 1.58969099521155010221e-10
_C1, _C2, _C3 = 4.16666666666666019037e-02, -1.38888888888741095749e-03, 2.48015872894767294178e-05
_C4, _C5, _C6 = -2.75573143513906633035e-07, 2.08757232129817482790e-09, -1.13596475577881948265e-11
# fdlibm e_rem_pio2.c: pi/2 in 33-bit pieces (n * piece is exact for |n| < 2^20)
_INV_PIO2 = 6.36619772367581382433e-01
_PIO2_1, _PIO2_1T = 1.57079632673412561417e+00, 6.07710050650619224932e-11
_PIO2_2, _PIO2_2T = 6.07710050630396597660e-11, 2.02226624879595063154e-21
MAX_TRIG_ARGUMENT = 2.0**19 * 1.5707963267948966  # [rad] the two-step reduction is exact below this
# fdlibm s_atan.c
_ATAN_HI = np.array([0.0, 4.63647609000806093515e-01, 7.85398163397448278999e-01, 9.82793723247329054082e-01,
                     1.57079632679489655800e+00])
_ATAN_LO = np.array([0.0, 2.26987774529616870924e-17, 3.06161699786838301793e-17, 1.39033110312309984516e-17,
                     6.12323399573676603587e-17])
_AT = (3.33333333333329318027e-01, -1.99999999998764832476e-01, 1.42857142725034663711e-01,
       -1.11111104054623557880e-01, 9.09088713343650656196e-02, -7.69187620504482999495e-02,
       6.66107313738753120669e-02, -5.83357013379057348645e-02, 4.97687799461593236017e-02,
       -3.65315727442169155270e-02, 1.62858201153657823623e-02)
# the reduced argument (a P - Q) / (R + S a) of each range: a, (2a - 1)/(2 + a), (a - 1)/(1 + a),
# (a - 1.5)/(1 + 1.5 a), -1/a; every unused product is exact (times 1 or 0)
_ATAN_BREAKS = np.array([0.4375, 0.6875, 1.1875, 2.4375])
_ATAN_P, _ATAN_Q = np.array([1.0, 2.0, 1.0, 1.0, 0.0]), np.array([0.0, 1.0, 1.0, 1.5, 1.0])
_ATAN_R, _ATAN_S = np.array([1.0, 2.0, 1.0, 1.0, 0.0]), np.array([0.0, 1.0, 1.0, 1.5, 1.0])
# fdlibm e_atan2.c
_PI, _PI_LO, _PIO2 = 3.1415926535897931160e+00, 1.2246467991473531772e-16, 1.5707963267948965580e+00
# fdlibm e_log.c
_LN2_HI, _LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10
_LG = (6.666666666666735130e-01, 3.999999999940941908e-01, 2.857142874366239149e-01, 2.222219843214978396e-01,
       1.818357216161805012e-01, 1.531383769920937332e-01, 1.479819860511658591e-01)
_SQRT_HALF = 0.70710678118654752440


def _out(value: np.ndarray, like) -> np.ndarray:
    """A 0-d result as a numpy scalar (so float(...) and comparisons work as for numpy's ufuncs). Typed as an
    array, as are the public functions that return it: a numpy scalar has the array interface."""
    return value[()] if np.ndim(like) == 0 else value


def _kernel_sin(x, y):
    """sin(x + y) for |x + y| <= pi/4, y the tail of the reduced argument."""
    z = x * x
    v = z * x
    r = _S2 + z * (_S3 + z * (_S4 + z * (_S5 + z * _S6)))
    return x - ((z * (0.5 * y - v * r) - y) - v * _S1)


def _kernel_cos(x, y):
    """cos(x + y) for |x + y| <= pi/4."""
    z = x * x
    w = z * z
    r = z * (_C1 + z * (_C2 + z * _C3)) + w * w * (_C4 + z * (_C5 + z * _C6))
    hz = 0.5 * z
    w = 1.0 - hz
    return w + (((1.0 - w) - hz) + (z * r - x * y))


def _reduce(x):
    """x = n pi/2 + y0 + y1, |y0 + y1| <= pi/4 (fdlibm's two-step Cody-Waite reduction); arrays or floats."""
    n = np.rint(x * _INV_PIO2) if isinstance(x, np.ndarray) else float(round(x * _INV_PIO2))
    t = x - n * _PIO2_1
    w = n * _PIO2_2
    r = t - w
    w = n * _PIO2_2T - ((t - r) - w)
    y0 = r - w
    return n, y0, (r - y0) - w


def sincos(angle: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(sin, cos) of `angle` [rad], |angle| < MAX_TRIG_ARGUMENT; portable (see the module docstring).

    A scalar gives numpy float64 scalars, computed with Python floats by the same operations as arrays.
    """
    if np.ndim(angle) == 0:
        v = float(angle)
        if not abs(v) < MAX_TRIG_ARGUMENT:
            raise ValueError(
                f"portable sin/cos take finite angles below {MAX_TRIG_ARGUMENT:.3g} rad, got {v}")
        n, y0, y1 = _reduce(v)
        ks, kc = _kernel_sin(y0, y1), _kernel_cos(y0, y1)
        quadrant = int(n) & 3
        sin, cos = (kc, ks) if quadrant & 1 else (ks, kc)
        return (np.float64(-sin if quadrant >= 2 else sin),  # type: ignore[return-value]  # (see _out)
                np.float64(-cos if quadrant in (1, 2) else cos))
    x = np.asarray(angle, dtype=np.float64)
    if not np.all(np.abs(x) < MAX_TRIG_ARGUMENT):  # also refuses NaN and inf
        raise ValueError(f"portable sin/cos take finite angles below {MAX_TRIG_ARGUMENT:.3g} rad in magnitude")
    n, y0, y1 = _reduce(x)
    ks, kc = _kernel_sin(y0, y1), _kernel_cos(y0, y1)
    quadrant = n.astype(np.int64) & 3
    odd = (quadrant & 1).astype(bool)
    sin, cos = np.where(odd, kc, ks), np.where(odd, ks, kc)
    np.negative(sin, out=sin, where=quadrant >= 2)
    np.negative(cos, out=cos, where=(quadrant == 1) | (quadrant == 2))
    return sin, cos


def sin(angle: ArrayLike) -> np.ndarray:
    """Portable sine of `angle` [rad]."""
    return sincos(angle)[0]


def cos(angle: ArrayLike) -> np.ndarray:
    """Portable cosine of `angle` [rad]."""
    return sincos(angle)[1]


def arctan(value: ArrayLike) -> np.ndarray:
    """Portable arctangent [rad] in [-pi/2, pi/2] (fdlibm's five argument ranges, as table lookups)."""
    x = np.asarray(value, dtype=np.float64)
    a = np.minimum(np.abs(x), 1e300)  # atan(inf) = atan(1e300) = pi/2 in double; keeps 0 * a finite
    k = np.searchsorted(_ATAN_BREAKS, a, side="right")  # 0: |x| < 0.4375 ... 4: |x| >= 2.4375
    u = (a * _ATAN_P[k] - _ATAN_Q[k]) / (_ATAN_R[k] + _ATAN_S[k] * a)  # the reduced argument
    z = u * u
    w = z * z
    s1 = z * (_AT[0] + w * (_AT[2] + w * (_AT[4] + w * (_AT[6] + w * (_AT[8] + w * _AT[10])))))
    s2 = w * (_AT[1] + w * (_AT[3] + w * (_AT[5] + w * (_AT[7] + w * _AT[9]))))
    result = _ATAN_HI[k] - ((u * (s1 + s2) - _ATAN_LO[k]) - u)
    return _out(np.where(np.signbit(x), -result, result), value)


def arctan2(y: ArrayLike, x: ArrayLike) -> np.ndarray:
    """Portable atan2(y, x) [rad] in [-pi, pi], with C's signs for zeros (atan2(0, 0) = 0)."""
    yy, xx = np.broadcast_arrays(np.asarray(y, dtype=np.float64), np.asarray(x, dtype=np.float64))
    ay, ax = np.abs(yy), np.abs(xx)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.asarray(arctan(np.where(ay == 0.0, 0.0, ay / ax)))  # y = 0: 0; x = 0: atan(inf) = pi/2
    result = np.where(np.signbit(xx), _PI - (z - _PI_LO), z)
    result = np.where((ay == 0.0) & ~np.signbit(xx), 0.0, result)
    result = np.where((ay == 0.0) & np.signbit(xx), _PI, result)
    result = np.where((ax == 0.0) & (ay != 0.0), _PIO2, result)
    return _out(np.where(np.signbit(yy), -result, result), yy)


def _log_terms(f, k):
    """fdlibm's log(2^k (1 + f)) from f and k (arrays or floats)."""
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (_LG[1] + w * (_LG[3] + w * _LG[5]))
    t2 = z * (_LG[0] + w * (_LG[2] + w * (_LG[4] + w * _LG[6])))
    r = t2 + t1
    hfsq = 0.5 * f * f
    return k * _LN2_HI - ((hfsq - (s * (hfsq + r) + k * _LN2_LO)) - f)


def _log_float(x: float) -> float:
    """`log` of one positive finite float, with Python floats (the same operations as arrays)."""
    if not (x > 0.0 and math.isfinite(x)):
        raise ValueError(f"portable log takes positive finite values, got {x}")
    m, e = math.frexp(x)  # exact
    if m < _SQRT_HALF:
        m, e = m * 2.0, e - 1
    return _log_terms(m - 1.0, float(e))


def log(value: ArrayLike) -> np.ndarray:
    """Portable natural logarithm of positive finite `value`."""
    if np.ndim(value) == 0:
        return np.float64(_log_float(float(value)))  # type: ignore[return-value]  # a scalar (see _out)
    x = np.asarray(value, dtype=np.float64)
    if not np.all((x > 0) & np.isfinite(x)):
        raise ValueError("portable log takes positive finite values")
    m, e = np.frexp(x)  # x = m 2^e, m in [0.5, 1): exact
    low = m < _SQRT_HALF
    m = np.where(low, m * 2.0, m)
    return _log_terms(m - 1.0, (e - low).astype(np.float64))  # m - 1 is exact (Sterbenz)


def hypot(x: ArrayLike, y: ArrayLike) -> np.ndarray:
    """sqrt(x^2 + y^2), as two products, a sum and a square root (no BLAS, no libm)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return np.sqrt(x * x + y * y)


def integer_power(x: ArrayLike, n: int) -> np.ndarray:
    """x ** n for an integer n >= 1, by repeated squaring (x^4 = (x x)(x x)); numpy's `power` and libm's
    `pow` round differently on each CPU."""
    if n < 1 or n != int(n):
        raise ValueError(f"integer_power needs an integer exponent >= 1, got {n}")
    base = np.asarray(x, dtype=np.float64)
    n = int(n)
    while not n & 1:  # the lowest set bit: result starts as x^(2^k)
        base, n = base * base, n >> 1
    result = base
    n >>= 1
    while n:
        base = base * base
        if n & 1:
            result = result * base
        n >>= 1
    return _out(result, x)


def norm(vectors: np.ndarray) -> np.ndarray:
    """(...,) Euclidean length of vectors (..., 2) [m]."""
    v = np.asarray(vectors, dtype=np.float64)
    return _out(hypot(v[..., 0], v[..., 1]), v[..., 0])


def rotate(points: np.ndarray, cos_sin: tuple[ArrayLike, ArrayLike]) -> np.ndarray:
    """Points or vectors (..., 2) rotated counter-clockwise by the angle whose (cos, sin) is given;
    element-wise products (BLAS would round a 2x2 product differently on each CPU)."""
    c, s = cos_sin
    p = np.asarray(points, dtype=np.float64)
    x, y = p[..., 0], p[..., 1]
    return np.stack([x * c - y * s, x * s + y * c], axis=-1)


def interp(x: ArrayLike, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Piecewise-linear interpolation as `np.interp` (same formula, same ends), in separate operations."""
    xv = np.asarray(x, dtype=np.float64)
    xp, fp = np.asarray(xp, dtype=np.float64), np.asarray(fp, dtype=np.float64)
    if len(xp) == 1:
        return _out(np.full(xv.shape, fp[0]), x)
    j = np.clip(np.searchsorted(xp, xv, side="right") - 1, 0, len(xp) - 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j])
        value = slope * (xv - xp[j]) + fp[j]
    value = np.where(xv == xp[j], fp[j], value)
    value = np.where(xv >= xp[-1], fp[-1], np.where(xv <= xp[0], fp[0], value))
    return _out(value, x)


def moving_average(values: np.ndarray, width: int) -> np.ndarray:
    """(M,) centred mean over `width` (odd) neighbours, zeros beyond the ends: np.convolve(values,
    ones(width) / width, "same"), summed left to right instead of by BLAS."""
    if width % 2 != 1:
        raise ValueError(f"moving_average needs an odd width, got {width}")
    v = np.asarray(values, dtype=np.float64)
    half = width // 2
    padded = np.concatenate([np.zeros(half), v, np.zeros(half)])
    weight = 1.0 / width
    total = padded[: len(v)] * weight
    for k in range(1, width):
        total = total + padded[k: k + len(v)] * weight
    return total


class PortableRandom:
    """numpy's `Generator` (PCG64) with portable continuous draws.

    `random`, `integers`, `choice` and `permutation` are numpy's own: their bits are exact integer and
    power-of-two arithmetic. `uniform` is low + (high - low) * random() in two numpy operations, which is
    numpy's formula (same draws, and on x86-64 the same bits) without the fused multiply-add a compiler may
    put in numpy's C code on aarch64. `exponential` inverts random() with the portable `log`, where numpy's
    ziggurat calls the C library's exp and log.
    """

    def __init__(self, seed):
        self.generator = np.random.default_rng(seed)

    def random(self, size=None):
        """numpy's `Generator.random`: floats in [0, 1)."""
        return self.generator.random(size)

    def integers(self, low, high=None, size=None):
        """numpy's `Generator.integers`."""
        return self.generator.integers(low, high, size)

    def choice(self, a, size=None, replace=True, p=None):
        """numpy's `Generator.choice`."""
        return self.generator.choice(a, size, replace, p)

    def permutation(self, x):
        """numpy's `Generator.permutation`."""
        return self.generator.permutation(x)

    def uniform(self, low: ArrayLike = 0.0, high: ArrayLike = 1.0, size=None):
        """Uniform draws in [low, high): a Python float for scalar bounds and no size, else an array."""
        if size is None and isinstance(low, float | int) and isinstance(high, float | int):
            low, high = float(low), float(high)  # Python floats: one IEEE operation each
            return low + (high - low) * self.generator.random()
        low_a, high_a = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
        shape = np.broadcast(low_a, high_a).shape if size is None else size
        return low_a + (high_a - low_a) * self.generator.random(shape)

    def exponential(self, scale: float = 1.0, size=None):
        """Exponential draws of mean `scale`, by inverting random() with the portable log."""
        if size is None:
            return -scale * _log_float(1.0 - self.generator.random())
        return -scale * log(1.0 - self.generator.random(size))
