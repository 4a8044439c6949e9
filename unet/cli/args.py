"""Argument groups shared by several subcommands (model configuration, ...)."""

from __future__ import annotations

import argparse
from typing import Any

from unet.defaults import MODEL

# Defaults come from unet.defaults.MODEL (norm None is spelled "none" on the command line).
_MODEL_ARGS: dict[str, dict[str, Any]] = {
    "in_channels": dict(type=int, help="input channels (default %(default)s)"),
    "num_classes": dict(type=int, help="output classes (default %(default)s)"),
    "base_channels": dict(type=int, help="channels of the first level (default %(default)s)"),
    "depth": dict(type=int, help="levels, pooling steps + 1 (default %(default)s)"),
    "padding": dict(choices=["valid", "same"], help="convolution padding (default %(default)s)"),
    "dims": dict(type=int, choices=[2, 3], help="spatial dimensions (default %(default)s)"),
    "dropout": dict(
        type=float, help="drop-out at the contracting path's end (default %(default)s)"
    ),
    "norm": dict(choices=["none", "batch", "group"], help="normalisation (default %(default)s)"),
}


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """Add the U-Net constructor arguments as ``--in-channels``, ``--depth``, ..."""
    group = parser.add_argument_group("model")
    for name, kwargs in _MODEL_ARGS.items():
        default = "none" if name == "norm" and MODEL[name] is None else MODEL[name]
        group.add_argument(f"--{name.replace('_', '-')}", dest=name, default=default, **kwargs)


def model_config(args: argparse.Namespace) -> dict[str, Any]:
    """The UNet keyword arguments parsed by :func:`add_model_args`."""
    config = {name: getattr(args, name) for name in _MODEL_ARGS}
    config["norm"] = None if config["norm"] == "none" else config["norm"]
    return config


def add_transform_args(group: argparse._ArgumentGroup) -> None:
    """Add the augmentation transform's settings (``--elastic-sigma``, ``--grid``,
    ``--rotation``, ...) with the defaults of :data:`unet.defaults.AUGMENT`."""
    from unet.augment import RAW_MODES
    from unet.defaults import AUGMENT

    for name in ("elastic_sigma", "brightness", "contrast", "gamma"):
        group.add_argument(f"--{name.replace('_', '-')}", type=float, default=AUGMENT[name])
    group.add_argument("--grid", type=int, default=AUGMENT["grid"], help="coarse grid points")
    for name in ("rotation", "flip", "shift"):
        group.add_argument(
            f"--{name}", action=argparse.BooleanOptionalAction, default=AUGMENT[name]
        )
    group.add_argument("--raw-mode", choices=RAW_MODES, default=AUGMENT["raw_mode"])


def add_normalize_arg(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Add ``--normalize SPEC`` (:func:`unet.normalize.parse`; default ``dtype``)."""
    parser.add_argument(
        "--normalize", default="dtype", metavar="SPEC",
        help="intensity scaling of the raw data: dtype, percentile:LOW:HIGH or "
        "fixed:LOW:HIGH, optionally followed by :clip (default %(default)s)",
    )  # fmt: skip


def normalization(args: argparse.Namespace) -> dict[str, Any]:
    """The :mod:`unet.normalize` definition parsed from ``--normalize``."""
    from unet.normalize import parse

    return parse(args.normalize)
