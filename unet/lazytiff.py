"""Lazy access to the pixels of a TIFF / BigTIFF, for :mod:`unet.readers`.

Pixels stored uncompressed and contiguous are memory-mapped; any other layout (compressed,
tiled, striped, BigTIFF) is read through tifffile's zarr store, one strip or tile at a
time. A stack written page by page (one tifffile "shaped" series per page) is read as one
(Z, Y, X) series. Damaged or truncated files are a one-line InputError.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from logging.handlers import BufferingHandler
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from unet.errors import InputError

SPATIAL = {"Y": "y", "X": "x", "Z": "z", "Q": "z", "I": "z"}  # Q, I: unnamed page axes
OTHER = {"T": "time", "C": "channel", "S": "channel"}  # S: samples, as RGB


class Tiff(NamedTuple):
    """An array-like over the pixels, its axis names and kinds, and how to close the file."""

    array: Any
    names: list[str]
    kinds: list[str]
    close: Callable[[], None]


@contextlib.contextmanager
def _tiff_log(path: Path) -> Iterator[None]:
    """Turn tifffile's logged errors (it logs damaged structures and reads on) into an
    InputError."""
    log, collect = logging.getLogger("tifffile"), BufferingHandler(16)
    collect.setLevel(logging.ERROR)
    log.addHandler(collect)
    try:
        yield
    finally:
        log.removeHandler(collect)
    if collect.buffer:
        why = collect.buffer[0].getMessage().splitlines()[0]
        raise InputError(f"{path}: not a readable TIFF (corrupt or truncated: {why})")


def _tiff_file(path: Path) -> Any:
    """The TiffFile, with page-by-page written stacks of equal pages read as one series."""
    import tifffile

    tif = tifffile.TiffFile(path)
    series = tif.series
    if tif.is_shaped and len(series) > 1 and len({(s.shape, s.dtype) for s in series}) == 1:
        tif.close()
        tif = tifffile.TiffFile(path, is_shaped=False)
    return tif


def _check_extent(path: Path, series: Any) -> None:
    """A truncated file: the series' data must lie inside the file."""
    page, size = series.pages[-1], path.stat().st_size
    ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts, strict=True)]
    if series.dataoffset is not None:
        ends.append(series.dataoffset + series.size * series.dtype.itemsize)
    if max(ends, default=0) > size:
        raise InputError(
            f"{path}: not a readable TIFF (truncated: data ends at byte {max(ends)} of {size})"
        )


def open_tiff(path: str | Path) -> Tiff:
    """The first image series of the TIFF at ``path``, opened lazily (level 0 of a pyramid).

    Axis names are y, x and z (tifffile's Z, Q, I) for spatial axes, else tifffile's letter
    in lower case; kinds are "space", "time", "channel" (C, and S for samples) or "other".
    """
    import zarr

    path, tif = Path(path), None
    try:
        with _tiff_log(path):
            tif = _tiff_file(path)
            series = tif.series[0] if tif.series else None
            if series is None or not series.pages:
                raise InputError(f"{path}: not a readable TIFF (no image data)")
            letters, shape = series.get_axes(True), tuple(series.get_shape(True))
            if series.size:
                _check_extent(path, series)
            if series.dataoffset is None:
                store = tif.aszarr(series=0, level=0)
                array = zarr.open_array(store, mode="r")
    except Exception as err:  # tifffile raises many types for damaged files
        if tif is not None:
            tif.close()
        if isinstance(err, InputError):
            raise
        raise InputError(f"{path}: not a readable TIFF ({type(err).__name__}: {err})") from err
    if not series.size:
        tif.close()
        raise InputError(f"{path}: empty image (shape {shape}); expected pixels")
    names = [SPATIAL.get(a, a.lower()) for a in letters]
    kinds = ["space" if a in SPATIAL else OTHER.get(a, "other") for a in letters]
    if series.dataoffset is not None:  # uncompressed and contiguous: a memory map
        dtype = np.dtype(series.dtype).newbyteorder(tif.byteorder)
        tif.close()
        array = np.memmap(path, dtype, mode="r", offset=series.dataoffset, shape=shape)
        return Tiff(array, names, kinds, lambda: None)

    def close() -> None:
        store.close()
        tif.close()

    return Tiff(array, names, kinds, close)
