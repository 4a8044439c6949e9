"""Tile geometry against the paper's numbers, numpy's mirror padding and torch's memory."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from unet import shapes
from unet.errors import InputError
from unet.tiler import (
    IDENTITY,
    TRANSFORMS,
    Geometry,
    Transform,
    choose_tile,
    chunk_key,
    forward_bytes,
    make_tiling,
    mirror_indices,
)


def test_paper_geometry() -> None:
    g = Geometry.of(5, "valid")
    assert (g.step, g.before, g.after, g.shrink) == (16, 92, 92, 92)
    # a 384 write tile (a multiple of 16) needs the 388 output of the 572 paper tile
    assert g.window(0, 384) == (-92, 572, 0)
    assert g.window(384, 384) == (292, 572, 0)
    # off the grid: the window starts on it and the write region sits 5 px into the output
    assert g.window(21, 10) == (16 - 92, shapes.input_size(15), 5)


def test_same_padding_geometry_uses_the_margins() -> None:
    g = Geometry.of(3, "same")
    assert (g.before, g.after) == shapes.margins(3, "same") and g.shrink == 0
    begin, size, offset = g.window(8, 12)
    assert begin == 8 - g.before and offset == g.before
    assert size % g.step == 0 and size >= g.before + 12 + g.after


@pytest.mark.parametrize(("wanted", "tile"), [(16, 16), (100, 96), (104, 112), (388, 384)])
def test_tile_is_rounded_to_the_nearest_multiple_of_the_step(wanted: int, tile: int) -> None:
    assert Geometry.of(5, "valid").round_tile(wanted) == tile


def test_tile_below_the_step_is_refused_naming_it() -> None:
    with pytest.raises(InputError, match=r"--tile 15: smaller .* \(16, the pooling step; the halo"):
        Geometry.of(5, "valid").round_tile(15)


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_mirror_indices_equal_numpy_symmetric_padding(n: int) -> None:
    data = np.arange(n) * 10
    for before, after in [(0, 0), (1, 2), (n, n), (3 * n + 1, 2 * n + 5)]:
        want = np.pad(data, (before, after), mode="symmetric")
        assert np.array_equal(data[mirror_indices(-before, n + after, n)], want)


@pytest.mark.parametrize(
    ("shape", "axes", "depth", "tile"),
    [((37, 29), 2, 3, 8), ((37, 29), 2, 3, 40), ((5, 23, 50), 2, 2, 6), ((9, 14, 11), 3, 2, 4)],
)
def test_tiles_cover_the_image_once_on_the_pooling_grid(shape, axes, depth, tile) -> None:
    geometry = Geometry.of(depth, "valid")
    tiling = make_tiling(shape, axes, geometry, tile)
    count = np.zeros(shape, int)
    for i in range(len(tiling)):
        count[tiling.region(i)] += 1
        origin = tiling.origin(i)
        assert all(o % geometry.step == 0 for o in origin[-axes:])
        assert tiling.index(i) == tuple(o // t for o, t in zip(origin, tiling.tile, strict=True))
        window = tiling.window(i)
        for o, t, s, n, c in zip(origin[-axes:], tiling.tile[-axes:], window.start[-axes:],
                                 window.shape[-axes:], window.crop, strict=True):  # fmt: skip
            assert s == o - geometry.before and n >= geometry.before + t + geometry.after
            assert shapes.is_valid_input(n, depth) and c == slice(0, t)
    assert (count == 1).all()
    assert tiling.grid == tuple(-(-n // t) for n, t in zip(shape, tiling.tile, strict=True))
    assert chunk_key(tiling.index(len(tiling) - 1)) == ".".join(str(g - 1) for g in tiling.grid)


def test_every_transform_gives_all_tiles_one_window_shape() -> None:
    tiling = make_tiling((37, 29), 2, Geometry.of(3, "valid"), 8)
    for transform in TRANSFORMS:
        windows = [tiling.window(i, transform) for i in range(len(tiling))]
        assert len({(w.shape, tuple((c.start, c.stop) for c in w.crop)) for w in windows}) == 1


def test_transforms_are_the_eight_rotations_and_flips() -> None:
    a = np.arange(12).reshape(3, 4)
    rotations = {np.rot90(b, k).tobytes() + bytes(np.rot90(b, k).shape) for b in (a, a.T)
                 for k in range(4)}  # fmt: skip
    got = {t.apply(a).tobytes() + bytes(t.apply(a).shape) for t in TRANSFORMS}
    assert got == rotations and len(TRANSFORMS) == 8 and TRANSFORMS[0] == IDENTITY
    for t in TRANSFORMS:
        assert np.array_equal(t.invert(t.apply(a)), a)


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_frame_intervals_follow_the_array_transform(transform: Transform) -> None:
    shape = (2, 7, 5)
    coords = np.stack(np.meshgrid(*map(np.arange, shape), indexing="ij"), -1)
    moved = transform.apply(np.moveaxis(coords, -1, 0))  # coordinates, transformed as images
    starts, sizes = (0, 1, 3), (2, 4, 2)
    f_start, f_size = transform.to_frame(starts, sizes, shape)
    block = moved[(slice(None), *(slice(s, s + n) for s, n in zip(f_start, f_size, strict=True)))]
    seen = {tuple(c) for c in block.reshape(3, -1).T}
    want = set(itertools.product(*(range(s, s + n) for s, n in zip(starts, sizes, strict=True))))
    assert seen == want
    assert transform.from_frame(f_start, f_size, shape) == (starts, sizes)


def test_small_image_gets_one_tile_rounded_up_to_the_step() -> None:
    tiling = make_tiling((3, 37, 29), 2, Geometry.of(3, "valid"), 400)
    assert tiling.tile == (1, 40, 32) and tiling.grid == (3, 1, 1)


def test_choose_tile_fits_the_budget_and_grows_with_it() -> None:
    config = dict(in_channels=1, num_classes=2, base_channels=16, depth=4, padding="valid")
    geometry = Geometry.of(4, "valid")
    tiles = [choose_tile((4000, 4000), 2, geometry, config, 2**b) for b in (26, 28, 30, 32)]
    assert tiles == sorted(tiles) and tiles[0] < tiles[-1] and tiles[-1] <= 2048
    tiling = make_tiling((4000, 4000), 2, geometry, tiles[1])
    assert forward_bytes(tiling.window(0).shape, config) <= 2**28
    assert choose_tile((100, 100), 2, geometry, config, 2**40) == 104  # the image, rounded up
    assert choose_tile((100, 100), 2, geometry, config, 1) == geometry.step  # never below


_MEASURE = """
import re, sys, torch
from unet.model import UNet
from unet.shapes import input_size
from unet.tiler import forward_bytes

