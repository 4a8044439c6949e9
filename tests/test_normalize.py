"""The normalisation definitions against numpy, and the bounded sample of a large image."""

from __future__ import annotations

import numpy as np
import pytest

from unet.errors import InputError
from unet.normalize import Scaling, check, dtype_range, parse, resolve, sample


class _Counting:
    """An image that counts the pixels read (region reads only, as from a store)."""

    def __init__(self, data: np.ndarray) -> None:
        self.data, self.read = data, 0
        self.shape, self.dtype = data.shape, data.dtype

    def __getitem__(self, region):
        block = self.data[region]
        self.read += block.size
        return block


def test_bare_checkpoint_scales_integers_by_their_dtype_range() -> None:
    x = np.array([0, 1, 128, 255], np.uint8)
    assert np.array_equal(resolve(None, x).apply(x), x.astype(np.float32) / np.float32(255))
    y = np.array([0, 65535], np.uint16)
    assert resolve({"kind": "dtype"}, y).apply(y).tolist() == [0.0, 1.0]
    z = np.array([-128, 127], np.int8)
    assert resolve(None, z).apply(z).tolist() == [0.0, 1.0]
    assert resolve(None, np.array([True, False])).apply(np.array([True, False])).tolist() == [1, 0]


def test_floats_are_used_as_they_are() -> None:
    f = np.array([-0.5, 0.25, 3.0], np.float32)
    out = resolve(None, f).apply(f)
    assert out.dtype == np.float32 and np.array_equal(out, f)
    assert dtype_range(np.float64) == (0.0, 1.0)


def test_fixed_and_clip() -> None:
    x = np.array([0, 50, 100, 300], np.uint16)
    s = resolve({"kind": "fixed", "low": 50, "high": 150}, x)
    assert s == Scaling(50.0, 150.0) and s.apply(x).tolist() == [-0.5, 0.0, 0.5, 2.5]
    s = resolve({"kind": "fixed", "low": 50, "high": 150, "clip": True}, x)
    assert s.apply(x).tolist() == [0.0, 0.0, 0.5, 1.0]


def test_percentiles_of_a_small_image_are_exact() -> None:
    x = np.random.default_rng(0).gamma(2.0, 30.0, (40, 50)).astype(np.float32)
    s = resolve({"kind": "percentile", "low": 1, "high": 99.8}, x)
    assert (s.low, s.high) == tuple(np.percentile(x.astype(np.float64), [1, 99.8]))


def test_percentiles_of_a_large_image_come_from_a_bounded_sample() -> None:
    rng = np.random.default_rng(1)
    data = rng.integers(0, 4096, (6, 700, 900), dtype=np.uint16)
    image = _Counting(data)
    s = resolve({"kind": "percentile", "low": 2, "high": 98, "sample": 2**16}, image)
    assert image.read <= 2**16 and image.read > 2**15
    low, high = np.percentile(data, [2, 98])
    assert abs(s.low - low) < 30 and abs(s.high - high) < 30  # 4096 grey values


def test_sample_spreads_blocks_over_every_axis() -> None:
    data = np.arange(8 * 512 * 512, dtype=np.float64).reshape(8, 512, 512)
    values = sample(data, 2**17)  # 4 blocks of 8x64x64
    assert values.min() == 0 and values.max() == data.max()  # first and last corner


def test_constant_image_maps_to_zero() -> None:
    x = np.full((5, 5), 7, np.uint8)
    assert resolve({"kind": "percentile", "low": 1, "high": 99}, x).apply(x).max() == 0


@pytest.mark.parametrize(
    "spec",
    [
        {"kind": "zscore"},
        {"kind": "fixed", "low": 1},
        {"kind": "fixed", "low": 2, "high": 1},
        {"kind": "fixed", "low": 0, "high": float("nan")},
        {"kind": "percentile", "low": -1, "high": 99},
        "dtype",
    ],
)
def test_bad_definitions_are_refused_naming_them(spec) -> None:
    with pytest.raises(InputError, match=r"ckpt\.pt: normalization"):
        check(spec, "ckpt.pt: normalization")


def test_complex_data_is_refused() -> None:
    with pytest.raises(InputError, match="dtype complex64"):
        resolve(None, np.zeros(3, np.complex64))


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("dtype", {"kind": "dtype"}),
        ("dtype:clip", {"kind": "dtype", "clip": True}),
        ("percentile:1:99.8", {"kind": "percentile", "low": 1.0, "high": 99.8}),
        ("percentile:1:99.8:clip", {"kind": "percentile", "low": 1.0, "high": 99.8, "clip": True}),
        ("fixed:-5:33000.5:clip", {"kind": "fixed", "low": -5.0, "high": 33000.5, "clip": True}),
    ],
)
def test_parse_reads_the_flag_spelling(text: str, spec: dict) -> None:
    assert parse(text) == spec
    assert check(parse(text)) == spec


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("minmax", "expected dtype, percentile:LOW:HIGH or fixed:LOW:HIGH"),
        ("percentile:1", "expected dtype, percentile:LOW:HIGH"),
        ("percentile:a:99", "expected dtype, percentile:LOW:HIGH"),
        ("fixed:1:2:3", "expected dtype, percentile:LOW:HIGH"),
        ("dtype:1:2", "expected dtype, percentile:LOW:HIGH"),
        ("percentile:1:99:clop", "expected dtype, percentile:LOW:HIGH"),
        ("percentile:99:1", "expected numbers low < high"),
        ("percentile:1:101:clip", "percentiles must satisfy 0 <= low < high <= 100"),
        ("fixed:1:nan", "expected numbers low < high"),
    ],
)
def test_parse_names_the_bad_value(text: str, message: str) -> None:
    with pytest.raises(InputError) as err:
        parse(text)
    assert f"--normalize {text!r}" in str(err.value) and message in str(err.value)
    assert len(str(err.value).splitlines()) == 1
