"""Shape arithmetic against brute-force references, real forward passes and the paper's numbers."""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from unet import shapes
from unet.model import UNet

SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"
PADDINGS = ("valid", "same")


def _schema_depths() -> range:
    depth = yaml.safe_load(SCHEMA.read_text())["properties"]["model"]["properties"]["depth"]
    return range(depth["minimum"], depth["maximum"] + 1)


DEPTHS = _schema_depths()


def _simulate(size: int, depth: int, padding: str) -> int | None:
    """Follow one axis through every layer; None where a layer gets a size it cannot take."""
    loss = 4 if padding == "valid" else 0
    skips = []
    for level in range(depth):
        size -= loss
        if size < 1:
            return None
        if level < depth - 1:
            if size % 2:
                return None
            skips.append(size)
            size //= 2
    for skip in reversed(skips):
        size = 2 * size - loss
        if size < 1 or size + loss > skip:
            return None
    return size


@cache
def _valid_sizes(depth: int, padding: str, top: int = 4096) -> list[int]:
    return [s for s in range(1, top) if _simulate(s, depth, padding) is not None]


def _exact_pixels(n: int, depth: int) -> list[bool]:
    """Which outputs of a same-padded window of ``n`` pixels equal the whole pass's: follow
    'every value read is the whole pass's value' through every layer (zero padding is not)."""

    def convs(x: list[bool]) -> list[bool]:
        for _ in range(2):
            x = [0 < i < len(x) - 1 and x[i - 1] and x[i] and x[i + 1] for i in range(len(x))]
        return x

    x, skips = [True] * n, []
    for level in range(depth):
        x = convs(x)
        if level < depth - 1:
            skips.append(x)
            x = [x[2 * i] and x[2 * i + 1] for i in range(len(x) // 2)]
    for skip in reversed(skips):
        x = convs([a and x[i // 2] for i, a in enumerate(skip)])
    return x


def _brute_margins(depth: int, padding: str) -> tuple[int, int]:
    if padding == "valid":
        first = _valid_sizes(depth, padding)[0]
        half = (first - _simulate(first, depth, padding)) // 2
        return half, half
    s = shapes.step(depth)
    n = 8 * s + 16 * s  # well beyond any context; a multiple of the step
    bad = [i for i, ok in enumerate(_exact_pixels(n, depth)) if not ok]
    return max(i for i in bad if i < n // 2) + 1, n - min(i for i in bad if i >= n // 2)


def test_paper_numbers() -> None:
    assert shapes.output_size(572) == 388
    assert shapes.input_size(388) == 572
    assert shapes.halo() == 92
    assert shapes.step() == 16
    assert shapes.valid_inputs_near(572) == (572, 572)
    assert shapes.valid_inputs_near(571) == (556, 572)
    assert shapes.input_size(380) == 572  # smallest input whose output covers 380
    assert shapes.halo(1) == 2 and shapes.halo(2) == 8 and shapes.halo(3) == 20


def test_same_padding_needs_more_than_the_halo() -> None:
    # The measurements: same-padded tiles match the whole image at 22 and 94.
    assert shapes.margins(3, "same") == (22, 22) and shapes.halo(3) == 20
    assert shapes.margins(5, "same") == (94, 94) and shapes.halo(5) == 92
    assert shapes.margins(5, "valid") == (92, 92)


def test_valid_input_sizes_are_the_paper_lattice() -> None:
    valid = [s for s in range(1, 700) if shapes.is_valid_input(s)]
    assert valid == list(range(188, 700, 16))
    assert all(shapes.output_size(s) == s - 184 for s in valid)


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("depth", DEPTHS)
def test_every_schema_depth_matches_brute_force(depth: int, padding: str) -> None:
    valid = _valid_sizes(depth, padding)
    s = shapes.step(depth)
    assert s == valid[1] - valid[0] == 2 ** (depth - 1)
    assert valid == list(range(valid[0], 4096, s))  # an arithmetic progression
    assert [v for v in range(1, 4096) if shapes.is_valid_input(v, depth, padding)] == valid
    assert all(shapes.output_size(v, depth, padding) == _simulate(v, depth, padding) for v in valid)
    if padding == "valid":
        assert shapes.halo(depth) == (valid[0] - _simulate(valid[0], depth, padding)) // 2
    assert shapes.margins(depth, padding) == _brute_margins(depth, padding)
    for size in (-3, 0, 1, valid[0] - 1, valid[0], valid[0] + 1, 572, 1000, 1531, 1532, 2000):
        lower = max((v for v in valid if v <= size), default=None)
        upper = min(v for v in valid if v >= size)
        assert shapes.valid_inputs_near(size, depth, padding) == (lower, upper)
        tile = lower or valid[0]
        assert shapes.tile_sizes(size, depth, padding) == (tile, _simulate(tile, depth, padding))
        if size >= 1:
            cover = min(v for v in valid if _simulate(v, depth, padding) >= size)
            assert shapes.input_size(size, depth, padding) == cover


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("depth", DEPTHS)
def test_every_schema_depth_runs_forward(depth: int, padding: str) -> None:
    net = UNet(base_channels=1, depth=depth, padding=padding, dropout=0.0).eval()
    size, out = shapes.tile_sizes(1, depth, padding)
    with torch.no_grad():
        y = net(torch.zeros(1, 1, size, size + shapes.step(depth)))
    assert y.shape[2:] == (out, shapes.output_size(size + shapes.step(depth), depth, padding))
    with pytest.raises(ValueError, match=f"input size {size - 1} is invalid"):
        net(torch.zeros(1, 1, size - 1, size))


def test_invalid_size_message_names_size_and_neighbours() -> None:
    with pytest.raises(ValueError, match=r"input size 100 is invalid .* nearest valid sizes: 188$"):
        shapes.output_size(100)
    with pytest.raises(ValueError, match=r"input size 50 .* same padding.*: 48 or 64"):
        shapes.output_size(50, depth=5, padding="same")
    with pytest.raises(ValueError, match="padding must be one of"):
        shapes.output_size(572, padding="reflect")
    with pytest.raises(ValueError, match="padding must be one of"):
        shapes.margins(3, "reflect")


@settings(max_examples=40, deadline=None)
@given(
    depth=st.integers(1, 4),
    padding=st.sampled_from(["valid", "same"]),
    size=st.integers(1, 140),
)
def test_shape_functions_agree_with_forward_passes(depth: int, padding: str, size: int) -> None:
    net = UNet(base_channels=1, depth=depth, padding=padding, dropout=0.0).eval()
    x = torch.zeros(1, 1, size, shapes.valid_inputs_near(32, depth, padding)[1])
    if not shapes.is_valid_input(size, depth, padding):
        with pytest.raises(ValueError, match=f"input size {size} is invalid"):
            net(x)
        return
    with torch.no_grad():
        out = net(x)
    assert out.shape[2] == shapes.output_size(size, depth, padding)
    need = shapes.input_size(out.shape[2], depth, padding)
    assert need <= size and shapes.output_size(need, depth, padding) == out.shape[2]
    if padding == "valid":
        assert size - out.shape[2] == 2 * shapes.halo(depth)


@settings(max_examples=60, deadline=None)
@given(depth=st.integers(1, 8), out=st.integers(1, 20000))
def test_input_size_is_the_smallest_cover(depth: int, out: int) -> None:
    size = shapes.input_size(out, depth)
    assert shapes.output_size(size, depth) >= out
    lower = shapes.valid_inputs_near(size - 1, depth)[0]
    assert lower is None or shapes.output_size(lower, depth) < out


def _tiled(net: UNet, image: np.ndarray, write: int) -> tuple[np.ndarray, np.ndarray]:
    """Overlap-tile prediction of ``image`` (spatial axes only) and one whole pass over the
    same mirror-padded volume: tile origins every ``write`` pixels (a multiple of the step),
    read windows grown by the margins and extended to a valid input size."""
    depth, padding = net.config["depth"], net.config["padding"]
    before, after = shapes.margins(depth, padding)
    n = shapes.valid_inputs_near(before + write + after, depth, padding)[1]
    keep = before if padding == "same" else 0
    counts = [math.ceil(size / write) for size in image.shape]
    total = [(k - 1) * write + n for k in counts]
    pads = [(before, t - before - size) for t, size in zip(total, image.shape, strict=True)]
    padded = torch.from_numpy(np.pad(image, pads, mode="symmetric"))[None, None]
    with torch.no_grad():
        whole = net(padded)[0].numpy()
        crop = tuple(slice(keep, keep + size) for size in image.shape)
        out = np.zeros((whole.shape[0], *(k * write for k in counts)))
        for index in np.ndindex(*counts):
            window = tuple(slice(i * write, i * write + n) for i in index)
            tile = net(padded[(..., *window)])[0].numpy()
            kept = tuple(slice(keep, keep + write) for _ in index)
            target = tuple(slice(i * write, (i + 1) * write) for i in index)
            out[(slice(None), *target)] = tile[(slice(None), *kept)]
    return out[(slice(None), *(slice(0, size) for size in image.shape))], whole[
        (slice(None), *crop)
    ]


def _net(depth: int, padding: str, dims: int = 2, width: int = 2) -> UNet:
    torch.manual_seed(depth)
    net = UNet(base_channels=width, depth=depth, padding=padding, dims=dims, dropout=0.0)
    return net.double().eval()


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("depth", [2, 3, 4, 5])
def test_tiles_with_the_margins_equal_one_whole_pass(depth: int, padding: str) -> None:
    net, s = _net(depth, padding), shapes.step(depth)
    image = np.random.default_rng(depth).normal(size=(2 * s + 5, s + 3))
    for write in (s, 2 * s):
        tiled, whole = _tiled(net, image, write)
        np.testing.assert_allclose(tiled, whole, rtol=0, atol=1e-10)
        assert np.abs(whole).max() > 1e-3


def test_3d_tiles_with_the_margins_equal_one_whole_pass() -> None:
    net = _net(3, "same", dims=3)
    image = np.random.default_rng(3).normal(size=(6, 3, 2))
    tiled, whole = _tiled(net, image, 4)
    np.testing.assert_allclose(tiled, whole, rtol=0, atol=1e-10)


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5])
def test_same_margins_are_minimal(depth: int) -> None:
    """A window on the pooling grid, cut along the rows of a whole pass, is right at exactly
    the rows [before, n - after): one row less context on either side changes the output."""
    net, s = _net(depth, "same", width=4), shapes.step(depth)
    before, after = shapes.margins(depth, "same")
    n = shapes.valid_inputs_near(before + after + 2 * s, depth, "same")[1]
    seed = torch.Generator().manual_seed(depth)
    x = torch.randn(1, 1, n + 4 * s, 64, dtype=torch.float64, generator=seed)
    with torch.no_grad():
        whole = net(x)[0, :, 2 * s : 2 * s + n]
        tile = net(x[:, :, 2 * s : 2 * s + n])[0]
    right = (tile - whole).abs().amax(dim=(0, 2)) < 1e-10
    assert right.tolist() == [before <= i < n - after for i in range(n)]
