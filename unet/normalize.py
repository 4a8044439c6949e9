"""Intensity normalisation: one definition for training and prediction.

A checkpoint records how its training data was scaled under the key ``"normalization"``:

- ``{"kind": "fixed", "low": a, "high": b}``: ``(x - a) / (b - a)``;
- ``{"kind": "percentile", "low": 1.0, "high": 99.8}``: the same with ``a``, ``b`` the
  given percentiles of the image, estimated from a regular sample of blocks (at most
  ``sample`` pixels, default 2^22) so that a gigapixel volume is never read whole; an
  image no larger than the sample is read whole and its percentiles are exact;
- ``{"kind": "dtype"}``, and the default of a checkpoint that records none: integers are
  scaled by their dtype's range (uint8: ``x / 255``, uint16: ``x / 65535``, int8:
  ``(x + 128) / 255``), booleans to 0/1, floats are used as they are.

Any kind may add ``"clip": true`` to clip the result to [0, 1]. :func:`resolve` turns a
recorded definition into fixed values for one image (:class:`Scaling`), which prediction
records in its output's provenance and applies tile by tile with :meth:`Scaling.apply`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from unet.errors import InputError

KINDS = ("dtype", "fixed", "percentile")
SAMPLE = 2**22  # pixels read for percentiles
_BLOCK = 64  # edge of a sampled block per axis


@dataclass(frozen=True)
class Scaling:
    """``(x - low) / (high - low)`` in float32, clipped to [0, 1] if ``clip``."""

    low: float
    high: float
    clip: bool = False

    def apply(self, x: np.ndarray) -> np.ndarray:
        """The scaled float32 array."""
        x = np.asarray(x)
        if x.dtype == bool:
            x = x.astype(np.uint8)
        out = (x.astype(np.float32) - np.float32(self.low)) / np.float32(self.high - self.low)
        return np.clip(out, 0, 1, out=out) if self.clip else out

    def record(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)


def check(spec: dict[str, Any] | None, where: str = "normalization") -> dict[str, Any]:
    """The validated definition (``{"kind": "dtype"}`` for None); InputError naming ``where``."""
    if spec is None:
        return {"kind": "dtype"}
    if not isinstance(spec, dict) or spec.get("kind") not in KINDS:
        raise InputError(f"{where}: expected a dict with kind in {KINDS}, got {spec!r}")
    if spec["kind"] in ("fixed", "percentile"):
        low, high = spec.get("low"), spec.get("high")
        numbers = all(isinstance(v, int | float) and math.isfinite(v) for v in (low, high))
        if not numbers or not low < high:
            raise InputError(f"{where}: expected numbers low < high, got {spec!r}")
        if spec["kind"] == "percentile" and not 0 <= low < high <= 100:
            raise InputError(f"{where}: percentiles must satisfy 0 <= low < high <= 100")
    return dict(spec)


def parse(text: str) -> dict[str, Any]:
    """The definition spelled ``dtype``, ``percentile:LOW:HIGH`` or ``fixed:LOW:HIGH``, each
    optionally followed by ``:clip`` (e.g. ``percentile:1:99.8:clip``); InputError naming
    ``text`` otherwise."""
    parts = str(text).strip().split(":")
    clip = len(parts) > 1 and parts[-1] == "clip"
    parts = parts[:-1] if clip else parts
    spec: dict[str, Any] = {"kind": parts[0]}
    expected = "dtype, percentile:LOW:HIGH or fixed:LOW:HIGH, optionally followed by :clip"
    if parts == ["dtype"]:
        pass
    elif parts[0] in ("fixed", "percentile") and len(parts) == 3:
        try:
            spec["low"], spec["high"] = float(parts[1]), float(parts[2])
        except ValueError:
            raise InputError(f"--normalize {text!r}: expected {expected}") from None
    else:
        raise InputError(f"--normalize {text!r}: expected {expected}")
    if clip:
        spec["clip"] = True
    return check(spec, f"--normalize {text!r}")


def dtype_range(dtype: np.dtype) -> tuple[float, float]:
    """(low, high) of the ``dtype`` scaling: the integer range, (0, 1) for bool and floats."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    if dtype.kind in "bf":
        return 0.0, 1.0
    raise InputError(f"cannot normalise data of dtype {dtype}; expected integers or floats")


def resolve(spec: dict[str, Any] | None, image: Any) -> Scaling:
    """Fixed scaling of ``image`` (anything with ``shape``, ``dtype`` and region reads) for
    the definition ``spec`` (see the module docstring)."""
    spec = check(spec)
    clip = bool(spec.get("clip", False))
    if spec["kind"] == "dtype":
        return Scaling(*dtype_range(image.dtype), clip)
    if spec["kind"] == "fixed":
        return Scaling(float(spec["low"]), float(spec["high"]), clip)
    values = sample(image, int(spec.get("sample", SAMPLE)))
    low, high = np.percentile(values, [spec["low"], spec["high"]])
    if not high > low:
        high = low + 1.0  # a constant image: map it to 0
    return Scaling(float(low), float(high), clip)


def sample(image: Any, size: int = SAMPLE) -> np.ndarray:
    """About ``size`` pixels of ``image`` as a flat float64 array: all of it when it is
    that small, else blocks of 64 per axis on a regular grid (each block one region read)."""
    shape = tuple(image.shape)
    if math.prod(shape) <= size:
        return np.asarray(image[tuple(slice(None) for _ in shape)], dtype=np.float64).ravel()
    block = [min(_BLOCK, n) for n in shape]
    blocks = max(1, size // math.prod(block))
    per_axis = _blocks_per_axis(shape, block, blocks)
    parts = []
    for corner in np.ndindex(*per_axis):
        region = tuple(
            slice(s, s + b)
            for s, b in (
                (_spread(k, count, n - b), b)
                for k, count, n, b in zip(corner, per_axis, shape, block, strict=True)
            )
        )
        parts.append(np.asarray(image[region], dtype=np.float64).ravel())
    return np.concatenate(parts)


def _blocks_per_axis(shape, block, blocks: int) -> tuple[int, ...]:
    """Blocks per axis, at most as many as fit, their product at most ``blocks``: the axis
    with the most blocks gives one up until the product fits."""
    counts = [max(1, n // b) for n, b in zip(shape, block, strict=True)]
    while math.prod(counts) > blocks:
        counts[counts.index(max(counts))] -= 1
    return tuple(counts)


def _spread(k: int, count: int, span: int) -> int:
    """Start of block ``k`` of ``count`` spread evenly over ``[0, span]``."""
    return 0 if count == 1 else round(k * span / (count - 1))
