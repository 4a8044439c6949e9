"""The train / val / test split: explicit ranges, counts from the end, a seeded shuffle."""

from __future__ import annotations

import pytest

from unet.splits import make_split, parse_indices, split_of


def _ranges(n_train: int, n_val: int, n_test: int) -> dict[str, list[int]]:
    """The contiguous split by hand: train first, then val, then test."""
    edges = [0, n_train, n_train + n_val, n_train + n_val + n_test]
    return {p: list(range(edges[i], edges[i + 1])) for i, p in enumerate(("train", "val", "test"))}


def test_split_explicit_and_seeded() -> None:
    assert parse_indices("0-2, 5") == [0, 1, 2, 5] and parse_indices([3, 1]) == [3, 1]
    split = make_split(25, explicit={"train": "0-19", "val": "20-24"})
    assert split == {"train": list(range(20)), "val": list(range(20, 25)), "test": []}
    a = make_split(36, val_fraction=0.2, test_fraction=0.1, seed=3)
    assert a == make_split(36, val_fraction=0.2, test_fraction=0.1, seed=3)
    assert [len(a[p]) for p in ("train", "val", "test")] == [25, 7, 4]
    assert sorted(i for part in a.values() for i in part) == list(range(36))


@pytest.mark.parametrize(
    ("n", "counts", "sizes"),
    [
        (25, {"val_last": 5}, (20, 5, 0)),  # the shared mirror's ISBI: 0-19 / 20-24 as before
        (30, {"val_last": 5}, (25, 5, 0)),  # the challenge's ISBI: 0-24 / 25-29
        (30, {"val_last": 5, "test_last": 5}, (20, 5, 5)),
        (7, {"test_last": 2}, (5, 0, 2)),
        (4, {"val_last": 0, "test_last": 0}, (4, 0, 0)),
        (2, {"val_last": 1}, (1, 1, 0)),
    ],
)
def test_split_counts_from_the_end_fit_any_slice_count(n, counts, sizes) -> None:
    assert make_split(n, explicit=counts) == _ranges(*sizes)
    spec = {"explicit": counts, "val_fraction": 0.5, "seed": 9}  # the fractions are not used
    assert split_of(n, spec, what="x") == _ranges(*sizes)


@pytest.mark.parametrize(
    ("n", "explicit", "message"),
    [
        (
            30,
            {"train": "0-19", "val": "20-24"},
            r"^em \(a.tif\): the split names 25 slices \(up to index 24\) but the data has 30 "
            r"slices \(0-29\); every slice must be in exactly one of train/val/test: set "
            r"datasets.em.split to train/val/test ranges covering each of 0-29 once, or to "
            r"val_last/test_last counts \(e.g. \{val_last: 5\}\)$",
        ),
        (
            20,
            {"train": "0-19", "val": "20-24"},
            r"names 25 slices \(up to index 24\) but the data has 20 slices",
        ),
        (
            25,
            {"train": "0-19", "val": "19-24"},
            "every slice must be in exactly one of train/val/test",
        ),
        (25, {"train": "0-19", "vali": "20-24"}, r"unknown split part\(s\) \['vali'\]"),
        (25, {"train": "0-x"}, "bad slice range '0-x'"),
        (3, {"val": "0-2"}, "the split leaves no training slice out of 3; set datasets.em"),
        (5, {"val_last": 5}, r"val_last 5 \+ test_last 0 leave no training slice out of 5"),
        (5, {"val_last": 2, "test_last": 3}, "leave no training slice out of 5; set "),
        (25, {"val_last": 5, "train": "0-19"}, r"the split mixes \['train'\] with \('val_last'"),
        (25, {"val_last": -1}, "split val_last must be an integer >= 0, got -1"),
        (25, {"test_last": "5"}, "split test_last must be an integer >= 0, got '5'"),
        (25, {"val_last": True}, "split val_last must be an integer >= 0, got True"),
    ],
)
def test_split_errors_are_clear(n, explicit, message) -> None:
    with pytest.raises(ValueError, match=message) as err:
        make_split(n, explicit=explicit, what="em (a.tif)", setting="datasets.em.split")
    assert len(str(err.value).splitlines()) == 1
