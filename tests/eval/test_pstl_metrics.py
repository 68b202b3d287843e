"""pSTL open-loop metrics on hand-built sample sets whose values are worked out in the comments."""

from __future__ import annotations

import math

import numpy as np
import pytest

from eval.pstl import (
    PstlMetricInputError,
    SampleSetMetrics,
    compliance,
    control_entropy,
    mean_valid_area,
    sample_set_metrics,
    score_entropy,
    success,
    valid_area,
)

LOG2_10 = math.log2(10)

# (W, M, S) = (2, 3, 4); "pos" counts rho > 0 (rho = 0 is not satisfying).
RHO = np.array([
    [[1.0, -1.0, 2.0, -3.0],  # w0 m0: 2 pos
     [-1.0, -2.0, -3.0, -4.0],  # w0 m1: 0 pos
     [0.5, 0.5, 0.5, 0.5]],  # w0 m2: 4 pos (invalid)
    [[0.0, 0.0, 0.0, 1.0],  # w1 m0: 1 pos (the last sample)
     [5.0, 5.0, -5.0, -5.0],  # w1 m1: 2 pos (invalid)
     [-1.0, 1.0, -1.0, -1.0]],  # w1 m2: 1 pos
])
VALID = np.array([[True, True, False], [True, False, True]])


def test_compliance_and_success_with_a_pair_mask():
    # valid pairs: w0m0 (2/4 pos), w0m1 (0/4), w1m0 (1/4), w1m2 (1/4) -> (2 + 0 + 1 + 1) / 16 = 0.25
    assert compliance(RHO, VALID) == 0.25
    # succeeding valid pairs: w0m0, w1m0, w1m2 (not w0m1) -> 3/4
    assert success(RHO, VALID) == 0.75


def test_compliance_and_success_unmasked():
    everything = np.ones((2, 3), bool)
    # positives 2 + 0 + 4 + 1 + 2 + 1 = 10 of 24
    assert compliance(RHO, everything) == pytest.approx(10 / 24, abs=1e-15)
    # every pair but w0m1 succeeds -> 5/6
    assert success(RHO, everything) == pytest.approx(5 / 6, abs=1e-15)


def test_compliance_and_success_with_a_sample_mask():
    per_sample = np.broadcast_to(VALID[..., None], RHO.shape).copy()
    per_sample[1, 0, 3] = False  # drop w1m0's only positive sample
    # valid samples 4 + 4 + 3 + 4 = 15, positives 2 + 0 + 0 + 1 = 3 -> 0.2
    assert compliance(RHO, per_sample) == pytest.approx(0.2, abs=1e-15)
    # w1m0 no longer succeeds: w0m0 and w1m2 of 4 pairs -> 0.5
    assert success(RHO, per_sample) == 0.5
    # a pair with every sample masked out is not a valid pair: w0m1 out -> w0m0, w1m2 succeed of 3 pairs
    per_sample[0, 1, :] = False
    assert success(RHO, per_sample) == pytest.approx(2 / 3, abs=1e-15)


def test_nothing_valid_gives_zero():
    none = np.zeros((2, 3), bool)
    assert compliance(RHO, none) == 0.0
    assert success(RHO, none) == 0.0


def grid_set() -> np.ndarray:
    """(51, 50, 2) points filling the even x bins x even y bins of a 10 m x 4 m extent, plus its corners.

    Extent x 0..10, y -2..2 -> cells 0.1 m x 0.04 m. Samples 0..49 sit at the centre of x bin 2s, one point at
    the centre of each even y bin: 50 x 50 = 2500 cells. Sample 50 holds the corners (0, -2) (cell (0, 0),
    already hit) and (10, 2) (cell (99, 99), new): 2501 cells of 10,000.
    """
    xs = 0.1 * np.arange(0, 100, 2) + 0.05
    ys = -2.0 + 0.04 * np.arange(0, 100, 2) + 0.02
    columns = np.stack(np.broadcast_arrays(xs[:, None], ys[None, :]), axis=-1)  # (50, 50, 2)
    corners = np.array([[0.0, -2.0]] * 25 + [[10.0, 2.0]] * 25)[None]  # (1, 50, 2)
    return np.concatenate([columns, corners])


GRID_AREA = 2501 / 10_000 * 10.0 * 4.0  # 10.004 m^2


