"""``unet predict-archive``: a checkpoint over the images of a sample sheet -> one OME-Zarr each.

The sheet is a TSV file with a header naming at least ``id`` and ``path`` (relative to the
sheet's folder); other columns are kept. Each image goes to ``OUTDIR/<id>.ome.zarr``; a rerun
computes only new or changed images (by size and mtime, or content with ``--hash``) or
changed parameters, and resumes interrupted ones. ``OUTDIR/summary.csv`` has one row per
image (shape, tile, chunks, computed chunks, seconds, Mpx/s, status). Exit status: 0 if every
image is done, 1 if some failed (their rows say why; the others are done), 2 for a bad
sheet, checkpoint or option (nothing computed).
"""

from __future__ import annotations

import argparse
import sys

from unet.cli.predict import add_predict_options, options_from_args


def _run(args: argparse.Namespace) -> int:
    from unet.sheet import SUMMARY, failed, run

    rows = run(args.checkpoint, args.sheet, args.outdir, options_from_args(args), args.hash)
    bad = failed(rows)
    summary = f"{args.outdir}/{SUMMARY}"
    skipped = sum(row["status"].startswith("skipped") for row in rows)
    print(f"{summary}: {len(rows)} images, {len(rows) - skipped - len(bad)} computed, "
          f"{skipped} skipped, {len(bad)} failed")  # fmt: skip
    if bad:
        names = ", ".join(row["id"] for row in bad[:10]) + (", ..." if len(bad) > 10 else "")
        print(f"unet predict-archive: {len(bad)} of {len(rows)} images failed ({names}); "
              f"see {summary}", file=sys.stderr)  # fmt: skip
        return 1
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``unet predict-archive``."""
    p = sub.add_parser(
        "predict-archive",
        help="predict every image of a sample sheet (TSV: id, path) -> OUTDIR/<id>.ome.zarr",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "checkpoint",
        help="model checkpoint (unet.model.save_checkpoint), or a bioimage.io package that "
        "unet export wrote (zip or folder)",
    )
    p.add_argument("sheet", help="sample sheet: TSV with columns id, path (and any others)")
    p.add_argument("outdir", help="folder of the outputs, their records and summary.csv")
    add_predict_options(p)
    p.add_argument(
        "--hash",
        action="store_true",
        help="identify inputs by the sha256 of their content, not by size and mtime",
    )
    p.set_defaults(func=_run)
