"""``unet report`` on a tiny real run: numbers as evaluated, paper rows, a self-contained page.

The fixture makes every input for real, cheaply: a synthetic dataset of 8 slices of 64^2
(6 train, 2 val), its weight maps, one augmentation block, a bare (untrained) checkpoint,
its prediction of the store and of a 2-slice "test volume" (``unet.predict.run``), the
evaluation JSON of ``unet evaluate`` on the val split, and a hand-written validation CSV,
environment report and benchmark files.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from conftest import REPO
from PIL import Image

from unet import ngff, paper
from unet.cache import load_training, write_block
from unet.cli import main
from unet.datasets import write_raw_store
from unet.model import UNet, save_checkpoint
from unet.predict import Options
from unet.predict import run as predict

PNG = b"\x89PNG\r\n\x1a\n"
RUN = {
    "seconds": 1.25,
    "mpx_per_s": 0.0262144,
    "chunks": 8,
    "computed": 8,
    "device": "cpu",
    "peak_rss_bytes": 3 * 2**30,
    "peak_gpu_bytes": None,
}
CSV = """\
iteration,elapsed_s,lr,train_loss,val_loss,pixel_error,rand_error,warping_error,\
pixel_threshold,rand_threshold
10,1.5,0.001,0.9,0.8,0.3,0.5,0.01,0.5,0.5
20,3.0,0.001,0.7,0.6,0.25,0.125,0.008,0.5,0.4
30,4.5,0.0005,0.6,0.65,0.26,0.375,0.009,0.5,0.5
"""
BENCHMARK = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _benchmark(path: Path, seconds: float, rss: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(BENCHMARK + f"{seconds}\t0:00:01\t{rss}\t1\t1\t1\t0\t0\t50\t1\n")
    return path


def _evaluate(prediction: Path, store: Path, out: Path, *flags: str) -> Path:
    """``unet evaluate`` on the val split: the JSON at ``out``."""
    args = [str(prediction), str(store), "--split", "val", "--threads", "1", *flags]
    csv = out.with_suffix(".csv")
    assert main(["evaluate", *args, "--out-json", str(out), "--out-csv", str(csv)]) == 0
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict[str, Path]:
    """Every input of a report, made by the stages themselves (see the module docstring)."""
    root = tmp_path_factory.mktemp("report-run")
    assert (
        main(
            [
                "fetch",
                "synthetic",
                "--out",
                str(root),
                "--slices",
                "8",
                "--size",
                "64",
                "--cell-diameter",
                "12",
                "--val-fraction",
                "0.25",
                "--no-progress",
            ]
        )
        == 0
    )
    store, weights = root / "synthetic.zarr", root / "synthetic.weights.zarr"
    assert main(["weights", str(store), "--out", str(weights)]) == 0
    block = write_block(
        load_training(store, weights),
        root / "block-0.zarr",
        block=0,
        n=2,
        seed=0,
        tile_in=(60, 60),
        tile_out=(44, 44),
    )
    train = root / "train"
    torch.manual_seed(0)
    save_checkpoint(train / "best.pt", UNet(base_channels=2, depth=2, dropout=0.0))
    (train / "validation.csv").write_text(CSV)
    quiet = Options(progress=False, threads=1)
    predict(train / "best.pt", store, root / "pred.zarr", quiet, log=lambda _: None)
    ngff.update_attrs(root / "pred.zarr", {"run": RUN})
    raw = np.asarray(zarr.open_group(str(store), mode="r")["raw"][:2])
    write_raw_store(root / "test.zarr", raw[:, ::-1], {"dataset": "synthetic", "labelled": False})
    predict(
        train / "best.pt", root / "test.zarr", root / "test-pred.zarr", quiet, log=lambda _: None
    )
    ev = _evaluate(root / "pred.zarr", store, root / "eval.json")  # every metric
    auto = _evaluate(root / "pred.zarr", store, root / "auto.json", "--metrics", "auto")
    env = root / "environment.json"
    env.write_text(
        json.dumps(
            {
                "unet": "0.1.0",
                "python": "3.11.7",
                "packages": {"torch": "2.x"},
                "device": "cpu",
                "device_name": "x86_64",
                "torch_cuda_build": None,
            }
        )
    )
    bench = [
        _benchmark(root / "benchmarks" / "train" / "synthetic.tsv", 12.5, "812.3"),
        _benchmark(root / "benchmarks" / "predict" / "synthetic.tsv", 2.25, "NA"),
    ]
    return {
        "root": root,
        "store": store,
        "weights": weights,
        "block": block,
        "train": train,
        "pred": root / "pred.zarr",
        "eval": ev,
        "auto": auto,
        "test": root / "test.zarr",
        "test_pred": root / "test-pred.zarr",
        "env": env,
        "bench": bench,
    }


def _args(run: dict[str, Path], out: Path, *extra: str, **replace: str) -> list[str]:
    flags = {
        "--dataset": "synthetic",
        "--store": run["store"],
        "--eval-json": run["eval"],
        "--prediction": run["pred"],
        "--train-dir": run["train"],
        "--weights": run["weights"],
        "--augment-block": run["block"],
        "--test-prediction": run["test_pred"],
        "--test-store": run["test"],
        "--environment": run["env"],
        "--config-json": json.dumps({"dataset": "synthetic"}),
        "--repo": REPO,
        "--overlays": "2",
    }
    for key, value in replace.items():
        flags[f"--{key.replace('_', '-')}"] = value
    args = ["report", str(out)]
    for key, value in flags.items():
        if value is not None:
            args += [key, str(value)]
    return [*args, "--benchmarks", *map(str, run["bench"]), *extra]


@pytest.fixture(scope="module")
def report(run, tmp_path_factory) -> Path:
    """The report of the run, with every input."""
    out = tmp_path_factory.mktemp("report") / "report"
    assert main(_args(run, out)) == 0
    return out


class _Page(HTMLParser):
    """The tags of an HTML page that matter here: images, links, scripts, sections."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.sections: list[list[str]] = []  # per section: the tags inside it
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "section":
            self.sections.append([])
        elif self.sections:
            self.sections[-1].append(tag)


