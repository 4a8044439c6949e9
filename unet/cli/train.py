"""``unet train``: train a U-Net on a dataset store (resumable; see :mod:`unet.train`)."""

from __future__ import annotations

import argparse
import dataclasses
import json

from unet.augment import AugmentConfig
from unet.cli.args import (
    add_model_args,
    add_normalize_arg,
    add_transform_args,
    model_config,
    normalization,
)
from unet.defaults import AUGMENT
from unet.trainer import AMPS, OPTIMIZERS, SCHEDULES, TrainConfig

_DEFAULT = TrainConfig()


def _run(args: argparse.Namespace) -> int:
    from unet.figures import training_curve
    from unet.train import run
    from unet.train_data import Source

    augment = AugmentConfig(
        elastic_sigma=args.elastic_sigma, grid=args.grid, rotation=args.rotation,
        flip=args.flip, shift=args.shift, brightness=args.brightness,
        contrast=args.contrast, gamma=args.gamma, raw_mode=args.raw_mode,
    )  # fmt: skip
    source = Source(blocks=tuple(args.blocks or ()), seed=args.augment_seed,
                    per_block=args.per_block, tile=args.tile, augment=augment)  # fmt: skip
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    cfg = TrainConfig(**{name: getattr(args, name) for name in names})
    summary = run(args.store, args.weights, args.out, model_config(args), source, cfg,
                  curve=training_curve, normalization=normalization(args))  # fmt: skip
    best, last = summary["best"], summary["last"]
    print(f"trained {summary['iterations']} iterations in {summary['seconds']:.0f} s; "
          f"outputs in {args.out}")  # fmt: skip
    if best and last:
        print(f"best Rand error {best['rand_error']:.4f} at iteration {best['iteration']}; "
              f"last validation: {json.dumps(last)}")  # fmt: skip
    return 0


def _add_training(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training (defaults: the paper preset)")
    d = _DEFAULT
    g.add_argument("--iterations", type=int, default=d.iterations, help="steps (tiles)")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer)
    g.add_argument("--lr", type=float, default=d.lr, help="peak learning rate")
    g.add_argument("--momentum", type=float, default=d.momentum, help="SGD momentum")
    g.add_argument("--weight-decay", type=float, default=d.weight_decay)
    g.add_argument("--schedule", choices=SCHEDULES, default=d.schedule,
                   help="learning rate after the warm-up (to --min-lr at the end)")  # fmt: skip
    g.add_argument("--warmup", type=int, default=d.warmup, help="linear warm-up steps")
    g.add_argument("--min-lr", type=float, default=d.min_lr, help="final learning rate")
    g.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every,
                   help="steps between checkpoints (0: at validations, the end)")  # fmt: skip
    g.add_argument("--validate-every", type=int, default=d.validate_every,
                   help="iterations between validations (0: none)")  # fmt: skip
    g.add_argument("--patience", type=int, default=d.patience,
                   help="stop after N validations without a better Rand error")  # fmt: skip
    g.add_argument("--seed", type=int, default=d.seed, help="initialisation and dropout seed")
    g.add_argument("--val-tile", type=int, default=d.val_tile, help="validation output tile")
    g.add_argument("--val-tta", action=argparse.BooleanOptionalAction, default=d.val_tta,
                   help="validate with the mean over the 8 rotations/flips")  # fmt: skip


def _add_augment(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("tiles augmented on the fly (without --blocks; defaults: "
                             "unet.defaults.AUGMENT)")  # fmt: skip
    g.add_argument("--tile", type=int, default=AUGMENT["tile"], help="wanted input tile size")
    g.add_argument("--per-block", type=int, default=AUGMENT["per_block"],
                   help="tiles per block of the stream (as the cache's blocks)")  # fmt: skip
    g.add_argument("--augment-seed", type=int, default=AUGMENT["seed"], help="augment seed")
    add_transform_args(g)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``unet train``."""
    p = sub.add_parser("train", help="train a U-Net (resumable; best and last checkpoints)")
    p.add_argument("store", help="canonical dataset store DATASET.zarr (train and val split)")
    p.add_argument("weights", help="weight-map store DATASET.weights.zarr")
    p.add_argument("--out", required=True,
                   help="folder: best.pt, last.pt, validation.csv, curve.png, resume/")  # fmt: skip
    p.add_argument("--blocks", nargs="*", help="augmentation cache blocks (else on the fly)")
    add_normalize_arg(p)
    _add_training(p)
    _add_augment(p)
    add_model_args(p)
    r = p.add_argument_group("runtime (not part of the run's identity)")
    r.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda[:N], mps")
    r.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    r.add_argument("--amp", choices=AMPS, default="auto", help="autocast (auto: bf16 on CUDA)")
    r.add_argument("--restart", action="store_true", help="discard a resume state, start over")
    r.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=_run)
