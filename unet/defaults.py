"""The defaults of the network and of the augmentation, in one place.

``unet.model.UNet``'s signature, ``unet.augment.AugmentConfig``, the command line
(``unet.cli.args`` for every ``--in-channels``, ``--depth``, ...; ``unet augment``) and the
workflow (config sections ``model`` and ``augment``: unset keys are filled from here before
the schema validates them) all take their defaults from :data:`MODEL` and :data:`AUGMENT`.
The schema (workflow/schemas/config.schema.yaml) holds types, ranges and descriptions only.

Plain data without imports from the package (nor torch): the workflow reads this file
directly. The values are the paper's (Ronneberger et al. 2015) where it gives numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

MODEL: Mapping[str, Any] = MappingProxyType(
    {
        "in_channels": 1,  # input image channels
        "num_classes": 2,  # output classes (cell / border-and-background)
        "base_channels": 64,  # feature channels of the first level, doubled at every level
        "depth": 5,  # levels of the U (pooling steps + 1)
        "padding": "valid",  # unpadded convolutions: seamless tiling
        "dims": 2,  # spatial dimensions
        "dropout": 0.5,  # drop-out probability at the end of the contracting path
        "norm": None,  # no normalisation after the convolutions
    }
)

AUGMENT: Mapping[str, Any] = MappingProxyType(
    {
        # The cache of augmented tiles (workflow) and ``unet augment`` (--n, --seed, --tile).
        "cache": True,  # train from cached blocks (else augment on the fly)
        "blocks": 4,  # cache blocks, each one independent job
        "per_block": 8,  # tiles per block; diversity of the cache = blocks * per_block
        "seed": 0,  # with the dataset name and block index it fixes a block's content
        "tile": 572,  # wanted input tile; the largest valid size <= this is used
        # The transform (the fields of unet.augment.AugmentConfig).
        "elastic_sigma": 10.0,  # px, std of the displacement vectors on the coarse grid
        "grid": 3,  # coarse grid points per axis (3x3 in the paper)
        "rotation": True,  # rotation by an angle uniform in [0, 360) degrees
        "flip": True,  # flip each axis with probability 1/2
        "shift": True,  # tile centre anywhere in the image (else the image centre)
        "brightness": 0.1,  # additive offset uniform in [-b, b] (raw scaled to [0, 1])
        "contrast": 0.2,  # factor uniform in [1 - c, 1 + c] around 0.5
        "gamma": 0.2,  # exponent exp(uniform(-g, g)) on raw clipped to [0, 1]
        "raw_mode": "bicubic",  # interpolation of the raw image: bicubic or bilinear
    }
)
