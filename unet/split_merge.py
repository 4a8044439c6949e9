"""Split and merge errors of an instance segmentation against its ground truth, as masks.

Both label images are one 2-D slice, 0 = background (membrane) on either side, every other
id one ground-truth cell or one predicted segment. A segment *meaningfully overlaps* a cell
when it covers at least ``fraction`` (10%) of the cell's pixels and at least ``floor``
(10) pixels. The measure is the cell's size, not the segment's: a boundary a pixel or two
off, or a speck of noise on a membrane, covers a sliver of the neighbouring cell and is no
error, while a missing membrane lets a segment flood most of the neighbour and a spurious
one cuts a cell into sizeable pieces.

- A **merge error** is a predicted segment that overlaps two or more ground-truth cells
  meaningfully (a membrane the prediction missed joined them).
- A **split error** is a ground-truth cell that two or more predicted segments overlap
  meaningfully (a membrane the prediction invented cut it).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from unet.errors import InputError
from unet.labels import relabel

FRACTION = 0.1  # of the ground-truth cell's pixels
FLOOR = 10  # pixels: never fewer


class SplitMerge(NamedTuple):
    """Masks and ids of one slice's errors (see the module docstring)."""

    split: np.ndarray  # bool: pixels of the ground-truth cells that are split
    merge: np.ndarray  # bool: pixels of the predicted segments that merge cells
    split_cells: list[int]  # ids of the split ground-truth cells
    merge_segments: list[int]  # ids of the merging predicted segments


def needed_overlap(cell_size: Any, fraction: float = FRACTION, floor: int = FLOOR) -> np.ndarray:
    """The pixels a segment must share with a cell of ``cell_size`` pixels to overlap it
    meaningfully: ``max(floor, fraction * cell_size)``."""
    return np.maximum(floor, fraction * np.asarray(cell_size, dtype=float))


def overlaps(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cell ids, segment ids, shared pixels) of every pair with a nonzero overlap."""
    both = (gt > 0) & (pred > 0)
    pairs = np.stack([gt[both], pred[both]]).astype(np.int64)
    if not pairs.size:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    unique, counts = np.unique(pairs, axis=1, return_counts=True)
    return unique[0], unique[1], counts


def split_merge(gt: Any, pred: Any, fraction: float = FRACTION, floor: int = FLOOR) -> SplitMerge:
    """The split and merge errors of the predicted segments ``pred`` against the
    ground-truth cells ``gt`` (2-D label images of one shape; see the module docstring)."""
    gt, pred = relabel(gt), relabel(pred)
    if gt.ndim != 2 or gt.shape != pred.shape:
        raise InputError(
            f"split/merge errors: expected two 2-D label images of one shape, got "
            f"{gt.shape} and {pred.shape}"
        )
    cells, segments, shared = overlaps(gt, pred)
    keep = shared >= needed_overlap(np.bincount(gt.ravel())[cells], fraction, floor)
    cells, segments = cells[keep], segments[keep]
    merging = _repeated(segments)  # segments meaningfully in two or more cells
    split = _repeated(cells)  # cells meaningfully in two or more segments
    return SplitMerge(
        split=np.isin(gt, split) & (gt > 0),
        merge=np.isin(pred, merging) & (pred > 0),
        split_cells=[int(i) for i in split],
        merge_segments=[int(i) for i in merging],
    )


def _repeated(ids: np.ndarray) -> np.ndarray:
    """The ids that occur more than once (each pair occurs once, so: in two or more pairs)."""
    unique, counts = np.unique(ids, return_counts=True)
    return unique[counts > 1]
