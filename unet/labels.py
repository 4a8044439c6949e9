"""Label-image kernels shared by the stages: renumbering ids and the binary-mask check."""

from __future__ import annotations

from typing import Any

import numpy as np


def relabel(labels: Any, sequential: bool = False) -> np.ndarray:
    """Ids as non-negative ``intp`` with 0 kept as 0 (background) and every other id > 0.

    Ids that are already non-negative integers no larger than the number of pixels are
    returned as they are (bincount and ``find_objects`` stay bounded by the image size);
    other ids (negative, huge, not integer), or any ids when ``sequential``, are renumbered
    1..n in sorted order.
    """
    labels = np.asarray(labels)
    if labels.size == 0:
        return labels.astype(np.intp)
    if labels.dtype.kind in "biu" and not sequential:
        if int(labels.min()) >= 0 and int(labels.max()) <= labels.size:
            return labels.astype(np.intp, copy=False)
    ids, inverse = np.unique(labels, return_inverse=True)
    ranks = np.where(ids == 0, 0, np.cumsum(ids != 0))  # sorted ids -> 1..n, 0 -> 0
    return ranks[inverse].reshape(labels.shape).astype(np.intp)


def is_binary(data: Any) -> bool:
    """At most one value besides 0, and it positive (a mask such as 0/1 or 0/255)."""
    data = np.asarray(data)
    positive = data[data != 0]
    return not positive.size or (positive.min() == positive.max() and positive.min() > 0)
