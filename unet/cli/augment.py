"""``unet augment``: one block of the augmentation cache (and its PNG)."""

from __future__ import annotations

import argparse

from unet.augment import AugmentConfig
from unet.cli.args import (
    add_model_args,
    add_normalize_arg,
    add_transform_args,
    model_config,
    normalization,
)
from unet.defaults import AUGMENT
from unet.errors import InputError


def _run(args: argparse.Namespace) -> int:
    import torch

    from unet.cache import load_training, tile_shapes, write_block

    if args.threads < 1:
        raise InputError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    model = model_config(args)
    if model["dims"] != 2:
        raise InputError(f"augmentation makes 2-D tiles; model dims={model['dims']} is not 2")
    tile_in, tile_out = tile_shapes(model["depth"], model["padding"], args.tile)
    config = AugmentConfig(
        elastic_sigma=args.elastic_sigma, grid=args.grid, rotation=args.rotation,
        flip=args.flip, shift=args.shift, brightness=args.brightness,
        contrast=args.contrast, gamma=args.gamma, raw_mode=args.raw_mode,
    )  # fmt: skip
    data = load_training(args.store, args.weights, normalization(args))
    write_block(data, args.out, block=args.block, n=args.n, seed=args.seed,
                tile_in=tile_in, tile_out=tile_out, config=config)  # fmt: skip
    if args.figure:
        from unet.figures import figure_for_block

        figure_for_block(data, args.figure, seed=args.seed, block=args.block, config=config)
    print(f"wrote {args.n} tiles {tile_in} -> {tile_out} to {args.out}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``unet augment``."""
    p = sub.add_parser("augment", help="write one block of augmented training tiles (zarr)")
    p.add_argument("store", help="canonical dataset store DATASET.zarr (training split used)")
    p.add_argument("weights", help="weight-map store DATASET.weights.zarr")
    p.add_argument("--out", required=True, help="output block store BLOCK.zarr (atomic)")
    p.add_argument("--block", type=int, required=True, help="block index (>= 0)")
    p.add_argument("--n", type=int, default=AUGMENT["per_block"], help="tiles in the block")
    p.add_argument("--seed", type=int, default=AUGMENT["seed"], help="seed (>= 0), with block")
    p.add_argument("--tile", type=int, default=AUGMENT["tile"], help="wanted input tile size")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--figure", help="also write a PNG of one image under several augmentations")
    g = p.add_argument_group("augmentation (defaults: unet.defaults.AUGMENT)")
    add_transform_args(g)
    add_normalize_arg(p)
    add_model_args(p)
    p.set_defaults(func=_run)
