"""Augmentation: determinism, one joint geometric transform, labels preserved, paper statistics."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from unet.augment import (
    AugmentConfig,
    Transform,
    apply_transform,
    augment_tile,
    random_transform,
    sampling_grid,
)
from unet.cache import tile_shapes

GEOMETRY_ONLY = AugmentConfig(brightness=0.0, contrast=0.0, gamma=0.0)
ELASTIC_ONLY = AugmentConfig(rotation=False, flip=False, shift=False, brightness=0.0,
                             contrast=0.0, gamma=0.0)  # fmt: skip


@pytest.fixture
def image() -> dict[str, np.ndarray]:
    """A seeded 70x90 image: smooth raw in [0, 1], blob instances, semantic target, weights."""
    rng = np.random.default_rng(0)
    raw = ndimage.gaussian_filter(rng.random((70, 90)), 3)
    raw = ((raw - raw.min()) / (raw.max() - raw.min())).astype(np.float32)
    labels = ndimage.label(raw > 0.5)[0].astype(np.uint32)
    instances = np.where(labels > 0, labels * 7919 + 2**31, 0).astype(np.uint32)  # > 2**24
    return {"raw": raw, "target": (instances > 0).astype(np.uint8), "instances": instances,
            "weight": (1 + 5 * raw).astype(np.float32)}  # fmt: skip


def _blocks(shape: tuple[int, int], size: int = 32) -> np.ndarray:
    """A label map of size x size squares with distinct values 1, 2, ..."""
    y, x = np.indices(shape) // size
    return (1 + y * (shape[1] // size + 1) + x).astype(np.uint16)


def test_same_seed_gives_bit_identical_tiles(image) -> None:
    kw = dict(tile_in=(92, 92), tile_out=(60, 60))
    a = augment_tile(np.random.default_rng(7), **image, **kw)
    b = augment_tile(np.random.default_rng(7), **image, **kw)
    c = augment_tile(np.random.default_rng(8), **image, **kw)
    for name in ("raw", "target", "weight", "instances"):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name
    assert a.raw.tobytes() != c.raw.tobytes()


def test_raw_labels_and_weights_stay_aligned() -> None:
    """The image is its own label map: after augmentation raw == label wherever the label's
    neighbourhood is uniform (bicubic and bilinear reproduce constants exactly)."""
    labels = _blocks((130, 150))
    raw, weight = labels.astype(np.float32), labels.astype(np.float32)
    previous = None
    for seed in range(12):
        out = augment_tile(np.random.default_rng(seed), raw, labels, weight, labels,
                           tile_in=(140, 140), tile_out=(100, 100),
                           config=GEOMETRY_ONLY)  # fmt: skip
        inner = out.raw[20:-20, 20:-20]
        if previous is not None:  # the check has power: another draw's raw does not align
            assert (np.rint(previous) == out.target).mean() < 0.5
        previous = inner
        uniform = ndimage.maximum_filter(out.target, 9) == ndimage.minimum_filter(out.target, 9)
        uniform[:, :4] = uniform[:, -4:] = uniform[:4] = uniform[-4:] = False  # tile's edge
        assert uniform.mean() > 0.3
        np.testing.assert_allclose(inner[uniform], out.target[uniform], atol=1e-3)
        np.testing.assert_allclose(out.weight[uniform], out.target[uniform], atol=1e-3)
        assert (np.rint(inner) == out.target).mean() > 0.9
        assert np.array_equal(out.instances, out.target)


def test_label_values_are_preserved(image) -> None:
    for seed in range(5):
        out = augment_tile(np.random.default_rng(seed), **image, tile_in=(92, 92),
                           tile_out=(60, 60))  # fmt: skip
        assert out.instances.dtype == np.uint32 and out.target.dtype == np.uint8
        assert set(np.unique(out.instances)) <= set(np.unique(image["instances"]))
        assert set(np.unique(out.target)) <= {0, 1}
        assert out.raw.dtype == out.weight.dtype == np.float32


def test_coarse_grid_displacements_have_the_papers_sigma() -> None:
    """Displacements measured on the sampling grid at the 3x3 nodes are N(0, 10 px)."""
    rng, shape, nodes = np.random.default_rng(2015), (101, 101), [0, 50, 100]
    identity = np.stack(np.indices(shape)).astype(float)
    at_nodes, between = [], []
    for _ in range(1500):
        t = random_transform(rng, shape, shape, ELASTIC_ONLY)
        d = sampling_grid(t, shape) - identity
        at_nodes.append(d[:, nodes][:, :, nodes])
        np.testing.assert_allclose(d[:, nodes][:, :, nodes], t.displacement, atol=1e-9)
        between.append(d[:, 25, 25])
    at_nodes = np.array(at_nodes)  # (draws, 2, 3, 3)
    assert abs(at_nodes.mean()) < 0.2
    assert abs(at_nodes.std() - 10.0) < 0.15
    assert abs((np.abs(at_nodes) < 10).mean() - 0.6827) < 0.01
    corr = np.corrcoef(at_nodes.reshape(len(at_nodes), -1).T)
    assert np.abs(corr - np.eye(18)).max() < 0.1  # independent vectors and components
    assert 4 < np.std(between) < 10  # interpolated between nodes: smoother


@pytest.mark.parametrize(
    ("depth", "padding", "tile", "expected"),
    [(5, "valid", 572, (572, 388)), (5, "same", 572, (560, 560)), (3, "valid", 60, (60, 20)),
     (3, "same", 60, (60, 60)), (2, "valid", 40, (40, 24))],
)  # fmt: skip
def test_tiles_have_the_model_shapes(image, depth, padding, tile, expected) -> None:
    tile_in, tile_out = tile_shapes(depth, padding, tile)
    assert (tile_in, tile_out) == ((expected[0],) * 2, (expected[1],) * 2)
    out = augment_tile(np.random.default_rng(0), **image, tile_in=tile_in, tile_out=tile_out)
    assert out.raw.shape == tile_in
    assert out.target.shape == out.weight.shape == out.instances.shape == tile_out


def test_images_smaller_than_a_tile_are_mirrored(image) -> None:
    small = {k: v[:20, :30] for k, v in image.items()}
    config = AugmentConfig(raw_mode="bilinear", brightness=0, contrast=0, gamma=0)
    out = augment_tile(np.random.default_rng(3), **small, config=config)
    assert out.raw.shape == (572, 572) and out.target.shape == (388, 388)
    assert small["raw"].min() - 1e-6 <= out.raw.min() and out.raw.max() <= small["raw"].max()
    assert set(np.unique(out.instances)) <= set(np.unique(small["instances"]))
    one = np.ones((1, 1), np.float32)
    out = augment_tile(np.random.default_rng(0), one, one, tile_in=(8, 8), tile_out=(4, 4),
                       config=config)  # fmt: skip
    assert np.all(out.raw == 1) and np.all(out.target == 1)


def test_bad_input_raises_value_error(image) -> None:
    raw, target = image["raw"], image["target"]
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="2-D"):
        augment_tile(rng, raw[None], target[None])
    with pytest.raises(ValueError, match="target has shape"):
        augment_tile(rng, raw, target[:-1])
    with pytest.raises(ValueError, match="weight has shape"):
        augment_tile(rng, raw, target, weight=image["weight"].T)
    with pytest.raises(ValueError, match="centred inside"):
        augment_tile(rng, raw, target, tile_in=(60, 60), tile_out=(61, 61))
    with pytest.raises(ValueError, match="centred inside"):
        augment_tile(rng, raw, target, tile_in=(60, 60), tile_out=(57, 57))
    with pytest.raises(ValueError, match="grid=1"):
        AugmentConfig(grid=1)
    with pytest.raises(ValueError, match="raw_mode"):
        AugmentConfig(raw_mode="spline")


def test_gray_values_vary_only_the_raw_tile(image) -> None:
    t = random_transform(np.random.default_rng(4), (70, 90), (60, 60))
    tiles = dict(tile_in=(92, 92), tile_out=(60, 60))
    arrays = (image["raw"], image["target"], image["weight"])
    plain = apply_transform(Transform(t.center, t.angle, t.flip, t.displacement), *arrays, **tiles)
    varied = apply_transform(t, *arrays, **tiles)
    assert np.array_equal(plain.target, varied.target)
    assert np.array_equal(plain.weight, varied.weight)
    expected = (np.clip(plain.raw, 0, 1) ** t.gamma - 0.5) * t.contrast + 0.5 + t.brightness
    np.testing.assert_allclose(varied.raw, expected, atol=1e-5)
