"""The lazy, axis-aware reader: every source kind, region reads, laziness and bad input."""

from __future__ import annotations

import pickle
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from unet.errors import InputError
from unet.readers import group_arrays, group_attrs, open_image, read_volume

REGIONS = [
    ...,
    (slice(1, 4), slice(10, 50), slice(3, 90)),
    (2,),
    (slice(None), 5, slice(7, 9)),
    (-1, slice(60, None), slice(None, 11)),
    (..., slice(0, 1)),
]
OME_AXES = {
    "t": {"name": "t", "type": "time"},
    "c": {"name": "c", "type": "channel"},
    "z": {"name": "z", "type": "space", "unit": "micrometer"},
    "y": {"name": "y", "type": "space", "unit": "micrometer"},
    "x": {"name": "x", "type": "space", "unit": "micrometer"},
}


@pytest.fixture(scope="module")
def vol() -> np.ndarray:
    return np.random.default_rng(7).integers(0, 60000, (5, 67, 93), dtype=np.uint16)


def _ome_group(path: Path, data: np.ndarray, axes: str, version: str, scale=None) -> Path:
    """A one-level OME-Zarr written by hand: 0.4 in zarr v2, 0.5 in zarr v3."""
    fmt = 2 if version == "0.4" else 3
    group = zarr.open_group(str(path), mode="w", zarr_format=fmt)
    kw = {} if fmt == 2 else {"dimension_names": tuple(axes)}
    group.create_array("s0", shape=data.shape, chunks=(1,) * (data.ndim - 2) + (32, 32),
                       dtype=data.dtype, **kw)[...] = data  # fmt: skip
    scale = scale or [1.0] * len(axes)
    transforms = [{"type": "scale", "scale": scale}]
    ms = {"axes": [OME_AXES[a] for a in axes],
          "datasets": [{"path": "s0", "coordinateTransformations": transforms}]}  # fmt: skip
    if fmt == 2:
        group.attrs["multiscales"] = [{"version": "0.4", **ms}]
    else:
        group.attrs["ome"] = {"version": "0.5", "multiscales": [ms]}
    return path


def _pages(path: Path, data: np.ndarray) -> Path:
    with tifffile.TiffWriter(path) as tif:
        for page in data:
            tif.write(page, compression="lzw")
    return path


def _array(path: Path, data: np.ndarray, fmt: int, **kw) -> Path:
    chunks = (1,) * (data.ndim - 3) + (2, 16, 32)
    zarr.create_array(str(path), shape=data.shape, chunks=chunks, dtype=data.dtype,
                      zarr_format=fmt, **kw)[...] = data  # fmt: skip
    return path


def _dataset_store(path: Path, data: np.ndarray) -> Path:
    group = zarr.open_group(str(path), mode="w")
    group.attrs["split"] = {"train": [0], "val": [1]}
    group.create_array("raw", data=data, chunks=(1, 32, 32))
    group.create_array("semantic", data=(data > 30000).astype(np.uint8))
    group.create_array("instances", data=(data > 30000).astype(np.uint32))
    return path


# name -> (write(tmp_path, vol) -> path to open, array name, axes, the expected data)
SOURCES: dict[str, Callable[[Path, np.ndarray], tuple[Path, str | None]]] = {
    "tiff-2d": lambda p, v: (tifffile.imwrite(p / "a.tif", v[2]) or p / "a.tif", None),
    "tiff-stack": lambda p, v: (tifffile.imwrite(p / "a.tif", v) or p / "a.tif", None),
    "tiff-big-endian": lambda p, v: (
        tifffile.imwrite(p / "a.tif", v, byteorder=">") or p / "a.tif", None),
    "tiff-pages": lambda p, v: (_pages(p / "a.tiff", v), None),
    "bigtiff-tiled-zlib": lambda p, v: (tifffile.imwrite(
        p / "a.tif", v, bigtiff=True, tile=(32, 32), compression="zlib") or p / "a.tif", None),
    "tiff-strips-zstd": lambda p, v: (tifffile.imwrite(
        p / "a.tif", v, rowsperstrip=8, compression="zstd") or p / "a.tif", None),
    "ome-tiff-tzcyx": lambda p, v: (tifffile.imwrite(
        p / "a.ome.tif", v[None, :, None], ome=True, metadata={"axes": "TZCYX"})
        or p / "a.ome.tif", None),
    "zarr-v2-array": lambda p, v: (_array(p / "a.zarr", v, 2), None),
    "zarr-v3-array": lambda p, v: (_array(p / "a.zarr", v, 3), None),
    "zarr-v3-named-dims": lambda p, v: (
        _array(p / "a.zarr", v, 3, dimension_names=("z", "y", "x")), None),
    "zarr-4d-singleton": lambda p, v: (_array(p / "a.zarr", v[None], 3), None),
    "zarr-group-one-array": lambda p, v: (
        zarr.open_group(str(p / "g.zarr"), mode="w").create_array("img", data=v).store
        and p / "g.zarr", None),
    "dataset-store": lambda p, v: (_dataset_store(p / "d.zarr", v), None),
    "dataset-store-named": lambda p, v: (_dataset_store(p / "d.zarr", v), "raw"),
    "dataset-store-path": lambda p, v: (_dataset_store(p / "d.zarr", v) / "raw", None),
    "ome-zarr-0.4": lambda p, v: (_ome_group(p / "o.zarr", v[None, None], "tczyx", "0.4"), None),
    "ome-zarr-0.5": lambda p, v: (_ome_group(p / "o.zarr", v[:, None], "zcyx", "0.5"), None),
    "ome-zarr-0.5-2d": lambda p, v: (_ome_group(p / "o.zarr", v[3], "yx", "0.5"), None),
    "ome-zarr-level-path": lambda p, v: (
        _ome_group(p / "o.zarr", v[None], "czyx", "0.5") / "s0", None),
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(SOURCES))
def test_every_source_reads_its_regions(tmp_path: Path, vol: np.ndarray, kind: str) -> None:
    path, array = SOURCES[kind](tmp_path, vol)
    expected = vol[2] if kind == "tiff-2d" else vol[3] if kind.endswith("2d") else vol
    with open_image(path, array) as image:
        assert image.shape == expected.shape and image.ndim == expected.ndim
        assert image.axes == ("yx" if expected.ndim == 2 else "zyx")
        assert image.dtype == np.dtype(np.uint16) and image.path == Path(path)
        for region in REGIONS if expected.ndim == 3 else [..., (slice(3, 9), 4), (-2,)]:
            got = image[region]
            assert isinstance(got, np.ndarray) and got.dtype == expected.dtype.newbyteorder("=")
            np.testing.assert_array_equal(got, expected[region], err_msg=str(region))
        np.testing.assert_array_equal(image.read(), expected)
        again = pickle.loads(pickle.dumps(image))  # worker processes reopen by path
        np.testing.assert_array_equal(again[..., 1:5, 2:3], expected[..., 1:5, 2:3])
        again.close()
    np.testing.assert_array_equal(read_volume(path, array), expected)


