"""Writing images as OME-Zarr: NGFF 0.5 multiscales in a zarr v3 group, written chunk by chunk.

:func:`create_image` creates the group and an empty, chunked, compressed level ``0`` (with
``dimension_names``) that the caller fills region by region; :func:`add_levels` then writes
levels ``1``..``N``, each 2x smaller in y and x than the one before (the mean of each 2x2
block, or every second pixel), one chunk at a time, and lists them in the multiscales with
their scale and translation. The group's ``unet`` attributes hold the caller's provenance
and a ``complete`` flag (:func:`mark_complete`, :func:`is_complete`), so a store that a
killed run left behind is never taken for a finished one.

NGFF 0.5 is the version for zarr v3 (``{"ome": {"version": "0.5", "multiscales": [...]}}``
in ``zarr.json``); it is what ome-zarr-py 0.18 writes by default and napari-ome-zarr reads.
The metadata is written here (a few lines of JSON) rather than by ome-zarr-py, whose writer
takes whole arrays and pulls in a cloud-storage stack; the tests validate it with
ome-zarr-models and open it with ome-zarr-py's reader.
"""

from __future__ import annotations

import itertools
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from unet.errors import InputError
from unet.io import atomic_output

NGFF_VERSION = "0.5"
AXIS_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
METHODS = ("mean", "stride")


def _check(shape: tuple[int, ...], chunks: tuple[int, ...], axes: str) -> None:
    if len(axes) != len(shape) or len(chunks) != len(shape):
        raise InputError(f"axes {axes!r}, shape {shape} and chunks {chunks} differ in length")
    if not axes.endswith("yx") or "".join(a for a in "tczyx" if a in axes) != axes:
        raise InputError(f"axes {axes!r}: expected axes in the order t, c, z, y, x, ending yx")
    if min(shape) < 1 or min(chunks) < 1:
        raise InputError(f"shape {shape} and chunks {chunks} must be positive")


def _axes(axes: str, unit: str | None) -> list[dict[str, str]]:
    out = [{"name": a, "type": AXIS_TYPES[a]} for a in axes]
    for entry in out:
        if unit and entry["type"] == "space":
            entry["unit"] = unit
    return out


def _dataset(level: int, axes: str, scale: list[float], method: str) -> dict[str, Any]:
    """A multiscales dataset: level ``level`` is 2**level coarser in y and x than level 0."""
    factor = [2**level if a in "yx" else 1 for a in axes]
    transforms: list[dict[str, Any]] = [
        {"type": "scale", "scale": [s * f for s, f in zip(scale, factor, strict=True)]}
    ]
    if level:  # a mean's pixel centre lies between the pixels it averages
        shift = [
            (f - 1) / 2 * s if method == "mean" else 0.0 for s, f in zip(scale, factor, strict=True)
        ]
        transforms.append({"type": "translation", "translation": shift})
    return {"path": str(level), "coordinateTransformations": transforms}


def _codecs(dtype: np.dtype) -> Any:
    from zarr.codecs import BloscCodec

    shuffle = "shuffle" if dtype.itemsize > 1 else "bitshuffle"
    return (BloscCodec(cname="zstd", clevel=3, shuffle=shuffle),)


def create_image(
    path: str | Path,
    shape: tuple[int, ...],
    chunks: tuple[int, ...],
    dtype: Any,
    axes: str,
    attrs: dict[str, Any] | None = None,
    *,
    scale: tuple[float, ...] | None = None,
    unit: str | None = None,
    overwrite: bool = False,
) -> Any:
    """Create an OME-Zarr image with an empty level ``0``; returns that zarr array (r+).

    ``axes`` is a string such as "yx" or "zyx"; ``attrs`` (JSON) go to the group's ``unet``
    attributes with ``complete: false``; ``scale`` is the pixel size (1 per axis by
    default) in ``unit`` (an NGFF unit such as "micrometer"). The store appears whole or not
    at all; an existing one is replaced only with ``overwrite`` (FileExistsError otherwise).
    """
    import zarr

    path, shape, chunks = Path(path), tuple(map(int, shape)), tuple(map(int, chunks))
    dtype = np.dtype(dtype)
    _check(shape, chunks, axes)
    scale = [1.0] * len(axes) if scale is None else [float(s) for s in scale]
    if len(scale) != len(axes):
        raise InputError(f"scale {scale} does not match axes {axes!r}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: already exists; expected a new path (or overwrite)")
    multiscale = {"axes": _axes(axes, unit), "datasets": [_dataset(0, axes, scale, "mean")]}
    with atomic_output(path) as tmp:
        group = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        group.create_array(
            "0", shape=shape, chunks=chunks, dtype=dtype, compressors=_codecs(dtype),
            fill_value=0, dimension_names=tuple(axes),
        )  # fmt: skip
        group.attrs.update(
            {
                "ome": {"version": NGFF_VERSION, "multiscales": [multiscale]},
                "unet": {**(attrs or {}), "complete": False},
            }
        )
    return zarr.open_array(str(path / "0"), mode="r+")


