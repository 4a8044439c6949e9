"""Argument groups shared by several subcommands (model configuration, ...)."""

from __future__ import annotations

import argparse
from typing import Any

_MODEL_ARGS: dict[str, dict[str, Any]] = {
    "in_channels": dict(type=int, default=1, help="input channels (default 1)"),
    "num_classes": dict(type=int, default=2, help="output classes (default 2)"),
    "base_channels": dict(type=int, default=64, help="channels of the first level (default 64)"),
    "depth": dict(type=int, default=5, help="levels, pooling steps + 1 (default 5)"),
    "padding": dict(choices=["valid", "same"], default="valid", help="convolution padding"),
    "dims": dict(type=int, choices=[2, 3], default=2, help="spatial dimensions (default 2)"),
    "dropout": dict(type=float, default=0.5, help="drop-out at the contracting path's end"),
    "norm": dict(choices=["none", "batch", "group"], default="none", help="normalisation"),
}


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """Add the U-Net constructor arguments as ``--in-channels``, ``--depth``, ..."""
    group = parser.add_argument_group("model")
    for name, kwargs in _MODEL_ARGS.items():
        group.add_argument(f"--{name.replace('_', '-')}", dest=name, **kwargs)


def model_config(args: argparse.Namespace) -> dict[str, Any]:
    """The UNet keyword arguments parsed by :func:`add_model_args`."""
    config = {name: getattr(args, name) for name in _MODEL_ARGS}
    config["norm"] = None if config["norm"] == "none" else config["norm"]
    return config