def _rows(markdown: str) -> list[list[str]]:
    """Every Markdown table row as its cells (separator rows left out)."""
    rows = []
    for line in markdown.splitlines():
        if line.startswith("| "):
            cells = re.split(r"(?<!\\) \| ", line[2:-2])
            rows.append([c.replace("\\|", "|") for c in cells])
    return rows


def _evaluation(run) -> dict:
    return json.loads(run["eval"].read_text())


def test_report_writes_html_markdown_and_figures(run, report, capsys) -> None:
    slices = _evaluation(run)["slices"]
    names = sorted(p.name for p in (report / "figures").iterdir())
    assert {"index.html", "report.md", "figures"} == {p.name for p in report.iterdir()}
    assert names == sorted(
        [
            "augmentation.png",
            *(f"overlay-z{z}.png" for z in slices),
            "per-slice.png",
            "test-z0.png",
            "test-z1.png",
            "training-curve.png",
            "weights.png",
        ]
    )
    assert not [p for p in report.parent.iterdir() if p.name.startswith(".")]  # no partials
    (report.parent / "plain").mkdir()  # permissions as the umask gives any new folder
    assert report.stat().st_mode == (report.parent / "plain").stat().st_mode
    (report.parent / "plain").rmdir()


def test_metric_values_are_the_evaluation_json_values(run, report) -> None:
    metrics = _evaluation(run)["metrics"]
    md = (report / "report.md").read_text()
    exact = {r[0]: r[1] for r in _rows(md) if len(r) == 4 and r[0] in metrics}
    assert (
        set(exact)
        == set(metrics)
        == {
            "pixel_error",
            "rand_error",
            "warping_error",
            "voi_split",
            "voi_merge",
            "seg",
            "iou",
            "dice",
        }
    )
    for name, result in metrics.items():
        assert float(exact[name]) == result["value"], name
    ours = next(r for r in _rows(md) if r[0] == "this run")
    assert ours[2:] == [
        f"{metrics['warping_error']['value']:.6f}",
        f"{metrics['rand_error']['value']:.4f}",
        f"{metrics['pixel_error']['value']:.4f}",
    ]
    per_slice = {r[0]: r[1:] for r in _rows(md) if r[0].isdigit() and len(r) == 9}
    for i, z in enumerate(_evaluation(run)["slices"]):
        values = [float(v) for v in per_slice[str(z)]]
        assert values == pytest.approx([m["per_slice"][i] for m in metrics.values()], rel=1e-3)