def test_tiff_and_zarr_chunks_are_known(tmp_path: Path, vol: np.ndarray) -> None:
    tifffile.imwrite(tmp_path / "t.tif", vol, tile=(32, 48), compression="zlib")
    assert open_image(tmp_path / "t.tif").chunks == (1, 32, 48)
    assert open_image(_array(tmp_path / "a.zarr", vol, 3)).chunks == (2, 16, 32)
    tifffile.imwrite(tmp_path / "m.tif", vol)
    assert open_image(tmp_path / "m.tif").chunks is None  # a memory map


def test_ome_scale_follows_the_axes_kept(tmp_path: Path, vol: np.ndarray) -> None:
    path = _ome_group(tmp_path / "o.zarr", vol[None], "czyx", "0.5", scale=[1, 2.5, 0.5, 0.25])
    image = open_image(path)
    assert (image.axes, image.scale) == ("zyx", (2.5, 0.5, 0.25))
    assert open_image(path / "s0").scale == (2.5, 0.5, 0.25)  # level opened directly
    assert open_image(_array(tmp_path / "a.zarr", vol, 3)).scale == (1.0, 1.0, 1.0)


def test_group_helpers_keep_working_for_evaluation(tmp_path: Path, vol: np.ndarray) -> None:
    store = _dataset_store(tmp_path / "d.zarr", vol)
    assert group_arrays(store) == ["instances", "raw", "semantic"]
    assert group_attrs(store)["split"] == {"train": [0], "val": [1]}
    assert group_arrays(store / "raw") == [] and group_attrs(store / "raw") == {}
    group = zarr.open_group(str(tmp_path / "p.zarr"), mode="w")
    group.create_array("raw", data=vol)
    group.create_array("probability", data=(vol / 60000).astype(np.float32))
    assert read_volume(tmp_path / "p.zarr").dtype == np.float32  # probability before raw


