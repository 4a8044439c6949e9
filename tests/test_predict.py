"""Prediction against one whole-image pass: seamless tiles, TTA equivariance, the stage.

The reference pads the whole image with numpy (``mode="symmetric"``) by the margins of
:func:`unet.shapes.margins` and runs the network once; the tiled predictor must equal it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import zarr
from conftest import sigkill_when

from unet import ngff, shapes
from unet.cli import main
from unet.inference import MAX_TASKS, RECORDS, Job, predict_array, tasks
from unet.model import UNet, save_checkpoint
from unet.normalize import Scaling
from unet.tiler import Geometry, make_tiling


def _model(seed: int = 0, dtype: torch.dtype = torch.float32, **config) -> UNet:
    torch.manual_seed(seed)
    config = {"base_channels": 2, "depth": 3, "dropout": 0.0, **config}
    return UNet(**config).to(dtype).eval()


def _pass(model: UNet, image: np.ndarray) -> np.ndarray:
    """One whole-image pass over the last ``dims`` axes, mirror-padded by the margins."""
    depth, padding = model.config["depth"], model.config["padding"]
    before, after = shapes.margins(depth, padding)
    shrink = 2 * shapes.halo(depth) if padding == "valid" else 0
    pads, crops = [], []
    for n in image.shape:
        size = shapes.input_size(before + n + after - shrink, depth, padding)
        pads.append((before, size - n - before))
        start = before - shrink // 2
        crops.append(slice(start, start + n))
    padded = np.pad(image, pads, mode="symmetric")
    dtype = next(model.parameters()).dtype
    with torch.no_grad():
        logits = model(torch.from_numpy(padded.astype(np.float32))[None, None].to(dtype))
    return torch.softmax(logits, 1)[0, 1].numpy()[tuple(crops)]


def _reference(model: UNet, image: np.ndarray, tta: bool = False) -> np.ndarray:
    """The whole-image pass (slice by slice for a 2-D model over a stack); with ``tta`` the
    mean of the 8 rotations/flips of the last two axes, each undone."""
    if image.ndim > model.config["dims"]:
        return np.stack([_reference(model, s, tta) for s in image])
    if not tta:
        return _pass(model, image)
    total = 0
    for transposed in (False, True):
        base = np.swapaxes(image, -1, -2) if transposed else image
        for k in range(4):
            out = np.rot90(_pass(model, np.rot90(base, k, (-2, -1)).copy()), -k, (-2, -1))
            total = total + (np.swapaxes(out, -1, -2) if transposed else out)
    return total / 8


def _tiles(model: UNet, shape: tuple[int, ...]) -> list[int]:
    """Every tile edge the tiler may use for ``shape``: the steps up to the image."""
    step = shapes.step(model.config["depth"])
    return list(range(step, max(shape[-model.config["dims"] :]) + step, step))


@pytest.mark.parametrize(("depth", "shape"), [(2, (37, 29)), (3, (37, 29)), (3, (50, 61))])
def test_tiled_2d_equals_the_whole_image_pass_for_every_tile(depth, shape) -> None:
    model = _model(depth=depth)
    image = np.random.default_rng(depth).random(shape).astype(np.float32)
    want = _reference(model, image)
    for tile in _tiles(model, shape):
        np.testing.assert_allclose(predict_array(model, image, tile), want, atol=1e-5, rtol=0)


def test_tiled_3d_equals_the_whole_volume_pass() -> None:
    model = _model(depth=2, dims=3)
    image = np.random.default_rng(3).random((9, 14, 11)).astype(np.float32)
    want = _reference(model, image)
    for tile in _tiles(model, image.shape):
        np.testing.assert_allclose(predict_array(model, image, tile), want, atol=1e-5, rtol=0)


def test_float64_model_tiles_exactly() -> None:
    model = _model(dtype=torch.float64, base_channels=3)
    image = np.random.default_rng(4).random((45, 23)).astype(np.float32)
    want = _reference(model, image)
    for tile in (4, 12, 24):
        np.testing.assert_allclose(predict_array(model, image, tile), want, atol=1e-12, rtol=0)


@pytest.mark.parametrize("dims", [2, 3])
def test_same_padded_model_is_tiled_with_its_margins_cropped(dims: int) -> None:
    model = _model(depth=3 if dims == 2 else 2, dims=dims, padding="same")
    shape = (37, 29) if dims == 2 else (7, 13, 10)
    image = np.random.default_rng(5).random(shape).astype(np.float32)
    want = _reference(model, image)
    for tile in _tiles(model, shape):
        np.testing.assert_allclose(predict_array(model, image, tile), want, atol=1e-5, rtol=0)


def test_2d_model_predicts_a_stack_slice_by_slice_in_batches() -> None:
    model = _model(depth=2)
    stack = np.random.default_rng(6).random((4, 21, 30)).astype(np.float32)
    want = _reference(model, stack)
    for tile, batch in [(4, 1), (10, 3), (30, 8)]:
        got = predict_array(model, stack, tile, batch=batch)
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_tta_is_seamless_and_rotation_equivariant_on_odd_sizes() -> None:
    model = _model(base_channels=3)
    image = np.random.default_rng(7).random((37, 29)).astype(np.float32)
    want = _reference(model, image, tta=True)
    for tile in (4, 8, 20, 40):
        np.testing.assert_allclose(predict_array(model, image, tile, tta=True), want, atol=1e-5)
    for k in (1, 2, 3):
        turned = predict_array(model, np.rot90(image, k).copy(), 12, tta=True)
        np.testing.assert_allclose(turned, np.rot90(want, k), atol=1e-5, rtol=0)
    flipped = predict_array(model, image[:, ::-1].copy(), 8, tta=True)
    np.testing.assert_allclose(flipped, want[:, ::-1], atol=1e-5, rtol=0)
    np.testing.assert_allclose(
        predict_array(model, image.T.copy(), 16, tta=True), want.T, atol=1e-5
    )
    plain = predict_array(model, np.rot90(image).copy(), 12)
    assert np.abs(plain - np.rot90(predict_array(model, image, 12))).max() > 1e-3  # not without


def test_tta_of_a_3d_model_rotates_in_the_yx_plane() -> None:
    model = _model(depth=2, dims=3)
    image = np.random.default_rng(8).random((7, 13, 9)).astype(np.float32)
    want = _reference(model, image, tta=True)
    np.testing.assert_allclose(predict_array(model, image, 4, tta=True), want, atol=1e-5)
    turned = predict_array(model, np.rot90(image, 1, (1, 2)).copy(), 6, tta=True)
    np.testing.assert_allclose(turned, np.rot90(want, 1, (1, 2)), atol=1e-5, rtol=0)


def test_graph_stays_small_for_1e5_chunks(tmp_path: Path) -> None:
    tiling = make_tiling((20, 8192, 10240), 2, Geometry.of(5, "valid"), 128)
    assert len(tiling) == 20 * 64 * 80 == 102400
    job = Job("m.pt", "0" * 64, "in.zarr", None, str(tmp_path / "out.zarr"), tiling,
              Scaling(0, 1), False, "float32", "cpu", "none", 1)  # fmt: skip
    start = time.perf_counter()
    work = tasks(job, np.arange(job.groups))
    from dask.base import collections_to_expr

    graph = collections_to_expr(work).__dask_graph__()
    assert len(work) == MAX_TASKS and len(graph) <= MAX_TASKS
    assert time.perf_counter() - start < 10


# --- the stage, end to end -----------------------------------------------------------------


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Path]:
    """A bare width-2 checkpoint and a uint8 (Z, Y, X) TIFF stack of odd size."""
    save_checkpoint(tmp_path / "m.pt", _model(depth=3))
    raw = (np.random.default_rng(9).random((3, 45, 38)) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "raw.tif", raw, photometric="minisblack")
    return {"dir": tmp_path, "ckpt": tmp_path / "m.pt", "tif": tmp_path / "raw.tif"}


def _predict(ckpt, source, target, *flags: str) -> int:
    return main(["predict", str(ckpt), str(source), str(target), "--quiet", *flags])


def _files(store: Path) -> dict[str, bytes]:
    return {str(p.relative_to(store)): p.read_bytes() for p in store.rglob("*") if p.is_file()}


def _data(store: Path) -> tuple[dict[str, bytes], dict]:
    """Every file but the root metadata, and the root metadata without the ``run`` record
    (the timings of the run that completed the store)."""
    files = _files(store)
    meta = json.loads(files.pop("zarr.json"))
    assert set(meta["attributes"]["unet"].pop("run")) == RUN_KEYS
    return files, meta


RUN_KEYS = {"seconds", "mpx_per_s", "chunks", "computed", "device", "peak_rss_bytes",
            "peak_gpu_bytes"}  # fmt: skip


def test_tiff_stack_to_ome_zarr_equals_the_reference(setup, capsys) -> None:
    target = setup["dir"] / "out.zarr"
    assert _predict(setup["ckpt"], setup["tif"], target, "--tile", "16", "--levels", "1") == 0
    out = capsys.readouterr().out
    assert "tile 1x16x16" in out and "margins 20 before" in out and "27 chunks" in out
    assert "expected peak memory" in out
    raw = tifffile.imread(setup["tif"])
    want = _reference(_model(depth=3), raw.astype(np.float32) / np.float32(255))
    group = zarr.open_group(str(target), mode="r")
    np.testing.assert_allclose(group["0"][...], want, atol=1e-5, rtol=0)
    assert group["0"].chunks == (1, 16, 16) and group["1"].shape == (3, 23, 19)
    ome = group.attrs["ome"]
    assert ome["version"] == "0.5" and [a["name"] for a in ome["multiscales"][0]["axes"]] == list(
        "zyx"
    )
    unet = group.attrs["unet"]
    params = unet["predict"]
    sha = hashlib.sha256(setup["ckpt"].read_bytes()).hexdigest()
    assert params["checkpoint_sha256"] == sha and params["source_shape"] == [3, 45, 38]
    assert params["tile"] == [1, 16, 16] and params["margins"] == [20, 20]
    assert (params["tta"], params["dtype"], params["unet"]) == (False, "float32", "0.1.0")
    assert params["normalization"] == {"low": 0.0, "high": 255.0, "clip": False}
    assert unet["complete"] is True and not (target / "0" / RECORDS).exists()


def test_evaluate_reads_the_prediction(setup) -> None:
    target, gt = setup["dir"] / "out.zarr", setup["dir"] / "gt.tif"
    assert _predict(setup["ckpt"], setup["tif"], target, "--dtype", "uint8") == 0
    prob = zarr.open_array(str(target / "0"), mode="r")[...]
    tifffile.imwrite(gt, (prob > 127).astype(np.uint8), photometric="minisblack")
    report = setup["dir"] / "eval.json"
    rc = main(["evaluate", str(target), str(gt), "--metrics", "pixel", "iou", "--out-json",
               str(report), "--out-csv", str(setup["dir"] / "eval.csv")])  # fmt: skip
    assert rc == 0 and json.loads(report.read_text())["metrics"]["iou"]["value"] == 1.0


@pytest.mark.parametrize("kind", ["zarr2", "ome", "dataset"])
def test_zarr_sources_give_the_tiff_result(setup, kind: str) -> None:
    raw = tifffile.imread(setup["tif"])
    source, flags = setup["dir"] / f"{kind}.zarr", []
    if kind == "zarr2":
        zarr.create_array(str(source), data=raw, chunks=(1, 20, 20), zarr_format=2)
    elif kind == "ome":
        ngff.create_image(source, raw.shape, (1, 32, 32), raw.dtype, "zyx")[...] = raw
    else:
        group = zarr.open_group(str(source), mode="w")
        group.create_array("raw", data=raw)
        group.create_array("semantic", data=raw > 100)
        flags = ["--array", "raw"]
    for src, out, extra in [(setup["tif"], "a.zarr", []), (source, "b.zarr", flags)]:
        assert _predict(setup["ckpt"], src, setup["dir"] / out, "--tile", "24", *extra) == 0
    a = zarr.open_array(str(setup["dir"] / "a.zarr" / "0"), mode="r")[...]
    b = zarr.open_array(str(setup["dir"] / "b.zarr" / "0"), mode="r")[...]
    assert np.array_equal(a, b)


def test_dtypes_and_3d_tta(setup) -> None:
    volume = np.random.default_rng(10).random((6, 17, 12)).astype(np.float32)
    source = setup["dir"] / "vol.zarr"
    zarr.create_array(str(source), data=volume, chunks=(3, 8, 8))
    save_checkpoint(setup["dir"] / "m3.pt", _model(depth=2, dims=3))
    want = _reference(_model(depth=2, dims=3), volume, tta=True)
    for dtype in ("float32", "float16", "uint8"):
        target = setup["dir"] / f"{dtype}.zarr"
        assert _predict(setup["dir"] / "m3.pt", source, target, "--tta", "--tile", "4",
                        "--dtype", dtype) == 0  # fmt: skip
        got = zarr.open_array(str(target / "0"), mode="r")[...]
        assert got.dtype == dtype and got.shape == volume.shape
        if dtype == "uint8":
            assert np.abs(got.astype(int) - np.rint(want * 255)).max() <= 1
        else:
            np.testing.assert_allclose(got, want, atol=1e-5 if dtype == "float32" else 1e-3)


def test_rerun_resumes_and_other_parameters_are_refused(setup, capsys) -> None:
    target = setup["dir"] / "out.zarr"
    assert _predict(setup["ckpt"], setup["tif"], target, "--tile", "16") == 0
    shutil.copytree(target, target.with_name("first.zarr"))
    before = _files(target)
    capsys.readouterr()
    assert _predict(setup["ckpt"], setup["tif"], target, "--tile", "16") == 0
    assert "27 done, 0 to compute" in capsys.readouterr().out and _files(target) == before
    assert _predict(setup["ckpt"], setup["tif"], target, "--tile", "24", "--tta") == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "other parameters (tile, tta, window)" in err
    assert "--overwrite" in err and _files(target) == before
    assert _predict(setup["ckpt"], setup["tif"], target, "--tile", "24", "--overwrite") == 0
    group = zarr.open_group(str(target), mode="r")
    assert group.attrs["unet"]["predict"]["tile"] == [1, 24, 24] and group["0"].chunks[-1] == 24
    want = zarr.open_array(str(target.with_name("first.zarr") / "0"), mode="r")[...]
    np.testing.assert_allclose(group["0"][...], want, atol=1e-5, rtol=0)  # tile-independent


def test_the_run_that_completes_the_store_is_recorded(setup, capsys) -> None:
    import resource

    target = setup["dir"] / "out.zarr"
    assert _predict(setup["ckpt"], setup["tif"], target, "--tile", "16", "--threads", "1") == 0
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    run = ngff.read_attrs(target)["run"]
    assert set(run) == RUN_KEYS and (run["chunks"], run["computed"]) == (27, 27)
    assert run["device"] == "cpu" and run["peak_gpu_bytes"] is None
    assert run["mpx_per_s"] == pytest.approx(3 * 45 * 38 / 1e6 / run["seconds"])
    assert printed.endswith(f"27 of 27 chunks computed in {run['seconds']:.1f} s "
                            f"({run['mpx_per_s']:.3f} Mpx/s)")  # fmt: skip
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # this process ran it
    assert 50 * 2**20 < run["peak_rss_bytes"] <= peak  # torch alone takes more than 50 MiB
    before = _files(target)
    assert _predict(setup["ckpt"], setup["tif"], target, "--tile", "16") == 0
    assert _files(target) == before  # a complete store keeps the run that completed it


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_run_records_peak_gpu_memory_on_cuda(setup) -> None:
    target = setup["dir"] / "out.zarr"
    assert _predict(setup["ckpt"], setup["tif"], target, "--device", "cuda") == 0
    run = ngff.read_attrs(target)["run"]
    assert run["device"].startswith("cuda") and run["peak_gpu_bytes"] > 0


def test_memory_limit_chooses_the_tile(setup, capsys) -> None:
    big = setup["dir"] / "big.zarr"
    zarr.create_array(str(big), data=np.zeros((300, 260), np.uint8))
    assert _predict(setup["ckpt"], big, setup["dir"] / "a.zarr", "--memory-limit", "3MiB") == 0
    small = capsys.readouterr().out
    assert _predict(setup["ckpt"], big, setup["dir"] / "b.zarr", "--memory-limit", "1GiB") == 0
    large = capsys.readouterr().out
    assert "tile 300x260," in large and "tile 300x260," not in small


_KILLED = """
import sys
from unet.cli import main
sys.exit(main(["predict", *sys.argv[1:]]))
"""


def test_sigkilled_run_resumes_byte_identical(setup) -> None:
    raw = (np.random.default_rng(11).random((4, 128, 128)) * 255).astype(np.uint8)
    source = setup["dir"] / "raw.zarr"
    zarr.create_array(str(source), data=raw, chunks=(1, 64, 64))
    args = [str(setup["ckpt"]), str(source), "--tile", "8", "--quiet", "--threads", "1"]
    whole, resumed = setup["dir"] / "whole.zarr", setup["dir"] / "resumed.zarr"
    assert main(["predict", *args[:2], str(whole), *args[2:]]) == 0
    records = resumed / "0" / RECORDS
    cmd = [sys.executable, "-c", _KILLED, *args[:2], str(resumed), *args[2:]]
    done = sigkill_when(cmd, records, 50)
    assert 50 <= done < 1024 and not ngff.is_complete(resumed)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    assert f"{done} done, {1024 - done} to compute" in out
    assert _data(resumed) == _data(whole)  # the chunks byte for byte; the timings differ
    runs = [ngff.read_attrs(store)["run"] for store in (whole, resumed)]
    assert [(r["chunks"], r["computed"]) for r in runs] == [(1024, 1024), (1024, 1024 - done)]


@pytest.mark.parametrize("case", [
    "source missing", "source unreadable", "source empty", "source 4-D", "2-D for a 3-D model",
    "checkpoint missing", "checkpoint corrupt", "checkpoint channels", "target in source",
    "tile below the step", "target a file", "bad scheduler", "checkpoint group norm",
    "memory limit too small",
])  # fmt: skip
def test_bad_input_is_one_line_exit_2_and_no_target(setup, capsys, case: str) -> None:
    d, ckpt, source = setup["dir"], setup["ckpt"], setup["tif"]
    target, flags = d / "out.zarr", []
    if case == "source missing":
        source = d / "nothing.tif"
    elif case == "source unreadable":
        source.write_bytes(b"II*\x00garbage")
    elif case == "source empty":
        source = d / "empty.zarr"
        zarr.create_array(str(source), shape=(0, 10), dtype="uint8")
    elif case == "source 4-D":
        source = d / "4d.zarr"
        zarr.create_array(str(source), data=np.zeros((2, 3, 20, 20), np.uint8))
    elif case == "2-D for a 3-D model":
        save_checkpoint(ckpt, _model(depth=2, dims=3))
        source = d / "2d.zarr"
        zarr.create_array(str(source), data=np.zeros((20, 20), np.uint8))
    elif case == "checkpoint missing":
        ckpt = d / "none.pt"
    elif case == "checkpoint corrupt":
        ckpt.write_bytes(ckpt.read_bytes()[:200])
    elif case == "checkpoint channels":
        save_checkpoint(ckpt, _model(in_channels=3))
    elif case == "target in source":
        source = d / "group.zarr"
        zarr.open_group(str(source), mode="w").create_array("raw", data=np.zeros((20, 20)))
        target = source / "pred.zarr"
    elif case == "tile below the step":
        flags = ["--tile", "3"]
    elif case == "target a file":
        target.write_text("x")
    elif case == "checkpoint group norm":
        save_checkpoint(ckpt, _model(norm="group"))
    elif case == "memory limit too small":
        flags = ["--memory-limit", "100kB"]
    else:
        flags = ["--scheduler", "processes"]
    assert _predict(ckpt, source, target, *flags) == 2
    err = capsys.readouterr().err
    assert err.startswith("unet predict: error: ") and err.count("\n") == 1, err
    assert not target.is_dir() and not list(d.glob(".out.zarr.partial-*"))


def test_distributed_schedulers_give_the_same_result(setup) -> None:
    distributed = pytest.importorskip("distributed")
    a, b, c = (setup["dir"] / f"{name}.zarr" for name in "abc")
    assert _predict(setup["ckpt"], setup["tif"], a, "--tile", "16") == 0
    assert _predict(setup["ckpt"], setup["tif"], b, "--tile", "16", "--scheduler", "local:2") == 0
    with distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cl:
        flags = ["--tile", "16", "--scheduler", cl.scheduler_address]
        assert _predict(setup["ckpt"], setup["tif"], c, *flags) == 0
    assert _data(a) == _data(b) == _data(c)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_an_error(setup, capsys) -> None:
    assert _predict(setup["ckpt"], setup["tif"], setup["dir"] / "o.zarr", "--device", "cuda") == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_predict_rule_writes_what_the_evaluate_rule_scores(tmp_path: Path) -> None:
    from conftest import run_snakemake

    save_checkpoint(tmp_path / "m.pt", _model(depth=3))
    small = tmp_path / "small.yaml"
    small.write_text(
        "synthetic: {slices: 3, size: 64, cell_diameter: 12.0}\n"
        f"predict: {{checkpoint: {tmp_path / 'm.pt'}, tile: 32, dtype: uint8, levels: 1}}\n"
        "evaluate: {metrics: [pixel, iou]}\n"
    )
    run = run_snakemake(tmp_path, "results/eval/synthetic.json", configfiles=(small,),
                        allowed_rules=("fetch", "predict", "evaluate"))  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    group = zarr.open_group(str(tmp_path / "results/predict/synthetic.zarr"), mode="r")
    assert group["0"].shape == (3, 64, 64) and group["0"].dtype == np.uint8
    assert group["0"].chunks == (1, 32, 32) and group["1"].shape == (3, 32, 32)
    assert group.attrs["unet"]["complete"] is True
    report = json.loads((tmp_path / "results/eval/synthetic.json").read_text())
    assert set(report["metrics"]) == {"pixel_error", "iou"}