def test_paper_rows_are_the_papers_numbers_in_the_same_table(report) -> None:
    assert [tuple(r) for r in paper.ISBI_ROWS] == [
        ("-", "human values", 0.000005, 0.0021, 0.0010),
        ("1", "u-net", 0.000353, 0.0382, 0.0611),
        ("2", "DIVE-SCI", 0.000355, 0.0305, 0.0584),
        ("3", "IDSIA", 0.000420, 0.0504, 0.0613),
        ("4", "DIVE", 0.000430, 0.0545, 0.0582),
        ("10", "IDSIA-SCI", 0.000653, 0.0189, 0.1027),
    ]
    assert paper.CTC_ROWS[-1] == ("u-net (2015)", 0.9203, 0.7756)
    rows = _rows((report / "report.md").read_text())
    header = rows.index(["rank", "group", "warping error", "Rand error", "pixel error"])
    table = rows[header + 1 : header + 8]
    assert table[:6] == [
        ["-", "human values", "0.000005", "0.0021", "0.0010"],
        ["1", "u-net", "0.000353", "0.0382", "0.0611"],
        ["2", "DIVE-SCI", "0.000355", "0.0305", "0.0584"],
        ["3", "IDSIA", "0.000420", "0.0504", "0.0613"],
        ["4", "DIVE", "0.000430", "0.0545", "0.0582"],
        ["10", "IDSIA-SCI", "0.000653", "0.0189", "0.1027"],
    ]
    assert table[6][:2] == ["this run", "synthetic: val slices 2, 4, never trained on"]


def test_split_protocol_and_chosen_thresholds_are_named(run, report) -> None:
    md = (report / "report.md").read_text()
    metrics = _evaluation(run)["metrics"]
    assert "evaluated on: val slices 2, 4, never trained on" in md
    assert "4-connected components" in md and "Rand error = 1 - V_rand F-score" in md
    rand, pixel = metrics["rand_error"]["threshold"], metrics["pixel_error"]["threshold"]
    assert f"Rand error at threshold {rand:.1f}; pixel error at threshold {pixel:.1f}" in md
    assert f"instances at threshold {rand:.1f} (Rand's best threshold)" in md


def test_html_is_one_self_contained_page(report) -> None:
    text = (report / "index.html").read_text()
    page = _Page(text)
    images = [attrs["src"] for tag, attrs in page.tags if tag == "img"]
    assert len(images) == len(list((report / "figures").iterdir())) == 8
    for src in images:
        head, _, data = src.partition(",")
        assert head == "data:image/png;base64"
        png = base64.b64decode(data, validate=True)
        assert png.startswith(PNG) and Image.open(io.BytesIO(png)).verify() is None
    links = [v for _, attrs in page.tags for k, v in attrs.items() if k in ("src", "href")]
    assert all(v.startswith(("data:", "#")) for v in links), links
    assert not re.search(r"https?://", text) and "<script" not in text and "<link" not in text
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in text
    assert all(inside for inside in page.sections) and len(page.sections) == 9


def test_markdown_links_point_to_files_of_the_report(report) -> None:
    md = (report / "report.md").read_text()
    links = re.findall(r"\]\(([^)]+)\)", md)
    assert len(links) == 8 and not re.search(r"https?://", md)
    for link in links:
        assert (report / link).is_file() and (report / link).resolve().is_relative_to(report)


