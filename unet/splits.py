"""The train / val / test split of a dataset's labelled slices (indices along Z).

Either explicit: index ranges ("0-19,22") naming every slice once, or counts from the end
(``val_last``, ``test_last``: contiguous, as neighbouring serial sections correlate, and
fitting any slice count); or a seeded shuffle by fractions (datasets without an explicit
split).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from unet.errors import InputError

PARTS = ("train", "val", "test")
TAIL_KEYS = ("val_last", "test_last")  # split by counts from the end


def parse_indices(spec: str | Sequence[int]) -> list[int]:
    """Slice indices from "0-19,22" (ranges inclusive) or a list of integers."""
    if not isinstance(spec, str):
        return [int(i) for i in spec]
    out: list[int] = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not match:
            raise InputError(f"bad slice range {part!r}; expected e.g. '0-19' or '3'")
        lo, hi = int(match[1]), int(match[2] or match[1])
        out.extend(range(lo, hi + 1))
    return out


def make_split(
    n: int,
    *,
    explicit: Mapping[str, Any] | None = None,
    val_fraction: float = 0.2,
    test_fraction: float = 0.0,
    seed: int = 0,
    what: str = "dataset",
    setting: str = "the split",
) -> dict[str, list[int]]:
    """The train/val/test slice indices of ``n`` slices.

    ``explicit`` holds either train/val/test index ranges (checked to cover every slice once)
    or ``val_last`` / ``test_last`` counts (the last ``test_last`` slices are test, the
    ``val_last`` before them val, the rest train: contiguous, as neighbouring serial sections
    correlate); without it, a seeded shuffle. ``setting`` names where a user fixes a bad split.
    """
    hint = (
        f"set {setting} to train/val/test ranges covering each of 0-{n - 1} once, "
        f"or to val_last/test_last counts (e.g. {{val_last: 5}})"
    )
    if explicit and set(explicit) & set(TAIL_KEYS):
        split = _tail_split(n, explicit, what, hint)
    elif explicit:
        split = _ranges_split(n, explicit, what, hint)
    else:
        split = _seeded_split(n, val_fraction, test_fraction, seed)
    if not split["train"]:
        raise InputError(f"{what}: the split leaves no training slice out of {n}; {hint}")
    return {part: split[part] for part in PARTS}


def _ranges_split(n: int, explicit: Mapping[str, Any], what: str, hint: str) -> dict:
    if unknown := set(explicit) - set(PARTS):
        raise InputError(
            f"{what}: unknown split part(s) {sorted(unknown)}; expected {PARTS} or {TAIL_KEYS}"
        )
    split = {part: sorted(parse_indices(explicit.get(part, ""))) for part in PARTS}
    named = [i for part in PARTS for i in split[part]]
    if max(named, default=-1) >= n or len(named) != n or len(set(named)) != n:
        raise InputError(
            f"{what}: the split names {len(named)} slices (up to index "
            f"{max(named, default=-1)}) but the data has {n} slices (0-{n - 1}); "
            f"every slice must be in exactly one of train/val/test: {hint}"
        )
    return split


def _tail_split(n: int, explicit: Mapping[str, Any], what: str, hint: str) -> dict:
    if other := set(explicit) - set(TAIL_KEYS):
        raise InputError(
            f"{what}: the split mixes {sorted(other)} with {TAIL_KEYS}; use ranges or counts"
        )
    counts = [explicit.get(key, 0) for key in TAIL_KEYS]
    for key, count in zip(TAIL_KEYS, counts, strict=True):
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise InputError(f"{what}: split {key} must be an integer >= 0, got {count!r}")
    n_val, n_test = counts
    first_val, first_test = n - n_val - n_test, n - n_test
    if first_val < 1:
        raise InputError(
            f"{what}: val_last {n_val} + test_last {n_test} leave no training slice "
            f"out of {n}; {hint}"
        )
    return {
        "train": list(range(first_val)),
        "val": list(range(first_val, first_test)),
        "test": list(range(first_test, n)),
    }


def _seeded_split(n: int, val_fraction: float, test_fraction: float, seed: int) -> dict:
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1):
        raise InputError(f"split fractions must be in [0, 1), got {val_fraction}, {test_fraction}")
    n_val = max(1, round(n * val_fraction)) if val_fraction > 0 else 0
    n_test = max(1, round(n * test_fraction)) if test_fraction > 0 else 0
    n_test = min(n_test, n - 1)  # a very small dataset keeps at least one training slice
    n_val = min(n_val, n - 1 - n_test)
    order = np.random.default_rng(seed).permutation(n).tolist()
    return {
        "test": sorted(order[:n_test]),
        "val": sorted(order[n_test : n_test + n_val]),
        "train": sorted(order[n_test + n_val :]),
    }


def split_of(
    n: int, spec: Mapping[str, Any], what: str, setting: str = "the split"
) -> dict[str, list[int]]:
    """:func:`make_split` from a spec {explicit, val_fraction, test_fraction, seed}."""
    return make_split(
        n,
        explicit=spec.get("explicit"),
        val_fraction=spec.get("val_fraction", 0.2),
        test_fraction=spec.get("test_fraction", 0.0),
        seed=spec.get("seed", 0),
        what=what,
        setting=setting,
    )
