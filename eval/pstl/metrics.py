"""pSTL open-loop metrics (mengyuest/pSTL-diffusion-policy `run_sampling_test`, nusc_train.py:890-1140).

Shapes: W windows, M modes (pSTL: 3, keep / left / right), S samples per mode (pSTL: 64), T time steps.
A sample satisfies its mode's spec when its robustness rho > 0 (rho = 0 does not).

- compliance (`acc`): mean 1[rho > 0] over valid samples.
- success (`scene_acc`): a (window, mode) succeeds when any sample has rho > 0; mean over valid pairs.
- valid area (`compute_area`, nusc_api.py:878): area of the 100 x 100 histogram cells that the satisfying
  samples' positions hit [m^2].
- entropy (`compute_entropy`, utils.py:388; `measure_extra_diversity`, nusc_api.py:894): 10-bin log2
  entropies over the satisfying samples, of rho (`ent_s`) and of the controls (`ent_wa` = `ent_w` + `ent_a`).
  Table I does not say which it reports, hence both.

Where this differs from the pSTL code (each is a defect or an artefact there, not a definition):
- pSTL's area mask is reshaped from (pair, T, S) to (pair, S, T), which mixes up which sample each point
  belongs to; here exactly the satisfying samples' points count.
- pSTL averages area and entropies over every (window, mode), invalid and all-failing ones included (they
  add ~0); here area averages over valid pairs and the entropies over valid pairs with a satisfying sample.
- pSTL drops a control exactly at +omega_max / +accel_max (half-open top bin); here the range is closed.
- a degenerate extent gives 0 here; torch widens it by +-0.5 m (see `valid_area`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scenes.errors import DiffplanError

AREA_BINS = 100  # per axis (pSTL: histogramdd bins=[100, 100])
ENTROPY_BINS = 10  # pSTL compute_entropy n_bins
ADAPTIVE_PAD = 1e-5  # pSTL CLIP_VAL: the adaptive range is [min - pad, max + pad]
OMEGA_MAX = 0.5  # [rad/s] pSTL --mul_w_max
ACCEL_MAX = 5.0  # [m/s^2] pSTL --mul_a_max


class PstlMetricInputError(DiffplanError, ValueError):
    """pSTL metric input of the wrong shape, dtype or value; the message names the argument."""


@dataclass(frozen=True)
class SampleSetMetrics:
    """pSTL open-loop metrics of one sample set.

    Attributes:
        compliance: fraction of valid samples with rho > 0.
        success: fraction of valid (window, mode) with at least one sample with rho > 0.
        valid_area: mean over valid (window, mode) of `valid_area` [m^2].
        score_entropy: mean `score_entropy` ("ent_s") [bit] over valid (window, mode) with a satisfying sample.
        control_entropy: mean `control_entropy` ("ent_wa") [bit], same pairs.
    """

    compliance: float
    success: float
    valid_area: float
    score_entropy: float
    control_entropy: float


# ---------------------------------------------------------------------------------------------- validation


def _float_array(name: str, value: object, ndim: int, finite: bool) -> np.ndarray:
    """`value` as a float64 array of `ndim` dims; NaN (and +-inf when `finite`) rejected."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise PstlMetricInputError(f"{name} must be a numeric array: {error}") from None
    if array.ndim != ndim:
        raise PstlMetricInputError(f"{name} must have {ndim} dimensions, got shape {array.shape}")
    if np.isnan(array).any():
        raise PstlMetricInputError(f"{name} contains NaN")
    if finite and not np.isfinite(array).all():
        raise PstlMetricInputError(f"{name} contains inf")
    return array


def _bool_array(name: str, value: object, shapes: tuple[tuple[int, ...], ...]) -> np.ndarray:
    """`value` as a bool array of one of `shapes`."""
    array = np.asarray(value)
    if array.dtype != np.bool_:
        raise PstlMetricInputError(f"{name} must be a bool array, got dtype {array.dtype}")
    if array.shape not in shapes:
        expected = " or ".join(str(shape) for shape in shapes)
        raise PstlMetricInputError(f"{name} must have shape {expected}, got {array.shape}")
    return array


def _xy_array(name: str, value: object, ndim: int) -> np.ndarray:
    """Finite positions or controls with a last axis of 2."""
    array = _float_array(name, value, ndim, finite=True)
    if array.shape[-1] != 2:
        raise PstlMetricInputError(f"{name} must end in an axis of 2, got shape {array.shape}")
    return array


def _leading(name: str, array: np.ndarray, shape: tuple[int, ...]) -> None:
    """Reject `array` unless it starts with `shape`."""
    if array.shape[: len(shape)] != shape:
        raise PstlMetricInputError(f"{name} must start with shape {shape}, got {array.shape}")


def _positive(name: str, value: float) -> float:
    if not (np.isfinite(value) and value > 0):
        raise PstlMetricInputError(f"{name} must be positive and finite, got {value}")
    return float(value)


