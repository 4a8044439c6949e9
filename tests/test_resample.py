"""Resampling: bicubic weights, rotation/flip against NumPy, mirrored borders."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from unet.augment import Transform, sampling_grid
from unet.resample import cubic_weights, warp


def test_cubic_interpolation_is_exact_on_nodes_and_for_quadratics() -> None:
    for n, grid in ((101, 3), (64, 3), (97, 5)):
        w = cubic_weights(n, grid)
        np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)
        u_nodes, u = np.arange(grid), np.arange(n) * (grid - 1) / (n - 1)
        f = lambda v: 1 + 2 * v - 0.7 * v**2  # noqa: E731
        np.testing.assert_allclose(w @ f(u_nodes), f(u), atol=1e-12)
    assert np.array_equal(cubic_weights(101, 3)[[0, 50, 100]], np.eye(3))


def test_rotation_and_flips_match_numpy_reference() -> None:
    rng = np.random.default_rng(1)
    image = rng.random((40, 40)).astype(np.float32)
    center, still = (19.5, 19.5), np.zeros((2, 3, 3))
    for mode in ("nearest", "bilinear", "bicubic"):
        turn = Transform(center=center, angle=np.pi / 2, flip=(1, 1), displacement=still)
        flip = Transform(center=center, angle=0.0, flip=(-1, 1), displacement=still)
        turned = warp(image, sampling_grid(turn, (40, 40)), mode)
        np.testing.assert_allclose(turned, np.rot90(image, -1), atol=1e-5)
        np.testing.assert_allclose(warp(image, sampling_grid(flip, (40, 40)), mode),
                                   image[::-1], atol=1e-5)  # fmt: skip


def test_borders_are_mirrored() -> None:
    image = np.arange(12, dtype=np.float32).reshape(3, 4)
    shifted = Transform(center=(1.0, 1.5 - 2), angle=0.0, flip=(1, 1),
                        displacement=np.zeros((2, 3, 3)))  # fmt: skip
    for mode in ("nearest", "bilinear", "bicubic"):
        out = warp(image, sampling_grid(shifted, (3, 4)), mode)
        np.testing.assert_allclose(out, image[:, [2, 1, 0, 1]], atol=1e-5)


def test_nearest_and_bilinear_match_scipy_mirror_mode_far_outside() -> None:
    rng = np.random.default_rng(2)
    image = rng.random((13, 21)).astype(np.float32)
    coords = rng.uniform(-60, 80, (2, 30, 40))
    labels = (image * 1e6).astype(np.uint32)
    expected = ndimage.map_coordinates(labels, coords, order=0, mode="mirror")
    assert np.array_equal(warp(labels, coords, "nearest"), expected)
    np.testing.assert_allclose(warp(image, coords, "bilinear"),
                               ndimage.map_coordinates(image, coords, order=1, mode="mirror"),
                               atol=1e-4)  # fmt: skip
