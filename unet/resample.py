"""Resampling of 2-D images on a sampling grid with mirrored borders.

The sampling grid of the augmentation (an elastic deformation interpolated bicubically
from a coarse grid, then a rotation/flip and a shift) is built by
:func:`elastic_affine_grid`; :func:`warp` samples an image on it: bicubic and bilinear with
``torch.nn.functional.grid_sample`` (``padding_mode="reflection"``, ``align_corners=True``),
nearest neighbour by an exact integer gather in NumPy (labels of any dtype, never
interpolated). Mirroring reflects about the first and last pixel, as ``scipy.ndimage``'s
``mode="mirror"``.
"""

from __future__ import annotations

import numpy as np


def _keys(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys' cubic convolution kernel (the 'bicubic' kernel)."""
    x = np.abs(x)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


def cubic_weights(n: int, grid: int) -> np.ndarray:
    """(n, grid) matrix interpolating ``grid`` equally spaced nodes (first and last pixel)
    to ``n`` pixels with the cubic convolution kernel; nodes are reproduced exactly."""
    u = np.arange(n) * ((grid - 1) / (n - 1)) if n > 1 else np.zeros(1)
    nodes = np.arange(-1, grid + 1)
    kernel = _keys(u[:, None] - nodes[None, :])  # (n, grid + 2)
    extend = np.zeros((grid + 2, grid))
    extend[1:-1] = np.eye(grid)
    if grid >= 3:  # Keys' boundary condition: f(-1) = 3 f(0) - 3 f(1) + f(2)
        extend[0, :3], extend[-1, -3:] = (3, -3, 1), (1, -3, 3)
    else:  # two nodes: linear extrapolation
        extend[0, :2], extend[-1, -2:] = (2, -1), (-1, 2)
    return kernel @ extend


def elastic_affine_grid(
    center: tuple[float, float],
    matrix: np.ndarray,
    displacement: np.ndarray,
    shape: tuple[int, int],
) -> np.ndarray:
    """Source coordinates (2, *shape), (y, x), of ``center + matrix @ (p + d(p))`` for every
    tile pixel p (relative to the tile centre); d interpolates the coarse ``displacement``
    (2, g, g) bicubically with :func:`cubic_weights`.

    As d = Wy D Wx^T is separable, the whole map is ``Ly G_k Lx^T`` per coordinate k, with
    Ly = [Wy, 1, y], Lx = [Wx, 1, x] and a small (g+2, g+2) matrix G_k: two thin matrix
    products instead of per-pixel arithmetic.
    """
    grid = displacement.shape[1]
    ly, lx = (
        np.column_stack([cubic_weights(n, grid), np.ones(n), np.arange(n) - (n - 1) / 2])
        for n in shape
    )
    out = np.empty((2, *shape))
    for k in (0, 1):
        g = np.zeros((grid + 2, grid + 2))
        g[:grid, :grid] = matrix[k, 0] * displacement[0] + matrix[k, 1] * displacement[1]
        g[grid, grid] = center[k]
        g[grid + 1, grid], g[grid, grid + 1] = matrix[k]
        np.matmul(ly @ g, lx.T, out=out[k])
    return out


def _mirror(index: np.ndarray, size: int) -> np.ndarray:
    """Mirror integer indices into [0, size) (reflection about the first and last pixel)."""
    if size == 1:
        return np.zeros_like(index)
    period = 2 * (size - 1)
    index = np.abs(index) % period
    return np.where(index >= size, period - index, index)


def warp(image: np.ndarray, coords: np.ndarray, mode: str) -> np.ndarray:
    """Sample a 2-D ``image`` at ``coords`` (2, h, w) with mirrored borders.

    ``mode`` "nearest" gathers the exact values (any dtype); "bilinear" and "bicubic" use
    torch ``grid_sample`` and return float32.
    """
    if mode == "nearest":
        iy = _mirror(np.floor(coords[0] + 0.5).astype(np.int64), image.shape[0])
        ix = _mirror(np.floor(coords[1] + 0.5).astype(np.int64), image.shape[1])
        return image[iy, ix]
    import torch
    import torch.nn.functional as F

    grid = np.empty((*coords.shape[1:], 2), dtype=np.float32)
    for k, size in enumerate(image.shape):  # normalised (x, y) for align_corners=True
        np.multiply(coords[k], 2.0 / (size - 1) if size > 1 else 0.0, out=grid[..., 1 - k],
                    casting="same_kind")  # fmt: skip
        grid[..., 1 - k] -= 1
    grid_t = torch.from_numpy(grid)[None]
    image_t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    with torch.no_grad():
        out = F.grid_sample(image_t, grid_t, mode=mode, padding_mode="reflection",
                            align_corners=True)  # fmt: skip
    return out[0, 0].numpy()
