"""The canonical dataset store and the converters into it (ISBI 2012, Cell Tracking Challenge).

A canonical store is a zarr v3 group with ``raw`` (Z, Y, X, dtype as given), ``instances``
(uint32, 0 = background / membrane) and ``semantic`` (uint8, 1 = cell, 0 = background
including a border between touching cells), chunked (1, min(Y, 1024), min(X, 1024)); its
attrs hold ``dataset``, ``source`` and ``split`` ({"train", "val", "test"}: indices along Z).
Cell Tracking Challenge stores also hold ``ignore`` (uint8, 1 = unannotated foreground:
cells the partial SEG ground truth leaves out, which get weight 0 in the loss; see
:mod:`unet.ignore`) and the attribute ``ignore`` (method, parameters, per-frame annotated
fraction, frames dropped by ``min_annotated``). ISBI and synthetic stores are fully
annotated and have no ``ignore`` array.
Unlabelled slices (the ISBI test volume) go to a separate store with ``raw`` only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from unet.errors import InputError
from unet.ignore import IgnoreParams, ignore_mask
from unet.io import atomic_output, read_tiff
from unet.labels import is_binary
from unet.splits import PARTS, make_split, parse_indices, split_of  # noqa: F401 (re-exported)

FOUR_CONNECTED = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]])
_SEG = re.compile(r"^(?P<prefix>(?:.*/)?)(?P<seq>\d+)_GT/SEG/man_seg(?P<t>\d+)\.tif$")


def touching_border(instances: np.ndarray) -> np.ndarray:
    """Pixels of a cell with a differently labelled cell among their 8 neighbours."""
    from scipy import ndimage

    labels = instances.astype(np.int64)
    high = ndimage.maximum_filter(labels, size=3, mode="nearest")
    blank = labels.max(initial=0) + 1  # a sentinel above every label for the background
    low = ndimage.minimum_filter(np.where(labels > 0, labels, blank), size=3, mode="nearest")
    return (labels > 0) & ((high != labels) | (low != labels))


def semantic_of(instances: np.ndarray, separate_touching: bool = True) -> np.ndarray:
    """The 2-class target: 1 = cell, 0 = background and (optionally) borders between cells."""
    cells = instances > 0
    if separate_touching:
        cells &= ~touching_border(instances)
    return cells.astype(np.uint8)


def _chunks(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """The store's chunks: one slice, at most 1024 x 1024."""
    return (1, min(shape[1], 1024), min(shape[2], 1024))


def write_store(
    out: Path,
    slices: Iterable[tuple[np.ndarray, np.ndarray]],
    *,
    shape: tuple[int, int, int],
    raw_dtype: Any,
    attrs: Mapping[str, Any],
    separate_touching: bool = True,
    progress: bool = True,
    ignore: bool = False,
) -> list[int]:
    """Write a canonical store atomically from (raw, instances) slices; return cells per slice.

    With ``ignore`` the slices are (raw, instances, ignore mask) and the store gets ``ignore``.
    """
    import zarr
    from tqdm import tqdm

    chunks = _chunks(shape)
    counts: list[int] = []
    names = [("raw", raw_dtype), ("instances", np.uint32), ("semantic", np.uint8)]
    with atomic_output(out) as tmp:
        root = zarr.open_group(tmp, mode="w", zarr_format=3)
        arrays = {
            name: root.create_array(name, shape=shape, chunks=chunks, dtype=dtype)
            for name, dtype in names + [("ignore", np.uint8)] * ignore
        }
        bar = tqdm(slices, total=shape[0], desc=out.name, unit="slice", disable=not progress)
        for z, (raw, inst, *mask) in enumerate(bar):
            if {raw.shape, inst.shape, *(m.shape for m in mask)} != {shape[1:]} or (
                raw.dtype != raw_dtype
            ):
                raise InputError(
                    f"{attrs.get('source')}: slice {z} is {raw.dtype} {raw.shape}, "
                    f"labels {inst.shape}; expected {np.dtype(raw_dtype)} {shape[1:]}"
                )
            arrays["raw"][z] = raw
            arrays["instances"][z] = inst
            arrays["semantic"][z] = semantic_of(inst, separate_touching)
            if ignore:
                arrays["ignore"][z] = mask[0]
            counts.append(len(np.unique(inst[inst > 0])))
        root.attrs.update({**attrs, "instances_per_slice": counts})
    return counts


