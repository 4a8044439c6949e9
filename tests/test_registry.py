"""The dataset registry: ISBI 2012, CTC 2D training sets by name, synthetic, overrides."""

from __future__ import annotations

import pytest

from unet.registry import dataset_entry
from unet.splits import make_split


def test_registry_knows_isbi_ctc_by_name_and_synthetic() -> None:
    isbi = dataset_entry("isbi2012")
    assert isbi["format"] == "isbi2012" and sorted(isbi["files"]) == [
        "test-volume.tif",
        "train-labels.tif",
        "train-volume.tif",
    ]
    gowt = dataset_entry("Fluo-N2DH-GOWT1")["files"]["Fluo-N2DH-GOWT1.zip"]
    assert (
        gowt["url"]
        == "https://data.celltrackingchallenge.net/training-datasets/Fluo-N2DH-GOWT1.zip"
    )
    assert dataset_entry("PhC-C2DH-U373")["format"] == "ctc"
    assert dataset_entry("Fluo-N2DL-HeLa")["files"]["Fluo-N2DL-HeLa.zip"][
        "mirror_sha256"
    ].startswith("a602")
    assert dataset_entry("synthetic") == {"format": "synthetic"}
    mine = dataset_entry("my-em", {"format": "isbi2012", "files": {"a.tif": {"url": "http://x/a"}}})
    assert mine["files"]["a.tif"] == {"url": "http://x/a"}
    assert dataset_entry("isbi2012", {"split": {"train": "0-24"}})["split"] == {"train": "0-24"}


@pytest.mark.parametrize(("slices", "train", "val"), [(25, 20, 5), (30, 25, 5)])
def test_isbi_split_fits_the_shared_and_the_official_slice_counts(slices, train, val) -> None:
    """The last 5 slices validate: 0-19 / 20-24 of the shared 25, 0-24 / 25-29 of the 30."""
    split = make_split(slices, explicit=dataset_entry("isbi2012")["split"])
    assert split == {
        "train": list(range(train)),
        "val": list(range(train, train + val)),
        "test": [],
    }


@pytest.mark.parametrize(
    ("name", "override", "message"),
    [
        ("Fluo-N3DH-CE", None, "unknown dataset 'Fluo-N3DH-CE'; expected isbi2012, synthetic"),
        ("x", {"format": "hdf5"}, "dataset 'x': format 'hdf5' is not one of"),
        ("x", {"format": "ctc"}, "dataset 'x': no files to download"),
    ],
)
def test_bad_entries(name, override, message) -> None:
    with pytest.raises(ValueError, match=message):
        dataset_entry(name, override)
