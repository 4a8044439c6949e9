"""Archive mode against single predictions: a sample sheet of images -> one OME-Zarr each.

The reference of every output is :func:`unet.predict.run` of the same image with the same
options; incremental reruns are checked by the computed chunk counts and by the outputs'
file mtimes, the resume by a real SIGKILL.
"""

from __future__ import annotations

import csv
import json
import os
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

from unet import ngff, predict
from unet.cli import main
from unet.errors import InputError
from unet.inference import RECORDS
from unet.model import UNet, save_checkpoint
from unet.sheet import read_sheet

FLAGS = ("--tile", "16", "--quiet")
SHEET = (
    "id\tpath\tcondition\n# a comment\na\timages/a.tif\tcontrol\n\nb\timages/b.ome.zarr\ttreated\n"
)


def _checkpoint(path: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    save_checkpoint(path, UNet(base_channels=2, depth=2))
    return path


def _uint8(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) * 255).astype(np.uint8)


@pytest.fixture
def archive(tmp_path: Path) -> dict[str, Path]:
    """A checkpoint; a 2-D TIFF a, an OME-Zarr stack b and a broken TIFF c in a sheet."""
    images = tmp_path / "images"
    images.mkdir()
    tifffile.imwrite(images / "a.tif", _uint8((40, 52), 1), photometric="minisblack")
    stack = _uint8((3, 45, 38), 2)
    ngff.create_image(images / "b.ome.zarr", stack.shape, (1, 32, 32), stack.dtype, "zyx")[...] = (
        stack
    )
    (images / "c.tif").write_bytes(b"II*\x00 not a TIFF")
    sheet = tmp_path / "sheet.tsv"
    sheet.write_text(SHEET + "c\timages/c.tif\tcontrol\n")
    return {"dir": tmp_path, "ckpt": _checkpoint(tmp_path / "m.pt"), "sheet": sheet,
            "out": tmp_path / "out", "images": images}  # fmt: skip


def _archive(a: dict[str, Path], *flags: str, sheet: Path | None = None) -> int:
    return main(["predict-archive", str(a["ckpt"]), str(sheet or a["sheet"]), str(a["out"]),
                 *FLAGS, *flags])  # fmt: skip


def _summary(a: dict[str, Path]) -> dict[str, dict[str, str]]:
    with open(a["out"] / "summary.csv", newline="") as fh:
        return {row["id"]: row for row in csv.DictReader(fh)}


def _mtimes(store: Path) -> dict[str, int]:
    return {str(p.relative_to(store)): p.stat().st_mtime_ns for p in store.rglob("*")}


def _level0(store: Path) -> np.ndarray:
    return zarr.open_array(str(store / "0"), mode="r")[...]


def _reference(a: dict[str, Path], name: str, **options) -> np.ndarray:
    """The single-image prediction of images/``name`` with the same options."""
    target = a["dir"] / "reference" / f"{name}.zarr"
    opts = predict.Options(tile=16, progress=False, overwrite=True, **options)
    predict.run(a["ckpt"], a["images"] / name, target, opts, log=lambda _: None)
    return _level0(target)


def test_each_image_equals_its_single_prediction_and_a_bad_one_is_its_rows_error(
    archive, capsys
) -> None:
    assert _archive(archive) == 1
    out, err = capsys.readouterr()
    rows = _summary(archive)
    assert list(rows) == ["a", "b", "c"]
    assert list(rows["a"]) == ["id", "path", "condition", "output", "shape", "tile", "chunks",
                               "computed", "seconds", "mpx_per_s", "status"]  # fmt: skip
    a, b, c = rows["a"], rows["b"], rows["c"]
    assert (a["condition"], b["condition"], b["path"]) == (
        "control",
        "treated",
        "images/b.ome.zarr",
    )
    assert (a["shape"], a["tile"], a["chunks"], a["computed"]) == ("40x52", "16x16", "12", "12")
    assert (b["shape"], b["tile"], b["chunks"], b["computed"]) == ("3x45x38", "1x16x16", "27", "27")
    assert a["status"] == b["status"] == "computed" and float(b["mpx_per_s"]) > 0
    assert c["status"].startswith("error: ") and "c.tif" in c["status"] and "TIFF" in c["status"]
    assert (c["shape"], c["chunks"], c["output"]) == ("", "", "c.ome.zarr")
    assert not (archive["out"] / "c.ome.zarr").exists()
    for name, store in [("a.tif", "a.ome.zarr"), ("b.ome.zarr", "b.ome.zarr")]:
        got = archive["out"] / store
        assert ngff.is_complete(got)
        assert np.array_equal(_level0(got), _reference(archive, name))
    assert "[1/3] a: computed 12 of 12 chunks" in out and "[3/3] c: error: " in out
    assert "out/summary.csv: 3 images, 2 computed, 0 skipped, 1 failed" in out
    assert err.strip().endswith("1 of 3 images failed (c); see " + f"{archive['out']}/summary.csv")


