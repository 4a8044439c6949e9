"""Training tiles for :mod:`unet.train`: their source checked, and fetched ahead of compute.

The tiles come from the augmentation cache blocks (``augment.cache: true``, the finished
blocks the workflow rule lists as its input) or are augmented on the fly from the training
slices; either way the stream is :func:`unet.cache.training_samples`, a deterministic
sequence that a resumed run re-enters at the tile where it left off. A background thread
(:class:`Prefetcher`) reads or augments the next tiles and converts them to tensors while
the model computes, so the data path is hidden behind the training step.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unet.augment import DEFAULT, AugmentConfig, AugmentedTile
from unet.cache import TrainingData, tile_shapes, training_samples
from unet.errors import InputError
from unet.io import open_store
from unet.shapes import output_shape


@dataclass(frozen=True)
class Source:
    """Where training tiles come from: cache ``blocks``, or (none given) on the fly with
    ``seed``, ``per_block``, ``tile`` and ``augment`` (the cache's own settings)."""

    blocks: tuple[str, ...] = ()
    seed: int = 0
    per_block: int = 8
    tile: int = 572
    augment: AugmentConfig = field(default=DEFAULT)


@dataclass(frozen=True)
class Plan:
    """The checked tile stream: shapes, and what identifies it in a checkpoint."""

    tile_in: tuple[int, int]
    tile_out: tuple[int, int]
    signature: dict[str, Any]


def _block_facts(path: str, data: TrainingData, model: dict[str, Any]) -> dict[str, Any]:
    group = open_store(path, ("raw", "target", "weight"))
    attrs = dict(group.attrs)
    shapes = {k: tuple(group[k].shape) for k in ("raw", "target", "weight")}
    counts = {s[0] for s in shapes.values()}
    if len(counts) != 1 or len(shapes["raw"]) != 3 or shapes["target"] != shapes["weight"]:
        raise InputError(f"{path}: cache block arrays of shapes {shapes}; expected "
                         "raw (N, Y, X) and target, weight (N, y, x) with the same N")  # fmt: skip
    tile_in, tile_out = shapes["raw"][1:], shapes["target"][1:]
    try:
        expected = output_shape(tile_in, model["depth"], model["padding"])
    except ValueError:
        expected = None
    if expected != tile_out:
        raise InputError(
            f"{path}: cache block tiles {tile_in} -> {tile_out} do not fit the model "
            f"(depth {model['depth']}, {model['padding']} padding: {tile_in} -> {expected}); "
            "expected blocks written for this model"
        )
    if attrs.get("dataset") != data.dataset:
        raise InputError(f"{path}: a cache block of dataset {attrs.get('dataset')!r}; "
                         f"expected {data.dataset!r}")  # fmt: skip
    if attrs.get("normalization") != data.normalization:
        raise InputError(
            f"{path}: cache block normalised as {attrs.get('normalization')!r}; expected "
            f"{data.normalization!r} (regenerate the cache with this version)"
        )
    return {"tile_in": list(tile_in), "tile_out": list(tile_out), "n": counts.pop(),
            "seed": attrs.get("seed"), "block": attrs.get("block"),
            "augment": attrs.get("augment")}  # fmt: skip


def plan(source: Source, data: TrainingData, model: dict[str, Any]) -> Plan:
    """Check the cache blocks (or the on-the-fly settings) against the data and the model."""
    if model["dims"] != 2:
        raise InputError(f"training uses 2-D tiles; model dims={model['dims']} is not 2")
    if source.blocks:
        facts = [_block_facts(str(b), data, model) for b in source.blocks]
        shapes = {(tuple(f["tile_in"]), tuple(f["tile_out"])) for f in facts}
        if len(shapes) != 1:
            raise InputError(f"cache blocks of different tile shapes {sorted(shapes)}; "
                             "expected one shape")  # fmt: skip
        tile_in, tile_out = shapes.pop()
        stream: dict[str, Any] = {"cache": True, "blocks": facts}
    else:
        if source.per_block < 1:
            raise InputError(f"per_block must be >= 1, got {source.per_block}")
        tile_in, tile_out = tile_shapes(model["depth"], model["padding"], source.tile)
        stream = {"cache": False, "seed": source.seed, "per_block": source.per_block,
                  "tile_in": list(tile_in), "augment": source.augment.as_dict()}  # fmt: skip
    signature = {"dataset": data.dataset, "normalization": data.normalization, **stream}
    return Plan(tuple(tile_in), tuple(tile_out), signature)


def samples(source: Source, data: TrainingData, plan: Plan, start: int) -> Iterator[AugmentedTile]:
    """The endless tile stream of ``source`` from tile ``start`` on."""
    return training_samples(
        cache=bool(source.blocks), blocks=[Path(b) for b in source.blocks], data=data,
        seed=source.seed, per_block=source.per_block, tile_in=plan.tile_in,
        tile_out=plan.tile_out, config=source.augment, start=start,
    )  # fmt: skip


def to_tensors(tile: AugmentedTile, index: int, classes: int, pin: bool) -> tuple[Any, ...]:
    """(raw (1, 1, Y, X) float32, target (1, y, x) int64, weight (1, y, x) float32);
    InputError for labels >= ``classes`` or negative or non-finite weights."""
    import torch

    weight = np.asarray(tile.weight, dtype=np.float32)
    if not (np.isfinite(weight).all() and weight.min() >= 0):
        raise InputError(f"training tile {index}: weight map with negative or non-finite "
                         "values; expected weights >= 0")  # fmt: skip
    target = np.asarray(tile.target)
    if int(target.max()) >= classes:
        raise InputError(f"training tile {index}: label {int(target.max())} for a model of "
                         f"{classes} classes; expected labels < {classes}")  # fmt: skip
    out = (
        torch.from_numpy(np.ascontiguousarray(tile.raw, dtype=np.float32))[None, None],
        torch.from_numpy(target.astype(np.int64))[None],
        torch.from_numpy(weight)[None],
    )
    return tuple(t.pin_memory() for t in out) if pin else out


class Prefetcher:
    """Tiles of ``tiles`` as tensors, prepared ``ahead`` steps in advance by a thread.

    Errors in the thread are raised by :meth:`next` in the caller; :meth:`close` stops it.
    """

    def __init__(self, tiles: Iterator[AugmentedTile], first: int, classes: int,
                 pin: bool = False, ahead: int = 2) -> None:  # fmt: skip
        self._queue: queue.Queue = queue.Queue(maxsize=ahead)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, args=(tiles, first, classes, pin),
                                        name="unet-prefetch", daemon=True)  # fmt: skip
        self._thread.start()

    def _work(self, tiles: Iterator[AugmentedTile], first: int, classes: int, pin: bool) -> None:
        index = first
        try:
            for tile in tiles:
                self._put(to_tensors(tile, index, classes, pin))
                index += 1
                if self._stop.is_set():
                    return
        except BaseException as err:  # handed to the caller
            self._put(err)

    def _put(self, item: Any) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def next(self) -> tuple[Any, ...]:
        """The next (raw, target, weight) tensors."""
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        """Stop the thread (it may be reading a tile: it finishes that one)."""
        self._stop.set()
        self._thread.join(timeout=10)
