"""Challenge metrics, computed the way the challenges computed them (see docs: metrics.md).

ISBI 2012 (EM membranes), ``f(ground_truth, probability)`` on a 2-D slice or a (Z, Y, X) stack:
ground truth binary (0 = membrane, any one positive value such as 255 = cell), probability
float in [0, 1] with high = cell. Each returns a :class:`MetricResult` with the value, the best
threshold, the per-threshold table (counts summed over slices) and the value of every slice.

- :func:`pixel_error`: 1 - best pixel F1 over thresholds 0.0 .. 1.0 (step 0.1).
- :func:`rand_error`: 1 - best foreground-restricted Rand F-score (the 2015 version) over the
  same thresholds, on 4-connected segments.
- :func:`warping_error`: fewest split + merger pixels over thresholds 0.0 .. 0.9, divided by
  the pixel count (kernel in :mod:`unet.warping`).

Thresholds come from ``th = lo; while th <= hi: th += step`` in float64 and a pixel is
foreground iff ``float64(value) > th``. Also: :func:`variation_of_information` (split, merge),
the Cell Tracking Challenge :func:`seg_score`, and pixel :func:`iou` / :func:`dice`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import numpy as np

from unet.errors import InputError
from unet.labels import is_binary, relabel


def thresholds(lo: float = 0.0, hi: float = 1.0, step: float = 0.1) -> np.ndarray:
    """The reference's threshold sequence: accumulated in float64 while ``th <= hi``."""
    values, th = [], float(lo)
    while th <= hi:
        values.append(th)
        th += step
    return np.array(values, dtype=np.float64)


SWEEP = thresholds(0.0, 1.0, 0.1)  # pixel and Rand error: 11 thresholds
WARPING_SWEEP = thresholds(0.0, 0.9, 0.1)  # warping error: 10 (an empty proposal has no error)


@dataclass(frozen=True)
class MetricResult:
    """A metric's value, the threshold it was reached at, and how it was reached."""

    name: str
    value: float
    threshold: float | None
    table: list[dict[str, float]] = field(default_factory=list)
    per_slice: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return asdict(self)


class VariationOfInformation(NamedTuple):
    """Conditional entropies in bits: split = H(seg | gt), merge = H(gt | seg)."""

    split: float
    merge: float

    @property
    def total(self) -> float:
        return self.split + self.merge