def test_rerun_skips_unchanged_images_and_recomputes_only_a_changed_one(archive, capsys) -> None:
    assert _archive(archive) == 1
    a, b = archive["out"] / "a.ome.zarr", archive["out"] / "b.ome.zarr"
    first = {"a": _mtimes(a), "b": _mtimes(b)}
    assert _archive(archive) == 1
    rows = _summary(archive)
    assert [rows[i]["status"] for i in "ab"] == ["skipped (unchanged)"] * 2
    assert (rows["b"]["computed"], rows["b"]["chunks"], rows["b"]["shape"]) == (
        "0",
        "27",
        "3x45x38",
    )
    assert rows["c"]["status"].startswith("error: ")
    assert {"a": _mtimes(a), "b": _mtimes(b)} == first
    new = _uint8((40, 52), 3)
    tifffile.imwrite(archive["images"] / "a.tif", new, photometric="minisblack")
    assert _archive(archive) == 1
    rows = _summary(archive)
    assert (rows["a"]["status"], rows["a"]["computed"]) == ("computed", "12")
    assert rows["b"]["status"] == "skipped (unchanged)" and _mtimes(b) == first["b"]
    assert np.array_equal(_level0(a), _reference(archive, "a.tif"))


def test_hash_skips_a_touched_input_that_size_and_mtime_take_for_changed(archive) -> None:
    assert _archive(archive, "--hash") == 1
    records = archive["out"] / "records"
    assert "sha256" in json.loads((records / "a.json").read_text())["input"]
    later = time.time() + 100
    os.utime(archive["images"] / "a.tif", (later, later))
    assert _archive(archive, "--hash") == 1  # same content: skipped, record takes the mtime
    assert _summary(archive)["a"]["status"] == "skipped (unchanged)"
    assert _archive(archive) == 1
    assert _summary(archive)["a"]["status"] == "skipped (unchanged)"
    chunk = next(p for p in (archive["images"] / "b.ome.zarr" / "0").rglob("*") if p.is_file())
    os.utime(chunk, (later, later))  # a zarr store is as new as its newest file
    assert _archive(archive) == 1
    rows = _summary(archive)
    assert (rows["a"]["status"], rows["b"]["status"]) == ("skipped (unchanged)", "computed")


def test_changed_parameters_or_checkpoint_recompute(archive) -> None:
    assert _archive(archive) == 1
    assert _archive(archive, "--dtype", "uint8") == 1
    rows = _summary(archive)
    assert [rows[i]["status"] for i in "ab"] == ["computed"] * 2
    got = _level0(archive["out"] / "a.ome.zarr")
    assert got.dtype == np.uint8 and np.array_equal(
        got, _reference(archive, "a.tif", dtype="uint8")
    )
    assert _archive(archive, "--dtype", "uint8", "--threads", "1") == 1  # runtime only: skipped
    assert [_summary(archive)[i]["status"] for i in "ab"] == ["skipped (unchanged)"] * 2
    _checkpoint(archive["ckpt"], seed=1)
    assert _archive(archive, "--dtype", "uint8") == 1
    assert [_summary(archive)[i]["status"] for i in "ab"] == ["computed"] * 2
    assert np.array_equal(
        _level0(archive["out"] / "b.ome.zarr"), _reference(archive, "b.ome.zarr", dtype="uint8")
    )


def test_all_good_exits_0_and_an_output_without_record_needs_overwrite(archive, capsys) -> None:
    good = archive["dir"] / "good.tsv"
    good.write_text(SHEET)
    foreign = archive["out"] / "a.ome.zarr"
    predict.run(archive["ckpt"], archive["images"] / "a.tif", foreign,
                predict.Options(tile=16, progress=False), log=lambda _: None)  # fmt: skip
    assert _archive(archive, sheet=good) == 1
    status = _summary(archive)["a"]["status"]
    assert "a.ome.zarr: exists and was not written from a sample sheet" in status
    assert "--overwrite" in status and ngff.is_complete(foreign)
    capsys.readouterr()
    assert _archive(archive, "--overwrite", sheet=good) == 0
    assert [_summary(archive)[i]["status"] for i in "ab"] == ["computed", "skipped (unchanged)"]
    out, err = capsys.readouterr()
    assert "2 images, 1 computed, 1 skipped, 0 failed" in out and err == ""


_KILLED = """
import sys
from unet.cli import main
sys.exit(main(["predict-archive", *sys.argv[1:]]))
"""


