"""Training tiles: shapes from the model, sampling from the stores, the augmentation cache.

Sample ``index`` of block ``block`` is drawn from its own generator
``numpy.random.default_rng([hash(dataset), seed, block, index])``, so a block's content is a
function of (dataset, seed, block) alone, blocks are independent jobs, and the on-the-fly
stream (:func:`augment_stream`) yields exactly the tiles that cache blocks 0, 1, 2, ... hold.

The raw training slices are scaled by the :mod:`unet.normalize` definition given to
:func:`load_training` (default ``{"kind": "dtype"}``: uint8 ``x / 255``), resolved once for
the whole ``raw`` array of the store, before augmentation. Cache blocks record the definition
and its resolved values in their attributes; training records the definition in every
checkpoint, and prediction applies it to the images it predicts (:mod:`unet.predict`).

The ``weight`` tiles are the loss weights: training multiplies each pixel's cross-entropy by
its weight, so weight 0 (the ignore mask of unannotated cells, see :mod:`unet.weights`)
leaves a pixel out of the loss. The bilinear warp keeps it 0 inside an ignored region and
blends it over one pixel at its edge.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unet import __version__
from unet import normalize as _normalize
from unet.augment import DEFAULT, AugmentConfig, AugmentedTile, augment_tile
from unet.errors import InputError
from unet.io import atomic_output, open_store

NORMALIZATION: dict[str, Any] = {"kind": "dtype"}  # the default definition (unet.normalize)


def tile_shapes(
    depth: int = 5, padding: str = "valid", tile: int = 572
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Input and output tile shapes: the largest valid input <= ``tile`` and its output."""
    from unet.shapes import tile_sizes

    size, out = tile_sizes(tile, depth, padding)
    return (size, size), (out, out)


def normalize(raw: np.ndarray, spec: dict[str, Any] | None = None) -> np.ndarray:
    """``raw`` scaled by the :mod:`unet.normalize` definition ``spec`` (default: by its
    dtype), resolved on ``raw`` itself, as float32."""
    raw = np.asarray(raw)
    return _normalize.resolve(spec, raw).apply(raw)


@dataclass
class TrainingData:
    """The training slices of one dataset: normalised raw, target, weight (sequences indexed
    like ``slices``; lists, or :class:`_LazySlices` that read a slice on first use)."""

    dataset: str
    slices: list[int]
    raw: Sequence[np.ndarray]
    target: Sequence[np.ndarray]
    weight: Sequence[np.ndarray]
    normalization: dict[str, Any] = field(default_factory=lambda: dict(NORMALIZATION))
    scaling: _normalize.Scaling = field(default_factory=lambda: _normalize.Scaling(0.0, 1.0))


class _LazySlices(Sequence[np.ndarray]):
    """Slices ``slices[i]`` of a zarr array, read and converted on first use, then kept.

    A cache block draws a few tiles, so it reads only the slices those tiles come from.
    """

    def __init__(self, array, slices: list[int], convert) -> None:
        self._array, self._slices, self._convert = array, slices, convert
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._slices)

    def __getitem__(self, i):  # an integer index (slices of the sequence are not needed)
        z = self._slices[i]
        if z not in self._cache:
            self._cache[z] = self._convert(self._array[z])
        return self._cache[z]


def _train_slices(store: str | os.PathLike[str], attrs, depth: int) -> list[int]:
    split = attrs.get("split")
    train = split.get("train") if isinstance(split, dict) else None
    if not train:
        raise InputError(f"{store}: attribute split['train'] is missing or empty")
    bad = [z for z in train if not isinstance(z, int) or not 0 <= z < depth]
    if bad:
        raise InputError(f"{store}: training slices {bad} are outside 0..{depth - 1}")
    return list(train)


