"""Tile sampling from real zarr stores, cache blocks, ``unet augment``, the on-the-fly stream."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr
from conftest import run_snakemake
from scipy import ndimage

from unet.cache import (
    augment_stream,
    load_training,
    normalize,
    read_block,
    sample_tile,
    training_samples,
    write_block,
)
from unet.cli import main

TILE = dict(tile_in=(60, 60), tile_out=(20, 20))  # depth 3, valid padding, --tile 60
MODEL = ["--depth", "3", "--tile", "60"]


def make_stores(root: Path, name: str = "toy", shape=(4, 50, 70)) -> tuple[Path, Path]:
    """A canonical dataset store and a weight-map store in the shared layout (seeded)."""
    rng = np.random.default_rng(0)
    raw = (ndimage.gaussian_filter(rng.random(shape), (0, 2, 2)) * 4000).astype(np.uint16)
    instances = np.stack([ndimage.label(r > np.median(r))[0] for r in raw]).astype(np.uint32)
    store, weights = root / f"{name}.zarr", root / f"{name}.weights.zarr"
    group = zarr.open_group(str(store), mode="w")
    chunks = (1, *shape[1:])
    for key, data in (("raw", raw), ("instances", instances),
                      ("semantic", (instances > 0).astype(np.uint8))):  # fmt: skip
        group.create_array(key, shape=shape, chunks=chunks, dtype=data.dtype)[:] = data
    group.attrs.update(dataset=name, split={"train": [0, 2, 3], "val": [1], "test": []},
                       source="seeded test fixture")  # fmt: skip
    wgroup = zarr.open_group(str(weights), mode="w")
    wmap = (1 + (instances == 0) * 3 + rng.random(shape)).astype(np.float32)
    wgroup.create_array("weights", shape=shape, chunks=chunks, dtype="float32")[:] = wmap
    wgroup.attrs.update(w0=10.0, sigma=5.0, class_weights="balanced")
    return store, weights


@pytest.fixture
def stores(tmp_path: Path) -> tuple[Path, Path]:
    return make_stores(tmp_path)


def _arrays(path: Path) -> dict[str, np.ndarray]:
    group = zarr.open_group(str(path), mode="r")
    return {name: group[name][:] for name in ("raw", "target", "weight")}


def test_load_training_reads_only_the_training_split(stores) -> None:
    data = load_training(*stores)
    raw = zarr.open_group(str(stores[0]), mode="r")["raw"]
    assert data.dataset == "toy" and data.slices == [0, 2, 3]
    np.testing.assert_array_equal(data.raw[1], normalize(raw[2]))
    assert data.normalization == {"kind": "dtype"}  # unet.normalize's default: uint16 / 65535
    for z, r in zip(data.slices, data.raw, strict=True):
        assert r.dtype == np.float32
        np.testing.assert_array_equal(r, raw[z].astype(np.float32) / np.float32(65535))


def test_normalisation_is_resolved_on_the_whole_store_and_recorded(stores, tmp_path) -> None:
    """Not per slice: every slice is scaled by the same values, which the blocks record."""
    spec = {"kind": "percentile", "low": 1.0, "high": 99.0}
    data = load_training(*stores, normalization=spec)
    raw = zarr.open_group(str(stores[0]), mode="r")["raw"][:].astype(np.float64)
    low, high = np.percentile(raw, [1.0, 99.0])
    assert (data.scaling.low, data.scaling.high) == pytest.approx((low, high))
    np.testing.assert_allclose(data.raw[0], (raw[0] - low) / (high - low), rtol=1e-5, atol=1e-6)
    block = write_block(data, tmp_path / "b.zarr", block=0, n=1, seed=0, **TILE)
    attrs = dict(zarr.open_group(str(block), mode="r").attrs)
    assert attrs["normalization"] == spec
    assert attrs["scaling"] == {"low": pytest.approx(low), "high": pytest.approx(high),
                                "clip": False}  # fmt: skip


@pytest.mark.parametrize("cache", [True, False])
def test_training_samples_start_where_a_resumed_run_left_off(stores, tmp_path, cache) -> None:
    data = load_training(*stores)
    blocks = [write_block(data, tmp_path / f"block-{b}.zarr", block=b, n=3, seed=4, **TILE)
              for b in range(2)]  # fmt: skip
    kwargs = dict(cache=cache, blocks=blocks, data=data, seed=4, per_block=3, **TILE)
    stream = list(itertools.islice(training_samples(**kwargs), 14))
    for start in (0, 2, 3, 5, 7, 13):
        tail = list(itertools.islice(training_samples(**kwargs, start=start), 14 - start))
        assert [t.raw.tobytes() for t in tail] == [t.raw.tobytes() for t in stream[start:]]
    with pytest.raises(ValueError, match="start must be"):
        training_samples(**kwargs, start=-1)


def test_blocks_are_deterministic_from_dataset_seed_and_block(stores, tmp_path) -> None:
    data = load_training(*stores)
    paths = {}
    for key, seed, block in (("a", 0, 1), ("b", 0, 1), ("seed", 1, 1), ("block", 0, 2)):
        paths[key] = write_block(data, tmp_path / f"{key}.zarr", block=block, n=3, seed=seed,
                                 **TILE)  # fmt: skip
    a, b = _arrays(paths["a"]), _arrays(paths["b"])
    assert all(a[k].tobytes() == b[k].tobytes() for k in a)
    assert a["raw"].tobytes() != _arrays(paths["seed"])["raw"].tobytes()
    assert a["raw"].tobytes() != _arrays(paths["block"])["raw"].tobytes()
    data.dataset = "other"
    other = sample_tile(data, seed=0, block=1, index=0, **TILE)[1]
    assert other.raw.tobytes() != a["raw"][0].tobytes()


def test_cli_writes_a_block_in_the_shared_layout(stores, tmp_path) -> None:
    out, figure = tmp_path / "aug" / "block-3.zarr", tmp_path / "fig.png"
    args = [*map(str, stores), "--out", str(out), "--block", "3", "--n", "4", "--seed", "5",
            *MODEL, "--figure", str(figure)]  # fmt: skip
    assert main(["augment", *args]) == 0
    group = zarr.open_group(str(out), mode="r")
    assert group["raw"].shape == (4, 60, 60) and group["raw"].dtype == np.float32
    assert group["target"].shape == (4, 20, 20) and group["target"].dtype == np.uint8
    assert group["weight"].shape == (4, 20, 20) and group["weight"].dtype == np.float32
    attrs = dict(group.attrs)
    assert (attrs["seed"], attrs["block"], attrs["dataset"]) == (5, 3, "toy")
    assert attrs["tile_in"] == [60, 60] and attrs["tile_out"] == [20, 20]
    assert set(attrs["slices"]) <= {0, 2, 3} and attrs["augment"]["elastic_sigma"] == 10.0
    assert set(np.unique(group["target"][:])) <= {0, 1}
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in out.parent.iterdir()) == ["block-3.zarr"]


def test_cli_same_padding_and_the_papers_tile(stores, tmp_path) -> None:
    for flags, shapes in ((["--depth", "3", "--padding", "same", "--tile", "60"], (60, 60)),
                          ([], (572, 388))):  # fmt: skip
        out = tmp_path / f"{shapes[0]}-{shapes[1]}.zarr"
        args = [*map(str, stores), "--out", str(out), "--block", "0", "--n", "1", *flags]
        assert main(["augment", *args]) == 0
        arrays = _arrays(out)
        assert arrays["raw"].shape == (1, shapes[0], shapes[0])
        assert arrays["target"].shape == arrays["weight"].shape == (1, shapes[1], shapes[1])


def test_on_the_fly_stream_yields_the_cache_blocks(stores, tmp_path) -> None:
    data = load_training(*stores)
    blocks = [write_block(data, tmp_path / f"block-{b}.zarr", block=b, n=2, seed=4, **TILE)
              for b in range(2)]  # fmt: skip
    cached = list(itertools.islice(training_samples(cache=True, blocks=blocks), 6))
    fly = list(itertools.islice(training_samples(cache=False, data=data, seed=4, per_block=2,
                                                 **TILE), 4))  # fmt: skip
    for a, b in zip(cached[:4], fly, strict=True):
        assert a.raw.tobytes() == b.raw.tobytes() and np.array_equal(a.target, b.target)
        assert a.weight.tobytes() == b.weight.tobytes()
    assert cached[4].raw.tobytes() == cached[0].raw.tobytes()  # the cache cycles
    later = next(augment_stream(data, seed=4, per_block=2, start_block=1, **TILE))
    assert later.raw.tobytes() == next(read_block(blocks[1])).raw.tobytes()


def test_training_samples_needs_its_source(tmp_path) -> None:
    with pytest.raises(ValueError, match="no cache blocks"):
        training_samples(cache=True)
    with pytest.raises(ValueError, match="on the fly"):
        training_samples(cache=False)
    with pytest.raises(FileNotFoundError, match=r"missing\.zarr"):
        training_samples(cache=True, blocks=[tmp_path / "missing.zarr"])


def _error(capsys, args: list[str]) -> str:
    assert main(["augment", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    return err


def test_bad_input_is_a_one_line_error_and_writes_nothing(stores, tmp_path, capsys) -> None:
    store, weights = map(str, stores)
    out = tmp_path / "out" / "block-0.zarr"
    base = ["--out", str(out), "--block", "0", "--n", "2", *MODEL]
    assert "no such store" in _error(capsys, [store + "x", weights, *base])
    other = make_stores(tmp_path / "other", shape=(4, 50, 60))[1]
    assert "weights has shape (4, 50, 60)" in _error(capsys, [store, str(other), *base])
    negative = [store, weights, *base, "--block", "-1"]
    assert "block must be an integer >= 0" in _error(capsys, negative)
    assert "--n must be" in _error(capsys, [store, weights, *base, "--n", "0"])
    assert "--threads must be >= 1" in _error(capsys, [store, weights, *base, "--threads", "0"])
    assert "dims=3" in _error(capsys, [store, weights, *base, "--dims", "3"])
    assert "contrast=1.5" in _error(capsys, [store, weights, *base, "--contrast", "1.5"])
    group = zarr.open_group(store, mode="r+")
    group.attrs["split"] = {"train": [], "val": [1]}
    assert "split['train']" in _error(capsys, [store, weights, *base])
    group.attrs["split"] = {"train": [7]}
    assert "outside 0..3" in _error(capsys, [store, weights, *base])
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_rule_writes_blocks_and_regenerates_only_what_changed(repo, tmp_path) -> None:
    make_stores(tmp_path / "results" / "data")
    small = "model: {depth: 3}\naugment: {tile: 60, per_block: 2, seed: %d}\n"
    (tmp_path / "small.yaml").write_text(small % 0)
    blocks = [tmp_path / f"results/augment/toy/block-{b}.zarr" for b in range(2)]
    targets = [str(b.relative_to(tmp_path)) for b in blocks]
    run = run_snakemake(
        tmp_path, *targets, configfiles=(tmp_path / "small.yaml",), allowed_rules=("augment",)
    )
    assert run.returncode == 0, run.stderr[-3000:]
    first = [_arrays(b) for b in blocks]
    assert first[0]["raw"].shape == (2, 60, 60) and first[0]["target"].shape == (2, 20, 20)
    assert "augment block 1" in (tmp_path / "results/logs/augment/toy/block-1.log").read_text()
    stamp = (blocks[0] / "zarr.json").stat().st_mtime_ns
    shutil.rmtree(blocks[1])  # a deleted block is regenerated, bit-identical, alone
    run = run_snakemake(
        tmp_path, *targets, configfiles=(tmp_path / "small.yaml",), allowed_rules=("augment",)
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert (blocks[0] / "zarr.json").stat().st_mtime_ns == stamp
    assert _arrays(blocks[1])["raw"].tobytes() == first[1]["raw"].tobytes()
    (tmp_path / "small.yaml").write_text(small % 1)  # a new seed regenerates every block
    run = run_snakemake(
        tmp_path, *targets, configfiles=(tmp_path / "small.yaml",), allowed_rules=("augment",)
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert all(
        _arrays(b)["raw"].tobytes() != f["raw"].tobytes()
        for b, f in zip(blocks, first, strict=True)
    )