def _peak_mib(read: Callable[[], np.ndarray]) -> float:
    tracemalloc.start()
    try:
        read()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A 64 MiB 8192 x 8192 image, as TIFFs (tiled, striped, uncompressed) and zarr."""
    root = tmp_path_factory.mktemp("large")
    ramp = np.arange(8192, dtype=np.uint8)
    image = ramp[:, None] * np.uint8(7) + ramp[None, :] * np.uint8(3)
    fast = {"compression": "zlib", "compressionargs": {"level": 1}}
    tifffile.imwrite(root / "tiled.tif", image, bigtiff=True, tile=(512, 512), **fast)
    tifffile.imwrite(root / "strips.tif", image, rowsperstrip=64, **fast)
    tifffile.imwrite(root / "plain.tif", image)
    zarr.create_array(str(root / "a.zarr"), shape=image.shape, chunks=(512, 512),
                      dtype=image.dtype)[...] = image  # fmt: skip
    return root, image


@pytest.mark.parametrize("name", ["tiled.tif", "strips.tif", "plain.tif", "a.zarr"])
def test_a_region_read_does_not_read_the_whole_image(large, name: str) -> None:
    root, image = large
    region = (slice(3000, 3500), slice(5000, 5600))
    with open_image(root / name) as lazy:
        peak = _peak_mib(lambda: np.testing.assert_array_equal(lazy[region], image[region]))
        whole = _peak_mib(lazy.read)
    assert whole >= 64, f"the measurement must see a whole read ({whole:.1f} MiB)"
    assert peak < 8, f"{name}: reading 0.3 MiB of a 64 MiB image took {peak:.1f} MiB"


def _c3(path: Path) -> Path:
    return _ome_group(path, np.zeros((3, 4, 5), np.uint8), "cyx", "0.5")


def _t2(path: Path) -> Path:
    return _ome_group(path, np.zeros((2, 1, 4, 5), np.uint8), "tczyx"[:1] + "zyx", "0.4")


def _zarr(path: Path, shape: tuple[int, ...], **kw) -> Path:
    zarr.create_array(str(path), shape=shape, dtype="u1", **kw)
    return path


def _two(path: Path) -> Path:
    group = zarr.open_group(str(path), mode="w")
    group.create_array("a", data=np.zeros((4, 4)))
    group.create_array("b", data=np.zeros((4, 4)))
    return path


def _cut(path: Path, **kw) -> Path:
    data = np.random.default_rng(0).integers(0, 255, (4, 64, 64), np.uint8)
    kw = {"tile": (32, 32), "compression": "zlib", **kw}
    tifffile.imwrite(path.with_suffix(".full.tif"), data, photometric="minisblack", **kw)
    path.write_bytes(path.with_suffix(".full.tif").read_bytes()[:-2000])
    return path


BAD: dict[str, tuple[Callable[[Path], Path], str | None, str]] = {
    "missing": (lambda p: p / "nope.tif", None, "no such file"),
    "missing-zarr": (lambda p: p / "nope.zarr", None, "no such file"),
    "garbage-tiff": (lambda p: (p / "g.tif").write_bytes(b"II*\x00garbage") and p / "g.tif",
                     None, "not a readable TIFF"),
    "truncated-tiff": (lambda p: _cut(p / "cut.tif"), None, "not a readable TIFF"),
    "truncated-plain-tiff": (lambda p: _cut(p / "cut.tif", tile=None, compression=None),
                             None, "not a readable TIFF (truncated"),
    "not-zarr": (lambda p: (p / "x.zarr").mkdir() or p / "x.zarr", None,
                 "neither a TIFF nor a zarr"),
    "empty": (lambda p: _zarr(p / "e.zarr", (0, 5)), None, "empty image"),
    "1-d": (lambda p: _zarr(p / "e.zarr", (5,)), None, "expected a 2-D image or a (Z, Y, X)"),
    "4-d": (lambda p: _zarr(p / "e.zarr", (2, 3, 4, 4)), None, "got shape (2, 3, 4, 4)"),
    "channels": (lambda p: _c3(p / "c.zarr"), None, "has 3 channels (axis 'c'"),
    "dim-names": (lambda p: _zarr(p / "e.zarr", (2, 4, 4), dimension_names=("c", "y", "x")),
                  None, "has 2 channels (axis 'c'"),
    "time": (lambda p: _t2(p / "t.zarr"), None, "has 2 time points (axis 't'"),
    "rgb-tiff": (lambda p: tifffile.imwrite(p / "rgb.tif", np.zeros((8, 8, 3), np.uint8))
                 or p / "rgb.tif", None, "has 3 channels"),
    "two-arrays": (_two, None, "arrays ['a', 'b']; name the one to use"),
    "no-such-array": (_two, "c", "no array 'c' (arrays: a, b)"),
    "array-of-array": (lambda p: _zarr(p / "e.zarr", (4, 4)), "a", "is a zarr array"),
    "array-of-tiff": (lambda p: tifffile.imwrite(p / "a.tif", np.zeros((4, 4), np.uint8))
                      or p / "a.tif", "raw", "is a TIFF"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_a_one_line_error_naming_the_file(tmp_path: Path, case: str) -> None:
    make, array, message = BAD[case]
    path = make(tmp_path)
    with pytest.raises((InputError, FileNotFoundError)) as err:
        open_image(path, array)
    text = str(err.value)
    assert message in text and str(path) in text and "\n" not in text, text


def test_a_damaged_chunk_is_a_one_line_error_when_read(tmp_path: Path, vol: np.ndarray) -> None:
    tifffile.imwrite(tmp_path / "t.tif", vol, tile=(32, 32), compression="zlib")
    with tifffile.TiffFile(tmp_path / "t.tif") as tif:
        start = tif.pages[1].dataoffsets[2]
    data = bytearray((tmp_path / "t.tif").read_bytes())
    data[start : start + 40] = bytes(40)
    (tmp_path / "t.tif").write_bytes(data)
    store = _array(tmp_path / "a.zarr", vol, 3)
    (store / "c" / "1" / "0" / "0").write_bytes(b"not a compressed chunk")
    for path, bad, good in [(tmp_path / "t.tif", 1, 0), (store, 2, 0)]:
        with open_image(path) as image:
            np.testing.assert_array_equal(image[good], vol[good])  # the rest stays readable
            with pytest.raises(InputError) as err:
                image[bad]
        assert str(path) in str(err.value) and "\n" not in str(err.value), err.value
