"""The canonical dataset store and the converters into it (ISBI 2012, Cell Tracking Challenge).

A canonical store is a zarr v3 group with ``raw`` (Z, Y, X, dtype as given), ``instances``
(uint32, 0 = background / membrane) and ``semantic`` (uint8, 1 = cell, 0 = background
including a border between touching cells), chunked (1, min(Y, 1024), min(X, 1024)); its
attrs hold ``dataset``, ``source`` and ``split`` ({"train", "val", "test"}: indices along Z).
Unlabelled slices (the ISBI test volume) go to a separate store with ``raw`` only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from unet.errors import InputError
from unet.io import atomic_output, read_tiff
from unet.labels import is_binary

PARTS = ("train", "val", "test")
FOUR_CONNECTED = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]])
_SEG = re.compile(r"^(?P<prefix>(?:.*/)?)(?P<seq>\d+)_GT/SEG/man_seg(?P<t>\d+)\.tif$")


def parse_indices(spec: str | Sequence[int]) -> list[int]:
    """Slice indices from "0-19,22" (ranges inclusive) or a list of integers."""
    if not isinstance(spec, str):
        return [int(i) for i in spec]
    out: list[int] = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not match:
            raise InputError(f"bad slice range {part!r}; expected e.g. '0-19' or '3'")
        lo, hi = int(match[1]), int(match[2] or match[1])
        out.extend(range(lo, hi + 1))
    return out


def make_split(
    n: int,
    *,
    explicit: Mapping[str, str | Sequence[int]] | None = None,
    val_fraction: float = 0.2,
    test_fraction: float = 0.0,
    seed: int = 0,
    what: str = "dataset",
) -> dict[str, list[int]]:
    """The train/val/test slice indices: ``explicit`` ones (checked), else a seeded shuffle."""
    if explicit:
        split = {part: sorted(parse_indices(explicit.get(part, ""))) for part in PARTS}
        named = [i for part in PARTS for i in split[part]]
        if unknown := set(explicit) - set(PARTS):
            raise InputError(f"{what}: unknown split part(s) {sorted(unknown)}; expected {PARTS}")
        if max(named, default=-1) >= n or len(named) != n or len(set(named)) != n:
            raise InputError(
                f"{what}: the split names {len(named)} slices (up to index "
                f"{max(named, default=-1)}) but the data has {n} slices (0-{n - 1}); "
                f"every slice must be in exactly one of train/val/test"
            )
    else:
        if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1):
            raise InputError(
                f"split fractions must be in [0, 1), got {val_fraction}, {test_fraction}"
            )
        n_val = max(1, round(n * val_fraction)) if val_fraction > 0 else 0
        n_test = max(1, round(n * test_fraction)) if test_fraction > 0 else 0
        n_test = min(n_test, n - 1)  # a very small dataset keeps at least one training slice
        n_val = min(n_val, n - 1 - n_test)
        order = np.random.default_rng(seed).permutation(n).tolist()
        split = {
            "test": sorted(order[:n_test]),
            "val": sorted(order[n_test : n_test + n_val]),
            "train": sorted(order[n_test + n_val :]),
        }
    if not split["train"]:
        raise InputError(f"{what}: the split leaves no training slice out of {n}")
    return {part: split[part] for part in PARTS}


def split_of(n: int, spec: Mapping[str, Any], what: str) -> dict[str, list[int]]:
    """:func:`make_split` from a spec {explicit, val_fraction, test_fraction, seed}."""
    return make_split(
        n,
        explicit=spec.get("explicit"),
        val_fraction=spec.get("val_fraction", 0.2),
        test_fraction=spec.get("test_fraction", 0.0),
        seed=spec.get("seed", 0),
        what=what,
    )


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
) -> list[int]:
    """Write a canonical store atomically from (raw, instances) slices; return cells per slice."""
    import zarr
    from tqdm import tqdm

    chunks = _chunks(shape)
    counts: list[int] = []
    with atomic_output(out) as tmp:
        root = zarr.open_group(tmp, mode="w", zarr_format=3)
        arrays = {
            name: root.create_array(name, shape=shape, chunks=chunks, dtype=dtype)
            for name, dtype in (
                ("raw", raw_dtype),
                ("instances", np.uint32),
                ("semantic", np.uint8),
            )
        }
        bar = tqdm(slices, total=shape[0], desc=out.name, unit="slice", disable=not progress)
        for z, (raw, inst) in enumerate(bar):
            if raw.shape != shape[1:] or inst.shape != shape[1:] or raw.dtype != raw_dtype:
                raise InputError(
                    f"{attrs.get('source')}: slice {z} is {raw.dtype} {raw.shape}, "
                    f"labels {inst.shape}; expected {np.dtype(raw_dtype)} {shape[1:]}"
                )
            arrays["raw"][z] = raw
            arrays["instances"][z] = inst
            arrays["semantic"][z] = semantic_of(inst, separate_touching)
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
    split: Mapping[str, str | Sequence[int]],
    progress: bool = True,
) -> list[int]:
    """ISBI 2012 TIFFs -> canonical store (instances: 4-connected cell components) + test store."""
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
        parts = make_split(
            len(raw), explicit=split, what=f"{dataset} ({folder / 'train-volume.tif'})"
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


def ctc_members(names: Iterable[str], where: str) -> list[str]:
    """The zip members a CTC training set needs: SEG ground truth and the frames it annotates."""
    names = set(names)
    needed = []
    for name in sorted(names):
        if match := _SEG.match(name):
            raw = f"{match['prefix']}{match['seq']}/t{match['t']}.tif"
            if raw not in names:
                raise InputError(f"{where}: {name} has no raw frame; expected {raw}")
            needed += [raw, name]
    if not needed:
        raise InputError(
            f"{where}: no segmentation ground truth; expected the Cell Tracking "
            f"Challenge layout NAME/01/tTTT.tif + NAME/01_GT/SEG/man_segTTT.tif"
        )
    return needed


def _ctc_frames(root: Path, members: list[str]) -> Iterator[tuple[str, Path, Path]]:
    for raw, seg in zip(members[::2], members[1::2], strict=True):
        match = _SEG.match(seg)
        assert match is not None
        yield f"{match['seq']}/t{match['t']}", root / raw, root / seg


def convert_ctc(
    root: Path,
    members: list[str],
    out: Path,
    *,
    dataset: str,
    source: str,
    split: Mapping[str, Any],
    progress: bool = True,
) -> list[int]:
    """CTC frames with SEG ground truth (extracted below ``root``) -> canonical store.

    ``split`` is a :func:`split_of` spec; the frames are ordered by sequence, then time.
    """
    frames = list(_ctc_frames(Path(root), members))
    first = read_tiff(frames[0][1])
    if first.ndim != 2:
        raise InputError(f"{frames[0][1]}: expected a 2-D frame, got shape {first.shape}")
    shape = (len(frames), *first.shape)

    def slices() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for _, raw_path, seg_path in frames:
            raw, seg = read_tiff(raw_path), read_tiff(seg_path)
            if raw.shape != first.shape or raw.dtype != first.dtype:
                raise InputError(
                    f"{raw_path}: {raw.dtype} {raw.shape}; expected {first.dtype} "
                    f"{first.shape} like {frames[0][1].name}"
                )
            if seg.shape != raw.shape or seg.dtype.kind not in "ui":
                raise InputError(
                    f"{seg_path}: {seg.dtype} {seg.shape}; expected integer ids "
                    f"of shape {raw.shape} like its frame {raw_path.name}"
                )
            yield raw, seg.astype(np.uint32)

    attrs = {
        "dataset": dataset,
        "source": source,
        "split": split_of(len(frames), split, what=dataset),
        "format": "ctc",
        "frames": [key for key, _, _ in frames],
    }
    return write_store(
        out, slices(), shape=shape, raw_dtype=first.dtype, attrs=attrs, progress=progress
    )
