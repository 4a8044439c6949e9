"""``unet export``: a checkpoint -> a bioimage.io model package (zip, format 0.5)."""

from __future__ import annotations

import argparse


def _run(args: argparse.Namespace) -> int:
    from unet.export import export

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    summary = export(
        args.checkpoint, args.out, authors=args.author, license=args.license, tags=args.tag,
        name=args.name, sample=args.sample, array=args.array, metrics=args.metrics,
        preset=args.preset, test_size=args.test_size, overwrite=args.overwrite,
    )  # fmt: skip
    print(
        f"{summary['out']}: bioimage.io model package, {summary['bytes'] / 2**20:.1f} MiB; "
        f"input sizes {summary['min']} + n * {summary['step']}, output halo {summary['halo']} "
        f"px, test input {'x'.join(map(str, summary['test_shape']))}"
    )
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``unet export``."""
    p = sub.add_parser(
        "export",
        help="a checkpoint -> bioimage.io model package (Fiji/deepImageJ, ilastik, napari)",
        description=__doc__ + " Needs the extra: pip install -e '.[bioimageio]'.",
    )
    p.add_argument("checkpoint", help="model checkpoint (unet train's best.pt)")
    p.add_argument("out", help="the package to write, a new .zip")
    p.add_argument(
        "--author", action="append", help="an author's name (repeatable; default Anonymous)"
    )
    p.add_argument("--license", default="MIT", help="SPDX license id (default MIT)")
    p.add_argument(
        "--tag", action="append", help="a tag (repeatable; default unet, segmentation, ...)"
    )
    p.add_argument("--name", help="the model's name (default: U-Net CHECKPOINT)")
    p.add_argument(
        "--sample",
        help="image whose centre is the test input and cover (TIFF, zarr, dataset store; "
        "default: a synthetic EM-like image)",
    )
    p.add_argument("--array", help="array name inside a zarr group --sample")
    p.add_argument("--metrics", help="unet evaluate JSON: the metrics the documentation states")
    p.add_argument("--preset", help="the preset the model was trained with (documentation)")
    p.add_argument(
        "--test-size",
        type=_positive,
        help="edge of the test input, rounded up to a valid size (default: output 256 px "
        "past the halo in 2-D, 48 in 3-D)",
    )
    p.add_argument("--threads", type=_positive, help="torch threads (default: all)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    p.set_defaults(func=_run)
