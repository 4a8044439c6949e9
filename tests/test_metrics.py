"""Challenge metrics: the worked examples of metrics.md, brute-force references, properties."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from unet import metrics
from unet.metrics import (
    dice,
    f_score,
    iou,
    pixel_error,
    rand_counts,
    rand_error,
    seg_score,
    thresholds,
    variation_of_information,
    warping_error,
)
from unet.postprocess import label_slices

# The public test vector of metrics.md (ex2_gt.npy, ex2_prob.npy beside it), copied here so
# the worked examples always run: 11x11, membranes on row 5 and column 5 (four 5x5 cells).
EX2_GT = np.array(
    [
        [255, 255, 255, 255, 255, 0, 255, 255, 255, 255, 255],
        [255, 255, 255, 255, 255, 0, 255, 255, 255, 255, 255],
        [255, 255, 255, 255, 255, 0, 255, 255, 255, 255, 255],
        [255, 255, 255, 255, 255, 0, 255, 255, 255, 255, 255],
        [255, 255, 255, 255, 255, 0, 255, 255, 255, 255, 255],
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        [255, 255, 255, 255, 255, 0, 255, 255, 255, 255, 255],
        [255, 255, 255, 255, 255, 0, 255, 255, 255, 255, 255],
        [255, 255, 255, 255, 255, 0, 255, 255, 255, 255, 255],
        [255, 255, 255, 255, 255, 0, 255, 255, 255, 255, 255],
        [255, 255, 255, 255, 255, 0, 255, 255, 255, 255, 255],
    ],
    np.uint8,
)
EX2_PROB = np.array(
    [
        [0.95, 0.95, 0.95, 0.95, 0.95, 0.05, 0.95, 0.95, 0.95, 0.95, 0.95],
        [0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95],
        [0.95, 0.95, 0.35, 0.95, 0.95, 0.05, 0.95, 0.95, 0.95, 0.95, 0.95],
        [0.95, 0.95, 0.95, 0.95, 0.95, 0.05, 0.95, 0.95, 0.95, 0.95, 0.95],
        [0.95, 0.95, 0.95, 0.95, 0.95, 0.05, 0.95, 0.95, 0.95, 0.95, 0.95],
        [0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05],
        [0.95, 0.95, 0.95, 0.95, 0.95, 0.05, 0.95, 0.95, 0.95, 0.95, 0.95],
        [0.95, 0.95, 0.95, 0.95, 0.95, 0.05, 0.95, 0.95, 0.95, 0.95, 0.95],
        [0.95, 0.95, 0.95, 0.95, 0.95, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05],
        [0.95, 0.95, 0.95, 0.95, 0.95, 0.05, 0.95, 0.95, 0.95, 0.95, 0.95],
        [0.95, 0.95, 0.95, 0.95, 0.95, 0.05, 0.95, 0.95, 0.95, 0.95, 0.95],
    ],
    np.float32,
)


@pytest.fixture
def example() -> tuple[np.ndarray, np.ndarray]:
    """The worked example (four cells, a gap, a false split, a speck), a fresh copy each test."""
    return EX2_GT.copy(), EX2_PROB.copy()


def test_worked_example_is_the_one_metrics_md_describes(example) -> None:
    gt, prob = example
    cells = np.ones((11, 11), bool)
    cells[5, :] = cells[:, 5] = False
    assert gt.dtype == np.uint8 and np.array_equal(gt, np.where(cells, 255, 0))
    want = np.where(cells, 0.95, 0.05)
    want[1, 5], want[8, 6:], want[2, 2] = 0.95, 0.05, 0.35  # a gap, a false split, a speck
    assert prob.dtype == np.float32 and np.array_equal(prob, want.astype(np.float32))


def _row(result: metrics.MetricResult, th: float) -> dict:
    return next(row for row in result.table if abs(row["threshold"] - th) < 1e-12)


def test_threshold_sequence_is_accumulated_in_float64() -> None:
    sweep = thresholds(0.0, 1.0, 0.1).tolist()
    assert len(sweep) == 11 and sweep[3] == 0.30000000000000004
    assert sweep[8:] == [0.7999999999999999, 0.8999999999999999, 0.9999999999999999]
    assert thresholds(0.0, 0.9, 0.1).tolist() == sweep[:10]


def test_worked_example_rand_error(example) -> None:
    result = rand_error(*example)
    assert result.value == pytest.approx(0.2864493997, abs=1e-9)
    row = _row(result, 0.1)
    assert (row["tp"], row["fp"], row["fn"]) == (2080, 1250, 420)
    assert row["f_score"] == pytest.approx(0.7135506003, abs=1e-9)
    best = [r["threshold"] for r in result.table if r["f_score"] == 1 - result.value]
    assert best == pytest.approx([0.1, 0.2, 0.3]) and result.threshold == pytest.approx(0.1)


def test_worked_example_pixel_error(example) -> None:
    result = pixel_error(*example)
    assert result.value == pytest.approx(0.0306122449, abs=1e-9)
    row = _row(result, result.threshold)
    assert (row["tp"], row["fp"], row["fn"]) == (95, 1, 5)


def test_worked_example_warping_error(example) -> None:
    result = warping_error(*example)
    assert result.value == pytest.approx(2 / 121, abs=1e-12)
    assert result.value == pytest.approx(0.0165289256, abs=1e-9)
    row = _row(result, result.threshold)
    assert (row["splits"], row["mergers"]) == (1, 1)
    assert len(result.table) == 10 and result.per_slice == [result.value]


def test_second_example_rand_and_voi() -> None:
    gt = np.array([[1, 1, 1, 2, 2, 2], [1, 1, 1, 2, 2, 2], [0] * 6, [3] * 6])
    seg = np.array([[1] * 6, [1] * 6, [0] * 6, [2, 2, 2, 0, 3, 3]])
    tp, fp, fn = rand_counts(gt, seg)
    assert (tp, fp, fn) == (86, 72, 22)
    f = f_score(tp, fp, fn)[2]
    assert f == pytest.approx(0.6466165414, abs=1e-9)
    assert 1 - f == pytest.approx(0.3533834586, abs=1e-9)
    voi = variation_of_information(gt, seg)
    assert voi.split == pytest.approx(0.4863826390, abs=1e-9)
    assert voi.merge == pytest.approx(0.6666666667, abs=1e-9)


def test_ctc_seg_example() -> None:
    gt = np.array([[1, 1, 1, 1, 0, 2, 2, 2]] * 3 + [[0] * 8] + [[3, 3, 0, 0, 0, 0, 4, 4]] * 2)
    res = np.array([[5, 5, 5, 5, 5, 0, 7, 7], [5, 5, 5, 5, 5, 0, 7, 7], [5, 5, 5, 5, 5, 0, 0, 0],
                    [0] * 8, [6, 0, 0, 0, 0, 0, 8, 8], [6, 0, 0, 9, 9, 0, 8, 8]])  # fmt: skip
    assert seg_score(gt, res) == pytest.approx(0.45, abs=1e-12)
    # frames pool their objects: the same image twice gives the same mean
    assert seg_score(np.stack([gt, gt]), np.stack([res, res])) == pytest.approx(0.45)
    assert np.isnan(seg_score(np.zeros_like(gt), res))


def _rand_brute_force(gt: np.ndarray, seg: np.ndarray) -> tuple[int, int, int]:
    """Ordered pairs (self-pairs included) of ground-truth foreground pixels; an unassigned
    proposal pixel (0) is a singleton: paired only with itself."""
    g, s = gt[gt != 0], seg[gt != 0]
    same_gt = same_seg = both = 0
    for i, j in itertools.product(range(g.size), repeat=2):
        a, b = g[i] == g[j], (s[i] == s[j] and s[i] != 0) or i == j
        same_gt, same_seg, both = same_gt + a, same_seg + b, both + (a and b)
    return both, same_seg - both, same_gt - both


def test_rand_counts_match_pair_counting() -> None:
    rng = np.random.default_rng(1)
    for _ in range(6):
        gt, seg = rng.integers(0, 4, (5, 6)), rng.integers(0, 4, (5, 6))
        assert rand_counts(gt, seg) == _rand_brute_force(gt, seg)


def test_pixel_error_matches_a_direct_count() -> None:
    rng = np.random.default_rng(2)
    gt = (rng.random((2, 9, 7)) > 0.4).astype(np.uint8) * 255
    prob = rng.random((2, 9, 7)).astype(np.float32)
    best = 0.0
    for th in thresholds():
        fg = prob.astype(np.float64) > th
        tp, fp = int((fg & (gt > 0)).sum()), int((fg & (gt == 0)).sum())
        best = max(best, f_score(tp, fp, int((~fg & (gt > 0)).sum()))[2])
    assert pixel_error(gt, prob).value == pytest.approx(1 - best, abs=1e-12)


def test_strict_threshold_in_float64() -> None:
    gt = np.full((1, 3), 255, np.uint8)
    prob = np.array([[0.3, 0.30000000000000004, 0.29999998]], np.float32)
    # float32(0.3) = 0.30000001192...: above th = 0.30000000000000004 in float64
    row = _row(pixel_error(gt, prob), 0.30000000000000004)
    assert (row["tp"], row["fn"]) == (2, 1)


def test_iou_and_dice() -> None:
    gt = np.array([[1, 1, 0, 0]])
    pred = np.array([[0, 1, 1, 0]])
    assert iou(gt, pred) == pytest.approx(1 / 3) and dice(gt, pred) == pytest.approx(0.5)
    assert iou(gt * 0, pred * 0) == 1.0 and dice(gt * 0, pred * 0) == 1.0


@pytest.mark.parametrize(
    ("gt", "prob", "message"),
    [
        (np.zeros((4, 4)), np.zeros((4, 5)), "shape (4, 5) differs from ground truth (4, 4)"),
        (np.zeros((4, 4)), np.full((4, 4), np.nan), "16 NaN values"),
        (np.zeros((4, 4)), np.full((4, 4), 1.5), "must lie in [0, 1], got values in [1.5, 1.5]"),
        (np.zeros((4, 4)), np.full((4, 4), -0.1), "must lie in [0, 1]"),
        (np.arange(16).reshape(4, 4), np.zeros((4, 4)), "ground truth is not binary"),
        (np.zeros((2, 2, 2, 2)), np.zeros((2, 2, 2, 2)), "expected a 2-D slice or a (Z, Y, X)"),
    ],
)
def test_bad_input_is_a_value_error(gt, prob, message) -> None:
    for metric in (pixel_error, rand_error, warping_error):
        with pytest.raises(ValueError, match=re.escape(message)):
            metric(gt, prob)


_binary = arrays(np.uint8, st.tuples(st.integers(1, 2), st.integers(1, 14), st.integers(1, 14)),
                 elements=st.sampled_from([0, 255]))  # fmt: skip
_labels = arrays(np.int64, st.tuples(st.integers(1, 12), st.integers(1, 12)),
                 elements=st.integers(0, 5))  # fmt: skip


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gt=_binary)
def test_perfect_prediction_scores_no_error(gt) -> None:
    prob = (gt / 255).astype(np.float32)
    for metric in (pixel_error, rand_error, warping_error):
        result = metric(gt, prob)
        assert result.value == 0 and result.per_slice == [0.0] * gt.shape[0]
    labels = label_slices(gt)
    assert variation_of_information(labels, labels) == (0.0, 0.0)
    assert iou(gt, prob) == 1.0 and dice(gt, prob) == 1.0
    assert labels.max() == 0 or seg_score(labels, labels) == 1.0


def _relabel(labels: np.ndarray, seed: int) -> np.ndarray:
    ids = np.unique(labels[labels != 0])
    new = np.random.default_rng(seed).permutation(1000)[: ids.size] + 1
    mapping = dict(zip(ids.tolist(), new.tolist(), strict=True))
    return np.vectorize(lambda v: mapping.get(v, 0))(labels)


@settings(max_examples=60, deadline=None)
@given(gt=_labels, seg_seed=st.integers(0, 2**31), seed=st.integers(0, 2**31))
def test_relabelling_changes_neither_rand_nor_voi(gt, seg_seed, seed) -> None:
    seg = np.random.default_rng(seg_seed).integers(0, 4, gt.shape)
    gt2, seg2 = _relabel(gt, seed), _relabel(seg, seed + 1)
    assert rand_counts(gt2, seg2) == rand_counts(gt, seg)
    voi, voi2 = variation_of_information(gt, seg), variation_of_information(gt2, seg2)
    assert voi2.split == pytest.approx(voi.split, abs=1e-12)
    assert voi2.merge == pytest.approx(voi.merge, abs=1e-12)
    if gt.any():
        assert seg_score(gt2, seg2) == pytest.approx(seg_score(gt, seg), abs=1e-12)
