"""Split and merge errors on hand-made slices, and the meaningful-overlap rule at its edges."""

from __future__ import annotations

import numpy as np
import pytest

from unet.errors import InputError
from unet.split_merge import FLOOR, FRACTION, needed_overlap, overlaps, split_merge


def _two_cells() -> np.ndarray:
    """12 x 41: cell 1 in columns 0-19, a membrane in column 20, cell 2 in columns 21-40
    (240 pixels each: a segment must cover 24 of them)."""
    gt = np.zeros((12, 41), np.int32)
    gt[:, :20], gt[:, 21:] = 1, 2
    return gt


def test_a_missing_membrane_is_a_merge_of_that_segment() -> None:
    gt = _two_cells()
    pred = np.full_like(gt, 7)  # one segment over both cells and the membrane
    errors = split_merge(gt, pred)
    assert errors.merge_segments == [7] and errors.split_cells == []
    assert errors.merge.all() and not errors.split.any()


def test_a_spurious_membrane_is_a_split_of_that_cell() -> None:
    gt = _two_cells()
    pred = np.zeros_like(gt)
    pred[:, :8], pred[:, 9:20], pred[:, 21:] = 3, 4, 5  # cell 1 cut in two, cell 2 whole
    errors = split_merge(gt, pred)
    assert errors.split_cells == [1] and errors.merge_segments == []
    assert np.array_equal(errors.split, gt == 1) and not errors.merge.any()


def test_a_boundary_off_by_a_column_and_a_speck_are_no_errors() -> None:
    gt = _two_cells()
    pred = np.zeros_like(gt)
    pred[:, :22], pred[:, 23:] = 1, 2  # segment 1 covers column 21 of cell 2: 12 of 240 px
    pred[5, 19:22] = 9  # a 3-pixel speck across the membrane
    assert len(overlaps(gt, pred)[0]) == 5  # 1-1, 2-1, 1-9, 2-9, 2-2
    errors = split_merge(gt, pred)
    assert errors.split_cells == [] and errors.merge_segments == []
    pred[:, 22:24] = 1  # three columns, 36 px of cell 2: a merge
    assert split_merge(gt, pred).merge_segments == [1]


def test_the_threshold_is_a_tenth_of_the_cell_and_at_least_ten_pixels() -> None:
    assert (FRACTION, FLOOR) == (0.1, 10)
    assert needed_overlap([50, 100, 120, 1000]).tolist() == [10, 10, 12, 100]
    gt = np.zeros((10, 30), np.int32)
    gt[:, :10], gt[:, 10:] = 1, 2  # 100 and 200 pixels
    for covered, merged in ((19, False), (20, True)):  # of cell 2: 10% is 20 px
        pred = np.where(gt == 1, 5, 0)
        pred.flat[np.flatnonzero(gt == 2)[:covered]] = 5
        assert split_merge(gt, pred).merge_segments == ([5] if merged else []), covered


def test_overlaps_counts_shared_pixels_of_every_pair() -> None:
    gt = np.array([[1, 1, 0, 2], [1, 1, 0, 2]])
    pred = np.array([[4, 4, 4, 4], [0, 6, 0, 6]])
    cells, segments, shared = overlaps(gt, pred)
    assert list(zip(cells, segments, shared, strict=True)) == [
        (1, 4, 2),
        (1, 6, 1),
        (2, 4, 1),
        (2, 6, 1),
    ]


def test_other_shapes_are_refused() -> None:
    with pytest.raises(InputError, match="2-D label images of one shape"):
        split_merge(np.zeros((2, 3, 3), int), np.zeros((2, 3, 3), int))
    with pytest.raises(InputError):
        split_merge(np.zeros((3, 3), int), np.zeros((3, 4), int))