def _robustness_and_mask(robustness: object, valid: object) -> tuple[np.ndarray, np.ndarray]:
    """(W, M, S) robustness and a (W, M, S) mask from a (W, M) or (W, M, S) one."""
    rho = _float_array("robustness", robustness, 3, finite=False)
    mask = _bool_array("valid", valid, (rho.shape[:2], rho.shape))
    return rho, np.broadcast_to(mask[..., None] if mask.ndim == 2 else mask, rho.shape)


# ---------------------------------------------------------------------------------------------- metrics


def compliance(robustness: np.ndarray, valid: np.ndarray) -> float:
    """Mean of 1[rho > 0] over valid samples (pSTL `acc`).

    Args:
        robustness: (W, M, S) rho of each sample under its mode's spec; +-inf allowed, NaN not.
        valid: (W, M) or (W, M, S) bool, True where the (window, mode) or the sample counts.

    Returns:
        Fraction in [0, 1]; 0.0 when nothing is valid (pSTL's `mask_mean` does the same).
    """
    rho, mask = _robustness_and_mask(robustness, valid)
    if not mask.any():
        return 0.0
    return float(np.mean(rho[mask] > 0))


def success(robustness: np.ndarray, valid: np.ndarray) -> float:
    """Fraction of valid (window, mode) in which some sample has rho > 0 (pSTL `scene_acc`).

    Args:
        robustness: (W, M, S) rho; +-inf allowed, NaN not.
        valid: (W, M) or (W, M, S) bool. With (W, M, S) a pair is valid when any of its samples is, and only
            valid samples can make it succeed (pSTL's mask is per pair).

    Returns:
        Fraction in [0, 1]; 0.0 when nothing is valid.
    """
    rho, mask = _robustness_and_mask(robustness, valid)
    pair_valid = mask.any(axis=2)
    if not pair_valid.any():
        return 0.0
    hit = ((rho > 0) & mask).any(axis=2)
    return float(np.mean(hit[pair_valid]))


def valid_area(xy: np.ndarray, satisfied: np.ndarray, bins: int = AREA_BINS) -> float:
    """Histogram area covered by the satisfying samples of one (window, mode) (pSTL `compute_area`) [m^2].

    A `bins` x `bins` histogram spans the satisfying points' extent (min..max of x and of y); the area is
    (fraction of non-empty cells) x (x extent) x (y extent).

    Frame: the caller makes `xy` relative to each sample's start (p_t - p_0) and rotates it into the frame
    it wants; the start frame rotates by -psi_0. pSTL instead rotates each offset p_t - p_0 by -psi_t, the
    heading at that same step (`compute_area(x_, y_, trajs[..., 2])`), which looks unintended.

    Zero when no sample satisfies or either extent is 0 (all points on an axis-parallel line or one point):
    such a set covers no area. torch/numpy histograms widen a zero extent to 1 m, so pSTL reports
    (hit cells / bins^2) x extent x 1 m there, e.g. 1e-4 m^2 for a single point.

    Args:
        xy: (S, T, 2) sample positions [m], relative to their start, finite.
        satisfied: (S,) bool, rho > 0; only these samples' points count.
        bins: histogram cells per axis.

    Returns:
        Area [m^2].
    """
    points = _xy_array("xy", xy, 3)
    mask = _bool_array("satisfied", satisfied, ((points.shape[0],),))
    if isinstance(bins, bool) or not isinstance(bins, int | np.integer) or bins < 1:
        raise PstlMetricInputError(f"bins must be a positive integer, got {bins!r}")
    kept = points[mask].reshape(-1, 2)
    if kept.shape[0] == 0:
        return 0.0
    low, high = kept.min(axis=0), kept.max(axis=0)
    extent = high - low
    if not (extent > 0).all():
        return 0.0
    counts, _, _ = np.histogram2d(kept[:, 0], kept[:, 1], bins=int(bins),
                                  range=[(low[0], high[0]), (low[1], high[1])])
    return float(np.count_nonzero(counts) / counts.size * extent[0] * extent[1])


def mean_valid_area(xy: np.ndarray, satisfied: np.ndarray, valid: np.ndarray, bins: int = AREA_BINS) -> float:
    """`valid_area` averaged over valid (window, mode) [m^2].

    Args:
        xy: (W, M, S, T, 2) positions [m] relative to each sample's start (see `valid_area`).
        satisfied: (W, M, S) bool, rho > 0.
        valid: (W, M) bool.
        bins: histogram cells per axis.

    Returns:
        Mean area [m^2]; 0.0 when no pair is valid.
    """
    points = _xy_array("xy", xy, 5)
    pairs = points.shape[:2]
    mask = _bool_array("satisfied", satisfied, (points.shape[:3],))
    pair_valid = _bool_array("valid", valid, (pairs,))
    areas = [valid_area(points[w, m], mask[w, m], bins) for w, m in zip(*np.nonzero(pair_valid), strict=True)]
    return float(np.mean(areas)) if areas else 0.0