def diagonal_line() -> np.ndarray:
    """(1, 102, 2): one straight sample from (0, 0) to (10, 4), one point per diagonal cell.

    The point at fraction f = (k + 0.5) / 100 lies in x bin k and y bin k; the two ends fall in cells (0, 0)
    and (99, 99). 100 cells of 10,000 over 10 m x 4 m -> 0.4 m^2.
    """
    f = np.concatenate([[0.0], (np.arange(100) + 0.5) / 100, [1.0]])
    return np.stack([10.0 * f, 4.0 * f], axis=-1)[None]


def test_valid_area_of_a_grid_is_exact():
    xy = grid_set()
    assert valid_area(xy, np.ones(len(xy), bool)) == pytest.approx(GRID_AREA, rel=1e-12)


def test_valid_area_of_one_straight_sample():
    assert valid_area(diagonal_line(), np.array([True])) == pytest.approx(0.4, rel=1e-12)


def test_valid_area_of_an_axis_parallel_line_or_a_point_is_zero():
    x = np.linspace(0.0, 20.0, 41)
    straight = np.stack([x, np.zeros_like(x)], axis=-1)[None]  # y extent 0
    assert valid_area(straight, np.array([True])) == 0.0
    standing = np.zeros((3, 5, 2))
    assert valid_area(standing, np.ones(3, bool)) == 0.0


def test_valid_area_without_satisfying_samples_is_zero():
    xy = grid_set()
    assert valid_area(xy, np.zeros(len(xy), bool)) == 0.0
    assert valid_area(np.zeros((0, 5, 2)), np.zeros(0, bool)) == 0.0


def test_unsatisfying_samples_do_not_change_the_area():
    grid = grid_set()
    far = np.full((2, 50, 2), 1000.0)  # would stretch the extent to 1000 m
    inside = grid[:50] + np.array([0.1, 0.04])  # the odd cells inside the extent
    xy = np.concatenate([grid, far, inside])
    satisfied = np.array([True] * len(grid) + [False] * (len(far) + len(inside)))
    assert valid_area(xy, satisfied) == pytest.approx(GRID_AREA, rel=1e-12)
    # all counted: extent x 0..1000, y -2..1000 (cells 10 m x 10.02 m); the grid hits cell (0, 0), the shifted
    # copy reaches x = 10.05 (cell (1, 0)), the far points cell (99, 99): 3/10^4 x 1000 x 1002 = 300.6 m^2
    assert valid_area(xy, np.ones(len(xy), bool)) == pytest.approx(300.6, rel=1e-12)


def test_valid_area_bins_argument():
    # 2 x 2 cells over the 10 m x 4 m grid: every quadrant is hit -> 40 m^2
    assert valid_area(grid_set(), np.ones(51, bool), bins=2) == pytest.approx(40.0, rel=1e-12)


def pad_steps(xy: np.ndarray, steps: int) -> np.ndarray:
    """Repeat each sample's last point up to `steps` points (repeats hit no new cell)."""
    tail = np.repeat(xy[:, -1:], steps - xy.shape[1], axis=1)
    return np.concatenate([xy, tail], axis=1)


def test_mean_valid_area_averages_valid_pairs():
    steps, samples = 102, 51
    xy = np.zeros((1, 3, samples, steps, 2))
    satisfied = np.zeros((1, 3, samples), bool)
    xy[0, 0] = pad_steps(grid_set(), steps)
    satisfied[0, 0] = True
    xy[0, 1, :1] = diagonal_line()
    satisfied[0, 1, 0] = True
    xy[0, 2] = 100.0 * xy[0, 0]  # huge, but the pair is invalid
    satisfied[0, 2] = True
    valid = np.array([[True, True, False]])
    # (10.004 + 0.4) / 2 = 5.202
    assert mean_valid_area(xy, satisfied, valid) == pytest.approx((GRID_AREA + 0.4) / 2, rel=1e-12)
    assert mean_valid_area(xy, satisfied, np.zeros((1, 3), bool)) == 0.0


def test_score_entropy_reference_values():
    # 1..10 over [1 - 1e-5, 10 + 1e-5]: bins 0.900002 wide, one score in each -> log2(10)
    assert score_entropy(np.arange(1.0, 11.0)) == pytest.approx(LOG2_10, abs=1e-12)
    # all equal: one bin -> 0
    assert score_entropy(np.full(7, 0.3)) == 0.0
    # two equal halves at the two ends -> bins 0 and 9, p = (1/2, 1/2) -> 1 bit
    assert score_entropy(np.array([1.0, 1.0, 1.0, 2.0, 2.0, 2.0])) == pytest.approx(1.0, abs=1e-12)
    # 0, 0, 1, 9 -> bins 0, 0, 1, 9, p = (1/2, 1/4, 1/4) -> 1.5 bits
    assert score_entropy(np.array([0.0, 0.0, 1.0, 9.0])) == pytest.approx(1.5, abs=1e-12)
    assert score_entropy(np.zeros(0)) == 0.0