def f_score(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
    """(precision, recall, F) with the reference's conventions for empty denominators."""
    precision = 1.0 if fp == 0 else tp / (tp + fp)
    recall = 1.0 if fn == 0 else tp / (tp + fn)
    total = precision + recall
    return precision, recall, (2.0 * precision * recall / total if total > 0 else 0.0)


def check_inputs(ground_truth: Any, probability: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate an ISBI pair; return (Z, Y, X) boolean ground truth and float32 probability.

    Raises ValueError for different shapes, a ground truth that is not binary, or
    probabilities that are NaN or outside [0, 1].
    """
    gt, prob = np.asarray(ground_truth), np.asarray(probability)
    if gt.shape != prob.shape:
        raise InputError(f"prediction shape {prob.shape} differs from ground truth {gt.shape}")
    if gt.ndim not in (2, 3) or gt.size == 0:
        raise InputError(f"expected a 2-D slice or a (Z, Y, X) stack, got shape {gt.shape}")
    if not is_binary(gt):
        values = np.unique(gt)
        shown = ", ".join(str(v) for v in values[:6]) + (", ..." if values.size > 6 else "")
        raise InputError(
            f"ground truth is not binary: values {shown}; expected 0 = membrane and one "
            "positive value (e.g. 255) = cell"
        )
    if not (np.issubdtype(prob.dtype, np.number) or prob.dtype == bool):
        raise InputError(f"probability must be numeric, got dtype {prob.dtype}")
    prob = prob.astype(np.float32, copy=False)
    if np.isnan(prob).any():
        raise InputError(f"probability contains {int(np.isnan(prob).sum())} NaN values")
    low, high = float(prob.min()), float(prob.max())
    if low < 0 or high > 1:
        raise InputError(f"probability must lie in [0, 1], got values in [{low:g}, {high:g}]")
    stack = (lambda a: a[None]) if gt.ndim == 2 else (lambda a: a)
    return stack(gt != 0), stack(prob)


def _best(scores: np.ndarray, sweep: np.ndarray, larger: bool) -> tuple[float, float]:
    """The first best score (strictly better than all before it) and its threshold."""
    index = int(np.argmax(scores) if larger else np.argmin(scores))
    return float(scores[index]), float(sweep[index])


def _f_table(counts: np.ndarray, sweep: np.ndarray, name: str) -> MetricResult:
    """Result of an F-score sweep from per-slice counts (Z, T, 3) of (tp, fp, fn)."""
    total = counts.sum(axis=0)
    table, scores = [], []
    for th, (tp, fp, fn) in zip(sweep, total.tolist(), strict=True):
        stats = dict(zip(("precision", "recall", "f_score"), f_score(tp, fp, fn), strict=True))
        scores.append(stats["f_score"])
        table.append(dict(threshold=float(th), tp=tp, fp=fp, fn=fn) | stats)
    best, th = _best(np.array([0.0, *scores]), np.array([sweep[0], *sweep]), larger=True)
    per_slice = [1.0 - max(0.0, *(f_score(*c)[2] for c in z.tolist())) for z in counts]
    return MetricResult(name, 1.0 - best, th, table, per_slice)


def pixel_error(ground_truth: Any, probability: Any) -> MetricResult:
    """ISBI 2012 pixel error: 1 - best pixel F1 (positive class = cell) over thresholds."""
    gt, prob = check_inputs(ground_truth, probability)
    counts = np.zeros((gt.shape[0], SWEEP.size, 3), np.int64)
    for z in range(gt.shape[0]):
        p, g = prob[z].astype(np.float64), gt[z]
        cells = int(np.count_nonzero(g))
        for t, th in enumerate(SWEEP):
            fg = p > th
            tp = int(np.count_nonzero(fg & g))
            counts[z, t] = tp, int(np.count_nonzero(fg)) - tp, cells - tp
    return _f_table(counts, SWEEP, "pixel_error")


def rand_counts(gt_labels: Any, seg_labels: Any) -> tuple[int, int, int]:
    """Foreground-restricted Rand (TP, FP, FN) of two label images (ground truth 0 dropped,
    proposal 0 inside ground-truth foreground counted as singletons)."""
    gt, seg = np.asarray(gt_labels), np.asarray(seg_labels)
    if gt.shape != seg.shape:
        raise InputError(f"segmentation shape {seg.shape} differs from ground truth {gt.shape}")
    inside = gt != 0
    g, s = relabel(gt[inside]), relabel(seg[inside])
    assigned = s != 0
    n0 = s.size - int(np.count_nonzero(assigned))
    a, b = np.bincount(g), np.bincount(s[assigned])
    nij = _pair_counts(g[assigned], s[assigned])
    tp = int((nij * nij).sum()) + n0
    return tp, int((b * b).sum()) + n0 - tp, int((a * a).sum()) - tp


def _pair_counts(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Counts of the distinct (a, b) pairs of two non-negative int64 label vectors."""
    if a.size == 0:
        return np.zeros(0, np.int64)
    width = int(b.max()) + 1
    keys = a * width + b
    if (int(a.max()) + 1) * width <= 1 << 24:
        counts = np.bincount(keys)
        return counts[counts > 0]
    return np.unique(keys, return_counts=True)[1]


def rand_error(ground_truth: Any, probability: Any) -> MetricResult:
    """ISBI 2012 Rand error: 1 - best foreground-restricted Rand F-score over thresholds."""
    from unet.postprocess import label_slices

    gt, prob = check_inputs(ground_truth, probability)
    counts = np.zeros((gt.shape[0], SWEEP.size, 3), np.int64)
    for z in range(gt.shape[0]):  # labels per slice stay small: contingency by bincount
        gt_labels = label_slices(gt[z])
        for t, th in enumerate(SWEEP):
            counts[z, t] = rand_counts(gt_labels, label_slices(prob[z], float(th)))
    return _f_table(counts, SWEEP, "rand_error")


def warping_error(
    ground_truth: Any, probability: Any, radius: int = 20, progress: bool = False
) -> MetricResult:
    """ISBI 2012 warping error: fewest split + merger pixels over thresholds / pixel count."""
    from tqdm import tqdm

    from unet.warping import split_merge_counts

    gt, prob = check_inputs(ground_truth, probability)
    sweep = tqdm(WARPING_SWEEP, "warping", unit="threshold", leave=False, disable=not progress)
    counts = np.concatenate(
        [split_merge_counts(gt, prob, np.array([th]), radius) for th in sweep], axis=1
    )  # (Z, T, 2)
    errors_per_slice = counts.sum(axis=2) / float(gt.shape[1] * gt.shape[2])
    total = counts.sum(axis=0)
    errors = total.sum(axis=1) / float(gt.size)
    table = [
        dict(threshold=float(th), splits=int(s), mergers=int(m), error=float(e))
        for th, (s, m), e in zip(WARPING_SWEEP, total, errors, strict=True)
    ]
    value, th = _best(errors, WARPING_SWEEP, larger=False)
    per_slice = [float(e.min()) for e in errors_per_slice]
    return MetricResult("warping_error", value, th, table, per_slice)


def variation_of_information(
    gt_labels: Any, seg_labels: Any, frames: bool = True
) -> VariationOfInformation:
    """Split H(seg|gt) and merge H(gt|seg) in bits over ground-truth foreground pixels
    (ground truth 0 ignored; proposal 0 is one more segment). With ``frames``, the slices of
    a stack are separate images: equal ids in different slices are different objects."""
    gt, seg = np.asarray(gt_labels), np.asarray(seg_labels)
    if gt.shape != seg.shape:
        raise InputError(f"segmentation shape {seg.shape} differs from ground truth {gt.shape}")
    gt, seg = _frame_unique(gt, frames), _frame_unique(seg, frames, zero_is_label=True)
    inside = gt != 0
    g, s = relabel(gt[inside]), relabel(seg[inside])
    if g.size == 0:
        return VariationOfInformation(0.0, 0.0)
    joint = _entropy(_pair_counts(g, s))
    return VariationOfInformation(
        joint - _entropy(np.bincount(g)), joint - _entropy(np.bincount(s))
    )


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum()) + 0.0


def seg_score(gt_labels: Any, result_labels: Any, frames: bool = True) -> float:
    """Cell Tracking Challenge SEG: mean Jaccard of ground-truth objects with their match
    (|R ∩ S| > 0.5 |R|), 0 without one. With ``frames``, the slices of a stack are separate
    frames whose objects are pooled. NaN when the ground truth has no object."""
    gt, res = np.asarray(gt_labels), np.asarray(result_labels)
    if gt.shape != res.shape:
        raise InputError(f"result shape {res.shape} differs from ground truth {gt.shape}")
    gt, res = _frame_unique(gt, frames), _frame_unique(res, frames)
    g, r = relabel(gt.ravel()), relabel(res.ravel())
    sizes_g, sizes_r = np.bincount(g), np.bincount(r)
    objects = int(np.count_nonzero(sizes_g[1:]))
    if objects == 0:
        return float("nan")
    both = (g > 0) & (r > 0)
    keys, overlap = np.unique(g[both] * (int(r.max()) + 1) + r[both], return_counts=True)
    gi, ri = np.divmod(keys, int(r.max()) + 1)
    match = 2 * overlap > sizes_g[gi]
    jaccard = overlap[match] / (sizes_g[gi[match]] + sizes_r[ri[match]] - overlap[match])
    return float(jaccard.sum() / objects)


def _frame_unique(labels: np.ndarray, frames: bool, zero_is_label: bool = False) -> np.ndarray:
    """Labels made distinct between the slices of a stack (when treated as frames); 0 stays
    0 unless it is a label of its own."""
    if not frames or labels.ndim < 3:
        return labels
    out = relabel(labels).reshape(labels.shape)
    offsets = np.arange(out.shape[0], dtype=np.int64)[:, None, None] * (int(out.max()) + 1)
    return out + offsets if zero_is_label else np.where(out != 0, out + offsets, 0)


def iou(ground_truth: Any, prediction: Any) -> float:
    """Pixel intersection over union of the foregrounds (values > 0); 1 when both are empty."""
    gt, pred = _masks(ground_truth, prediction)
    union = np.count_nonzero(gt | pred)
    return float(np.count_nonzero(gt & pred) / union) if union else 1.0


def dice(ground_truth: Any, prediction: Any) -> float:
    """Pixel Dice coefficient of the foregrounds (values > 0); 1 when both are empty."""
    gt, pred = _masks(ground_truth, prediction)
    total = np.count_nonzero(gt) + np.count_nonzero(pred)
    return float(2 * np.count_nonzero(gt & pred) / total) if total else 1.0


def _masks(ground_truth: Any, prediction: Any) -> tuple[np.ndarray, np.ndarray]:
    gt, pred = np.asarray(ground_truth), np.asarray(prediction)
    if gt.shape != pred.shape:
        raise InputError(f"prediction shape {pred.shape} differs from ground truth {gt.shape}")
    return gt > 0, pred > 0
