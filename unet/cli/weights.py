"""``unet weights``: the loss weight maps of a dataset store (and the Fig. 3-style PNG)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import numpy as np

from unet.errors import InputError
from unet.weights import (
    compute_store,
    open_ignore,
    open_labels,
    parse_class_weights,
    target_labels,
)


def _figure_slice(store: Path, group: Any, shape: tuple[int, ...], z: int | None) -> int:
    if "raw" not in group or group["raw"].shape != shape:
        raise InputError(f"{store}: --figure needs an array 'raw' of shape {shape}")
    if z is None:
        z = (group.attrs.get("split", {}).get("train") or [0])[0]
    if not 0 <= z < shape[0]:
        raise InputError(f"--figure-slice: expected 0 <= z < {shape[0]}, got {z}")
    return z


def _run(args: argparse.Namespace) -> int:
    z = None
    if args.figure is not None:  # checked before the work, drawn after it
        group, instances, _ = open_labels(args.store)
        z = _figure_slice(args.store, group, instances.shape, args.figure_slice)
    compute_store(
        args.store, args.out, w0=args.w0, sigma=args.sigma,
        class_weights=parse_class_weights(args.class_weights), threads=args.threads,
    )  # fmt: skip
    if z is not None:
        import zarr

        from unet.figures import weights_figure

        group, instances, semantic = open_labels(args.store)
        weights = zarr.open_group(str(args.out), mode="r")["weights"][z]
        raw = np.asarray(group["raw"][z])
        ignore = open_ignore(args.store, group, instances.shape)
        mask = None if ignore is None else np.asarray(ignore[z])
        labels = target_labels(instances, semantic, z)
        weights_figure(raw, labels, weights, args.figure, ignore=mask)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``unet weights``."""
    p = sub.add_parser("weights", help="the paper's loss weight maps of a dataset store")
    p.add_argument("store", type=Path, help="dataset store (zarr group with 'instances')")
    p.add_argument("--out", type=Path, required=True, help="weight-map store to write")
    p.add_argument("--w0", type=float, default=10.0, help="border weight (default 10)")
    p.add_argument("--sigma", type=float, default=5.0, help="border width, pixels (default 5)")
    p.add_argument("--class-weights", default="balanced",
                   help="balanced (default), none, or BACKGROUND,CELL")  # fmt: skip
    p.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1),
                   help="slices computed at once (default: up to 4)")  # fmt: skip
    p.add_argument("--figure", type=Path,
                   help="also write a PNG: raw, boundaries, weights (ignored hatched)")  # fmt: skip
    p.add_argument("--figure-slice", type=int, help="slice of --figure (default: first train)")
    p.set_defaults(func=_run)