def test_control_entropy_reference_values():
    # constant controls: one bin per step for omega and for a -> 0
    assert control_entropy(np.tile([0.1, 1.0], (5, 4, 1))) == 0.0
    # omega at the 10 bin centres of [-0.5, 0.5] at every step, a constant -> log2(10) + 0
    omega = -0.45 + 0.1 * np.arange(10)
    spread = np.stack(np.broadcast_arrays(omega[:, None], 2.0 * np.ones((1, 3))), axis=-1)  # (10, 3, 2)
    assert control_entropy(spread) == pytest.approx(LOG2_10, abs=1e-12)
    # a split in two halves at -2.5 and 2.5 (bins 2 and 7) adds 1 bit
    spread[:, :, 1] = np.where(np.arange(10) < 5, -2.5, 2.5)[:, None]
    assert control_entropy(spread) == pytest.approx(LOG2_10 + 1.0, abs=1e-12)
    # averaged over steps: uniform at step 0, constant at step 1 -> omega log2(10) / 2, a 0
    mixed = spread[:, :2].copy()
    mixed[:, 1, 0] = 0.0
    mixed[:, :, 1] = 0.0
    assert control_entropy(mixed) == pytest.approx(LOG2_10 / 2, abs=1e-12)
    assert control_entropy(np.zeros((0, 3, 2))) == 0.0


def test_control_entropy_range_edges():
    # saturated controls at -omega_max and +omega_max count (closed range): 2 bins -> 1 bit
    saturated = np.array([[[-0.5, 0.0]], [[0.5, 0.0]]])
    assert control_entropy(saturated) == pytest.approx(1.0, abs=1e-12)
    # out of range values are dropped: only 0.1 is left -> 0
    assert control_entropy(np.array([[[0.7, 0.0]], [[0.1, 0.0]]])) == 0.0
    # a wider omega range puts 0.7 and 0.1 in different bins -> 1 bit
    assert control_entropy(np.array([[[0.7, 0.0]], [[0.1, 0.0]]]), omega_max=1.0) == pytest.approx(1.0)


def test_sample_set_metrics_by_hand():
    # (W, M, S, T) = (2, 2, 4, 3)
    rho = np.array([
        [[1.0, 2.0, -1.0, -1.0],  # w0 m0: samples 0, 1 satisfy
         [-1.0, -1.0, -1.0, -1.0]],  # w0 m1: none
        [[3.0, 3.0, 3.0, 3.0],  # w1 m0: all, but invalid
         [0.5, -1.0, -1.0, -1.0]],  # w1 m1: sample 0
    ])
    valid = np.array([[True, True], [False, True]])
    xy = np.zeros((2, 2, 4, 3, 2))
    controls = np.zeros((2, 2, 4, 3, 2))
    # w0m0 with bins=2 over extent [0, 2] x [0, 2]: (0, 0) -> cell (0, 0), (0.5, 1.5) -> (0, 1),
    # (2, 2) -> (1, 1): 3 of 4 cells of 4 m^2 -> 3 m^2
    xy[0, 0, 0] = [[0.0, 0.0], [0.5, 1.5], [0.5, 1.5]]
    xy[0, 0, 1] = [[0.0, 0.0], [2.0, 2.0], [2.0, 2.0]]
    xy[0, 0, 2:] = [[0.0, 0.0], [50.0, -50.0], [60.0, -60.0]]  # unsatisfying, ignored
    # w1m1 over [0, 3] x [0, 1]: cells (0, 0) and (1, 1) -> 2/4 of 3 m^2 = 1.5 m^2
    xy[1, 1, 0] = [[0.0, 0.0], [3.0, 1.0], [3.0, 1.0]]
    xy[1, 0] = np.arange(24.0).reshape(4, 3, 2) ** 2  # invalid pair, ignored
    # w0m0 controls: omega -0.45 vs 0.45 at every step (2 bins, 1 bit), a equal (0) -> 1 bit
    controls[0, 0, 0, :, 0] = -0.45
    controls[0, 0, 1, :, 0] = 0.45
    controls[0, 0, 2:, :, 1] = [[-4.5, 4.5, 0.0], [4.5, -4.5, 0.0]]  # unsatisfying, ignored
    controls[1, 0, :, :, 0] = (-0.45 + 0.3 * np.arange(4))[:, None]  # invalid pair, ignored
    result = sample_set_metrics(rho, valid, xy, controls, bins=2)
    assert isinstance(result, SampleSetMetrics)
    # compliance: (2 + 0 + 1) / 12; success: w0m0, w1m1 of 3 valid pairs
    assert result.compliance == pytest.approx(0.25, abs=1e-15)
    assert result.success == pytest.approx(2 / 3, abs=1e-15)
    # area over the 3 valid pairs: (3 + 0 + 1.5) / 3 = 1.5
    assert result.valid_area == pytest.approx(1.5, rel=1e-12)
    # entropies over w0m0 and w1m1 only: scores (1, 2) -> 1 bit, (0.5) -> 0; controls 1 bit and 0
    assert result.score_entropy == pytest.approx(0.5, abs=1e-12)
    assert result.control_entropy == pytest.approx(0.5, abs=1e-12)