def peak():  # the process's own high-water mark (ru_maxrss would include its parent's)
    with open("/proc/self/status") as fh:
        return int(re.search(r"VmHWM:\\s+(\\d+) kB", fh.read()).group(1)) * 1024

dims, size, base, depth, batch = map(int, sys.argv[1:])
torch.set_num_threads(2)
model = UNet(base_channels=base, depth=depth, dims=dims, dropout=0.0).eval()
x = torch.rand(batch, 1, *[size] * dims)
with torch.inference_mode():
    model(x[:1, :, *[slice(0, input_size(1, depth))] * dims])  # load the kernels
    before = peak()
    model(x)
print((peak() - before) / forward_bytes((size,) * dims, model.config, batch))
"""


@pytest.mark.parametrize(
    "args", [(2, 1116, 16, 4, 1), (2, 556, 16, 3, 4), (3, 140, 8, 2, 1), (2, 572, 64, 5, 1)]
)
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_memory_estimate_is_within_a_factor_of_two_of_torch(args) -> None:
    """torch's real peak (the growth of a fresh process's peak RSS over one forward pass on
    CPU) against the estimate, for 2-D and 3-D, batch 1 and 4."""
    out = subprocess.run([sys.executable, "-c", _MEASURE, *map(str, args)],
                         capture_output=True, text=True, check=True)  # fmt: skip
    ratio = float(out.stdout.split()[-1])
    assert 0.5 <= ratio <= 2.0, ratio