def write_raw_store(out: Path, raw: np.ndarray, attrs: Mapping[str, Any]) -> None:
    """Write unlabelled slices (Z, Y, X) as a group store with ``raw`` only, atomically."""
    import zarr

    chunks = _chunks(raw.shape)
    with atomic_output(out) as tmp:
        root = zarr.open_group(tmp, mode="w", zarr_format=3)
        root.create_array("raw", shape=raw.shape, chunks=chunks, dtype=raw.dtype)[...] = raw
        root.attrs.update(dict(attrs))


def _volume(path: Path) -> np.ndarray:
    array = read_tiff(path)
    array = array[None] if array.ndim == 2 else array
    if array.ndim != 3:
        raise InputError(
            f"{path}: expected a stack of 2-D grey slices (Z, Y, X), got {array.shape}"
        )
    return array


def convert_isbi(
    folder: Path,
    out: Path | None,
    test_out: Path | None,
    *,
    dataset: str,
    source: str,
    split: Mapping[str, Any],
    progress: bool = True,
) -> list[int]:
    """ISBI 2012 TIFFs -> canonical store (instances: 4-connected cell components) + test store.

    ``split`` is a :func:`split_of` spec; any number of training slices is accepted (the
    challenge's 30, the shared mirror's 25) where its explicit split fits, e.g. ``val_last``.
    """
    from scipy import ndimage

    folder = Path(folder)
    test = _volume(folder / "test-volume.tif") if test_out is not None else None
    counts: list[int] = []
    if out is not None:
        raw, labels = _volume(folder / "train-volume.tif"), _volume(folder / "train-labels.tif")
        if raw.shape != labels.shape:
            raise InputError(
                f"{folder / 'train-labels.tif'}: shape {labels.shape} does not match "
                f"train-volume.tif {raw.shape}"
            )
        if not is_binary(labels):
            raise InputError(
                f"{folder / 'train-labels.tif'}: expected binary labels (cell > 0, "
                f"membrane 0), found {len(np.unique(labels))} values"
            )
        parts = split_of(
            len(raw),
            split,
            what=f"{dataset} ({folder / 'train-volume.tif'})",
            setting=f"datasets.{dataset}.split (config, or fetch --entry)",
        )
        slices = (
            (raw[z], ndimage.label(labels[z] > 0, FOUR_CONNECTED)[0].astype(np.uint32))
            for z in range(len(raw))
        )
        attrs = {"dataset": dataset, "source": source, "split": parts, "format": "isbi2012"}
        counts = write_store(
            out,
            slices,
            shape=raw.shape,
            raw_dtype=raw.dtype,
            attrs=attrs,
            separate_touching=False,
            progress=progress,
        )
    if test is not None and test_out is not None:
        write_raw_store(test_out, test, {"dataset": dataset, "source": source, "labelled": False})
    return counts


def _ctc_name(match: re.Match[str], kind: str) -> str:
    """The raw frame ("raw") or TRA marker image ("tra") a SEG member's frame has."""
    prefix, seq, t = match["prefix"], match["seq"], match["t"]
    return f"{prefix}{seq}/t{t}.tif" if kind == "raw" else f"{prefix}{seq}_GT/TRA/man_track{t}.tif"


def ctc_members(names: Iterable[str], where: str) -> list[str]:
    """The zip members a CTC training set needs: SEG ground truth, the frames it annotates
    and, where the zip has them, those frames' TRA markers."""
    names = set(names)
    needed = []
    for name in sorted(names):
        if match := _SEG.match(name):
            raw, tra = _ctc_name(match, "raw"), _ctc_name(match, "tra")
            if raw not in names:
                raise InputError(f"{where}: {name} has no raw frame; expected {raw}")
            needed += [raw, name, *([tra] if tra in names else [])]
    if not needed:
        raise InputError(
            f"{where}: no segmentation ground truth; expected the Cell Tracking "
            f"Challenge layout NAME/01/tTTT.tif + NAME/01_GT/SEG/man_segTTT.tif"
        )
    return needed


_Frame = tuple[str, Path, Path, Path | None]  # key "01/t012", raw, SEG, TRA (or None)


def _ctc_frames(root: Path, members: list[str]) -> Iterator[_Frame]:
    present = set(members)
    for seg in members:
        if match := _SEG.match(seg):
            tra = _ctc_name(match, "tra")
            yield (f"{match['seq']}/t{match['t']}", root / _ctc_name(match, "raw"), root / seg,
                   root / tra if tra in present else None)  # fmt: skip