def test_sigkilled_image_resumes_its_chunks(archive) -> None:
    raw = _uint8((4, 128, 128), 4)
    zarr.create_array(str(archive["images"] / "big.zarr"), data=raw, chunks=(1, 64, 64))
    sheet = archive["dir"] / "big.tsv"
    sheet.write_text("id\tpath\nbig\timages/big.zarr\n")
    args = [str(archive["ckpt"]), str(sheet), str(archive["out"]), "--tile", "8", "--quiet",
            "--threads", "1"]  # fmt: skip
    records = archive["out"] / "big.ome.zarr" / "0" / RECORDS
    done = sigkill_when([sys.executable, "-c", _KILLED, *args], records, 50)
    assert (
        subprocess.run([sys.executable, "-c", _KILLED, *args], capture_output=True).returncode == 0
    )
    row = _summary(archive)["big"]
    assert (row["status"], row["chunks"], row["computed"]) == ("computed", "1024", str(1024 - done))
    whole = archive["dir"] / "whole.zarr"
    predict.run(archive["ckpt"], archive["images"] / "big.zarr", whole,
                predict.Options(tile=8, progress=False), log=lambda _: None)  # fmt: skip
    assert np.array_equal(_level0(archive["out"] / "big.ome.zarr"), _level0(whole))


@pytest.mark.parametrize(("text", "message"), [
    ("name\tpath\na\tx.tif\n", "line 1 (header): no column id"),
    ("id\tfile\na\tx.tif\n", "line 1 (header): no column path"),
    ("id\tpath\tstatus\na\tx.tif\tok\n", "'status' empty, repeated or reserved"),
    ("id\tpath\tid\na\tx.tif\ta\n", "'id' empty, repeated or reserved"),
    ("# images\nid\tpath\na\tx.tif\nb\ty.tif\na\tz.tif\n", "line 5: id 'a' repeats line 3"),
    ("id\tpath\nCell1\tx.tif\ncell1\ty.tif\n", "line 3: id 'cell1' repeats line 2"),
    ("id\tpath\n../a\tx.tif\n", "line 2: id '../a' is not safe as a file name"),
    ("id\tpath\na/b\tx.tif\n", "line 2: id 'a/b' is not safe"),
    ("id\tpath\n.a\tx.tif\n", "line 2: id '.a' is not safe"),
    ("id\tpath\na\tx.tif\textra\n", "line 2: 3 tab-separated field(s); expected 2"),
    ("id\tpath\na\t\n", "line 2: empty path"),
    ("id\tpath\n", "no image lines"),
    ("", "empty; expected a TSV header"),
])  # fmt: skip
def test_bad_sheet_is_a_one_line_error_naming_the_line(archive, capsys, text, message) -> None:
    archive["sheet"].write_text(text)
    with pytest.raises(InputError, match=r"sheet\.tsv"):
        read_sheet(archive["sheet"])
    assert _archive(archive) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and str(archive["sheet"]) in err
    assert not archive["out"].exists()


def test_sheet_paths_are_relative_to_its_folder_and_comments_are_skipped(archive) -> None:
    sheet = read_sheet(archive["sheet"])
    assert sheet.columns == ("id", "path", "condition")
    assert [(e.line, e.id) for e in sheet.entries] == [(3, "a"), (5, "b"), (6, "c")]
    assert sheet.entries[0].path.resolve() == (archive["images"] / "a.tif").resolve()
    assert sheet.entries[1].fields == {
        "id": "b",
        "path": "images/b.ome.zarr",
        "condition": "treated",
    }


def test_rule_predict_archive_runs_the_sheet_named_in_config(archive) -> None:
    from conftest import run_snakemake

    good = archive["dir"] / "good.tsv"
    good.write_text(SHEET)
    config = archive["dir"] / "archive.yaml"
    config.write_text(f"predict: {{checkpoint: {archive['ckpt']}, tile: 16, dtype: uint8}}\n"
                      "archive: {sheet: good.tsv, outdir: results/archive}\n")  # fmt: skip
    summary = "results/archive/summary.csv"  # relative to the working directory
    plan = run_snakemake(archive["dir"], summary, "-n", configfiles=(config,))
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert f"input: {archive['ckpt']}, good.tsv, images/a.tif, images/b.ome.zarr" in plan.stdout
    run = run_snakemake(archive["dir"], summary, configfiles=(config,),
                        allowed_rules=("predict_archive",))  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    with open(archive["dir"] / summary, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["id"], r["status"]) for r in rows] == [("a", "computed"), ("b", "computed")]
    got = _level0(archive["dir"] / "results/archive/b.ome.zarr")
    assert got.dtype == np.uint8 and got.shape == (3, 45, 38)
    log = (archive["dir"] / "results/logs/predict_archive.log").read_text()
    assert "[2/2] b: computed 27 of 27 chunks" in log
