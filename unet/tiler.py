"""Overlap-tile geometry (paper Fig. 2): which window of the image each output tile reads.

Shapes and index maps only: no torch, no I/O. The target is cut into write tiles of edge
``t`` (a multiple of the pooling step ``2 ** (depth - 1)``), one zarr chunk each, with
origins ``k * t``: every origin lies on the pooling grid of a whole-image pass, which is
what makes the tiled output equal that pass. A tile reads its write region grown by the
model's margins (``unet.shapes.margins``: the halo per side for valid padding), and a
little more after it so that the window is a valid input size; the window may reach
outside the image, where the image is **mirrored with the edge pixel repeated** (numpy's
``np.pad(mode="symmetric")``, dask's ``boundary="reflect"``: index -1 reads 0, -2 reads 1,
n reads n - 1), extended periodically with period 2n where a window is wider than the image.
The whole-image reference pads the same way.

A 2-D model over a (Z, Y, X) stack tiles each slice (tile edge 1 along Z). Test-time
augmentation uses the 8 rotations/flips of the (Y, X) plane (:data:`TRANSFORMS`): each one
is a new coordinate frame in which the image is the transformed image, with its own
pooling grid anchored at its own origin, so a tile's window is computed in that frame
(:meth:`Tiling.window`). Prediction with the transformed frames is exactly equivariant.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np

from unet import shapes
from unet.errors import InputError

MAX_TILE_PIXELS = 2**22  # cap of an automatically chosen tile (2048^2, 160^3)


@functools.lru_cache(maxsize=4096)
def _input_size(length: int, depth: int, padding: str) -> int:
    return shapes.input_size(length, depth, padding)


def _margins(depth: int, padding: str) -> tuple[int, int]:
    margins = getattr(shapes, "margins", None)
    if margins is not None:
        return tuple(margins(depth, padding))  # type: ignore[return-value]
    if padding != "valid":  # pragma: no cover - until unet.shapes.margins lands
        raise InputError("tiling a same-padded model needs unet.shapes.margins")
    return shapes.halo(depth), shapes.halo(depth)


@dataclass(frozen=True)
class Geometry:
    """Per-axis shape facts of a model for tiling (see the module docstring)."""

    depth: int
    padding: str
    step: int  # pooling step: origins are multiples of it
    before: int  # context read before a write region
    after: int  # context read after it (at least)
    shrink: int  # the network output lies ``shrink`` inside its input (halo if valid, else 0)

    @classmethod
    def of(cls, depth: int, padding: str) -> Geometry:
        """The geometry of a U-Net with ``depth`` levels and ``padding``."""
        before, after = _margins(depth, padding)
        shrink = shapes.halo(depth) if padding == "valid" else 0
        return cls(depth, padding, shapes.step(depth), before, after, shrink)

    def window(self, start: int, length: int) -> tuple[int, int, int]:
        """(window start, window length, offset of ``start`` in the network output) for the
        write interval ``[start, start + length)`` of a frame whose pooling grid is at 0."""
        grid = start - start % self.step
        need = start + length - grid + self.before + self.after - 2 * self.shrink
        size = _input_size(need, self.depth, self.padding)
        begin = grid - self.before
        return begin, size, start - begin - self.shrink

    def round_tile(self, wanted: int) -> int:
        """The write-tile edge nearest ``wanted`` that the model allows (a multiple of the
        step); InputError below one step."""
        if wanted < self.step:
            raise InputError(
                f"--tile {wanted}: smaller than the smallest output tile a depth-{self.depth} "
                f"model allows ({self.step}, the pooling step; the halo is {self.before} px "
                "per side)"
            )
        return (wanted + self.step // 2) // self.step * self.step  # halves round up


def mirror_indices(start: int, stop: int, n: int) -> np.ndarray:
    """Image indices read for positions ``start..stop-1`` of an axis of length ``n``:
    mirrored with the edge repeated, period ``2 n``."""
    r = np.arange(start, stop) % (2 * n)
    return np.where(r < n, r, 2 * n - 1 - r)


@dataclass(frozen=True)
class Transform:
    """A rotation/flip of the last two axes: transpose (if set), then flip per axis."""

    transpose: bool = False
    flip: tuple[bool, bool] = (False, False)

    def apply(self, array: np.ndarray) -> np.ndarray:
        """The transformed array (last two axes)."""
        if self.transpose:
            array = np.swapaxes(array, -1, -2)
        axes = tuple(a for a, f in zip((-2, -1), self.flip, strict=True) if f)
        return np.flip(array, axes) if axes else array

    def invert(self, array: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`apply`."""
        axes = tuple(a for a, f in zip((-2, -1), self.flip, strict=True) if f)
        array = np.flip(array, axes) if axes else array
        return np.swapaxes(array, -1, -2) if self.transpose else array

    def frame_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of the transformed image."""
        return (*shape[:-2], shape[-1], shape[-2]) if self.transpose else tuple(shape)

    def to_frame(self, starts, sizes, shape) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Intervals ``[start, start + size)`` of the image -> the transformed frame."""
        starts, sizes = list(starts), list(sizes)
        if self.transpose:
            starts[-2:], sizes[-2:] = starts[:-3:-1], sizes[:-3:-1]
        return self._flip(starts, sizes, self.frame_shape(shape))

    def from_frame(self, starts, sizes, shape) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Intervals of the transformed frame -> the image (``shape`` is the image's)."""
        starts, sizes = self._flip(list(starts), list(sizes), self.frame_shape(shape))
        starts, sizes = list(starts), list(sizes)
        if self.transpose:
            starts[-2:], sizes[-2:] = starts[:-3:-1], sizes[:-3:-1]
        return tuple(starts), tuple(sizes)

    def _flip(self, starts, sizes, shape) -> tuple[tuple[int, ...], tuple[int, ...]]:
        for axis, flipped in zip((-2, -1), self.flip, strict=True):
            if flipped:
                starts[axis] = shape[axis] - starts[axis] - sizes[axis]
        return tuple(starts), tuple(sizes)


IDENTITY = Transform()
TRANSFORMS = tuple(
    Transform(t, (fy, fx)) for t, fy, fx in itertools.product((False, True), repeat=3)
)


@dataclass(frozen=True)
class Window:
    """What one tile reads and keeps, for one transform.

    ``start``/``shape``: the window in image coordinates (all axes; may reach outside the
    image). The array read there, transformed, is the network input; ``crop`` cuts the
    (unclipped) write tile from the network output in the transformed frame.
    """

    start: tuple[int, ...]
    shape: tuple[int, ...]
    crop: tuple[slice, ...]


@dataclass(frozen=True)
class Tiling:
    """Write tiles (= target chunks) over an image and the window each one reads."""

    shape: tuple[int, ...]  # image shape
    tile: tuple[int, ...]  # write tile (= chunk) edge per axis
    model_axes: int  # trailing axes the model sees (2 or 3); leading axes have tile 1
    geometry: Geometry

    @property
    def grid(self) -> tuple[int, ...]:
        """Number of tiles per axis."""
        return tuple(-(-n // t) for n, t in zip(self.shape, self.tile, strict=True))

    def __len__(self) -> int:
        return math.prod(self.grid)

    def index(self, i: int) -> tuple[int, ...]:
        """Chunk grid index of tile ``i`` (C order)."""
        return tuple(int(k) for k in np.unravel_index(i, self.grid))

    def origin(self, i: int) -> tuple[int, ...]:
        """First pixel of tile ``i``'s write region."""
        return tuple(k * t for k, t in zip(self.index(i), self.tile, strict=True))

    def region(self, i: int) -> tuple[slice, ...]:
        """Write region of tile ``i``, clipped to the image (= its chunk in the target)."""
        return tuple(
            slice(o, min(o + t, n))
            for o, t, n in zip(self.origin(i), self.tile, self.shape, strict=True)
        )

    def window(self, i: int, transform: Transform = IDENTITY) -> Window:
        """The window tile ``i`` reads in ``transform``'s frame (its unclipped write tile
        mapped into the frame, grown on the frame's pooling grid)."""
        lead = len(self.shape) - self.model_axes
        starts, sizes = transform.to_frame(self.origin(i), self.tile, self.shape)
        w_start, w_size, crop = list(starts[:lead]), list(sizes[:lead]), []
        for start, size in zip(starts[lead:], sizes[lead:], strict=True):
            begin, length, offset = self.geometry.window(start, size)
            w_start.append(begin)
            w_size.append(length)
            crop.append(slice(offset, offset + size))
        begin, length = transform.from_frame(w_start, w_size, self.shape)
        return Window(begin, length, tuple(crop))


def chunk_key(index: tuple[int, ...]) -> str:
    """File name of a chunk's completion record: the grid index joined by dots."""
    return ".".join(map(str, index))


def make_tiling(shape: tuple[int, ...], model_axes: int, geometry: Geometry, tile: int) -> Tiling:
    """Tiles of edge ``tile`` (already rounded) over ``shape``, clamped to the image
    (an axis shorter than the tile gets one tile covering it, rounded up to the step)."""
    lead = len(shape) - model_axes
    step = geometry.step
    edges = [min(tile, -(-n // step) * step) for n in shape[lead:]]
    return Tiling(tuple(shape), (1,) * lead + tuple(edges), model_axes, geometry)


def forward_bytes(window: tuple[int, ...], config: dict, batch: int = 1, itemsize: int = 4) -> int:
    """Estimated peak bytes of a no-grad forward pass of a U-Net (``config``: its constructor
    arguments) on ``batch`` windows of spatial shape ``window``.

    Follows :meth:`unet.model.UNet.forward` tensor by tensor: the input, every skip
    connection (kept until the end), and each layer's output while its input is alive; a
    convolution also needs a copy of its input and output (the CPU kernels reorder both
    into blocked layouts). Measured against torch's peak in tests/test_tiler.py.
    """
    depth, base = config["depth"], config["base_channels"]
    cut = 2 if config["padding"] == "valid" else 0
    size, live, peak = list(window), config["in_channels"] * math.prod(window), 0

    def layer(inp: int, out: int, conv: bool = True) -> None:
        nonlocal live, peak
        peak = max(peak, live + out + (inp + out if conv else 0))
        live += out

    channels = config["in_channels"]
    for level in range(depth):
        width = base * 2**level
        x = channels * math.prod(size)
        c1, size = width * math.prod(s - cut for s in size), [s - 2 * cut for s in size]
        layer(x, c1)
        layer(c1, width * math.prod(size))
        live -= c1 + (x if level else 0)  # the pooled input of this level is dropped
        if level < depth - 1:
            size = [s // 2 for s in size]
            layer(0, width * math.prod(size), conv=False)
        channels = width
    for level in reversed(range(depth - 1)):
        width = base * 2**level
        x = 2 * width * math.prod(size)
        up, size = width * math.prod(2 * s for s in size), [2 * s for s in size]
        layer(x, up)
        layer(0, 2 * up, conv=False)  # the concatenation
        c1, size = width * math.prod(s - cut for s in size), [s - 2 * cut for s in size]
        layer(2 * up, c1)
        layer(c1, width * math.prod(size))
        live -= x + up + 2 * up + c1
    layer(base * math.prod(size), config["num_classes"] * math.prod(size))
    return peak * batch * itemsize


def choose_tile(
    shape: tuple[int, ...],
    model_axes: int,
    geometry: Geometry,
    config: dict,
    budget: int,
    batch: int = 1,
    transforms: int = 1,
    workers: int = 1,
) -> int:
    """The largest write-tile edge whose :func:`tile_bytes` fit ``budget``, at most the
    image and :data:`MAX_TILE_PIXELS`; at least one step."""
    step, spatial = geometry.step, shape[-model_axes:]
    largest = max(-(-n // step) * step for n in spatial)
    best = step
    for tile in range(step, largest + 1, step):
        tiling = make_tiling(shape, model_axes, geometry, tile)
        if math.prod(tiling.tile) > MAX_TILE_PIXELS:
            break
        if tile_bytes(tiling, config, batch, transforms, workers) > budget:
            break
        best = tile
    return best


def tile_bytes(
    tiling: Tiling, config: dict, batch: int = 1, transforms: int = 1, workers: int = 1
) -> int:
    """Expected peak bytes of prediction with ``tiling`` besides the model's weights: one
    forward pass of ``batch`` windows at a time, and each of ``workers`` threads holding a
    batch of float32 windows (read and normalised) and of outputs (one per transform, and
    their mean)."""
    window = tiling.window(0).shape
    io = 4 * batch * (2 * math.prod(window) + (transforms + 1) * math.prod(tiling.tile))
    return forward_bytes(window[-tiling.model_axes :], config, batch) + workers * io
