"""An EM-like synthetic dataset: a random cell tessellation with membranes, deterministic by seed.

Each slice is a warped Voronoi tessellation of jittered grid seeds (so cells vary in size and
shape). Neighbouring cells are parted by a membrane whose width is drawn per cell pair; a
``touching_fraction`` of the pairs get no membrane, so those cells touch (a faint dark seam
stays visible, as between touching nuclei). The image has per-cell grey levels, a smooth
texture with dark organelle-like blobs, dark membranes, Gaussian blur and Gaussian noise.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from unet.errors import InputError
from unet.labels import relabel


@dataclass(frozen=True)
class SyntheticParams:
    """Generator settings (pixels for lengths, intensities on a 0-1 scale)."""

    size: int = 256
    cell_diameter: float = 24.0
    membrane_width: tuple[int, int] = (2, 6)
    touching_fraction: float = 0.15
    noise: float = 0.06
    blur: float = 1.0

    def check(self) -> None:
        """Raise ValueError naming the first bad value."""
        lo, hi = self.membrane_width
        if self.size < 16:
            raise InputError(f"synthetic size must be at least 16 pixels, got {self.size}")
        if not 4 <= self.cell_diameter <= self.size:
            raise InputError(
                f"cell diameter must be in [4, size={self.size}], got {self.cell_diameter}"
            )
        if not 2 <= lo <= hi:
            raise InputError(f"membrane width must be 2 <= min <= max, got {self.membrane_width}")
        if not 0 <= self.touching_fraction <= 1:
            raise InputError(f"touching fraction must be in [0, 1], got {self.touching_fraction}")
        if self.noise < 0 or self.blur < 0:
            raise InputError(f"noise and blur must be >= 0, got {self.noise}, {self.blur}")


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    from scipy import ndimage

    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return field / (field.std() or 1.0)


def _tessellation(rng: np.random.Generator, p: SyntheticParams) -> np.ndarray:
    """Cell ids 1..n from nearest jittered seed in smoothly warped coordinates."""
    from scipy.spatial import cKDTree

    step = p.cell_diameter
    grid = np.arange(step / 2, p.size, step)
    seeds = np.stack(np.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)
    seeds += rng.uniform(-0.4 * step, 0.4 * step, seeds.shape)
    seeds = seeds[rng.random(len(seeds)) > 0.2]  # dropped seeds make some cells larger
    yy, xx = np.mgrid[0 : p.size, 0 : p.size].astype(float)
    warp = [0.3 * step * _smooth_noise(rng, yy.shape, step / 2) for _ in range(2)]
    coords = np.stack([yy + warp[0], xx + warp[1]], -1).reshape(-1, 2)
    return cKDTree(seeds).query(coords)[1].reshape(yy.shape).astype(np.int64) + 1


def _boundaries(rng: np.random.Generator, cells: np.ndarray, p: SyntheticParams):
    """Per-pixel membrane width at cell boundaries (0 = none) and the touching seams.

    Both pixels of an edge between two cells are boundary pixels; each cell pair gets one
    membrane width, or none (it touches) for a ``touching_fraction`` of the pairs.
    """
    n = int(cells.max()) + 1
    views = [
        (cells[:, :-1], cells[:, 1:], np.s_[:, :-1], np.s_[:, 1:]),
        (cells[:-1, :], cells[1:, :], np.s_[:-1, :], np.s_[1:, :]),
    ]
    pair_ids = [np.minimum(a, b) * n + np.maximum(a, b) for a, b, *_ in views]
    edges = [a != b for a, b, *_ in views]
    pairs = np.unique(np.concatenate([ids[e] for ids, e in zip(pair_ids, edges, strict=True)]))
    lo, hi = p.membrane_width
    widths = rng.integers(lo, hi + 1, len(pairs))
    widths[rng.random(len(pairs)) < p.touching_fraction] = 0
    width = np.zeros(cells.shape, np.int64)
    seam = np.zeros(cells.shape, bool)
    for (*_, at_a, at_b), ids, edge in zip(views, pair_ids, edges, strict=True):
        w = np.zeros(ids.shape, np.int64)
        w[edge] = widths[np.searchsorted(pairs, ids[edge])]
        for at in (at_a, at_b):
            width[at] = np.maximum(width[at], w)
            seam[at] |= edge & (w == 0)
    return width, seam


def synthetic_slice(rng: np.random.Generator, p: SyntheticParams) -> tuple[np.ndarray, np.ndarray]:
    """One (raw uint8, instances uint32) slice of size ``p.size`` squared."""
    from scipy import ndimage

    cells = _tessellation(rng, p)
    width, seam = _boundaries(rng, cells, p)
    dist, (iy, ix) = ndimage.distance_transform_edt(width == 0, return_indices=True)
    nearest = width[iy, ix]  # the membrane is the 2-pixel boundary band, widened to its width
    membrane = (nearest > 0) & (dist <= (nearest - 2) / 2.0)
    ids = np.where(membrane, 0, cells)  # cell ids are >= 1; 0 is membrane
    instances = relabel(ids, sequential=True).astype(np.uint32)
    n = int(cells.max()) + 1
    image = rng.uniform(0.5, 0.8, n)[cells] + 0.05 * _smooth_noise(rng, cells.shape, 1.5)
    blobs = np.zeros(cells.shape, bool)
    centres = rng.integers(0, p.size, (max(1, n // 3), 2))
    blobs[centres[:, 0], centres[:, 1]] = True
    blobs = ndimage.binary_dilation(blobs, iterations=2)
    image[blobs] -= 0.15
    image[seam] -= 0.15
    image[membrane] = 0.15 + 0.04 * _smooth_noise(rng, cells.shape, 1.0)[membrane]
    if p.blur > 0:
        image = ndimage.gaussian_filter(image, p.blur)
    image += rng.normal(0.0, p.noise, image.shape) if p.noise > 0 else 0.0
    raw = np.clip(np.round(image * 255), 0, 255).astype(np.uint8)
    return raw, instances


def synthetic_slices(
    slices: int, seed: int, p: SyntheticParams
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``slices`` independent slices; slice z depends only on (seed, z)."""
    p.check()
    if slices < 1:
        raise InputError(f"synthetic slices must be at least 1, got {slices}")
    for z in range(slices):
        yield synthetic_slice(np.random.default_rng([seed, z]), p)
