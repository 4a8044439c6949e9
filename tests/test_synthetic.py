"""The synthetic EM-like generator: deterministic by seed, membranes, touching cells."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from unet.datasets import semantic_of
from unet.synthetic import SyntheticParams, synthetic_slices

SMALL = SyntheticParams(size=96, cell_diameter=16.0)


def _stack(n: int, seed: int, p: SyntheticParams = SMALL) -> tuple[np.ndarray, np.ndarray]:
    raw, inst = zip(*synthetic_slices(n, seed, p), strict=True)
    return np.stack(raw), np.stack(inst)


def test_deterministic_by_seed_and_slice() -> None:
    raw, inst = _stack(3, seed=7)
    raw2, inst2 = _stack(5, seed=7)
    assert np.array_equal(raw, raw2[:3]) and np.array_equal(inst, inst2[:3])
    other, _ = _stack(3, seed=8)
    assert not np.array_equal(raw, other)
    assert not np.array_equal(raw[0], raw[1])


def test_dtypes_shapes_and_labels() -> None:
    raw, inst = _stack(2, seed=0)
    assert raw.dtype == np.uint8 and inst.dtype == np.uint32 and raw.shape == (2, 96, 96)
    for labels in inst:
        ids = np.unique(labels)
        assert ids[0] == 0 and np.array_equal(ids, np.arange(len(ids)))  # 1..n, no gaps
        assert 20 <= len(ids) - 1 <= 60  # about (96 / 16)^2 cells
        assert 0.1 < (labels == 0).mean() < 0.35  # membranes, like ISBI's ~22 %
    # membranes are dark: mean raw on membrane well below the cells'
    assert raw[inst == 0].mean() < raw[inst > 0].mean() - 40


def _touching_pairs(labels: np.ndarray) -> set[tuple[int, int]]:
    """Brute force: pairs of distinct cells that are 4-neighbours somewhere."""
    pairs = set()
    for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1, :], labels[1:, :])):
        hit = (a != b) & (a > 0) & (b > 0)
        pairs |= {(min(x, y), max(x, y)) for x, y in zip(a[hit], b[hit], strict=True)}
    return pairs


def test_has_touching_cells_and_the_target_separates_them() -> None:
    _, inst = _stack(2, seed=0)
    for labels in inst:
        assert len(_touching_pairs(labels)) >= 3
        semantic = semantic_of(labels)
        comps, _ = ndimage.label(semantic, np.ones((3, 3)))
        for comp in range(1, comps.max() + 1):  # each 8-connected blob of the target is one cell
            assert len(np.unique(labels[comps == comp])) == 1


def test_membrane_widths_vary() -> None:
    _, inst = _stack(1, seed=0, p=SyntheticParams(size=128, membrane_width=(2, 8)))
    membrane = inst[0] == 0
    thickness = ndimage.distance_transform_edt(membrane)
    assert thickness.max() >= 3  # wide membranes exist besides the 2-pixel ones
    assert np.percentile(thickness[membrane], 50) <= 1.5


def test_no_touching_when_fraction_is_zero() -> None:
    _, inst = _stack(1, seed=3, p=SyntheticParams(size=96, cell_diameter=16.0, touching_fraction=0))
    assert _touching_pairs(inst[0]) == set()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"size": 8}, "size must be at least 16 pixels, got 8"),
        ({"cell_diameter": 2.0}, r"cell diameter must be in \[4, size=256\], got 2.0"),
        ({"membrane_width": (4, 2)}, r"membrane width must be 2 <= min <= max, got \(4, 2\)"),
        ({"touching_fraction": 1.5}, r"touching fraction must be in \[0, 1\], got 1.5"),
    ],
)
def test_bad_parameters(params, message) -> None:
    with pytest.raises(ValueError, match=message):
        next(synthetic_slices(1, 0, SyntheticParams(**params)))


def test_every_cell_keeps_its_id_when_all_cells_touch() -> None:
    p = SyntheticParams(size=96, cell_diameter=16.0, touching_fraction=1.0)
    _, inst = _stack(1, 3, p)
    assert (inst > 0).all()  # no membrane at all: no cell may become background
    assert np.array_equal(np.unique(inst), np.arange(1, inst.max() + 1))
