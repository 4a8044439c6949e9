"""``unet predict``: a checkpoint over a TIFF / zarr / OME-Zarr image -> OME-Zarr probability."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from unet.predict import Options


def options_from_args(args: argparse.Namespace) -> Options:
    """The :class:`unet.predict.Options` of the flags of :func:`add_predict_options`."""
    from unet.predict import Options

    return Options(
        tile=args.tile,
        memory_limit=args.memory_limit,
        batch=args.batch,
        dtype=args.dtype,
        levels=args.levels,
        tta=args.tta,
        device=args.device,
        threads=args.threads,
        scheduler=args.scheduler,
        amp=args.amp,
        overwrite=args.overwrite,
        array=args.array,
        progress=not args.quiet,
        part=getattr(args, "part", None),
        gather=getattr(args, "gather", False),
    )


def _run(args: argparse.Namespace) -> int:
    from unet.predict import run

    summary = run(args.checkpoint, args.source, args.target, options_from_args(args))
    if args.gather:
        return 0
    where = f"part {args.part[0]}/{args.part[1]} of " if args.part else ""
    print(
        f"{where}{args.target}: {summary['computed']} of {summary['chunks']} chunks computed in "
        f"{summary['seconds']:.1f} s ({summary['mpx_per_s']:.3f} Mpx/s)"
    )
    return 0


def _part(text: str) -> tuple[int, int]:
    from unet.errors import InputError
    from unet.predict_parts import parse

    try:
        return parse(text)
    except InputError:
        raise argparse.ArgumentTypeError(
            f"expected K/N with 1 <= K <= N, such as 2/3, got {text!r}"
        ) from None


def _bytes(text: str) -> int:
    from dask.utils import parse_bytes

    try:
        value = parse_bytes(text)
    except (ValueError, TypeError):
        raise argparse.ArgumentTypeError(f"expected a size such as 4GiB, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive size, got {text!r}")
    return int(value)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text}")
    return value


def add_predict_options(p: argparse.ArgumentParser) -> None:
    """The prediction flags, shared by ``unet predict`` and ``unet predict-archive``."""
    p.add_argument(
        "--tile",
        type=int,
        help="output tile edge in px, rounded to the pooling "
        "step (default: the largest that fits --memory-limit)",
    )
    p.add_argument(
        "--memory-limit",
        type=_bytes,
        help="memory for the tiles, e.g. 4GiB "
        "(default: 80%% of the free GPU memory, 50%% of the available RAM)",
    )
    p.add_argument("--batch", type=_positive, default=1, help="tiles per forward pass (default 1)")
    p.add_argument(
        "--dtype",
        choices=["float32", "float16", "uint8"],
        default="float32",
        help="of the probability; uint8 = round(p * 255) (default float32)",
    )
    p.add_argument("--levels", type=_count, default=0, help="downsampled pyramid levels")
    p.add_argument("--tta", action="store_true", help="mean over the 8 rotations/flips")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--threads", type=_count, default=0, help="torch threads (default: all)")
    p.add_argument(
        "--scheduler",
        default="threads",
        help="threads (default), sync, local:N "
        "(dask.distributed LocalCluster, N processes) or an address tcp://...",
    )
    p.add_argument(
        "--amp",
        choices=["none", "bf16", "fp16"],
        default="none",
        help="autocast the forward pass (CUDA; default none)",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace a TARGET written with other parameters"
    )
    p.add_argument("--array", help="array name inside a zarr group SOURCE")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``unet predict``."""
    p = sub.add_parser(
        "predict",
        help="overlap-tile prediction of a 2-D image or (Z, Y, X) stack -> OME-Zarr",
        description=__doc__,
    )
    p.add_argument(
        "checkpoint",
        help="model checkpoint (unet.model.save_checkpoint), or a bioimage.io package that "
        "unet export wrote (zip or folder)",
    )
    p.add_argument("source", help="TIFF/BigTIFF, zarr array or group, OME-Zarr, dataset store")
    p.add_argument("target", help="OME-Zarr to write (resumed if it was started alike)")
    add_predict_options(p)
    scatter = p.add_mutually_exclusive_group()
    scatter.add_argument(
        "--part",
        type=_part,
        metavar="K/N",
        help="compute only part K of N (contiguous ranges of the chunks; needs --tile) into "
        "the staging store TARGET.parts/store.zarr, shared by the N parts, and record it in "
        "TARGET.parts/K-of-N.json; several jobs (or hosts) run the parts at once",
    )
    scatter.add_argument(
        "--gather",
        action="store_true",
        help="after the parts: check that every chunk is written, build the pyramid levels "
        "and rename the staging store onto TARGET (computes nothing)",
    )
    p.set_defaults(func=_run)
