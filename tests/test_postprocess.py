"""Instances from probability maps: challenge protocol, watershed, CTC touching cells."""

from __future__ import annotations

import numpy as np
import pytest

from unet.metrics import seg_score
from unet.postprocess import (
    above,
    challenge_instances,
    ctc_instances,
    label_slices,
    watershed_instances,
)


def _discs(shape=(60, 80), centres=((30, 26), (30, 52)), radius=14) -> np.ndarray:
    """Instance labels of discs; overlapping discs touch along a straight line."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, np.int32)
    for i, (cy, cx) in enumerate(centres, start=1):
        inside = np.hypot(yy - cy, xx - cx) <= radius
        labels[inside & (labels == 0)] = i
    return labels


def test_above_is_the_float64_comparison() -> None:
    rng = np.random.default_rng(0)
    values = rng.random(5000).astype(np.float32)
    for th in (0.0, 0.1, 0.30000000000000004, 0.7999999999999999, 0.9999999999999999, 0.5):
        edge = np.float32(th)
        near = np.array([edge, np.nextafter(edge, 0), np.nextafter(edge, 2)], np.float32)
        sample = np.concatenate([values, near])
        assert np.array_equal(above(sample, th), sample.astype(np.float64) > th), th


def test_label_slices_is_4_connected_and_slice_by_slice() -> None:
    image = np.array([[[1, 0], [0, 1]], [[1, 1], [0, 0]]], np.float32)
    labels = label_slices(image, 0.5)
    assert labels[0, 0, 0] != labels[0, 1, 1]  # diagonal: two objects
    assert labels.max() == 3 and labels[1, 0, 0] == labels[1, 0, 1] != labels[0, 0, 0]
    assert np.array_equal(challenge_instances(image), labels)
    assert label_slices(image[0]).shape == (2, 2)


def test_watershed_cuts_a_faint_bridge() -> None:
    prob = np.zeros((20, 40), np.float32)
    prob[5:15, 3:17] = 0.95
    prob[5:15, 23:37] = 0.95
    prob[9:11, 17:23] = 0.6  # a gap in the predicted membrane, above the 0.5 threshold
    assert challenge_instances(prob).max() == 1
    labels = watershed_instances(prob)
    assert labels.max() == 2 and labels[10, 5] != labels[10, 35]
    assert np.count_nonzero(labels) == np.count_nonzero(prob > 0.5)  # the mask is kept
    with pytest.raises(ValueError, match="threshold <= seed_threshold"):
        watershed_instances(prob, threshold=0.9, seed_threshold=0.5)


def test_ctc_instances_separate_touching_cells() -> None:
    truth = _discs()
    prob = (truth > 0).astype(np.float32)  # the border between the cells was missed
    assert challenge_instances(prob).max() == 1
    labels = ctc_instances(prob, expand=0)
    assert labels.max() == 2
    assert seg_score(truth, labels) > 0.95
    assert ctc_instances(prob, split_depth=0).max() == 1


def test_ctc_instances_drop_specks_and_grow_back_into_the_border() -> None:
    truth = _discs(centres=((30, 24), (30, 54)), radius=12)
    prob = (truth > 0).astype(np.float32)
    prob[2, 2] = 1.0  # a one-pixel speck
    labels = ctc_instances(prob, min_size=20, expand=0)
    assert labels.max() == 2 and labels[2, 2] == 0
    grown = ctc_instances(prob, expand=2)
    assert np.count_nonzero(grown) > np.count_nonzero(labels)
    stack = ctc_instances(np.stack([prob, prob]))
    assert stack.shape == (2, *prob.shape) and stack.max() == 4  # ids unique over the stack
