"""The ignore mask of partly annotated frames (Cell Tracking Challenge SEG ground truth).

A CTC frame's SEG ground truth often outlines only some of its cells (Fluo-N2DL-HeLa: a few
out of hundreds in many frames). Taken as they are, the other cells would be learned as
background. The ignore mask marks them: uint8, 1 = unannotated foreground, 0 elsewhere
(annotated cell pixels are never ignored). The weight maps give these pixels weight 0, and
training multiplies the per-pixel cross-entropy by the weight, so they are left out of the
loss.

Unannotated foreground is found

- from the TRA markers (``man_trackTTT.tif``: every tracked cell of the frame has a marker),
  where the zip has them: the markers that overlap no SEG cell, dilated by
  ``marker_radius`` px (markers may be smaller than their cells);
- else from the raw frame: a Gaussian blur (``sigma`` px), then the triangle threshold
  (skimage, 256-bin histogram: it suits a dominant dark background with a bright tail; Otsu
  misses a third of Fluo-N2DL-HeLa's dim cells); of that foreground the part farther than
  :data:`MARGIN` px from every annotated cell, opened by a disk of :data:`MIN_RADIUS` px
  (what no such disk fits in is noise or the blurred rim of an annotated cell), dilated by
  ``radius`` px. Working on pixels rather than whole components finds the unannotated cells
  of a clump that also holds an annotated one.

The threshold reads bright objects on a dark background (fluorescence). For phase contrast
or DIC frames without TRA markers choose ``method="none"``.

A frame's *annotated fraction* is the share of its detected foreground (TRA marker pixels,
or thresholded pixels) that is not unannotated (1 where nothing is detected).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from unet.errors import InputError

METHODS = ("auto", "threshold", "none")
MARGIN = 4.0  # px around annotated cells where thresholded pixels count as theirs (halo)
MIN_RADIUS = 3.0  # px, radius of the opening of the unannotated foreground


@dataclass(frozen=True)
class IgnoreParams:
    """How unannotated cells are found (see the module docstring); lengths in pixels.

    ``method``: "auto" (TRA markers where present, else the threshold), "threshold" (always
    the raw frame) or "none" (no ignore mask: every unlabelled pixel is background).
    ``min_annotated``: a conversion keeps only the frames whose annotated fraction is at
    least this (0 keeps all; needs a method other than "none").
    """

    method: str = "auto"
    marker_radius: float = 12.0
    sigma: float = 2.0
    radius: float = 3.0
    min_annotated: float = 0.0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InputError(f"ignore method {self.method!r}: expected one of {METHODS}")
        for name in ("marker_radius", "sigma", "radius"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise InputError(f"ignore {name}: expected a number >= 0 (pixels), got {value!r}")
        if not (isinstance(self.min_annotated, int | float) and 0 <= self.min_annotated <= 1):
            raise InputError(
                f"min_annotated: expected a fraction in [0, 1], got {self.min_annotated!r}"
            )
        if self.min_annotated > 0 and self.method == "none":
            raise InputError(
                "min_annotated > 0 needs an ignore method (auto or threshold), not none"
            )

    def as_dict(self) -> dict[str, Any]:
        """The parameters and the fixed constants (for store attributes)."""
        return {**asdict(self), "threshold": "triangle", "margin": MARGIN, "min_radius": MIN_RADIUS}


def dilate(mask: np.ndarray, radius: float) -> np.ndarray:
    """``mask`` grown by a Euclidean disk of ``radius`` pixels."""
    from scipy import ndimage

    mask = np.asarray(mask, dtype=bool)
    if radius <= 0 or not mask.any():
        return mask.copy()
    return ndimage.distance_transform_edt(~mask) <= radius


def _annotated(foreground: np.ndarray, unannotated: np.ndarray) -> float:
    total = int(np.count_nonzero(foreground))
    return 1.0 - int(np.count_nonzero(unannotated & foreground)) / total if total else 1.0


def from_markers(seg: np.ndarray, markers: np.ndarray, radius: float) -> tuple[np.ndarray, float]:
    """Ignore mask (bool) and annotated fraction from TRA ``markers`` (ids, 0 = none)."""
    tracked = markers > 0
    hit = np.unique(markers[tracked & (seg > 0)])
    unannotated = tracked & ~np.isin(markers, hit)
    return dilate(unannotated, radius) & (seg == 0), _annotated(tracked, unannotated)


def foreground(raw: np.ndarray, sigma: float) -> np.ndarray:
    """Bright foreground of a raw frame: Gaussian blur, then the triangle threshold."""
    from scipy import ndimage
    from skimage.filters import threshold_triangle

    smooth = ndimage.gaussian_filter(np.asarray(raw, dtype=np.float32), sigma)
    if smooth.max() <= smooth.min():
        return np.zeros(smooth.shape, dtype=bool)
    return smooth > threshold_triangle(smooth)


def from_threshold(
    seg: np.ndarray, raw: np.ndarray, sigma: float, radius: float
) -> tuple[np.ndarray, float]:
    """Ignore mask (bool) and annotated fraction from the thresholded raw frame."""
    from scipy import ndimage

    found = foreground(raw, sigma)
    far = found & ~dilate(seg > 0, MARGIN)
    core = ndimage.distance_transform_edt(far) > MIN_RADIUS  # centres of disks inside
    unannotated = far & dilate(core, MIN_RADIUS)  # the opening
    return dilate(unannotated, radius) & (seg == 0), _annotated(found, unannotated)


def ignore_mask(
    seg: np.ndarray,
    raw: np.ndarray,
    markers: np.ndarray | None = None,
    params: IgnoreParams | None = None,
) -> tuple[np.ndarray, float, str]:
    """One frame's ignore mask (uint8), annotated fraction and method used ("tra"/"threshold").

    ``seg``: the SEG ids (0 = not annotated); ``markers``: the TRA ids or None.
    """
    params = params or IgnoreParams()
    if params.method == "none":
        raise InputError("ignore method 'none' computes no ignore mask")
    if markers is not None and params.method == "auto":
        mask, fraction = from_markers(seg, markers, params.marker_radius)
        return mask.astype(np.uint8), fraction, "tra"
    mask, fraction = from_threshold(seg, raw, params.sigma, params.radius)
    return mask.astype(np.uint8), fraction, "threshold"