def test_missing_inputs_are_said_in_their_sections(run, tmp_path) -> None:
    out = tmp_path / "bare"
    only = {
        k: None
        for k in (
            "train_dir",
            "weights",
            "augment_block",
            "test_prediction",
            "test_store",
            "environment",
            "config_json",
            "repo",
        )
    }
    args = _args(run, out, eval_json=str(run["auto"]), **only)
    assert main(args[: args.index("--benchmarks")]) == 0
    md = (out / "report.md").read_text()
    exact = [r[0] for r in _rows(md) if len(r) == 4 and r[0].endswith("_error")]
    assert exact == ["pixel_error", "rand_error", "warping_error"]  # --metrics auto
    assert "IoU and Dice" not in md and "Rand error = 1 - V_rand F-score" in md
    for missing in (
        "training curves: no training folder given (--train-dir)",
        "weight-map figure: no weight-map store given (--weights)",
        "augmentation figure: needs --augment-block",
        "wall time per stage: no benchmark files given (--benchmarks)",
        "resolved configuration: not given (--config-json)",
        "git commit: not given (--repo)",
        "compute device | not recorded",
    ):
        assert missing in md, missing
    assert "## Test volume" not in md and "(of the report's process)" in md
    page = _Page((out / "index.html").read_text())
    assert len(page.sections) == 8 and all(page.sections)


def test_a_prediction_without_run_statistics_says_not_recorded(run, tmp_path) -> None:
    pred = shutil.copytree(run["pred"], tmp_path / "old.zarr")
    attrs = ngff.read_attrs(pred)
    del attrs["run"]
    zarr.open_group(str(pred), mode="r+").attrs["unet"] = attrs
    assert main(_args(run, tmp_path / "out", prediction=str(pred))) == 0
    md = (tmp_path / "out" / "report.md").read_text()
    assert "prediction old.zarr: throughput and peak memory not recorded" in md


def test_run_statistics_and_stage_timings_are_shown(report) -> None:
    rows = _rows((report / "report.md").read_text())
    assert ["throughput", "0.02621 Mpx/s"] in rows and ["one 512 x 512 image", "10 s"] in rows
    assert ["peak memory (RSS)", "3.00 GiB"] in rows and ["seconds", "1.25"] in rows
    assert ["train/synthetic", "12.5", "812.3"] in rows
    assert ["predict/synthetic", "2.25", "-"] in rows and ["total", "14.75", "-"] in rows


def test_provenance_names_commit_checksums_and_checkpoint(run, report) -> None:
    md = (report / "report.md").read_text()
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert f"git commit {commit} (working tree " in md
    sha = hashlib.sha256((run["train"] / "best.pt").read_bytes()).hexdigest()
    assert f"sha256 {sha}; the same as {run['train'] / 'best.pt'}" in md
    assert "Source: unet.synthetic seed=0 SyntheticParams(size=64" in md
    assert '"dataset": "synthetic"' in md and "| torch | 2.x |" in md


def test_ctc_data_get_seg_beside_the_papers_seg_rows(run, tmp_path) -> None:
    store = shutil.copytree(run["store"], tmp_path / "ctc.zarr")
    zarr.open_group(str(store), mode="r+").attrs["format"] = "ctc"
    ev = _evaluate(run["pred"], store, tmp_path / "ctc.json", "--metrics", "auto")
    out = tmp_path / "out"
    args = _args(run, out, store=str(store), dataset="Fluo-N2DL-HeLa", eval_json=str(ev))
    assert main(args) == 0
    md = (out / "report.md").read_text()
    rows = _rows(md)
    header = next(r for r in rows if r[0] == "method")
    assert header[:3] == ["method", "PhC-U373", "DIC-HeLa"] and "Fluo-N2DL-HeLa" in header[3]
    assert ["u-net (2015)", "0.9203", "0.7756", "-"] in rows
    assert ["HOUS-US (2014)", "0.5323", "-", "-"] in rows
    metrics = json.loads(ev.read_text())["metrics"]
    assert list(metrics) == ["seg", "iou", "dice"]  # --metrics auto on CTC data
    assert ["this run", "-", "-", f"{metrics['seg']['value']:.4f}"] in rows
    assert "The paper's datasets (PhC-U373, DIC-HeLa) differ from Fluo-N2DL-HeLa" in md
    exact = {r[0]: r[1] for r in _rows(md) if len(r) == 4 and r[0] in metrics}
    assert {k: float(v) for k, v in exact.items()} == {k: m["value"] for k, m in metrics.items()}
    assert "V_rand" not in md and "(the evaluation's threshold)" in md


