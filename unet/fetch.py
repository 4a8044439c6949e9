"""``unet fetch``: a dataset's download (mirror first) and conversion to its canonical store.

Datasets come from :mod:`unet.registry` (``isbi2012``, Cell Tracking Challenge 2D training
sets by name, ``synthetic``), with entries added or overridden by the caller (``--entry``,
from config ``datasets:``). Files come from the mirror first (``--mirror`` or
``$UNET_DATA_MIRROR``: a folder or base URL holding the same file names, directly or under a
folder named after the dataset), then the official URL.
"""

from __future__ import annotations

import json
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unet.archive import safe_extract, zip_names
from unet.download import Source, fetch_file, mirror_sources, read_lock
from unet.errors import InputError
from unet.io import read_tiff
from unet.registry import ISBI_FILES, dataset_entry
from unet.synthetic import SyntheticParams


def fetch_dataset(
    name: str,
    out_dir: Path,
    *,
    stores: str = "all",
    mirror: str | None = None,
    override: dict[str, Any] | None = None,
    cache: Path | None = None,
    split: dict[str, Any] | None = None,
    synthetic: dict[str, Any] | None = None,
    max_extract_bytes: int = 64 << 30,
    net: dict[str, Any] | None = None,
    ctc: dict[str, Any] | None = None,
) -> dict[str, list[int]]:
    """Write ``out_dir/{name}.zarr`` (and ``{name}-test.zarr`` for unlabelled slices).

    ``stores`` is "all", "labelled" or "test"; ``split`` holds ``val_fraction``,
    ``test_fraction`` and ``seed`` (used where the entry has no explicit ``split``);
    ``synthetic`` holds ``slices``, ``seed`` and :class:`unet.synthetic.SyntheticParams`
    fields; ``net`` the download's ``timeout``, ``retries``, ``backoff``, ``progress``;
    ``ctc`` (Cell Tracking Challenge data only) :class:`unet.ignore.IgnoreParams` fields:
    how the ignore mask of unannotated cells is found, and ``min_annotated`` (keep only
    frames whose annotation covers that fraction of the detected foreground).
    Returns the cells per slice of each store written (empty for an unlabelled store).
    """
    entry = dataset_entry(name, override)
    out_dir, fmt = Path(out_dir), entry["format"]
    if stores == "test" and fmt != "isbi2012":
        raise InputError(f"dataset {name!r} ({fmt}) has no unlabelled test slices")
    job = _Job(
        name,
        entry,
        out_dir,
        Path(cache) if cache else out_dir / "downloads" / name,
        mirror,
        {**(split or {}), "explicit": entry.get("split")},
        net or {},
    )
    if fmt == "synthetic":
        return {f"{name}.zarr": _write_synthetic(job, synthetic or {})}
    if fmt == "isbi2012":
        return _fetch_isbi(job, stores)
    return _fetch_ctc(job, max_extract_bytes, ctc or {})


@dataclass
class _Job:
    name: str
    entry: dict[str, Any]
    out_dir: Path
    cache: Path
    mirror: str | None
    split: dict[str, Any]
    net: dict[str, Any]

    @property
    def progress(self) -> bool:
        return bool(self.net.get("progress", True))

    def get(self, file: str) -> Path:
        """Bring one of the entry's files into the cache (mirror first)."""
        spec = self.entry["files"].get(file)
        if spec is None:
            raise InputError(f"dataset {self.name!r}: the registry entry lacks the file {file}")
        sources = mirror_sources(self.mirror, [f"{self.name}/{file}", file])
        if spec.get("url"):
            sources.append(Source("official", spec["url"]))
        hashes = {"official": spec.get("sha256"), "mirror": spec.get("mirror_sha256")}
        validate = _VALIDATORS.get(Path(file).suffix.lower())
        return fetch_file(file, self.cache, sources, hashes, validate=validate, **self.net)

    def provenance(self, files: list[str]) -> str:
        """Where each file came from and its sha256, as JSON (the store's ``source``)."""
        lock = read_lock(self.cache)
        return json.dumps(
            {f: {k: lock.get(f, {}).get(k) for k in ("location", "sha256")} for f in files}
        )


