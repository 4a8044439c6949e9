"""The ignore mask of partly annotated frames: TRA markers against the definition, the
thresholded raw frame on drawn cells, and on Fluo-N2DL-HeLa frames with cells removed."""

from __future__ import annotations

import re
import zipfile

import numpy as np
import pytest
import tifffile

from unet.errors import InputError
from unet.ignore import MARGIN, IgnoreParams, dilate, from_threshold, ignore_mask


def brute_dilate(mask: np.ndarray, radius: float) -> np.ndarray:
    """Pixels within ``radius`` (Euclidean) of a pixel of ``mask``, pair by pair."""
    ys, xs = np.nonzero(mask)
    yy, xx = np.indices(mask.shape)
    if not len(ys):
        return np.zeros(mask.shape, bool)
    dist = np.hypot(yy[..., None] - ys, xx[..., None] - xs).min(axis=-1)
    return dist <= radius


def disc(shape: tuple[int, int], centre: tuple[int, int], radius: float) -> np.ndarray:
    yy, xx = np.indices(shape)
    return np.hypot(yy - centre[0], xx - centre[1]) <= radius


def test_dilate_is_the_euclidean_disk() -> None:
    mask = np.random.default_rng(0).random((30, 40)) > 0.97
    for radius in (0, 1, 2.5, 7):
        assert np.array_equal(dilate(mask, radius), brute_dilate(mask, radius)), radius


def test_tra_markers_on_no_seg_cell_are_ignored() -> None:
    """Markers 1-3 track three cells; SEG outlines cell 1 only (its own id 7)."""
    shape = (40, 56)
    seg = np.where(disc(shape, (12, 12), 7), 7, 0).astype(np.uint16)
    markers = np.zeros(shape, np.uint16)
    for mid, centre in ((1, (12, 12)), (2, (14, 24)), (3, (30, 44))):  # 2 is near cell 1
        markers[disc(shape, centre, 2.5)] = mid
    mask, fraction, method = ignore_mask(seg, np.zeros(shape), markers, IgnoreParams())
    unannotated = (markers == 2) | (markers == 3)
    expected = brute_dilate(unannotated, 12.0) & (seg == 0)
    assert method == "tra" and mask.dtype == np.uint8
    assert np.array_equal(mask, expected.astype(np.uint8))
    assert not mask[seg > 0].any() and mask[20, 20] == 1  # annotated pixels never ignored
    assert fraction == pytest.approx(1 - unannotated.sum() / (markers > 0).sum())
    threshold = IgnoreParams(method="threshold")
    assert ignore_mask(seg, np.zeros(shape), markers, threshold)[2] == "threshold"


def _frame(seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A dark noisy frame with bright discs: A (annotated), B (alone), C (touching A)."""
    shape = (64, 96)
    rng = np.random.default_rng(seed)
    cells = {"A": disc(shape, (30, 30), 8), "B": disc(shape, (32, 76), 8)}
    cells["C"] = disc(shape, (30, 45.5), 8) & ~cells["A"]
    raw = 100 + rng.normal(0, 3, shape)
    for cell in cells.values():
        raw[cell] = 400 + rng.normal(0, 3, int(cell.sum()))
    return raw.astype(np.uint16), cells


def test_threshold_ignores_the_unannotated_cells_even_in_a_clump() -> None:
    raw, cells = _frame()
    seg = cells["A"].astype(np.uint16)
    mask, fraction = from_threshold(seg, raw, sigma=2.0, radius=3.0)
    assert not mask[cells["A"]].any()
    assert mask[cells["B"]].all()
    away = cells["C"] & ~brute_dilate(cells["A"], MARGIN)
    assert away.any() and mask[away].all()  # C touches A, yet is ignored
    halo = 3 * 2.0 + 3.0  # the blur's reach (3 sigma) plus the dilation
    assert not mask[~brute_dilate(cells["B"] | cells["C"], halo)].any()  # nothing else
    assert 0.25 < fraction < 0.45  # A is about a third of the bright foreground
    assert from_threshold(np.zeros_like(seg), np.full_like(raw, 7), 2.0, 3.0)[1] == 1.0  # blank


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "tra"}, "ignore method 'tra': expected one of ('auto', 'threshold', 'none')"),
        ({"marker_radius": -1}, "ignore marker_radius: expected a number >= 0 (pixels), got -1"),
        ({"sigma": float("nan")}, "ignore sigma: expected a number >= 0"),
        ({"min_annotated": 1.5}, "min_annotated: expected a fraction in [0, 1], got 1.5"),
        ({"method": "none", "min_annotated": 0.5}, "needs an ignore method (auto or threshold)"),
    ],
)
def test_bad_parameters_are_named(kwargs, message) -> None:
    with pytest.raises(InputError, match=re.escape(message)):
        IgnoreParams(**kwargs)


@pytest.mark.parametrize("frame", ["01/t013", "02/t079"])
def test_hela_cells_removed_from_full_annotation_are_found(shared_datasets, frame) -> None:
    """Fully annotated HeLa frames with 90% of their cells removed from the ground truth:
    the threshold path ignores almost all of the removed cells' pixels."""
    seq, t = frame.split("/t")
    with zipfile.ZipFile(shared_datasets / "Fluo-N2DL-HeLa.zip") as zf:
        raw = tifffile.imread(zf.open(f"Fluo-N2DL-HeLa/{seq}/t{t}.tif"))
        seg = tifffile.imread(zf.open(f"Fluo-N2DL-HeLa/{seq}_GT/SEG/man_seg{t}.tif"))
    ids = np.unique(seg[seg > 0])
    kept = np.random.default_rng(0).choice(ids, len(ids) // 10, replace=False)
    partial = np.where(np.isin(seg, kept), seg, 0)
    mask, fraction, _ = ignore_mask(partial, raw, None, IgnoreParams())
    removed = (seg > 0) & (partial == 0)
    assert mask[removed].mean() > 0.9
    assert not mask[partial > 0].any()
    assert fraction < 0.3
    full = ignore_mask(seg, raw, None, IgnoreParams())[1]
    assert full > 0.9  # the complete annotation covers the foreground