def _entropy_bits(values: np.ndarray, edges: np.ndarray) -> float:
    """log2 entropy [bit] of the histogram of `values` on `edges`; values outside are dropped, none -> 0."""
    counts, _ = np.histogram(values, bins=edges)
    total = counts.sum()
    if total == 0:
        return 0.0
    probs = counts[counts > 0] / total
    return float(-np.sum(probs * np.log2(probs)))


def _edges(low: float, high: float) -> np.ndarray:
    """ENTROPY_BINS + 1 edges from `low` to `high` (pSTL's interpolation)."""
    alphas = np.linspace(0.0, 1.0, ENTROPY_BINS + 1)
    return low * (1.0 - alphas) + high * alphas


def score_entropy(robustness: np.ndarray) -> float:
    """Entropy of the satisfying samples' rho (pSTL `ent_s`) [bit].

    10 equal bins over the adaptive range [min - 1e-5, max + 1e-5] (pSTL's padding), so equal scores fall in
    one bin and give 0.

    Args:
        robustness: (K,) rho of the satisfying samples of one (window, mode), finite.

    Returns:
        Entropy in [0, log2(10)]; 0.0 for K = 0.
    """
    rho = _float_array("robustness", robustness, 1, finite=True)
    if rho.size == 0:
        return 0.0
    return _entropy_bits(rho, _edges(float(rho.min()) - ADAPTIVE_PAD, float(rho.max()) + ADAPTIVE_PAD))


def control_entropy(controls: np.ndarray, omega_max: float = OMEGA_MAX, accel_max: float = ACCEL_MAX) -> float:
    """Control entropy of the satisfying samples (pSTL `ent_wa` = `ent_w` + `ent_a`) [bit].

    At each step, the 10-bin histogram entropy of omega over [-omega_max, omega_max] and of a over
    [-accel_max, accel_max] (closed ranges; values outside are dropped); each is averaged over steps, then
    the two are summed.

    Args:
        controls: (K, T, 2) omega [rad/s], a [m/s^2] of the satisfying samples of one (window, mode).
        omega_max: [rad/s] half-width of the omega range.
        accel_max: [m/s^2] half-width of the a range.

    Returns:
        Entropy in [0, 2 log2(10)]; 0.0 for K = 0 or T = 0.
    """
    u = _xy_array("controls", controls, 3)
    limits = (_positive("omega_max", omega_max), _positive("accel_max", accel_max))
    if u.shape[0] == 0 or u.shape[1] == 0:
        return 0.0
    total = 0.0
    for channel, limit in enumerate(limits):
        edges = _edges(-limit, limit)
        total += float(np.mean([_entropy_bits(u[:, t, channel], edges) for t in range(u.shape[1])]))
    return total


def sample_set_metrics(robustness: np.ndarray, valid: np.ndarray, xy: np.ndarray, controls: np.ndarray,
                       bins: int = AREA_BINS, omega_max: float = OMEGA_MAX, accel_max: float = ACCEL_MAX
                       ) -> SampleSetMetrics:
    """All pSTL open-loop metrics of a sample set; satisfying means rho > 0.

    Args:
        robustness: (W, M, S) rho; +-inf allowed, NaN not.
        valid: (W, M) bool.
        xy: (W, M, S, T, 2) positions [m] relative to each sample's start (see `valid_area`).
        controls: (W, M, S, T', 2) omega [rad/s], a [m/s^2].
        bins: area histogram cells per axis.
        omega_max: [rad/s] omega entropy range half-width.
        accel_max: [m/s^2] a entropy range half-width.

    Returns:
        SampleSetMetrics; entropies average over valid pairs with a satisfying sample (0.0 if none).
    """
    rho = _float_array("robustness", robustness, 3, finite=False)
    pair_valid = _bool_array("valid", valid, (rho.shape[:2],))
    points = _xy_array("xy", xy, 5)
    u = _xy_array("controls", controls, 5)
    _leading("xy", points, rho.shape)
    _leading("controls", u, rho.shape)
    _positive("omega_max", omega_max)
    _positive("accel_max", accel_max)
    satisfied = rho > 0
    scored = pair_valid & satisfied.any(axis=2)
    pairs = list(zip(*np.nonzero(scored), strict=True))
    if pairs:
        ent_s = float(np.mean([score_entropy(rho[w, m][satisfied[w, m]]) for w, m in pairs]))
        ent_wa = float(np.mean([control_entropy(u[w, m][satisfied[w, m]], omega_max, accel_max)
                                for w, m in pairs]))
    else:
        ent_s = ent_wa = 0.0
    return SampleSetMetrics(
        compliance=compliance(rho, pair_valid),
        success=success(rho, pair_valid),
        valid_area=mean_valid_area(points, satisfied, pair_valid, bins),
        score_entropy=ent_s,
        control_entropy=ent_wa,
    )