def _check_zip(path: Path) -> None:
    """A zip whose entries are safe (:func:`unet.archive.zip_names`) and pass their CRC test."""
    zip_names(path)
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as err:
        raise InputError(f"{path}: corrupt zip archive ({err})") from err
    if bad is not None:
        raise InputError(f"{path}: corrupt zip archive (entry {bad!r} fails its CRC test)")


# content checks of a download, by suffix, run before its hash is recorded in the lock file
_VALIDATORS = {".tif": read_tiff, ".tiff": read_tiff, ".zip": _check_zip}


def _fetch_isbi(job: _Job, stores: str) -> dict[str, list[int]]:
    from unet import datasets

    files = {"all": ISBI_FILES, "labelled": ISBI_FILES[:2], "test": ISBI_FILES[2:]}[stores]
    for file in files:
        job.get(file)
    labelled = job.out_dir / f"{job.name}.zarr" if stores != "test" else None
    test = job.out_dir / f"{job.name}-test.zarr" if stores != "labelled" else None
    counts = datasets.convert_isbi(
        job.cache,
        labelled,
        test,
        dataset=job.name,
        source=job.provenance(list(files)),
        split=job.split,
        progress=job.progress,
    )
    return ({labelled.name: counts} if labelled else {}) | ({test.name: []} if test else {})


def _fetch_ctc(job: _Job, max_extract_bytes: int, ctc: dict[str, Any]) -> dict[str, list[int]]:
    from unet import datasets
    from unet.ignore import IgnoreParams

    ignore = IgnoreParams(**ctc)  # checked before the download

    zips = [f for f in job.entry["files"] if f.endswith(".zip")]
    if not zips:
        raise InputError(f"dataset {job.name!r}: a ctc entry needs a .zip file")
    archive = job.get(zips[0])
    members = datasets.ctc_members(zip_names(archive), str(archive))
    out = job.out_dir / f"{job.name}.zarr"
    with tempfile.TemporaryDirectory(dir=job.cache, prefix=".extract-") as tmp:
        safe_extract(
            archive, Path(tmp), max_bytes=max_extract_bytes, select=set(members).__contains__
        )
        counts = datasets.convert_ctc(
            Path(tmp),
            members,
            out,
            dataset=job.name,
            source=job.provenance(zips[:1]),
            split=job.split,
            ignore=ignore,
            progress=job.progress,
        )
    return {out.name: counts}


def _write_synthetic(job: _Job, opts: dict[str, Any]) -> list[int]:
    from unet import datasets
    from unet.synthetic import synthetic_slices

    opts = dict(opts)
    slices, seed = int(opts.pop("slices", 16)), int(opts.pop("seed", 0))
    params = SyntheticParams(**opts)
    params.check()
    parts = datasets.split_of(slices, job.split, what=job.name)
    attrs = {
        "dataset": job.name,
        "source": f"unet.synthetic seed={seed} {params}",
        "split": parts,
        "format": "synthetic",
        "seed": seed,
    }
    shape = (slices, params.size, params.size)
    return datasets.write_store(
        job.out_dir / f"{job.name}.zarr",
        synthetic_slices(slices, seed, params),
        shape=shape,
        raw_dtype="uint8",
        attrs=attrs,
        progress=job.progress,
    )


def describe(store: Path) -> str:
    """One line on a written store: arrays, split sizes, cells per slice."""
    import numpy as np
    import zarr

    root = zarr.open_group(store, mode="r")
    arrays = [
        f"{k} {tuple(root[k].shape)} {root[k].dtype}"
        for k in ("raw", "instances", "semantic")
        if k in root
    ]
    line = f"{store}: " + ", ".join(arrays)
    if split := root.attrs.get("split"):
        line += "; split " + " / ".join(f"{part} {len(split[part])}" for part in split)
    if counts := root.attrs.get("instances_per_slice"):
        line += (
            f"; cells per slice min {min(counts)}, median {int(np.median(counts))}, "
            f"max {max(counts)}"
        )
    return line