def load_training(
    store: str | os.PathLike[str],
    weights: str | os.PathLike[str],
    normalization: dict[str, Any] | None = None,
) -> TrainingData:
    """Read the training split of a canonical dataset store and its weight-map store; raw
    is scaled by the :mod:`unet.normalize` definition ``normalization`` (default: dtype),
    resolved once on the store's whole ``raw`` array."""
    group = open_store(store, ("raw", "semantic"))
    wgroup = open_store(weights, ("weights",))
    raw, semantic, wmap = group["raw"], group["semantic"], wgroup["weights"]
    if raw.ndim != 3:
        raise InputError(f"{store}: raw has shape {raw.shape}, expected (Z, Y, X)")
    for path, name, array in ((store, "semantic", semantic), (weights, "weights", wmap)):
        if array.shape != raw.shape:
            raise InputError(f"{path}: {name} has shape {array.shape}, expected {raw.shape}")
    slices = _train_slices(store, dict(group.attrs), raw.shape[0])
    spec = _normalize.check(normalization, f"{store}: normalization")
    scaling = _normalize.resolve(spec, raw)
    return TrainingData(
        dataset=str(group.attrs.get("dataset") or Path(store).name.removesuffix(".zarr")),
        slices=slices,
        raw=_LazySlices(raw, slices, scaling.apply),
        target=_LazySlices(semantic, slices, lambda a: np.asarray(a, dtype=np.uint8)),
        weight=_LazySlices(wmap, slices, lambda a: np.asarray(a, dtype=np.float32)),
        normalization=spec,
        scaling=scaling,
    )


