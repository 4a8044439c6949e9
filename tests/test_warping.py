"""The warping kernel against a plain, slow implementation of metrics.md's procedure."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from unet.warping import OFFSETS, RING_LUT, SIMPLE_LUT, label4, split_merge_counts

CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]])
# the 8 neighbours counter-clockwise from east, for Yokoi's connectivity number
YOKOI_RING = ((0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1))


def _yokoi_simple(patch: np.ndarray) -> bool:
    """Yokoi's 4-connectivity number of the centre is 1 (foreground 4, background 8)."""
    x = [int(patch[1 + dy, 1 + dx] > 0) for dy, dx in YOKOI_RING]
    return sum(x[k] - x[k] * x[(k + 1) % 8] * x[(k + 2) % 8] for k in (0, 2, 4, 6)) == 1


def _code(patch: np.ndarray) -> int:
    return sum(int(patch[1 + dy, 1 + dx] > 0) << k for k, (dy, dx) in enumerate(OFFSETS))


def test_simple_point_table_matches_yokoi_and_its_symmetries() -> None:
    for code in range(256):
        patch = np.zeros((3, 3), np.uint8)
        for k, (dy, dx) in enumerate(OFFSETS):
            patch[1 + dy, 1 + dx] = code >> k & 1
        assert bool(SIMPLE_LUT[code]) == _yokoi_simple(patch), patch
        for turned in (np.rot90(patch), np.fliplr(patch)):
            assert SIMPLE_LUT[_code(turned)] == SIMPLE_LUT[code]
        fg = patch.copy()
        fg[1, 1] = 0
        assert RING_LUT[code] == ndimage.label(fg, CROSS)[1]
    assert SIMPLE_LUT[0] == 0 and SIMPLE_LUT[255] == 0  # isolated and interior points


def _reference(gt: np.ndarray, prob: np.ndarray, th: float, radius: int) -> tuple[int, int]:
    """metrics.md step by step: re-sort every pass, relabel a real window for each test."""
    h, w = gt.shape
    src = np.pad(gt > 0, 1).astype(np.uint8)
    tgt = np.pad(prob.astype(np.float64) > th, 1)
    key = np.pad(np.abs(prob.astype(np.float64) - th).astype(np.float32), 1)
    while True:
        todo = [(x, y) for x in range(1, w + 1) for y in range(1, h + 1) if src[y, x] != tgt[y, x]]
        todo.sort(key=lambda p: -key[p[1], p[0]])  # stable
        flipped = 0
        for x, y in todo:
            if _yokoi_simple(src[y - 1 : y + 2, x - 1 : x + 2]):
                src[y, x] ^= 1
                flipped += 1
        if not flipped:
            break
    warped = src[1:-1, 1:-1]
    labels = np.zeros_like(warped, int) if warped.all() else ndimage.label(warped, CROSS)[0]
    whole = radius < 1 or radius > w or radius > h
    splits = merges = 0
    for x, y in ((x - 1, y - 1) for x, y in todo):
        near = {labels[j, i] for j in range(y - 1, y + 2) for i in range(x - 1, x + 2)
                if (i, j) != (x, y) and 0 <= j < h and 0 <= i < w}  # fmt: skip
        if len(near) >= 3:
            splits, merges = splits + (labels[y, x] != 0), merges + (labels[y, x] == 0)
        elif len(near) == 2 and labels[y, x] != 0:
            if whole:  # the whole image
                window, cy, cx = warped.copy(), y, x
            else:  # a (2r+1)^2 window; outside the image is background
                window = np.pad(warped, radius)[y : y + 2 * radius + 1, x : x + 2 * radius + 1]
                window, cy, cx = window.copy(), radius, radius
            window[cy, cx] = 0
            relabelled = ndimage.label(window, CROSS)[0]
            ids = set()
            for dy, dx in OFFSETS:
                if 0 <= cy + dy < window.shape[0] and 0 <= cx + dx < window.shape[1]:
                    ids.add(relabelled[cy + dy, cx + dx])
            splits += len(ids) > 2
    return splits, merges


def _case(seed: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.random((h, w)), rng.uniform(1, 2.5))
    gt = (field > np.quantile(field, rng.uniform(0.25, 0.5))).astype(np.uint8) * 255
    noisy = gt / 255 + rng.normal(0, rng.uniform(0.3, 0.8), (h, w))
    prob = np.clip(ndimage.gaussian_filter(noisy, 1.0), 0, 1)
    if seed % 2:
        prob = np.round(prob * 10) / 10  # many equal keys: the tie order matters
    return gt, prob.astype(np.float32)


@pytest.mark.parametrize(("seed", "h", "w"), [(9, 12, 15), (7, 17, 9), (0, 44, 46), (1, 50, 23)])
def test_kernel_matches_the_plain_procedure(seed: int, h: int, w: int) -> None:
    gt, prob = _case(seed, h, w)
    sweep = np.array([0.1, 0.30000000000000004, 0.5, 0.7])
    counts = split_merge_counts(gt[None], prob[None], sweep)[0]
    for t, th in enumerate(sweep):
        assert tuple(counts[t]) == _reference(gt, prob, th, radius=20), th
    assert counts[:, 0].sum() > 0 and counts[:, 1].sum() > 0  # splits and mergers do occur


def test_window_radius_decides_a_cut_ring() -> None:
    """A 1-pixel square ring cut once: no split when the whole ring is seen, a split when
    the window is too small to see the ring close (the reference's approximation)."""
    gt = np.zeros((40, 40), np.uint8)
    gt[4:35, 4:35] = 255
    gt[5:34, 5:34] = 0
    prob = (gt / 255).astype(np.float32)
    prob[4, 19] = 0.0  # the cut, in the middle of the top side
    th = np.array([0.5])
    for radius, splits in ((0, 0), (3, 1), (20, 1), (40, 0)):
        counts = split_merge_counts(gt[None], prob[None], th, radius=radius)[0, 0].tolist()
        assert counts == [splits, 0], radius
        assert counts == list(_reference(gt, prob, 0.5, radius))


def test_label4_uses_4_connectivity() -> None:
    image = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0]], np.uint8)
    expected = ndimage.label(image, CROSS)[0]
    assert np.array_equal(label4(image), expected)