def _read_frame(frame: _Frame, like: np.ndarray, like_path: Path) -> tuple[np.ndarray, ...]:
    """A frame's raw, SEG ids (uint32) and TRA ids (or None), checked against ``like``."""
    _, raw_path, seg_path, tra_path = frame
    raw, seg = read_tiff(raw_path), read_tiff(seg_path)
    if raw.shape != like.shape or raw.dtype != like.dtype:
        raise InputError(
            f"{raw_path}: {raw.dtype} {raw.shape}; expected {like.dtype} "
            f"{like.shape} like {like_path.name}"
        )
    markers = None if tra_path is None else read_tiff(tra_path)
    for path, ids in ((seg_path, seg), (tra_path, markers)):
        if ids is not None and (ids.shape != raw.shape or ids.dtype.kind not in "ui"):
            raise InputError(
                f"{path}: {ids.dtype} {ids.shape}; expected integer ids "
                f"of shape {raw.shape} like its frame {raw_path.name}"
            )
    return raw, seg.astype(np.uint32), markers


def convert_ctc(
    root: Path,
    members: list[str],
    out: Path,
    *,
    dataset: str,
    source: str,
    split: Mapping[str, Any],
    ignore: IgnoreParams | None = None,
    progress: bool = True,
) -> list[int]:
    """CTC frames with SEG ground truth (extracted below ``root``) -> canonical store.

    ``split`` is a :func:`split_of` spec; the frames are ordered by sequence, then time.
    ``ignore`` says how the store's ignore mask of unannotated cells is found (default
    :class:`unet.ignore.IgnoreParams`); only frames whose annotated fraction is at least
    its ``min_annotated`` are kept (0 keeps all), the others are listed in the attributes.
    """
    params = ignore or IgnoreParams()
    frames = list(_ctc_frames(Path(root), members))
    first = read_tiff(frames[0][1])
    if first.ndim != 2:
        raise InputError(f"{frames[0][1]}: expected a 2-D frame, got shape {first.shape}")
    masks = _ignore_masks(frames, first, params, f"{out.name} ignore", progress)
    kept = [f for f in frames if not masks or masks[f[0]][1] >= params.min_annotated]
    if not kept:
        best = max(fraction for _, fraction, _ in masks.values())
        raise InputError(
            f"{dataset}: no frame's annotation covers min_annotated={params.min_annotated} "
            f"of its foreground (the best covers {best:.3f})"
        )

    def slices() -> Iterator[tuple[np.ndarray, ...]]:
        for frame in kept:
            raw, seg, _ = _read_frame(frame, first, frames[0][1])
            if not masks:
                yield raw, seg
            else:
                packed = masks[frame[0]][0]
                yield raw, seg, np.unpackbits(packed, count=raw.size).reshape(raw.shape)

    attrs = {
        "dataset": dataset,
        "source": source,
        "split": split_of(len(kept), split, what=dataset),
        "format": "ctc",
        "frames": [frame[0] for frame in kept],
        "ignore": _ignore_attrs(params, masks, kept),
    }
    shape = (len(kept), *first.shape)
    return write_store(out, slices(), shape=shape, raw_dtype=first.dtype, attrs=attrs,
                       progress=progress, ignore=bool(masks))  # fmt: skip


def _ignore_masks(
    frames: list[_Frame], first: np.ndarray, params: IgnoreParams, desc: str, progress: bool
) -> dict[str, tuple[np.ndarray, float, str]]:
    """Each frame's ignore mask (bit-packed), annotated fraction and method; {} for "none"."""
    from tqdm import tqdm

    masks = {}
    if params.method != "none":
        for frame in tqdm(frames, desc=desc, unit="frame", disable=not progress):
            raw, seg, markers = _read_frame(frame, first, frames[0][1])
            mask, fraction, method = ignore_mask(seg, raw, markers, params)
            masks[frame[0]] = (np.packbits(mask), fraction, method)
    return masks


def _ignore_attrs(
    params: IgnoreParams,
    masks: Mapping[str, tuple[np.ndarray, float, str]],
    kept: list[_Frame],
) -> dict[str, Any]:
    """The store's ``ignore`` attribute: method, parameters, per-frame annotated fraction."""
    if not masks:
        return {"method": "none"}
    keys = {frame[0] for frame in kept}
    return {
        **params.as_dict(),
        "methods": [masks[frame[0]][2] for frame in kept],
        "annotated_fraction": [round(masks[frame[0]][1], 4) for frame in kept],
        "dropped": {k: round(v[1], 4) for k, v in masks.items() if k not in keys},
    }