def _mean2(block: np.ndarray) -> np.ndarray:
    """The mean of each 2x2 block of the last two axes (of the pixels there are, at edges)."""
    h, w = block.shape[-2:]
    pad = [(0, 0)] * (block.ndim - 2) + [(0, h % 2), (0, w % 2)]
    total = np.pad(block.astype(np.float64), pad)
    count = np.pad(np.ones((h, w)), pad[-2:])
    shape = (*total.shape[:-2], (h + 1) // 2, 2, (w + 1) // 2, 2)
    count = count.reshape(shape[-4:]).sum(axis=(1, 3))
    return total.reshape(shape).sum(axis=(-3, -1)) / count


def downsample(block: np.ndarray, method: str) -> np.ndarray:
    """``block`` 2x smaller in its last two axes (odd sizes round up), in its own dtype."""
    if method == "stride":
        return block[..., ::2, ::2]
    mean = _mean2(block)
    if block.dtype.kind in "iub":
        mean = np.rint(mean)
    return mean.astype(block.dtype)


def _regions(shape: tuple[int, ...], chunks: tuple[int, ...]) -> Any:
    """The regions (tuples of slices) of the chunks of an array."""
    ranges = [range(0, n, c) for n, c in zip(shape, chunks, strict=True)]
    for start in itertools.product(*ranges):
        yield tuple(slice(s, min(s + c, n)) for s, c, n in zip(start, chunks, shape, strict=True))


def _write_chunk(source: Any, target: Any, region: tuple[slice, ...], method: str) -> None:
    """Write one chunk of ``target`` from the 2x larger region of ``source`` under it."""
    ny, nx = source.shape[-2:]
    y, x = region[-2:]
    window = (
        *region[:-2],
        slice(2 * y.start, min(2 * y.stop, ny)),
        slice(2 * x.start, min(2 * x.stop, nx)),
    )
    target[region] = downsample(np.asarray(source[window]), method)


def add_levels(
    path: str | Path, levels: int, method: str | None = None, workers: int = 1
) -> list[str]:
    """Write levels ``1``..``levels`` of the OME-Zarr image at ``path`` from level ``0``.

    ``method`` is "mean" (default for floats) or "stride" (every second pixel; the default
    for integers, which may hold labels). Each level is written chunk by chunk (``workers``
    threads), with level 0's chunk shape; levels above ``levels`` left by an earlier call
    are removed. Returns the paths of all levels, as listed in the multiscales.
    """
    import zarr

    group = zarr.open_group(str(path), mode="r+")
    level0 = group["0"]
    method = method or ("mean" if level0.dtype.kind == "f" else "stride")
    if method not in METHODS or int(levels) != levels or levels < 0:
        raise InputError(f"levels {levels!r}, method {method!r}: expected >= 0 and {METHODS}")
    for name in sorted(k for k in group.array_keys() if k.isdigit() and int(k) > levels):
        del group[name]
    source = level0
    for level in range(1, levels + 1):
        shape = (*source.shape[:-2], *(math.ceil(n / 2) for n in source.shape[-2:]))
        target = group.create_array(
            str(level), shape=shape, chunks=level0.chunks, dtype=level0.dtype,
            compressors=_codecs(np.dtype(level0.dtype)), fill_value=0, overwrite=True,
            dimension_names=level0.metadata.dimension_names,
        )  # fmt: skip
        tasks = [(source, target, region, method) for region in _regions(shape, target.chunks)]
        with ThreadPoolExecutor(max(1, workers)) as pool:
            list(pool.map(lambda task: _write_chunk(*task), tasks))
        source = target
    ome = dict(group.attrs["ome"])
    multiscale = dict(ome["multiscales"][0])
    axes = "".join(a["name"] for a in multiscale["axes"])
    scale = multiscale["datasets"][0]["coordinateTransformations"][0]["scale"]
    multiscale["datasets"] = [_dataset(i, axes, scale, method) for i in range(levels + 1)]
    multiscale["type"] = method
    group.attrs["ome"] = {**ome, "multiscales": [multiscale, *ome["multiscales"][1:]]}
    return [str(i) for i in range(levels + 1)]


def read_attrs(path: str | Path) -> dict[str, Any]:
    """The ``unet`` attributes of the OME-Zarr group at ``path`` ({} if there are none)."""
    import zarr

    return dict(zarr.open_group(str(path), mode="r").attrs.get("unet", {}))


def update_attrs(path: str | Path, values: dict[str, Any]) -> None:
    """Merge ``values`` into the group's ``unet`` attributes (zarr writes them atomically)."""
    import zarr

    group = zarr.open_group(str(path), mode="r+")
    group.attrs["unet"] = {**dict(group.attrs.get("unet", {})), **values}


def mark_complete(path: str | Path, complete: bool = True) -> None:
    """Record in the group's attributes whether every chunk of the image has been written."""
    update_attrs(path, {"complete": bool(complete)})


def is_complete(path: str | Path) -> bool:
    """Whether the image at ``path`` was marked complete (False for a store left unfinished)."""
    return read_attrs(path).get("complete") is True