def _stable_hash(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")


def sample_rng(dataset: str, seed: int, block: int, index: int) -> np.random.Generator:
    """The generator of one sample; the same arguments give the same stream everywhere."""
    for name, value in (("seed", seed), ("block", block), ("index", index)):
        if not isinstance(value, int | np.integer) or value < 0:
            raise InputError(f"{name} must be an integer >= 0, got {value!r}")
    return np.random.default_rng([_stable_hash(dataset), seed, block, index])


def sample_tile(
    data: TrainingData,
    *,
    seed: int,
    block: int,
    index: int,
    tile_in: tuple[int, int],
    tile_out: tuple[int, int],
    config: AugmentConfig = DEFAULT,
) -> tuple[int, AugmentedTile]:
    """Sample ``index`` of ``block``: a random training slice (its z) and an augmented tile."""
    rng = sample_rng(data.dataset, seed, block, index)
    i = int(rng.integers(len(data.slices)))
    tile = augment_tile(rng, data.raw[i], data.target[i], data.weight[i],
                        tile_in=tile_in, tile_out=tile_out, config=config)  # fmt: skip
    return data.slices[i], tile


def write_block(
    data: TrainingData,
    out: str | os.PathLike[str],
    *,
    block: int,
    n: int,
    seed: int,
    tile_in: tuple[int, int],
    tile_out: tuple[int, int],
    config: AugmentConfig = DEFAULT,
) -> Path:
    """Write one cache block (``raw``, ``target``, ``weight``, attributes) atomically."""
    import zarr
    from tqdm import tqdm

    if not isinstance(n, int) or n < 1:
        raise InputError(f"--n must be an integer >= 1, got {n!r}")
    sample_rng(data.dataset, seed, block, 0)  # validates seed and block before any work
    with atomic_output(out) as tmp:
        root = zarr.open_group(str(tmp), mode="w")
        arrays = {
            name: root.create_array(name, shape=(n, *shape), chunks=(1, *shape), dtype=dtype)
            for name, shape, dtype in (("raw", tile_in, "float32"),
                                       ("target", tile_out, "uint8"),
                                       ("weight", tile_out, "float32"))
        }  # fmt: skip
        slices = []
        for i in tqdm(range(n), desc=f"augment block {block}", unit="tile"):
            z, tile = sample_tile(data, seed=seed, block=block, index=i, tile_in=tile_in,
                                  tile_out=tile_out, config=config)  # fmt: skip
            arrays["raw"][i] = tile.raw
            arrays["target"][i] = tile.target.astype(np.uint8)
            arrays["weight"][i] = tile.weight
            slices.append(z)
        root.attrs.update(
            dataset=data.dataset, seed=seed, block=block, n=n, slices=slices,
            tile_in=list(tile_in), tile_out=list(tile_out), augment=config.as_dict(),
            normalization=data.normalization, scaling=data.scaling.record(),
            unet=__version__,
        )  # fmt: skip
    return Path(out)


def read_block(path: str | os.PathLike[str], start: int = 0) -> Iterator[AugmentedTile]:
    """The tiles of one finished cache block, in order, from tile ``start`` on."""
    group = open_store(path, ("raw", "target", "weight"))
    raw, target, weight = group["raw"], group["target"], group["weight"]
    if not raw.shape[0] == target.shape[0] == weight.shape[0]:
        raise InputError(f"{path}: raw, target and weight hold different numbers of tiles")
    for i in range(start, raw.shape[0]):
        yield AugmentedTile(raw=raw[i], target=target[i], weight=weight[i])


def augment_stream(
    data: TrainingData,
    *,
    seed: int,
    per_block: int,
    tile_in: tuple[int, int],
    tile_out: tuple[int, int],
    config: AugmentConfig = DEFAULT,
    start_block: int = 0,
) -> Iterator[AugmentedTile]:
    """Endless on-the-fly tiles: the content of blocks ``start_block``, +1, ... in order."""
    yield from _fly(data, seed, per_block, tile_in, tile_out, config, start_block * per_block)


def training_samples(
    *,
    cache: bool,
    blocks: Sequence[str | os.PathLike[str]] = (),
    data: TrainingData | None = None,
    seed: int = 0,
    per_block: int = 8,
    tile_in: tuple[int, int] = (572, 572),
    tile_out: tuple[int, int] = (388, 388),
    config: AugmentConfig = DEFAULT,
    start: int = 0,
) -> Iterator[AugmentedTile]:
    """Endless training tiles, one per ``next()``, honouring the ``augment.cache`` switch.

    With ``cache`` the finished ``blocks`` are read in turn, over and over (the GPU never
    waits for augmentation; diversity is ``len(blocks) * per_block`` tiles). Without it the
    tiles are augmented on the fly from ``data`` (never repeating, costing CPU per step).
    ``start`` skips that many tiles of the stream (where a resumed training run left off)
    without reading or augmenting them.
    """
    if not isinstance(start, int) or start < 0:
        raise InputError(f"start must be an integer >= 0, got {start!r}")
    if cache:
        if not blocks:
            raise InputError("augment.cache is on but no cache blocks were given")
        sizes = [open_store(b, ("raw", "target", "weight"))["raw"].shape[0] for b in blocks]
        return _cycle_blocks(list(blocks), sizes, start % sum(sizes))
    if data is None:
        raise InputError("augment.cache is off: training data are needed to augment on the fly")
    return _fly(data, seed, per_block, tile_in, tile_out, config, start)


def _cycle_blocks(blocks: list, sizes: list[int], offset: int) -> Iterator[AugmentedTile]:
    """The tiles of ``blocks`` in turn, endlessly, from tile ``offset`` of the first pass."""
    first = 0
    while offset >= sizes[first]:
        offset, first = offset - sizes[first], first + 1
    yield from read_block(blocks[first], start=offset)
    for block in itertools.chain(blocks[first + 1 :], itertools.cycle(blocks)):
        yield from read_block(block)


def _fly(data, seed, per_block, tile_in, tile_out, config, start) -> Iterator[AugmentedTile]:
    """:func:`augment_stream` from its tile ``start`` on (block ``start // per_block``)."""
    for k in itertools.count(start):
        block, index = divmod(k, per_block)
        yield sample_tile(data, seed=seed, block=block, index=index, tile_in=tile_in,
                          tile_out=tile_out, config=config)[1]  # fmt: skip
