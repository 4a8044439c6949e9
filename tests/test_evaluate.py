"""``unet evaluate`` on real TIFF and zarr files, its errors, and the ``evaluate`` rule."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from conftest import run_snakemake
from scipy import ndimage

from unet import metrics
from unet.cli import main
from unet.evaluate import load_prediction
from unet.postprocess import label_slices


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    """Three 32x32 slices of cells between 1-2 px membranes and a blurred noisy probability."""
    rng = np.random.default_rng(4)
    gt = np.full((3, 32, 32), 255, np.uint8)
    for z in range(3):
        for k in rng.choice(np.arange(4, 28), 3, replace=False):
            gt[z, k : k + 1 + z % 2, :] = 0
            gt[z, :, k] = 0
    noisy = gt / 255 + rng.normal(0, 0.35, gt.shape)
    prob = np.clip(ndimage.gaussian_filter(noisy, (0, 1, 1)), 0, 1).astype(np.float32)
    return gt, prob


def _tiff(path: Path, data: np.ndarray) -> None:
    tifffile.imwrite(path, data, photometric="minisblack")


def _zarr_array(path: Path, data: np.ndarray) -> Path:
    array = zarr.create_array(
        store=str(path), shape=data.shape, dtype=data.dtype, chunks=(1, *data.shape[-2:])
    )
    array[...] = data
    return path


def _group(path: Path, attrs: dict | None = None, **arrays: np.ndarray) -> Path:
    group = zarr.open_group(str(path), mode="w")
    for name, data in arrays.items():
        group.create_array(name, shape=data.shape, dtype=data.dtype, chunks=data.shape)[...] = data
    group.attrs.update(attrs or {})
    return path


def _evaluate(tmp_path: Path, *args: str) -> tuple[int, Path, Path]:
    out_json, out_csv = tmp_path / "eval" / "m.json", tmp_path / "eval" / "m.csv"
    code = main(["evaluate", *args, "--out-json", str(out_json), "--out-csv", str(out_csv)])
    return code, out_json, out_csv


def test_tiff_report_matches_the_library(tmp_path: Path, pair) -> None:
    gt, prob = pair
    _tiff(tmp_path / "p.tif", prob)
    _tiff(tmp_path / "gt.tif", gt)
    code, out_json, out_csv = _evaluate(tmp_path, str(tmp_path / "p.tif"), str(tmp_path / "gt.tif"))
    assert code == 0
    report = json.loads(out_json.read_text())
    got = report["metrics"]
    assert got["pixel_error"]["value"] == metrics.pixel_error(gt, prob).value
    assert got["rand_error"]["table"] == metrics.rand_error(gt, prob).to_dict()["table"]
    warping = metrics.warping_error(gt, prob)
    assert got["warping_error"]["value"] == warping.value > 0
    assert got["warping_error"]["per_slice"] == warping.per_slice
    rows = list(csv.DictReader(out_csv.open()))
    assert [r["slice"] for r in rows] == ["0", "1", "2", "total"]
    assert set(rows[0]) == {
        "slice",
        "pixel_error",
        "rand_error",
        "warping_error",
        "voi_split",
        "voi_merge",
        "seg",
        "iou",
        "dice",
    }
    assert float(rows[-1]["warping_error"]) == warping.value
    assert float(rows[1]["pixel_error"]) == metrics.pixel_error(gt[1], prob[1]).value
    assert report["shape"] == [3, 32, 32] and report["slices"] == [0, 1, 2]


def test_zarr_array_group_and_ome_zarr_read_alike(tmp_path: Path, pair) -> None:
    gt, prob = pair
    gt_path = _zarr_array(tmp_path / "gt.zarr", gt)
    sources = {
        "array": [str(_zarr_array(tmp_path / "p.zarr", prob))],
        "group": [
            str(_group(tmp_path / "g.zarr", None, probability=prob, other=prob * 0)),
            "--prediction-array",
            "probability",
        ],
        "ome": [
            str(
                _group(
                    tmp_path / "ome.zarr",
                    {"ome": {"version": "0.5", "multiscales": [{"datasets": [{"path": "0"}]}]}},
                    **{"0": prob[None], "1": prob[None, :, ::2, ::2]},
                )
            )
        ],
    }
    values = set()
    for name, source in sources.items():
        code, out_json, _ = _evaluate(tmp_path / name, *source, str(gt_path), "--metrics", "rand")
        assert code == 0, name
        values.add(json.loads(out_json.read_text())["metrics"]["rand_error"]["value"])
    assert values == {metrics.rand_error(gt, prob).value}


def test_dataset_store_split_and_instances(tmp_path: Path, pair) -> None:
    gt, prob = pair
    instances = label_slices(gt)
    store = _group(
        tmp_path / "toy.zarr",
        {"split": {"train": [0], "val": [1, 2], "test": []}},
        raw=gt,
        instances=instances.astype(np.uint32),
        semantic=(gt > 0).astype(np.uint8),
    )
    _tiff(tmp_path / "p.tif", prob)
    code, out_json, out_csv = _evaluate(
        tmp_path, str(tmp_path / "p.tif"), str(store), "--split", "val"
    )
    assert code == 0
    report = json.loads(out_json.read_text())
    assert report["slices"] == [1, 2] and report["shape"] == [2, 32, 32]
    assert report["metrics"]["pixel_error"]["value"] == metrics.pixel_error(gt[1:], prob[1:]).value
    assert [r["slice"] for r in csv.DictReader(out_csv.open())] == ["1", "2", "total"]
    perfect = tmp_path / "perfect.tif"
    _tiff(perfect, instances.astype(np.uint16))  # labels as the prediction
    code, out_json, _ = _evaluate(
        tmp_path / "perfect",
        str(perfect),
        str(store),
        "--metrics",
        "voi",
        "seg",
        "iou",
        "dice",
        "pixel",
    )
    got = json.loads(out_json.read_text())["metrics"]
    assert code == 0 and got["seg"]["value"] == 1.0 and got["pixel_error"]["value"] == 0.0
    assert got["voi_split"]["value"] == got["voi_merge"]["value"] == 0.0


LABELS = {"voi_split", "voi_merge", "seg", "iou", "dice"}  # all that instance ids allow


@pytest.mark.parametrize(
    ("fmt", "binary", "want"),
    [
        ("isbi2012", True, {"pixel_error", "rand_error", "warping_error"}),
        ("synthetic", True, {"pixel_error", "rand_error", "warping_error"}),
        ("ctc", False, {"seg", "iou", "dice"}),
        (None, True, {"pixel_error", "rand_error", "warping_error", *LABELS}),
        (None, False, LABELS),
    ],
)
def test_auto_metrics_follow_the_store_format(tmp_path: Path, pair, capsys, fmt, binary, want):
    gt, prob = pair
    instances = label_slices(gt).astype(np.uint32)
    arrays = {"semantic": (gt > 0).astype(np.uint8)} if binary else {"labels": instances}
    store = _group(tmp_path / "gt.zarr", {"format": fmt} if fmt else {}, **arrays)
    _tiff(tmp_path / "p.tif", prob)
    flags = [] if binary else ["--ground-truth-array", "labels"]
    code, out_json, _ = _evaluate(tmp_path, str(tmp_path / "p.tif"), str(store), *flags,
                                  "--metrics", "auto", "iou")  # fmt: skip
    assert code == 0 and set(json.loads(out_json.read_text())["metrics"]) == want | {"iou"}
    assert "metrics: auto iou = " in capsys.readouterr().out


def test_prediction_kinds(tmp_path: Path, pair, capsys) -> None:
    gt, prob = pair
    grey = np.round(prob * 255).astype(np.uint8)
    _tiff(tmp_path / "grey.tif", grey)
    _tiff(tmp_path / "gt.tif", gt)
    args = [str(tmp_path / "grey.tif"), str(tmp_path / "gt.tif"), "--metrics", "pixel"]
    code, out_json, _ = _evaluate(tmp_path, *args, "--prediction-kind", "probability")
    value = json.loads(out_json.read_text())["metrics"]["pixel_error"]["value"]
    assert code == 0 and value == metrics.pixel_error(gt, grey / 255).value
    _tiff(tmp_path / "float.tif", prob)
    code, out_json, out_csv = _evaluate(
        tmp_path / "x",
        str(tmp_path / "float.tif"),
        str(tmp_path / "gt.tif"),
        "--prediction-kind",
        "labels",
    )
    assert "labels must be integers" in _one_line_error(capsys, code, out_json, out_csv)


def test_uint8_probability_scores_like_the_float_one(tmp_path: Path, pair, capsys) -> None:
    """The same probability as float32 and as uint8 round(p * 255) gives nearly the same
    errors; before, auto read the uint8 map as instance ids (Rand error 0.68 against 0.21)."""
    gt, prob = pair
    grey = np.round(prob * 255).astype(np.uint8)
    _tiff(tmp_path / "gt.tif", gt)
    reports, printed = {}, {}
    for name, data, kind in [("float", prob, []), ("grey", grey, []),
                             ("ids", grey, ["--prediction-kind", "labels"])]:  # fmt: skip
        _tiff(tmp_path / f"{name}.tif", data)
        code, out_json, _ = _evaluate(tmp_path / name, str(tmp_path / f"{name}.tif"),
                                      str(tmp_path / "gt.tif"), "--metrics", "pixel", "rand",
                                      *kind)  # fmt: skip
        assert code == 0
        reports[name] = json.loads(out_json.read_text())
        printed[name] = capsys.readouterr().out.splitlines()[0]
    value = {n: {k: r["metrics"][k]["value"] for k in ("pixel_error", "rand_error")}
             for n, r in reports.items()}  # fmt: skip
    assert value["grey"] == {"pixel_error": metrics.pixel_error(gt, grey / 255).value,
                             "rand_error": metrics.rand_error(gt, grey / 255).value}  # fmt: skip
    for key in ("pixel_error", "rand_error"):
        assert value["grey"][key] == pytest.approx(value["float"][key], abs=0.002)
    assert value["ids"]["rand_error"] > value["float"]["rand_error"] + 0.3  # labels: > 0
    assert printed == {
        "float": "prediction: float32, read as probability",
        "grey": "prediction: uint8, read as probability (0-255 scaled to [0, 1]; "
        "instance ids need --prediction-kind labels)",
        "ids": "prediction: uint8, read as labels (instance ids, 0 = background; "
        "--prediction-kind labels)",
    }
    assert {n: "prediction: " + r["prediction_reading"] for n, r in reports.items()} == printed


@pytest.mark.parametrize(
    ("make", "kind", "reading", "expect"),
    [
        (lambda p: p, "auto", "float32, read as probability", lambda p: p),
        (lambda p: np.round(p * 255).astype(np.uint8), "auto",
         "uint8, read as probability (0-255 scaled", lambda p: np.round(p * 255) / 255),
        (lambda p: p > 0.5, "auto", "bool, read as a mask", lambda p: p > 0.5),
        (lambda p: (p > 0.5).astype(np.uint8) * 255, "auto", "uint8, read as a mask",
         lambda p: p > 0.5),
        (lambda p: (p > 0.5).astype(np.uint16) * 7, "probability",
         "uint16, read as a mask (0 = background, > 0 = cell; --prediction-kind probability)",
         lambda p: p > 0.5),
        (lambda p: np.round(p * 65535).astype(np.uint16), "probability",
         "uint16, read as probability (0-65535 scaled", lambda p: np.round(p * 65535) / 65535),
        (lambda p: label_slices(p > 0.5).astype(np.uint16), "auto",
         "uint16, read as labels (instance ids, 0 = background; grey values need", None),
        (lambda p: label_slices(p > 0.5).astype(np.int32), "auto",
         "int32, read as labels (instance ids, 0 = background)", None),
        (lambda p: np.round(p * 255).astype(np.uint8), "labels",
         "uint8, read as labels (instance ids, 0 = background; --prediction-kind labels)", None),
    ],
)  # fmt: skip
def test_each_dtype_has_one_stated_reading(tmp_path: Path, pair, make, kind, reading, expect):
    _, prob = pair
    data = make(prob)
    _tiff(tmp_path / "p.tif", data)
    got = load_prediction(str(tmp_path / "p.tif"), None, kind)
    assert got.reading.startswith(reading) and got.probability.dtype == np.float32
    if expect is None:  # labels: the ids as written, probability = foreground
        assert np.array_equal(got.labels, data) and np.array_equal(got.probability, data > 0)
    else:
        assert got.labels is None
        assert np.allclose(got.probability, expect(prob).astype(np.float32), atol=1e-7)


def _one_line_error(capsys, code: int, *paths: Path) -> str:
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and err.startswith("unet evaluate: error: ")
    for path in paths:
        assert not path.exists(), path
    return err


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p, g: (p[:, :16], g), "has shape (3, 16, 32), ground truth"),
        (lambda p, g: (np.where(p > 0.9, np.nan, p).astype(np.float32), g), "NaN values"),
        (lambda p, g: (p * 2, g), "probability must lie in [0, 1]"),
        (lambda p, g: (p, (g > 0) * np.arange(3)[:, None, None] * 7), "ground truth is not binary"),
    ],
)
def test_bad_input_is_a_one_line_error(tmp_path: Path, pair, capsys, make, message) -> None:
    gt, prob = pair
    prob, gt = make(prob, gt)
    _tiff(tmp_path / "p.tif", prob)
    _tiff(tmp_path / "gt.tif", gt.astype(np.uint8))
    code, out_json, out_csv = _evaluate(tmp_path, str(tmp_path / "p.tif"), str(tmp_path / "gt.tif"))
    err = _one_line_error(capsys, code, out_json, out_csv)
    assert message in err
    if "shape" in message:
        assert "p.tif" in err and "gt.tif" in err


def test_unreadable_or_ambiguous_inputs(tmp_path: Path, pair, capsys) -> None:
    gt, prob = pair
    _tiff(tmp_path / "gt.tif", gt)
    _tiff(tmp_path / "p.tif", prob)
    (tmp_path / "broken.tif").write_bytes(b"II*\x00garbage")
    (tmp_path / "cut.tif").write_bytes((tmp_path / "p.tif").read_bytes()[:3000])
    cases = [
        ([str(tmp_path / "missing.tif"), str(tmp_path / "gt.tif")], "no such file"),
        ([str(tmp_path / "broken.tif"), str(tmp_path / "gt.tif")], "not a readable TIFF"),
        ([str(tmp_path / "cut.tif"), str(tmp_path / "gt.tif")], "not a readable TIFF"),
        (
            [str(_group(tmp_path / "two.zarr", None, a=prob, b=prob)), str(tmp_path / "gt.tif")],
            "arrays ['a', 'b']; name the one to use",
        ),
        (
            [str(tmp_path / "p.tif"), str(tmp_path / "gt.tif"), "--split", "val"],
            "no 'split' metadata",
        ),
    ]
    for args, message in cases:
        code, out_json, out_csv = _evaluate(tmp_path, *args)
        assert message in _one_line_error(capsys, code, out_json, out_csv), message


def test_evaluate_rule_runs_in_snakemake(repo: Path, tmp_path: Path, pair) -> None:
    gt, prob = pair
    split = {"train": [0], "val": [1, 2], "test": []}
    _group(
        tmp_path / "results/data/toy.zarr",
        {"split": split},
        raw=gt,
        instances=label_slices(gt).astype(np.uint32),
        semantic=(gt > 0).astype(np.uint8),
    )
    _group(tmp_path / "results/predict/toy.zarr", None, probability=prob)
    run = run_snakemake(tmp_path, "results/eval/toy.json")
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((tmp_path / "results/eval/toy.json").read_text())
    assert report["slices"] == [1, 2] and set(report["metrics"]) >= {"warping_error", "seg"}
    assert (tmp_path / "results/eval/toy.csv").read_text().splitlines()[-1].startswith("total,")