def test_a_failure_midway_leaves_no_outdir_and_an_earlier_report_intact(
    run, tmp_path, monkeypatch
) -> None:
    import unet.figures

    def broken(*args, **kwargs):
        raise RuntimeError("figure failed")

    out = tmp_path / "out"
    monkeypatch.setattr(unet.figures, "overlay_figure", broken)
    with pytest.raises(RuntimeError, match="figure failed"):
        main(_args(run, out))
    assert list(tmp_path.iterdir()) == []  # neither OUTDIR nor a partial folder
    monkeypatch.undo()
    assert main(_args(run, out, overlays="1")) == 0
    before = (out / "index.html").read_bytes()
    monkeypatch.setattr(unet.figures, "overlay_figure", broken)
    with pytest.raises(RuntimeError):
        main(_args(run, out))
    assert (out / "index.html").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    monkeypatch.undo()
    assert main(_args(run, out, overlays="2")) == 0  # a rerun replaces the earlier report
    assert len(list((out / "figures").glob("overlay-*.png"))) == 2


def _bad_eval(run, tmp_path: Path, change: dict) -> str:
    path = tmp_path / "other.json"
    path.write_text(json.dumps({**_evaluation(run), **change}))
    return str(path)


BAD = {
    "missing eval json": (
        lambda run, tmp: {"eval_json": str(tmp / "nope.json")},
        "--eval-json {tmp}/nope.json: no such file",
    ),
    "eval json of another shape": (
        lambda run, tmp: {"eval_json": _bad_eval(run, tmp, {"shape": [2, 32, 32]})},
        "{tmp}/other.json: scores slices of 32x32 up to slice 4, but",
    ),
    "eval json beyond the store": (
        lambda run, tmp: {"eval_json": _bad_eval(run, tmp, {"slices": [2, 9]})},
        "{tmp}/other.json: scores slices of 64x64 up to slice 9",
    ),
    "eval json not json": (
        lambda run, tmp: {"eval_json": str(tmp / "x.json")},
        "{tmp}/x.json: not JSON",
    ),
    "prediction of another shape": (
        lambda run, tmp: {"prediction": str(run["test_pred"])},
        "--prediction {test_pred}: shape (2, 64, 64)",
    ),
    "missing store": (
        lambda run, tmp: {"store": str(tmp / "nope.zarr")},
        "--store {tmp}/nope.zarr: no such dataset store",
    ),
    "config not json": (lambda run, tmp: {"config_json": "{"}, "--config-json: not JSON"),
    "negative overlays": (lambda run, tmp: {"overlays": "-1"}, "--overlays -1: expected"),
    "missing train dir": (
        lambda run, tmp: {"train_dir": str(tmp / "nope")},
        "--train-dir {tmp}/nope: no such folder",
    ),
    "outdir not a report": (lambda run, tmp: {}, "OUTDIR {tmp}/out: exists and is not a report"),
    "incomplete prediction": (
        lambda run, tmp: {"prediction": _incomplete(run, tmp / "p.zarr")},
        "--prediction {tmp}/p.zarr: not marked complete",
    ),
    "weights of another shape": (
        lambda run, tmp: {"weights": _weights(tmp / "w.zarr", (2, 64, 64))},
        "--weights {tmp}/w.zarr: shape (2, 64, 64), but",
    ),
    "weights store without weights": (
        lambda run, tmp: {"weights": str(run["block"])},
        "{block}: missing array(s) ['weights']",
    ),
    "augmentation block without its record": (
        lambda run, tmp: {"augment_block": _bare_block(run, tmp / "b.zarr")},
        "--augment-block {tmp}/b.zarr: no record of its settings",
    ),
}