def test_sample_set_metrics_with_nothing_satisfying():
    rho = -np.ones((1, 2, 3))
    result = sample_set_metrics(rho, np.ones((1, 2), bool), np.ones((1, 2, 3, 4, 2)), np.ones((1, 2, 3, 4, 2)))
    assert result == SampleSetMetrics(0.0, 0.0, 0.0, 0.0, 0.0)


BAD_INPUTS = [
    ("valid", lambda: compliance(RHO, np.ones((3, 3), bool))),
    ("valid", lambda: success(RHO, np.ones((2, 3, 5), bool))),
    ("valid", lambda: compliance(RHO, np.ones((2, 3), int))),
    ("robustness", lambda: compliance(np.where(RHO > 4, np.nan, RHO), VALID)),
    ("robustness", lambda: success(RHO[0], VALID)),
    ("xy", lambda: valid_area(np.full((2, 3, 2), np.nan), np.ones(2, bool))),
    ("xy", lambda: valid_area(np.zeros((2, 3, 3)), np.ones(2, bool))),
    ("satisfied", lambda: valid_area(np.zeros((2, 3, 2)), np.ones(3, bool))),
    ("bins", lambda: valid_area(np.zeros((2, 3, 2)), np.ones(2, bool), bins=0)),
    ("satisfied", lambda: mean_valid_area(np.zeros((1, 2, 3, 4, 2)), np.ones((1, 2, 4), bool),
                                          np.ones((1, 2), bool))),
    ("valid", lambda: mean_valid_area(np.zeros((1, 2, 3, 4, 2)), np.ones((1, 2, 3), bool),
                                      np.ones((2, 1), bool))),
    ("robustness", lambda: score_entropy(np.array([1.0, np.nan]))),
    ("controls", lambda: control_entropy(np.zeros((2, 3, 3)))),
    ("controls", lambda: control_entropy(np.array([[[np.nan, 0.0]]]))),
    ("omega_max", lambda: control_entropy(np.zeros((2, 3, 2)), omega_max=0.0)),
    ("xy", lambda: sample_set_metrics(np.ones((1, 2, 3)), np.ones((1, 2), bool), np.zeros((1, 2, 4, 5, 2)),
                                      np.zeros((1, 2, 3, 5, 2)))),
    ("controls", lambda: sample_set_metrics(np.ones((1, 2, 3)), np.ones((1, 2), bool),
                                            np.zeros((1, 2, 3, 5, 2)), np.zeros((2, 2, 3, 5, 2)))),
    ("accel_max", lambda: sample_set_metrics(np.ones((1, 2, 3)), np.ones((1, 2), bool),
                                             np.zeros((1, 2, 3, 5, 2)), np.zeros((1, 2, 3, 5, 2)),
                                             accel_max=-1.0)),
]


@pytest.mark.parametrize(("name", "call"), BAD_INPUTS, ids=[f"{i}-{name}" for i, (name, _) in enumerate(BAD_INPUTS)])
def test_bad_input_names_the_argument(name, call):
    with pytest.raises(ValueError) as caught:
        call()
    assert isinstance(caught.value, PstlMetricInputError)
    message = str(caught.value)
    assert message.startswith(name + " "), message
    assert "\n" not in message
