"""The OME-Zarr writer: valid NGFF 0.5, chunk-wise pyramid levels, completeness, readers."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from ome_zarr_models.v05 import Image as NgffImage

from unet import ngff
from unet.cli import main
from unet.errors import InputError
from unet.readers import open_image, read_volume


@pytest.fixture(scope="module")
def prob() -> np.ndarray:
    """A (3, 101, 77) probability: odd sizes, not multiples of the chunks."""
    return np.random.default_rng(3).random((3, 101, 77)).astype(np.float32)


def _write(path: Path, data: np.ndarray, chunks: tuple[int, ...], axes: str, **kw) -> Path:
    """An OME-Zarr image filled chunk by chunk, as a predictor fills it."""
    level0 = ngff.create_image(path, data.shape, chunks, data.dtype, axes, **kw)
    for region in ngff._regions(data.shape, chunks):
        level0[region] = data[region]
    return path


def _reference(level0: np.ndarray, level: int, method: str) -> np.ndarray:
    """Level ``level`` of a pyramid, by whole-array numpy: NaN-padded 2x2 means, or strides."""
    data = level0
    for _ in range(level):
        if method == "stride":
            data = data[..., ::2, ::2]
            continue
        h, w = data.shape[-2:]
        pad = [(0, 0)] * (data.ndim - 2) + [(0, h % 2), (0, w % 2)]
        padded = np.pad(data.astype(np.float64), pad, constant_values=np.nan)
        blocks = padded.reshape(*padded.shape[:-2], (h + 1) // 2, 2, (w + 1) // 2, 2)
        mean = np.nanmean(blocks, axis=(-3, -1))
        data = (np.rint(mean) if level0.dtype.kind in "iu" else mean).astype(level0.dtype)
    return data


@pytest.mark.parametrize(
    ("dtype", "method"),
    [("float32", None), ("float16", "stride"), ("uint8", None), ("uint8", "mean")],
)
def test_pyramid_levels_equal_numpy_and_validate(tmp_path: Path, prob, dtype, method) -> None:
    data = (prob * 255).astype(np.uint8) if dtype == "uint8" else prob.astype(dtype)
    path = _write(tmp_path / "p.ome.zarr", data, (1, 32, 24), "zyx", attrs={"tile": 64})
    assert ngff.add_levels(path, 3, method, workers=2) == ["0", "1", "2", "3"]
    used = method or ("mean" if dtype.startswith("float") else "stride")
    group = zarr.open_group(str(path), mode="r")
    for level in range(4):
        np.testing.assert_array_equal(group[str(level)][...], _reference(data, level, used))
        assert group[str(level)].metadata.dimension_names == ("z", "y", "x")
    assert group["3"].shape == (3, 13, 10) and group["3"].chunks == (1, 32, 24)
    NgffImage.from_zarr(group)  # raises if the metadata is not valid NGFF 0.5


def test_metadata_is_ngff_05_with_scales_and_translations(tmp_path: Path, prob) -> None:
    path = _write(
        tmp_path / "p.zarr", prob[0], (32, 32), "yx", scale=(0.5, 0.25), unit="micrometer"
    )
    ngff.add_levels(path, 2)
    meta = json.loads((path / "zarr.json").read_text())
    assert meta["zarr_format"] == 3
    ome = meta["attributes"]["ome"]
    assert ome["version"] == "0.5"
    (ms,) = ome["multiscales"]
    assert ms["axes"] == [
        {"name": "y", "type": "space", "unit": "micrometer"},
        {"name": "x", "type": "space", "unit": "micrometer"},
    ]
    scale = [{"type": "scale", "scale": s} for s in ([0.5, 0.25], [1.0, 0.5], [2.0, 1.0])]
    shift = [{"type": "translation", "translation": t} for t in ([0.25, 0.125], [0.75, 0.375])]
    assert [d["coordinateTransformations"] for d in ms["datasets"]] == [
        [scale[0]],
        [scale[1], shift[0]],
        [scale[2], shift[1]],
    ]
    array = json.loads((path / "0" / "zarr.json").read_text())
    assert array["dimension_names"] == ["y", "x"]
    assert [c["name"] for c in array["codecs"]] == ["bytes", "blosc"]
    ngff.add_levels(path, 1, "stride")  # fewer levels: the others go, strides do not shift
    ms = zarr.open_group(str(path), mode="r").attrs["ome"]["multiscales"][0]
    assert [d["path"] for d in ms["datasets"]] == ["0", "1"] and not (path / "2").exists()
    assert ms["datasets"][1]["coordinateTransformations"][1]["translation"] == [0.0, 0.0]
    NgffImage.from_zarr(zarr.open_group(str(path), mode="r"))


def test_the_readers_open_the_result(tmp_path: Path, prob) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    path = _write(tmp_path / "p.ome.zarr", prob, (1, 32, 32), "zyx", scale=(2, 0.5, 0.5))
    ngff.add_levels(path, 2)
    image = open_image(path)
    assert (image.axes, image.shape, image.scale) == ("zyx", prob.shape, (2.0, 0.5, 0.5))
    np.testing.assert_array_equal(image[1, 10:40, 7:9], prob[1, 10:40, 7:9])
    assert open_image(path / "2").scale == (2.0, 2.0, 2.0)
    np.testing.assert_array_equal(read_volume(path), prob)
    node = next(iter(Reader(parse_url(str(path)))()))  # what napari-ome-zarr uses
    assert [level.shape for level in node.data] == [(3, 101, 77), (3, 51, 39), (3, 26, 20)]
    assert [a["name"] for a in node.metadata["axes"]] == ["z", "y", "x"]
    np.testing.assert_array_equal(np.asarray(node.data[0]), prob)


def test_unet_evaluate_reads_the_result(tmp_path: Path, prob, capsys) -> None:
    truth = (prob > 0.5).astype(np.uint8)
    tifffile.imwrite(tmp_path / "gt.tif", truth, photometric="minisblack")
    path = _write(tmp_path / "p.ome.zarr", prob, (1, 64, 64), "zyx")
    ngff.add_levels(path, 1)
    out_json, out_csv = tmp_path / "m.json", tmp_path / "m.csv"
    code = main(["evaluate", str(path), str(tmp_path / "gt.tif"), "--metrics", "pixel",
                 "--out-json", str(out_json), "--out-csv", str(out_csv)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    report = json.loads(out_json.read_text())
    assert report["metrics"]["pixel_error"]["value"] == 0.0  # gt = prob > 0.5


def test_completeness_and_provenance_attributes(tmp_path: Path) -> None:
    path = tmp_path / "p.zarr"
    ngff.create_image(path, (10, 10), (5, 5), "uint8", "yx", {"checkpoint": "ab12", "tta": True})
    assert not ngff.is_complete(path)
    assert ngff.read_attrs(path) == {"checkpoint": "ab12", "tta": True, "complete": False}
    ngff.update_attrs(path, {"seconds": 1.5})
    ngff.mark_complete(path)
    assert ngff.is_complete(path)
    assert ngff.read_attrs(path) == {
        "checkpoint": "ab12",
        "tta": True,
        "complete": True,
        "seconds": 1.5,
    }
    assert "ome" in zarr.open_group(str(path), mode="r").attrs  # the NGFF metadata is kept
    ngff.mark_complete(path, False)
    assert not ngff.is_complete(path)


def test_existing_targets_and_bad_arguments(tmp_path: Path) -> None:
    path = tmp_path / "p.zarr"
    ngff.create_image(path, (10, 10), (5, 5), "uint8", "yx", {"run": 1})
    with pytest.raises(FileExistsError, match=r"p\.zarr: already exists"):
        ngff.create_image(path, (10, 10), (5, 5), "uint8", "yx", {"run": 2})
    assert ngff.read_attrs(path)["run"] == 1
    level0 = ngff.create_image(path, (4, 6), (2, 2), "float32", "yx", {"run": 3}, overwrite=True)
    assert level0.shape == (4, 6) and ngff.read_attrs(path)["run"] == 3
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    with pytest.raises(IsADirectoryError):  # a folder that is not a store is never replaced
        ngff.create_image(folder, (4, 4), (2, 2), "uint8", "yx", overwrite=True)
    assert (folder / "keep.txt").read_text() == "mine"
    bad = [("xy", (4, 4), (2, 2)), ("yx", (4, 4, 4), (2, 2, 2)), ("zyx", (0, 4, 4), (1, 2, 2))]
    for axes, shape, chunks in [*bad, ("cyx", (2, 4, 4), (1, 2))]:
        with pytest.raises(InputError):
            ngff.create_image(tmp_path / "bad.zarr", shape, chunks, "uint8", axes)
        assert not (tmp_path / "bad.zarr").exists()
    with pytest.raises(InputError, match="method 'max'"):
        ngff.add_levels(path, 1, "max")


def test_levels_are_written_without_loading_level_0_whole(tmp_path: Path) -> None:
    ramp = np.linspace(0, 1, 4096, dtype=np.float32)
    data = ramp[None, :2048].T * ramp[None, :]  # 2048 x 4096 float32: 32 MiB
    path = _write(tmp_path / "big.zarr", data, (256, 256), "yx")
    tracemalloc.start()
    try:
        ngff.add_levels(path, 2)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    assert peak < 8, f"writing the levels of a 32 MiB image took {peak:.1f} MiB"
    level2 = zarr.open_array(str(path / "2"), mode="r")[...]
    np.testing.assert_allclose(level2, _reference(data, 2, "mean"), rtol=1e-6)
