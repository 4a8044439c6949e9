"""Weight maps against a whole-image brute force; ``unet weights`` on real zarr stores."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import zarr
from conftest import run_snakemake
from scipy import ndimage

from unet.cli import main
from unet.weights import two_nearest_distances, weight_map


def random_instances(shape: tuple[int, int], n: int, seed: int, touching: bool) -> np.ndarray:
    """``n`` seeded Voronoi cells cut to random radii; ``touching=False`` opens 1-px gaps."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.uint32)
    if n == 0:
        return labels
    points = rng.choice(labels.size, n, replace=False)
    seeds = np.ones(shape, bool)
    seeds.flat[points] = False
    dist, index = ndimage.distance_transform_edt(seeds, return_indices=True)
    ids = np.zeros(shape, np.uint32)
    ids.flat[points] = rng.permutation(n) + 1
    labels = ids[tuple(index)]
    labels[dist > rng.uniform(1.5, 12.0, n + 1)[labels]] = 0
    if not touching:
        low = ndimage.minimum_filter(labels, 3)
        labels[(ndimage.maximum_filter(labels, 3) != labels) | ((low != labels) & (low > 0))] = 0
    return labels


def brute_distances(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One distance transform per instance over the whole image, two smallest per pixel."""
    ids = np.unique(labels[labels > 0])
    stack = [ndimage.distance_transform_edt(labels != i) for i in ids]
    stack += [np.full(labels.shape, np.inf)] * 2
    stack = np.sort(np.stack(stack), axis=0)
    return stack[0], stack[1]


def brute_weights(labels, w0=10.0, sigma=5.0, class_weights="balanced") -> np.ndarray:
    """w_c + w0 exp(-(d1 + d2)^2 / 2 sigma^2) on background, straight from the definition."""
    cell = labels > 0
    if class_weights == "balanced":
        present = np.unique(cell)
        wc = {k: labels.size / (len(present) * np.count_nonzero(cell == k)) for k in present}
        wc = np.where(cell, wc.get(True, 0.0), wc.get(False, 0.0))
    else:
        wc = np.where(cell, class_weights[1], class_weights[0]).astype(np.float64)
    d1, d2 = brute_distances(labels)
    border = w0 * np.exp(-((d1 + d2) ** 2) / (2 * sigma**2))
    return (wc + np.where(cell, 0.0, border)).astype(np.float32)


CASES = [
    (0, 0, True),
    (1, 1, True),
    (2, 2, True),
    (2, 3, False),
    (7, 4, True),
    (60, 5, True),
    (60, 6, False),
    (500, 7, True),
    (500, 8, False),
]


@pytest.mark.parametrize(("n", "seed", "touching"), CASES)
def test_equals_brute_force_on_random_labels(n: int, seed: int, touching: bool) -> None:
    labels = random_instances((120, 136), n, seed, touching)
    if n == 500 and touching:
        assert len(np.unique(labels)) == 501
    before = labels.copy()
    np.testing.assert_allclose(weight_map(labels), brute_weights(labels), rtol=1e-4, atol=0)
    assert np.array_equal(labels, before)


@pytest.mark.parametrize("class_weights", [{0: 0.0, 1: 1.0}, {0: 2.5, 1: 0.5}])
@pytest.mark.parametrize(("w0", "sigma"), [(10.0, 5.0), (30.0, 2.0), (1.0, 12.0)])
def test_equals_brute_force_for_other_parameters(class_weights, w0: float, sigma: float) -> None:
    labels = random_instances((100, 90), 80, 11, touching=True)
    ours = weight_map(labels, w0=w0, sigma=sigma, class_weights=class_weights)
    reference = brute_weights(labels, w0, sigma, class_weights)
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=0)


def test_distances_without_cutoff_are_the_brute_force_ones() -> None:
    labels = random_instances((70, 80), 40, 12, touching=True)
    for ours, reference in zip(two_nearest_distances(labels), brute_distances(labels), strict=True):
        assert np.array_equal(ours, reference)


def test_gapped_and_huge_ids_give_the_same_map() -> None:
    labels = random_instances((64, 64), 30, 13, touching=True).astype(np.uint64)
    expected = weight_map(labels)
    assert np.array_equal(weight_map(labels * 3), expected)
    assert np.array_equal(weight_map(np.where(labels > 0, labels * 1_000_003 + 2**40, 0)), expected)
    assert np.array_equal(weight_map(np.where(labels > 0, labels + 100, 0)), expected)


def isbi_instances(datasets: Path, z: int) -> np.ndarray:
    """4-connected components of the cells (255) of ISBI training slice ``z``."""
    import tifffile

    labels = tifffile.imread(datasets / "isbi2012" / "train-labels.tif", key=z)
    return ndimage.label(labels == 255)[0]


@pytest.mark.parametrize(
    ("z", "crop"), [(0, np.s_[:, :]), (7, np.s_[100:260, 200:392]), (19, np.s_[300:, :180])]
)
def test_equals_brute_force_on_isbi_slices(shared_datasets: Path, z: int, crop) -> None:
    labels = ndimage.label(isbi_instances(shared_datasets, z)[crop] > 0)[0]
    assert labels.max() >= 15
    np.testing.assert_allclose(weight_map(labels), brute_weights(labels), rtol=1e-4, atol=0)


def test_no_and_one_instance_give_class_weights_only() -> None:
    assert np.array_equal(weight_map(np.zeros((5, 7), np.uint16)), np.ones((5, 7), np.float32))
    one = np.zeros((8, 10), np.int32)
    one[2:5, 3:6] = 4
    expected = np.where(one > 0, 80 / (2 * 9), 80 / (2 * 71)).astype(np.float32)
    assert np.array_equal(weight_map(one), expected)
    assert weight_map(one).mean() == pytest.approx(1.0)
    assert np.array_equal(weight_map(one, class_weights="none"), np.ones((8, 10), np.float32))


def test_gap_between_two_cells_gets_the_border_weight() -> None:
    labels = np.zeros((1, 5), np.uint8)
    labels[0, :2], labels[0, 3:] = 1, 2
    w = weight_map(labels, w0=10.0, sigma=5.0, class_weights={0: 1.0, 1: 1.0})
    assert w[0, 2] == np.float32(1.0 + 10.0 * np.exp(-4.0 / 50.0))
    assert np.array_equal(w[0, [0, 1, 3, 4]], np.ones(4, np.float32))
    assert np.array_equal(weight_map(labels, w0=0.0, class_weights="none"), np.ones((1, 5)))


@pytest.mark.parametrize(
    ("labels", "kwargs", "message"),
    [
        (np.zeros((4, 4), np.float32), {}, "expected integer instance ids, got dtype float32"),
        (np.zeros((4, 4), bool), {}, "expected integer instance ids, got dtype bool"),
        (np.array([[0, -3], [1, 2]]), {}, r"expected ids >= 0 \(0 = background\), got minimum -3"),
        (np.zeros(4, np.uint8), {}, r"expected a 2-D \(Y, X\) array of instance ids, got shape"),
        (np.zeros((2, 4, 4), np.uint8), {}, r"2-D \(Y, X\) array .* got shape \(2, 4, 4\)"),
        (np.zeros((4, 4), np.uint8), {"w0": -1.0}, "w0: expected a finite number >= 0"),
        (np.zeros((4, 4), np.uint8), {"sigma": 0.0}, "sigma: expected a finite number > 0"),
        (np.zeros((4, 4), np.uint8), {"class_weights": "equal"}, "expected 'balanced', 'none'"),
        (np.zeros((4, 4), np.uint8), {"class_weights": {0: 1.0}}, r"\{0: background, 1: cell\}"),
    ],
)
def test_bad_input_is_a_value_error_naming_what_was_expected(labels, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        weight_map(labels, **kwargs)


def make_store(path: Path, instances: np.ndarray, semantic: np.ndarray | None = None) -> Path:
    """A canonical dataset store (issue 3 layout) holding ``instances`` (Z, Y, X)."""
    chunks = (1, *(min(n, 1024) for n in instances.shape[1:]))
    group = zarr.open_group(
        path,
        mode="w",
        attributes={
            "dataset": "toy",
            "source": "test",
            "split": {"train": [1, 0], "val": [], "test": []},
        },
    )
    raw = np.random.default_rng(0).integers(0, 255, instances.shape, dtype=np.uint8)
    arrays = {
        "raw": raw,
        "instances": instances,
        "semantic": (instances > 0).astype(np.uint8) if semantic is None else semantic,
    }
    for name, data in arrays.items():
        group.create_array(name, shape=data.shape, chunks=chunks, dtype=data.dtype)[...] = data
    return path


def test_cli_round_trip_on_a_zarr_store(tmp_path: Path) -> None:
    instances = np.stack(
        [random_instances((90, 1100), n, s, True) for n, s in [(300, 1), (0, 2), (40, 3)]]
    )
    semantic = (instances > 0).astype(np.uint8)
    semantic[ndimage.maximum_filter(instances, (1, 3, 3)) != instances] = 0  # borders of touching
    store = make_store(tmp_path / "toy.zarr", instances.astype(np.uint32), semantic)
    out, png = tmp_path / "toy.weights.zarr", tmp_path / "fig" / "weights.png"
    args = ["weights", str(store), "--out", str(out), "--threads", "2", "--figure", str(png)]
    assert main(args) == 0
    weights = zarr.open_group(out, mode="r")
    assert dict(weights.attrs) == {
        "dataset": "toy",
        "source": str(store),
        "w0": 10.0,
        "sigma": 5.0,
        "class_weights": "balanced",
    }
    array = weights["weights"]
    assert (array.shape, array.chunks, array.dtype) == (instances.shape, (1, 90, 1024), "float32")
    for z in range(3):
        assert np.array_equal(array[z], weight_map(np.where(semantic[z] > 0, instances[z], 0)))
    gap = (semantic[0] == 0) & (instances[0] > 0)
    assert gap.any() and (array[0][gap] > 5).all()  # cut borders get the border term
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig", "toy.weights.zarr", "toy.zarr"]


def test_console_script_with_explicit_class_weights(tmp_path: Path) -> None:
    store = make_store(tmp_path / "toy.zarr", random_instances((40, 50), 9, 4, True)[None])
    out = tmp_path / "w.zarr"
    run = subprocess.run(
        [
            "unet",
            "weights",
            str(store),
            "--out",
            str(out),
            "--class-weights",
            "1,3",
            "--w0",
            "5",
            "--sigma",
            "2",
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert "slice" in run.stderr  # tqdm progress
    group = zarr.open_group(out, mode="r")
    assert group.attrs["class_weights"] == [1.0, 3.0] and group.attrs["w0"] == 5.0
    labels = zarr.open_group(store, mode="r")["instances"][0]
    expected = weight_map(labels, 5.0, 2.0, {0: 1.0, 1: 3.0})
    assert np.array_equal(group["weights"][0], expected)


def _error(capsys, *args: str) -> str:
    capsys.readouterr()
    assert main(["weights", *args]) == 2
    lines = capsys.readouterr().err.strip().splitlines()  # progress bars, then the error
    assert [line for line in lines if "error" in line] == lines[-1:]
    return lines[-1]


def test_errors_are_one_line_and_leave_no_output(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out.zarr"
    missing = tmp_path / "missing.zarr"
    err = _error(capsys, str(missing), "--out", str(out))
    assert err == f"unet weights: error: {missing}: no such dataset store"
    floats = tmp_path / "f.zarr"
    zarr.open_group(floats, mode="w").create_array("instances", shape=(1, 4, 4), dtype="f4")
    assert "expected 'instances' as (Z, Y, X) integer ids, got (1, 4, 4) float32" in _error(
        capsys, str(floats), "--out", str(out)
    )
    instances = np.stack([random_instances((30, 30), 5, s, True) for s in range(3)]).astype("i4")
    instances[2, 5, 5] = -7  # the last slice fails after the first ones are written
    bad = make_store(tmp_path / "bad.zarr", instances)
    assert "slice 2: instances: expected ids >= 0" in _error(capsys, str(bad), "--out", str(out))
    assert "BACKGROUND,CELL, got 'x'" in _error(
        capsys, str(bad), "--out", str(out), "--class-weights", "x"
    )
    no_raw = tmp_path / "n.zarr"
    zarr.open_group(no_raw, mode="w").create_array("instances", shape=(1, 4, 4), dtype="u4")
    assert "needs an array 'raw'" in _error(
        capsys, str(no_raw), "--out", str(out), "--figure", str(tmp_path / "f.png")
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.zarr", "f.zarr", "n.zarr"]


def test_failed_run_keeps_the_previous_output(tmp_path: Path, capsys) -> None:
    good = make_store(tmp_path / "good.zarr", random_instances((20, 20), 3, 5, True)[None])
    out = tmp_path / "out.zarr"
    assert main(["weights", str(good), "--out", str(out)]) == 0
    before = zarr.open_group(out, mode="r")["weights"][...]
    _error(capsys, str(good), "--out", str(out), "--sigma", "0")
    assert np.array_equal(zarr.open_group(out, mode="r")["weights"][...], before)


def test_snakemake_rule_writes_the_weight_store(repo: Path, tmp_path: Path) -> None:
    make_store(
        tmp_path / "results" / "data" / "toy.zarr", random_instances((32, 48), 6, 6, True)[None]
    )
    target = "results/data/toy.weights.zarr"
    run = run_snakemake(tmp_path, target, allowed_rules=("weights",))
    assert run.returncode == 0, run.stderr[-3000:]
    group = zarr.open_group(tmp_path / target, mode="r")
    assert (group.attrs["w0"], group.attrs["sigma"], group.attrs["class_weights"]) == (
        10.0,
        5.0,
        "balanced",
    )
    assert (tmp_path / "results" / "logs" / "weights" / "toy.log").exists()


def _ignored_reference(labels: np.ndarray, ignore: np.ndarray) -> np.ndarray:
    """brute_weights with class weights balanced over the annotated pixels, 0 where ignored."""
    annotated = labels[~ignore]
    n_cell = np.count_nonzero(annotated)
    n_bg = annotated.size - n_cell
    balance = {0: annotated.size / (2 * n_bg), 1: annotated.size / (2 * n_cell)}
    return np.where(ignore, 0.0, brute_weights(labels, class_weights=balance)).astype(np.float32)


def test_ignored_pixels_weigh_zero_and_the_balance_counts_the_annotated_only() -> None:
    labels = random_instances((120, 136), 60, 21, touching=True)
    ignore = np.zeros(labels.shape, bool)
    ignore[:, 90:] = True  # a region of unannotated cells, their background lost with it
    ignore[labels == labels[40, 40]] = labels[40, 40] > 0
    ours = weight_map(labels, ignore=ignore.astype(np.uint8))
    np.testing.assert_allclose(ours, _ignored_reference(labels, ignore), rtol=1e-4, atol=0)
    assert (ours[ignore] == 0).all() and (ours[~ignore] > 0).all()
    assert not np.allclose(ours[~ignore], weight_map(labels)[~ignore])  # balance changed
    assert np.array_equal(weight_map(labels, ignore=np.zeros_like(labels)), weight_map(labels))
    with pytest.raises(ValueError, match=r"ignore: expected a mask of shape \(120, 136\)"):
        weight_map(labels, ignore=ignore[:5])


def _store_with_ignore(path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    instances = np.stack([random_instances((50, 70), 25, s, True) for s in (31, 32)])
    ignore = np.zeros(instances.shape, np.uint8)
    ignore[:, :, :35] = 1  # the left half of each slice is unannotated
    ignore[instances > 0] = 0  # annotated cells never are
    store = make_store(path, instances)
    zarr.open_group(store, mode="a").create_array(
        "ignore", shape=ignore.shape, chunks=(1, 50, 70), dtype=np.uint8
    )[...] = ignore
    return store, instances, ignore


def test_store_ignore_mask_gives_weight_zero_and_is_drawn(tmp_path: Path) -> None:
    store, instances, ignore = _store_with_ignore(tmp_path / "toy.zarr")
    out, png = tmp_path / "toy.weights.zarr", tmp_path / "weights.png"
    assert main(["weights", str(store), "--out", str(out), "--figure", str(png)]) == 0
    group = zarr.open_group(out, mode="r")
    for z in range(2):
        expected = weight_map(instances[z], ignore=ignore[z])
        assert np.array_equal(group["weights"][z], expected)
        assert (group["weights"][z][ignore[z] > 0] == 0).all()
    assert group.attrs["ignored_fraction"] == [round(float(m.mean()), 6) for m in ignore]
    from matplotlib.image import imread

    from unet.figures import weights_figure

    raw = zarr.open_group(store, mode="r")["raw"][1]
    plain = weights_figure(raw, instances[1], group["weights"][1], tmp_path / "plain.png")

    def greys(path: Path) -> int:  # hatched grey: unsaturated mid-tones
        rgb = imread(path)[..., :3]
        grey = (np.ptp(rgb, axis=-1) < 0.12) & (abs(rgb.mean(-1) - 0.5) < 0.2)
        return int(np.count_nonzero(grey))

    assert greys(png) > greys(plain) + 20_000


def test_ignore_reaches_the_augmentation_cache(tmp_path: Path) -> None:
    """Weight 0 travels with the weight map into a cache block (here an unwarped centre
    crop: the tile is the slice's centre, up to float rounding of the sampling grid, which
    blends a pixel's neighbours in by about 1e-5; within the ignored region it is 0)."""
    from unet.augment import AugmentConfig
    from unet.cache import load_training, write_block

    store, _, ignore = _store_with_ignore(tmp_path / "toy.zarr")
    weights = tmp_path / "toy.weights.zarr"
    assert main(["weights", str(store), "--out", str(weights)]) == 0
    still = AugmentConfig(elastic_sigma=0, rotation=False, flip=False, shift=False,
                          brightness=0, contrast=0, gamma=0)  # fmt: skip
    block = write_block(load_training(store, weights), tmp_path / "block.zarr", block=0, n=3,
                        seed=0, tile_in=(60, 60), tile_out=(20, 20), config=still)  # fmt: skip
    group = zarr.open_group(block, mode="r")
    full = zarr.open_group(weights, mode="r")["weights"]
    for i, z in enumerate(group.attrs["slices"]):
        tile, centre = group["weight"][i], (slice(15, 35), slice(25, 45))
        np.testing.assert_allclose(tile, full[z][centre], rtol=1e-4, atol=1e-4)
        inside = ndimage.binary_erosion(ignore[z] > 0, np.ones((3, 3)))[centre]
        assert inside.sum() >= 20 and (tile[inside] == 0).all()
        ignored = ignore[z][centre] > 0
        assert (tile[ignored] < 1e-3).all() and (tile[~ignored] > 0).all()


def test_bad_ignore_array_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    store = make_store(tmp_path / "toy.zarr", random_instances((20, 30), 4, 41, True)[None])
    zarr.open_group(store, mode="a").create_array("ignore", shape=(1, 20, 29), dtype="u1")
    out = tmp_path / "out.zarr"
    assert _error(capsys, str(store), "--out", str(out)) == (
        f"unet weights: error: {store}: expected 'ignore' as a (1, 20, 30) integer mask, "
        "got (1, 20, 29) uint8"
    )
    assert not out.exists()
