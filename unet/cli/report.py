"""``unet report``: one run's results -> OUTDIR/index.html (self-contained) and report.md."""

from __future__ import annotations

import argparse
from pathlib import Path


def _run(args: argparse.Namespace) -> int:
    import warnings

    from unet.report import write_report
    from unet.report_inputs import load

    # Snakemake marks a directory output (an augmentation block) with a file zarr warns about
    warnings.filterwarnings("ignore", message=r"Object at \.snakemake_timestamp")

    inputs = load(args)  # every input checked before anything is written
    out = write_report(inputs, args.outdir)
    print(f"wrote {out / 'index.html'} and {out / 'report.md'}")
    return 0


REQUIRED = ("--dataset", "--store", "--eval-json", "--prediction")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``unet report``."""
    p = sub.add_parser(
        "report",
        help="a run's metrics beside the paper's, figures and provenance -> HTML and Markdown",
    )
    # (flag, metavar, help); paths are Paths, --dataset and --config-json text
    options = [
        ("--dataset", "NAME", "the dataset's name (title, tables)"),
        ("--store", "DATA.zarr", "the dataset store"),
        ("--eval-json", "EVAL.json", "the JSON of unet evaluate --out-json"),
        ("--prediction", "PRED.zarr", "the OME-Zarr of unet predict on the store"),
        ("--train-dir", "DIR", "the training folder (validation.csv, curve.png, best.pt)"),
        ("--weights", "W.zarr", "the weight-map store (the Fig. 3-style figure)"),
        ("--augment-block", "BLOCK.zarr", "an augmentation block (its settings; needs --weights)"),
        ("--test-prediction", "TESTPRED.zarr", "a prediction of the test volume"),
        ("--test-store", "TEST.zarr", "the test volume's store (its raw images)"),
        ("--environment", "ENV.json", "the JSON of unet info --json"),
        ("--config-json", "JSON", "the resolved workflow configuration, as JSON text"),
        ("--repo", "DIR", "the workflow's folder (git commit, dirty tree)"),
    ]
    p.add_argument(
        "outdir",
        type=Path,
        metavar="OUTDIR",
        help="folder to write: index.html, report.md, figures/*.png (atomic)",
    )
    for flag, metavar, text in options:
        kind = str if flag in ("--dataset", "--config-json") else Path
        required = flag in REQUIRED
        p.add_argument(flag, type=kind, metavar=metavar, required=required,
                       help=text + ("; required" if required else ""))  # fmt: skip
    p.add_argument(
        "--benchmarks",
        nargs="+",
        type=Path,
        metavar="TSV",
        help="Snakemake benchmark files .../benchmarks/{rule}/{wildcards}.tsv",
    )
    p.add_argument(
        "--overlays",
        type=int,
        default=3,
        metavar="N",
        help="val (and test) slices shown with overlays (default 3)",
    )
    p.set_defaults(func=_run)