def _incomplete(run, path: Path) -> str:
    shutil.copytree(run["pred"], path)
    ngff.mark_complete(path, False)
    return str(path)


def _weights(path: Path, shape: tuple[int, ...]) -> str:
    group = zarr.open_group(str(path), mode="w")
    group.create_array("weights", shape=shape, dtype="float32")
    return str(path)


def _bare_block(run, path: Path) -> str:
    shutil.copytree(run["block"], path)
    zarr.open_group(str(path), mode="r+").attrs.clear()
    return str(path)


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_naming_it_and_writes_nothing(run, tmp_path, capsys, case) -> None:
    make, message = BAD[case]
    (tmp_path / "x.json").write_text("{")
    out = tmp_path / "out"
    if case == "outdir not a report":
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    assert main(_args(run, out, **make(run, tmp_path))) == 2
    err = capsys.readouterr().err
    want = message.format(tmp=tmp_path, test_pred=run["test_pred"], block=run["block"])
    assert err.startswith(f"unet report: error: {want}") and len(err.splitlines()) == 1, err
    if case == "outdir not a report":
        assert [p.name for p in out.iterdir()] == ["keep.txt"]
    else:
        assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_bad_benchmark_file_is_named(run, tmp_path, capsys) -> None:
    bad = tmp_path / "benchmarks" / "train" / "x.tsv"
    bad.parent.mkdir(parents=True)
    bad.write_text("a\tb\n1\t2\n")
    assert main([*_args(run, tmp_path / "out"), str(bad)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"unet report: error: {bad}: not a Snakemake benchmark file; expected a TSV with "
        "columns s, max_rss, ... and at least one row"
    )


def test_a_test_prediction_without_its_store_shows_the_probability_alone(
    run, report, tmp_path
) -> None:
    out = tmp_path / "out"
    assert main(_args(run, out, test_store=None, overlays="1")) == 0
    md = (out / "report.md").read_text()
    assert "raw test images: no test store given (--test-store)" in md
    assert "test-pred.zarr: the first 1 of 2 test slices." in md
    with Image.open(out / "figures" / "test-z0.png") as alone:
        with Image.open(report / "figures" / "test-z0.png") as both:
            assert alone.width < 0.7 * both.width


def test_an_evaluation_on_training_slices_says_so(run, tmp_path) -> None:
    ev = tmp_path / "all.json"
    args = [str(run["pred"]), str(run["store"]), "--split", "all", "--metrics", "pixel", "rand"]
    assert (
        main(["evaluate", *args, "--out-json", str(ev), "--out-csv", str(tmp_path / "a.csv")]) == 0
    )
    assert main(_args(run, tmp_path / "out", eval_json=str(ev), overlays="1")) == 0
    md = (tmp_path / "out" / "report.md").read_text()
    assert "evaluated on: all 8 slices 0-7, 6 of them training slices" in md
    assert (
        "| this run | synthetic: all 8 slices 0-7, 6 of them training slices | not computed |" in md
    )


def test_run_table_of_a_scattered_prediction_names_its_jobs() -> None:
    from unet.report_provenance import run_table

    run = {"seconds": 6.0, "mpx_per_s": 0.5, "chunks": 90, "computed": 90, "device": "cuda",
           "peak_rss_bytes": 2**30, "peak_gpu_bytes": None, "parts": 3}  # fmt: skip
    attrs = {"predict": {"tile": [16, 16], "tta": False}, "run": run}
    table = run_table(attrs, "prediction p.zarr")[1]
    rows = dict(map(tuple, table.rows))
    assert rows["jobs (predict.parts)"] == "3, seconds summed"
    assert rows["chunks computed"] == "90 of 90" and rows["peak memory (RSS)"] == "1.00 GiB"
    assert "jobs (predict.parts)" not in dict(map(tuple, run_table(
        {"predict": {}, "run": {**run, "parts": None}}, "p")[1].rows))  # fmt: skip
