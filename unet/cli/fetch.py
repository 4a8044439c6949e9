"""``unet fetch``: download a dataset (mirror first) into its canonical zarr store."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import fields
from pathlib import Path
from typing import Any

from unet.fetch import describe, fetch_dataset
from unet.ignore import METHODS, IgnoreParams
from unet.synthetic import SyntheticParams


def add_parser(sub: Any) -> None:
    """Register ``unet fetch``."""
    p = sub.add_parser(
        "fetch",
        help="download a dataset into its canonical zarr store",
        description="Download a dataset (mirror first, resumable, sha256-checked) and write its "
        "canonical zarr store OUT/DATASET.zarr (+ OUT/DATASET-test.zarr for unlabelled slices).",
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
    g.add_argument("--seed", type=int, default=0)
    for field in fields(SyntheticParams):  # one flag per generator setting, same defaults
        flag = f"--{field.name.replace('_', '-')}"
        if isinstance(field.default, tuple):
            g.add_argument(flag, type=int, nargs=2, default=list(field.default),
                           metavar=("MIN", "MAX"))  # fmt: skip
        else:
            g.add_argument(flag, type=type(field.default), default=field.default)
    _add_ctc_flags(p)
    n = p.add_argument_group("download")
    n.add_argument("--timeout", type=float, default=30.0, help="seconds per socket operation")
    n.add_argument("--retries", type=int, default=4)
    n.add_argument("--backoff", type=float, default=1.0, help="first retry delay, doubling")
    n.add_argument("--max-extract-gb", type=float, default=64.0, help="bound on unzipped size")
    n.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_run)


def _add_ctc_flags(p: argparse.ArgumentParser) -> None:
    """Flags of the ignore mask of unannotated cells (Cell Tracking Challenge data only)."""
    d = IgnoreParams()
    c = p.add_argument_group(
        "Cell Tracking Challenge: unannotated cells (ignore mask, weight 0 in the loss)"
    )
    flags = [
        ("--ignore", str, d.method, "auto: from the TRA markers where the zip has them, else "
         "by thresholding the raw frame; threshold: always; none: no mask"),
        ("--marker-radius", float, d.marker_radius, "px, dilation of TRA markers on no SEG cell"),
        ("--threshold-sigma", float, d.sigma, "px, Gaussian blur before the triangle threshold"),
        ("--threshold-radius", float, d.radius, "px, dilation of thresholded unannotated cells"),
        ("--min-annotated", float, d.min_annotated, "keep only frames whose annotation covers "
         "this fraction of the detected foreground (0: all)"),
    ]  # fmt: skip
    for flag, kind, default, text in flags:
        choices = METHODS if flag == "--ignore" else None
        c.add_argument(flag, type=kind, default=default, choices=choices,
                       help=f"{text} (default {default})")  # fmt: skip


def _run(args: argparse.Namespace) -> int:
    synthetic = {"slices": args.slices, "seed": args.seed}
    for field in fields(SyntheticParams):
        value = getattr(args, field.name)
        synthetic[field.name] = tuple(value) if isinstance(value, list) else value
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
        ctc={
            "method": args.ignore,
            "marker_radius": args.marker_radius,
            "sigma": args.threshold_sigma,
            "radius": args.threshold_radius,
            "min_annotated": args.min_annotated,
        },
    )
    for store in written:
        print(describe(args.out / store))
        if line := _ignore_line(args.out / store):
            print(line)
    return 0


def _ignore_line(store: Path) -> str | None:
    """One line on a CTC store's ignore mask: method, annotated fractions, dropped frames."""
    import numpy as np
    import zarr

    info = zarr.open_group(store, mode="r").attrs.get("ignore")
    if not info or "annotated_fraction" not in info:
        return None
    methods = "/".join(sorted(set(info["methods"])))
    low, mid, high = np.percentile(info["annotated_fraction"], [0, 50, 100])
    return (
        f"{store}: ignore mask ({methods}) of unannotated cells; annotated fraction of the "
        f"foreground per frame min {low:.3f}, median {mid:.3f}, max {high:.3f}; "
        f"{len(info['dropped'])} frames dropped (min_annotated {info['min_annotated']})"
    )
