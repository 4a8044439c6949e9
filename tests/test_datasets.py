"""Conversion to the canonical store: ISBI 2012 and Fluo-N2DL-HeLa from the shared mirror,
a full-layout CTC zip, the split, the border between touching cells."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from scipy import ndimage

from unet.cli import main
from unet.datasets import FOUR_CONNECTED, make_split, parse_indices, read_tiff, touching_border


def _fetch(name: str, out: Path, mirror: Path, *extra: str) -> Path:
    argv = ["fetch", name, "--out", str(out), "--mirror", str(mirror), "--no-progress", *extra]
    assert main(argv) == 0
    return out / f"{name}.zarr"


@pytest.fixture(scope="module")
def isbi(shared_datasets, tmp_path_factory) -> Path:
    return _fetch("isbi2012", tmp_path_factory.mktemp("isbi"), shared_datasets)


@pytest.fixture(scope="module")
def hela(shared_datasets, tmp_path_factory) -> Path:
    """Fluo-N2DL-HeLa (36 frames of 700x1100 uint16), converted once for the module."""
    return _fetch("Fluo-N2DL-HeLa", tmp_path_factory.mktemp("hela"), shared_datasets)


def test_isbi_store(isbi, shared_datasets) -> None:
    root = zarr.open_group(isbi, mode="r")
    raw, inst, sem = root["raw"], root["instances"], root["semantic"]
    assert (raw.shape, raw.dtype, raw.chunks) == ((25, 512, 512), np.uint8, (1, 512, 512))
    assert (inst.dtype, sem.dtype) == (np.uint32, np.uint8) and inst.shape == sem.shape == raw.shape
    labels = tifffile.imread(shared_datasets / "isbi2012" / "train-labels.tif")
    assert np.array_equal(
        raw[:], tifffile.imread(shared_datasets / "isbi2012" / "train-volume.tif")
    )
    assert np.array_equal(sem[:], (labels > 0).astype(np.uint8))  # cell vs membrane, as given
    counts = [len(np.unique(s)) - 1 for s in inst[:]]
    assert root.attrs["instances_per_slice"] == counts and 80 <= min(counts) and max(counts) <= 150
    assert root.attrs["split"] == {"train": list(range(20)), "val": list(range(20, 25)), "test": []}
    assert (
        root.attrs["dataset"] == "isbi2012" and "isbi2012/train-volume.tif" in root.attrs["source"]
    )
    test = zarr.open_group(isbi.with_name("isbi2012-test.zarr"), mode="r")
    assert list(test.keys()) == ["raw"] and test["raw"].shape == (30, 512, 512)


def test_isbi_instances_are_the_4_connected_cell_components(isbi) -> None:
    inst = zarr.open_group(isbi, mode="r")["instances"][3]
    cells = inst > 0
    for a, b in ((inst[:, :-1], inst[:, 1:]), (inst[:-1], inst[1:])):  # no two ids 4-adjacent
        assert not np.any((a != b) & (a > 0) & (b > 0))
    for cell in np.unique(inst[cells]):  # each id is one 4-connected piece
        assert ndimage.label(inst == cell, FOUR_CONNECTED)[1] == 1
    assert ndimage.label(cells, FOUR_CONNECTED)[1] == len(np.unique(inst[cells]))


def test_hela_store_matches_the_zip(hela, shared_datasets) -> None:
    root = zarr.open_group(hela, mode="r")
    raw, inst, sem = root["raw"], root["instances"], root["semantic"]
    assert (raw.shape, raw.dtype, raw.chunks) == ((36, 700, 1100), np.uint16, (1, 700, 1024))
    assert inst.dtype == np.uint32 and sem.dtype == np.uint8
    frames = root.attrs["frames"]
    assert len(frames) == 36 and sum(f.startswith("01/") for f in frames) == 28
    with zipfile.ZipFile(shared_datasets / "Fluo-N2DL-HeLa.zip") as zf:
        for z in (0, 27, 35):
            seq, t = frames[z].split("/t")
            read = lambda name: tifffile.imread(io.BytesIO(zf.read(f"Fluo-N2DL-HeLa/{name}")))  # noqa: E731
            assert np.array_equal(raw[z], read(f"{seq}/t{t}.tif"))
            assert np.array_equal(inst[z], read(f"{seq}_GT/SEG/man_seg{t}.tif"))
    counts = root.attrs["instances_per_slice"]
    assert counts == [len(np.unique(s)) - 1 for s in inst[:]] and max(counts) >= 300
    split = root.attrs["split"]
    assert (len(split["train"]), len(split["val"]), split["test"]) == (29, 7, [])
    assert sorted(split["train"] + split["val"]) == list(range(36))


def test_hela_semantic_is_cells_less_touching_borders(hela) -> None:
    root = zarr.open_group(hela, mode="r")
    for z in (32, 34):  # the densely annotated frames
        inst, sem = root["instances"][z], root["semantic"][z]
        assert np.array_equal(sem, ((inst > 0) & ~touching_border(inst)).astype(np.uint8))


def _brute_border(labels: np.ndarray) -> np.ndarray:
    out = np.zeros(labels.shape, bool)
    for y, x in np.ndindex(*labels.shape):
        near = labels[max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2]
        out[y, x] = labels[y, x] > 0 and np.any((near > 0) & (near != labels[y, x]))
    return out


def test_touching_border_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    labels = ndimage.zoom(rng.integers(0, 5, (6, 7)), 4, order=0).astype(np.uint32)
    assert np.array_equal(touching_border(labels), _brute_border(labels))


def _tif(data: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, data, compression="zlib")
    return buffer.getvalue()


def test_ctc_full_layout_uses_only_annotated_frames(tmp_path) -> None:
    """Unannotated frames, TRA and ST folders are accepted and ignored."""
    rng = np.random.default_rng(0)
    seg = np.zeros((24, 32), np.uint16)
    seg[2:10, 2:12], seg[2:10, 12:20], seg[14:20, 5:9] = 4, 9, 2  # 4 and 9 touch
    entries = {}
    for seq, annotated in (("01", (1, 3)), ("02", (0,))):
        for t in range(5):
            entries[f"Fluo-N2DH-TINY/{seq}/t{t:03d}.tif"] = _tif(
                rng.integers(0, 4000, (24, 32), np.uint16)
            )
            entries[f"Fluo-N2DH-TINY/{seq}_GT/TRA/man_track{t:03d}.tif"] = _tif(seg)
            entries[f"Fluo-N2DH-TINY/{seq}_ST/SEG/man_seg{t:03d}.tif"] = _tif(seg)
        for t in annotated:
            entries[f"Fluo-N2DH-TINY/{seq}_GT/SEG/man_seg{t:03d}.tif"] = _tif(seg)
        entries[f"Fluo-N2DH-TINY/{seq}_GT/TRA/man_track.txt"] = b"1 0 4 0\n"
    (tmp_path / "mirror").mkdir()
    with zipfile.ZipFile(tmp_path / "mirror" / "Fluo-N2DH-TINY.zip", "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    store = _fetch("Fluo-N2DH-TINY", tmp_path / "out", tmp_path / "mirror")
    root = zarr.open_group(store, mode="r")
    assert root.attrs["frames"] == ["01/t001", "01/t003", "02/t000"]
    assert root["raw"].shape == (3, 24, 32) and root["raw"].dtype == np.uint16
    assert root.attrs["instances_per_slice"] == [3, 3, 3]
    sem = root["semantic"][0]
    assert sem[5, 11] == sem[5, 12] == 0 and sem[5, 10] == sem[5, 13] == 1  # border between 4 and 9
    assert np.array_equal(sem[14:20, 5:9], np.ones((6, 4), np.uint8))  # a lone cell stays whole
    assert not list((tmp_path / "out" / "downloads").rglob(".extract-*"))  # extraction cleaned


def test_split_explicit_and_seeded() -> None:
    assert parse_indices("0-2, 5") == [0, 1, 2, 5] and parse_indices([3, 1]) == [3, 1]
    split = make_split(25, explicit={"train": "0-19", "val": "20-24"})
    assert split == {"train": list(range(20)), "val": list(range(20, 25)), "test": []}
    a = make_split(36, val_fraction=0.2, test_fraction=0.1, seed=3)
    assert a == make_split(36, val_fraction=0.2, test_fraction=0.1, seed=3)
    assert [len(a[p]) for p in ("train", "val", "test")] == [25, 7, 4]
    assert sorted(i for part in a.values() for i in part) == list(range(36))


@pytest.mark.parametrize(
    ("n", "explicit", "message"),
    [
        (
            30,
            {"train": "0-19", "val": "20-24"},
            r"names 25 slices \(up to index 24\) but the data has 30 slices \(0-29\)",
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
        (3, {"val": "0-2"}, "the split leaves no training slice out of 3"),
    ],
)
def test_split_errors_are_clear(n, explicit, message) -> None:
    with pytest.raises(ValueError, match=message):
        make_split(n, explicit=explicit)


@pytest.mark.parametrize("keep", [8, 100, 0.5, 0.9])
def test_damaged_tiffs_are_one_line_errors(tmp_path, keep) -> None:
    data = np.random.default_rng(0).integers(0, 255, (5, 64, 64), np.uint8)
    tifffile.imwrite(tmp_path / "a.tif", data, compression="zlib", photometric="minisblack")
    whole = (tmp_path / "a.tif").read_bytes()
    cut = keep if isinstance(keep, int) else int(len(whole) * keep)
    (tmp_path / "a.tif").write_bytes(whole[:cut])
    with pytest.raises(ValueError, match=r"a.tif: (not a readable|corrupt or truncated) TIFF"):
        read_tiff(tmp_path / "a.tif")
