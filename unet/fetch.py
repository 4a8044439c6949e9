"""``unet fetch``: the dataset registry, and a dataset's download into its canonical zarr store.

Datasets: ``isbi2012`` (the challenge's three multi-page TIFFs), any Cell Tracking Challenge
2D training set by name (its official zip), ``synthetic`` (generated), and entries added or
overridden by the caller (``--entry``, from config ``datasets:``). Files come from the mirror
first (``--mirror`` or ``$UNET_DATA_MIRROR``: a folder or base URL holding the same file names,
directly or under a folder named after the dataset), then the official URL.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from unet.archive import safe_extract, zip_names
from unet.download import Source, fetch_file, mirror_sources, read_lock

ISBI_URL = "http://brainiac2.mit.edu/isbi_challenge/sites/default/files/{file}"
CTC_URL = "https://data.celltrackingchallenge.net/training-datasets/{name}.zip"
CTC_NAME = re.compile(r"^(?:BF|DIC|Fluo|PhC)-[CN]2D[HL]-[A-Za-z0-9+]+$")
FORMATS = ("isbi2012", "ctc", "synthetic")
# sha256 of the files of the project's offline mirror (rebuilt copies; see its README)
_MIRROR_SHA256 = {
    "train-volume.tif": "ffd3f1d01cfe6c11c95a9a68238e20d91d393906710a66d52de75405aaf501ca",
    "train-labels.tif": "b68ad8c084464014b38c6d5966048dabe033df9d0b4fd87ae28c83e1c4db4b57",
    "test-volume.tif": "046fbb869a953f1ffa63a9722849fe0aa693ad7a21aa9278a2bff2397d00b16f",
    "Fluo-N2DL-HeLa.zip": "a60264af0a7d55c308dbbe7056f39940e39f9e72b123d9eacff7572761e1a4ca",
}
ISBI_FILES = ("train-volume.tif", "train-labels.tif", "test-volume.tif")

REGISTRY: dict[str, dict[str, Any]] = {
    "isbi2012": {
        "format": "isbi2012",
        "files": {
            name: {
                "url": ISBI_URL.format(file=name),
                "sha256": None,
                "mirror_sha256": _MIRROR_SHA256[name],
            }
            for name in ISBI_FILES
        },
        "split": {"train": "0-19", "val": "20-24", "test": ""},
    },
    "synthetic": {"format": "synthetic"},
}


def dataset_entry(name: str, override: dict[str, Any] | None = None) -> dict[str, Any]:
    """The registry entry of ``name`` (CTC 2D training sets by name), merged with ``override``."""
    entry = copy.deepcopy(REGISTRY.get(name, {}))
    if not entry and CTC_NAME.match(name):
        file = f"{name}.zip"
        entry = {
            "format": "ctc",
            "files": {
                file: {
                    "url": CTC_URL.format(name=name),
                    "sha256": None,
                    "mirror_sha256": _MIRROR_SHA256.get(file),
                }
            },
        }
    for key, value in (override or {}).items():
        if key == "files" and isinstance(value, dict):
            files = entry.setdefault("files", {})
            for file, spec in value.items():
                files[file] = {**files.get(file, {}), **(spec or {})}
        else:
            entry[key] = value
    if not entry:
        raise ValueError(
            f"unknown dataset {name!r}; expected isbi2012, synthetic, a Cell Tracking "
            f"Challenge 2D training set (e.g. Fluo-N2DL-HeLa) or a config entry"
        )
    if entry.get("format") not in FORMATS:
        raise ValueError(
            f"dataset {name!r}: format {entry.get('format')!r} is not one of {FORMATS}"
        )
    if entry["format"] != "synthetic" and not entry.get("files"):
        raise ValueError(f"dataset {name!r}: no files to download")
    return entry


def _get(
    name: str,
    entry: dict[str, Any],
    file: str,
    cache: Path,
    mirror: str | None,
    net: dict[str, Any],
) -> Path:
    spec = entry["files"].get(file)
    if spec is None:
        raise ValueError(f"dataset {name!r}: the registry entry lacks the file {file}")
    sources = mirror_sources(mirror, [f"{name}/{file}", file])
    if spec.get("url"):
        sources.append(Source("official", spec["url"]))
    hashes = {"official": spec.get("sha256"), "mirror": spec.get("mirror_sha256")}
    return fetch_file(file, cache, sources, hashes, **net)


def _provenance(cache: Path, files: list[str]) -> dict[str, Any]:
    lock = read_lock(cache)
    return {file: {k: lock.get(file, {}).get(k) for k in ("location", "sha256")} for file in files}


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
) -> dict[str, list[int]]:
    """Write ``out_dir/{name}.zarr`` (and ``{name}-test.zarr`` for unlabelled slices).

    ``stores`` is "all", "labelled" or "test"; ``split`` holds ``val_fraction``,
    ``test_fraction`` and ``seed`` (used where the entry has no explicit split); ``synthetic``
    holds ``slices``, ``seed`` and :class:`unet.synthetic.SyntheticParams` fields; ``net``
    the download's ``timeout``, ``retries``, ``backoff``, ``progress``. Returns the cells per
    slice of each store written.
    """
    from unet import datasets

    entry = dataset_entry(name, override)
    out_dir, fmt = Path(out_dir), entry["format"]
    cache = Path(cache) if cache else out_dir / "downloads" / name
    split, net = split or {}, net or {}
    progress = bool(net.get("progress", True))
    labelled, test = out_dir / f"{name}.zarr", out_dir / f"{name}-test.zarr"
    if stores == "test" and fmt != "isbi2012":
        raise ValueError(f"dataset {name!r} ({fmt}) has no unlabelled test slices")
    if fmt == "synthetic":
        return {labelled.name: _write_synthetic(name, labelled, split, synthetic or {}, progress)}
    if fmt == "isbi2012":
        files = {"all": ISBI_FILES, "labelled": ISBI_FILES[:2], "test": ISBI_FILES[2:]}[stores]
        for file in files:
            _get(name, entry, file, cache, mirror, net)
        written = datasets.convert_isbi(
            cache,
            labelled if stores != "test" else None,
            test if stores != "labelled" else None,
            dataset=name,
            source=json.dumps(_provenance(cache, list(files))),
            split=entry.get("split") or {},
            progress=progress,
        )
        parts = {labelled.name: written} if stores != "test" else {}
        return parts | ({test.name: []} if stores != "labelled" else {})
    file = next(f for f in entry["files"] if f.endswith(".zip"))
    archive = _get(name, entry, file, cache, mirror, net)
    members = datasets.ctc_members(zip_names(archive), str(archive))
    with tempfile.TemporaryDirectory(dir=cache, prefix=".extract-") as tmp:
        safe_extract(
            archive, Path(tmp), max_bytes=max_extract_bytes, select=set(members).__contains__
        )
        written = datasets.convert_ctc(
            Path(tmp),
            members,
            labelled,
            dataset=name,
            source=json.dumps(_provenance(cache, [file])),
            val_fraction=split.get("val_fraction", 0.2),
            test_fraction=split.get("test_fraction", 0.0),
            seed=split.get("seed", 0),
            progress=progress,
        )
    return {labelled.name: written}


def _write_synthetic(
    name: str, out: Path, split: dict[str, Any], opts: dict[str, Any], progress: bool
) -> list[int]:
    from unet import datasets
    from unet.synthetic import SyntheticParams, synthetic_slices

    opts = dict(opts)
    slices, seed = int(opts.pop("slices", 16)), int(opts.pop("seed", 0))
    params = SyntheticParams(**opts)
    params.check()
    parts = datasets.make_split(
        slices,
        val_fraction=split.get("val_fraction", 0.2),
        test_fraction=split.get("test_fraction", 0.0),
        seed=split.get("seed", 0),
        what=name,
    )
    attrs = {
        "dataset": name,
        "source": f"unet.synthetic seed={seed} {params}",
        "split": parts,
        "format": "synthetic",
        "seed": seed,
    }
    shape = (slices, params.size, params.size)
    return datasets.write_store(
        out,
        synthetic_slices(slices, seed, params),
        shape=shape,
        raw_dtype="uint8",
        attrs=attrs,
        progress=progress,
    )


def add_parser(sub: Any) -> None:
    """Register ``unet fetch``."""
    p = sub.add_parser(
        "fetch",
        help="download a dataset into its canonical zarr store",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("dataset", help="isbi2012, synthetic, a CTC 2D training set name, ...")
    p.add_argument("--out", required=True, type=Path, help="folder for DATASET.zarr")
    p.add_argument("--mirror", help="folder or base URL tried first (default $UNET_DATA_MIRROR)")
    p.add_argument("--cache", type=Path, help="download cache (default OUT/downloads/DATASET)")
    p.add_argument(
        "--stores",
        choices=["all", "labelled", "test"],
        default="all",
        help="write the labelled store, the unlabelled test store, or both",
    )
    p.add_argument("--entry", type=json.loads, help="JSON overriding the registry entry")
    s = p.add_argument_group("split (where the entry has none)")
    s.add_argument("--val-fraction", type=float, default=0.2)
    s.add_argument("--test-fraction", type=float, default=0.0)
    s.add_argument("--split-seed", type=int, default=0)
    g = p.add_argument_group("synthetic dataset")
    g.add_argument("--slices", type=int, default=16)
    g.add_argument("--size", type=int, default=256)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--cell-diameter", type=float, default=24.0)
    g.add_argument("--membrane-width", type=int, nargs=2, default=[2, 6], metavar=("MIN", "MAX"))
    g.add_argument("--touching-fraction", type=float, default=0.15)
    g.add_argument("--noise", type=float, default=0.06)
    g.add_argument("--blur", type=float, default=1.0)
    n = p.add_argument_group("download")
    n.add_argument("--timeout", type=float, default=30.0, help="seconds per socket operation")
    n.add_argument("--retries", type=int, default=4)
    n.add_argument("--backoff", type=float, default=1.0, help="first retry delay, doubling")
    n.add_argument("--max-extract-gb", type=float, default=64.0, help="bound on unzipped size")
    n.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    synthetic = {
        key: getattr(args, key)
        for key in ("slices", "seed", "size", "cell_diameter", "touching_fraction", "noise", "blur")
    }
    synthetic["membrane_width"] = tuple(args.membrane_width)
    written = fetch_dataset(
        args.dataset,
        args.out,
        stores=args.stores,
        override=args.entry,
        cache=args.cache,
        mirror=args.mirror or os.environ.get("UNET_DATA_MIRROR") or None,
        split={
            "val_fraction": args.val_fraction,
            "test_fraction": args.test_fraction,
            "seed": args.split_seed,
        },
        synthetic=synthetic,
        max_extract_bytes=int(args.max_extract_gb * 2**30),
        net={
            "timeout": args.timeout,
            "retries": args.retries,
            "backoff": args.backoff,
            "progress": not args.no_progress,
        },
    )
    for store in written:
        print(describe(args.out / store))
    return 0


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
