"""``unet augment``: the paper's data augmentation, applied as one joint geometric transform.

A random :class:`Transform` combines, in tile coordinates relative to the tile centre,

1. an elastic deformation exactly as in the paper: displacement vectors on a coarse
   ``grid x grid`` (3x3) lattice spanning the tile, drawn from N(0, ``elastic_sigma``) (10 px),
   interpolated to every pixel bicubically (Keys cubic convolution, a = -0.5, with Keys'
   cubic boundary extension, so the field passes exactly through the drawn vectors);
2. a random flip of each axis and a rotation by any angle;
3. a shift: the tile centre is placed anywhere in the image such that the output tile lies
   inside it when the image is large enough;
4. gray-value variation of the raw tile: gamma, contrast and brightness.

The composition is evaluated once as a sampling grid (``sampling_grid``) and applied to
every array: raw by bicubic (or bilinear) interpolation, weights bilinearly, labels
(targets, instances) by nearest neighbour, so label values are never interpolated. Borders
are extrapolated by mirroring. Raw and weights are resampled with
``torch.nn.functional.grid_sample`` (``padding_mode="reflection"``), labels by an exact
integer gather in NumPy (:mod:`unet.resample`). All randomness comes from the
``numpy.random.Generator`` passed in: the same seed gives bit-identical tiles.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from unet.defaults import AUGMENT
from unet.errors import InputError
from unet.resample import elastic_affine_grid, warp

RAW_MODES = ("bicubic", "bilinear")


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation parameters; the defaults (:data:`unet.defaults.AUGMENT`) follow the paper
    where it gives numbers."""

    elastic_sigma: float = AUGMENT["elastic_sigma"]  # px, std of the coarse displacement vectors
    grid: int = AUGMENT["grid"]  # coarse grid points per axis
    rotation: bool = AUGMENT["rotation"]  # rotation by an angle uniform in [0, 360) degrees
    flip: bool = AUGMENT["flip"]  # flip each axis with probability 1/2
    shift: bool = AUGMENT["shift"]  # tile centre anywhere in the image (else the image centre)
    brightness: float = AUGMENT["brightness"]  # additive offset uniform in [-b, b]
    contrast: float = AUGMENT["contrast"]  # factor uniform in [1 - c, 1 + c] around 0.5
    gamma: float = AUGMENT["gamma"]  # exponent exp(uniform(-g, g)) on raw clipped to [0, 1]
    raw_mode: str = AUGMENT["raw_mode"]  # interpolation of the raw image

    def __post_init__(self) -> None:
        checks = {
            "elastic_sigma": self.elastic_sigma >= 0,
            "grid": isinstance(self.grid, int) and self.grid >= 2,
            "brightness": self.brightness >= 0,
            "contrast": 0 <= self.contrast < 1,
            "gamma": self.gamma >= 0,
            "raw_mode": self.raw_mode in RAW_MODES,
        }
        for name, ok in checks.items():
            if not ok:
                raise InputError(f"augmentation {name}={getattr(self, name)!r} is out of range")

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (for zarr attributes)."""
        return asdict(self)


DEFAULT = AugmentConfig()


@dataclass(frozen=True)
class Transform:
    """One random draw: geometry (image pixel units) and gray-value parameters."""

    center: tuple[float, float]  # tile centre in the image, (y, x)
    angle: float  # radians
    flip: tuple[int, int]  # +1 or -1 per axis
    displacement: np.ndarray  # (2, grid, grid) coarse displacement vectors (dy, dx), px
    brightness: float = 0.0
    contrast: float = 1.0
    gamma: float = 1.0


@dataclass(frozen=True)
class AugmentedTile:
    """An augmented raw input tile and the matching output-sized label and weight tiles."""

    raw: np.ndarray
    target: np.ndarray
    weight: np.ndarray | None = None
    instances: np.ndarray | None = None


def _center(u: float, size: int, out: int, shift: bool) -> float:
    lo, hi = (out - 1) / 2, (size - 1) - (out - 1) / 2
    if not shift or hi < lo:
        return (size - 1) / 2
    return lo + u * (hi - lo)


def random_transform(
    rng: np.random.Generator,
    image_shape: tuple[int, int],
    tile_out: tuple[int, int],
    config: AugmentConfig = DEFAULT,
) -> Transform:
    """Draw one transform; every draw happens whatever the switches, in a fixed order."""
    u_center = rng.random(2)
    angle = rng.uniform(0.0, 2 * math.pi)
    flips = rng.random(2) < 0.5
    displacement = rng.standard_normal((2, config.grid, config.grid)) * config.elastic_sigma
    gray = rng.uniform(-1.0, 1.0, 3)
    center = tuple(
        _center(float(u), s, o, config.shift)
        for u, s, o in zip(u_center, image_shape, tile_out, strict=True)
    )
    return Transform(
        center=(center[0], center[1]),
        angle=float(angle) if config.rotation else 0.0,
        flip=(-1 if flips[0] else 1, -1 if flips[1] else 1) if config.flip else (1, 1),
        displacement=displacement,
        brightness=float(gray[0]) * config.brightness,
        contrast=1.0 + float(gray[1]) * config.contrast,
        gamma=math.exp(float(gray[2]) * config.gamma),
    )


def sampling_grid(transform: Transform, shape: tuple[int, int]) -> np.ndarray:
    """Source coordinates (2, *shape) in the image, (y, x), of every pixel of a tile:
    ``center + M (p + d(p))`` for a tile pixel p (relative to the tile centre), with d the
    bicubic elastic field and M = rotation x flips."""
    cos, sin = math.cos(transform.angle), math.sin(transform.angle)
    fy, fx = transform.flip
    matrix = np.array([[cos * fy, -sin * fx], [sin * fy, cos * fx]])
    return elastic_affine_grid(transform.center, matrix, transform.displacement, shape)


def gray_value(raw: np.ndarray, transform: Transform) -> np.ndarray:
    """Gamma (on values clipped to [0, 1]), then contrast around 0.5, then brightness."""
    out = raw
    if transform.gamma != 1.0:
        out = np.power(np.clip(out, 0.0, 1.0), np.float32(transform.gamma))
    if transform.contrast != 1.0:
        out = (out - np.float32(0.5)) * np.float32(transform.contrast) + np.float32(0.5)
    if transform.brightness != 0.0:
        out = out + np.float32(transform.brightness)
    return out.astype(np.float32, copy=False)


def _check_inputs(
    arrays: dict[str, np.ndarray | None], tile_in: tuple[int, ...], tile_out: tuple[int, ...]
) -> None:
    raw = arrays["raw"]
    if raw.ndim != 2:
        raise InputError(f"raw must be a 2-D image, got shape {raw.shape}")
    for name, array in arrays.items():
        if array is not None and array.shape != raw.shape:
            raise InputError(f"{name} has shape {array.shape}, expected raw's {raw.shape}")
    if len(tile_in) != 2 or len(tile_out) != 2 or min(*tile_in, *tile_out) < 1:
        raise InputError(f"tile shapes must be two positive sizes, got {tile_in}, {tile_out}")
    if any(i < o or (i - o) % 2 for i, o in zip(tile_in, tile_out, strict=True)):
        raise InputError(f"output tile {tile_out} must be centred inside input tile {tile_in}")


def apply_transform(
    transform: Transform,
    raw: np.ndarray,
    target: np.ndarray,
    weight: np.ndarray | None = None,
    instances: np.ndarray | None = None,
    *,
    tile_in: tuple[int, int],
    tile_out: tuple[int, int],
    raw_mode: str = "bicubic",
) -> AugmentedTile:
    """Apply one transform jointly: raw on the input tile, the rest on its centred output."""
    arrays = {"raw": raw, "target": target, "weight": weight, "instances": instances}
    _check_inputs(arrays, tuple(tile_in), tuple(tile_out))
    coords = sampling_grid(transform, tuple(tile_in))
    oy, ox = ((i - o) // 2 for i, o in zip(tile_in, tile_out, strict=True))
    inner = coords[:, oy : oy + tile_out[0], ox : ox + tile_out[1]]
    return AugmentedTile(
        raw=gray_value(warp(raw, coords, raw_mode), transform),
        target=warp(target, inner, "nearest"),
        weight=None if weight is None else warp(weight, inner, "bilinear"),
        instances=None if instances is None else warp(instances, inner, "nearest"),
    )


def augment_tile(
    rng: np.random.Generator,
    raw: np.ndarray,
    target: np.ndarray,
    weight: np.ndarray | None = None,
    instances: np.ndarray | None = None,
    *,
    tile_in: tuple[int, int] = (572, 572),
    tile_out: tuple[int, int] = (388, 388),
    config: AugmentConfig = DEFAULT,
) -> AugmentedTile:
    """Draw a random transform from ``rng`` and cut one augmented tile from a 2-D image.

    ``raw`` is float (expected in [0, 1], see :func:`unet.cache.normalize`); ``target``,
    ``instances`` are label images and ``weight`` a float weight map of the same shape.
    Images smaller than the tile are mirror-extrapolated.
    """
    _check_inputs({"raw": np.asarray(raw)}, tuple(tile_in), tuple(tile_out))
    transform = random_transform(rng, raw.shape, tuple(tile_out), config)
    return apply_transform(transform, raw, target, weight, instances, tile_in=tile_in,
                           tile_out=tile_out, raw_mode=config.raw_mode)  # fmt: skip
