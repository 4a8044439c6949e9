"""``unet fetch``: mirror (flag, env, URL), and every bad input as a one-line error
with nothing left at the output path and the mirror untouched."""

from __future__ import annotations

import io
import json
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from _http_server import Behaviour, serve

from unet.cli import main
from unet.download import sha256_file

NO_HASH = {
    "files": {
        n: {"mirror_sha256": None}
        for n in ("train-volume.tif", "train-labels.tif", "test-volume.tif")
    }
}


def _isbi_like(folder: Path, slices: int = 25, labels: np.ndarray | None = None) -> Path:
    """A tiny mirror with the ISBI file names (25 slices of 32x32)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    cells = np.where(rng.random((slices, 32, 32)) < 0.7, 255, 0).astype(np.uint8)
    tifffile.imwrite(folder / "train-volume.tif", rng.integers(0, 256, (slices, 32, 32), np.uint8))
    tifffile.imwrite(folder / "train-labels.tif", cells if labels is None else labels)
    tifffile.imwrite(
        folder / "test-volume.tif",
        rng.integers(0, 256, (4, 32, 32), np.uint8),
        photometric="minisblack",
    )
    return folder


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): sha256_file(p) for p in folder.rglob("*") if p.is_file()}


def _fails(capsys, argv: list[str], *needles: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("unet fetch: error: "), err
    for needle in needles:
        assert needle in err, err
    return err


def _no_output(out: Path, name: str) -> None:
    left = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert left in ([], ["downloads"]), left  # no store, no hidden partial store


def test_unknown_dataset(capsys, tmp_path) -> None:
    _fails(
        capsys,
        ["fetch", "Fluo-N3DH-CE", "--out", str(tmp_path / "d")],
        "unknown dataset 'Fluo-N3DH-CE'; expected isbi2012, synthetic",
    )
    assert not (tmp_path / "d").exists()


def test_missing_mirror_folder_is_named(capsys, tmp_path) -> None:
    out = tmp_path / "d"
    _fails(
        capsys,
        ["fetch", "isbi2012", "--out", str(out), "--mirror", str(tmp_path / "nope")],
        f"mirror {tmp_path / 'nope'}: no such folder",
    )
    _no_output(out, "isbi2012")


def test_mirror_from_env_and_stores(monkeypatch, tmp_path) -> None:
    mirror = _isbi_like(tmp_path / "mirror" / "isbi2012")
    monkeypatch.setenv("UNET_DATA_MIRROR", str(tmp_path / "mirror"))
    out = tmp_path / "d"
    argv = ["fetch", "isbi2012", "--out", str(out), "--entry", json.dumps(NO_HASH), "--no-progress"]
    assert main([*argv, "--stores", "test"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["downloads", "isbi2012-test.zarr"]
    assert main([*argv, "--stores", "labelled"]) == 0
    assert zarr.open_group(out / "isbi2012.zarr", mode="r")["raw"].shape == (25, 32, 32)
    lock = json.loads((out / "downloads" / "isbi2012" / "sha256.lock.json").read_text())["files"]
    assert lock["train-volume.tif"]["sha256"] == sha256_file(mirror / "train-volume.tif")


def test_console_script_prints_the_stores(tmp_path) -> None:
    run = subprocess.run(
        [
            "unet",
            "fetch",
            "synthetic",
            "--out",
            str(tmp_path),
            "--slices",
            "3",
            "--size",
            "64",
            "--cell-diameter",
            "12",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert (
        f"{tmp_path}/synthetic.zarr: raw (3, 64, 64) uint8, instances (3, 64, 64) uint32"
        in run.stdout
    )
    assert "split train 2 / val 1 / test 0" in run.stdout


@pytest.mark.parametrize(
    ("case", "needles"),
    [
        ("truncated", ["train-volume.tif: ", "TIFF"]),
        (
            "mismatch",
            ["train-labels.tif: shape (24, 32, 32) does not match train-volume.tif (25, 32, 32)"],
        ),
        ("slices", ["the split names 25 slices (up to index 24) but the data has 30 slices"]),
        (
            "labels",
            ["train-labels.tif: expected binary labels (cell > 0, membrane 0), found 3 values"],
        ),
    ],
)
def test_bad_isbi_inputs(capsys, tmp_path, case, needles) -> None:
    mirror = tmp_path / "mirror"
    if case == "slices":
        _isbi_like(mirror, slices=30)
    elif case == "mismatch":
        _isbi_like(mirror, labels=np.full((24, 32, 32), 255, np.uint8))
    elif case == "labels":
        _isbi_like(
            mirror, labels=np.tile(np.array([0, 128, 255], np.uint8), (25, 32, 11))[:, :, :32]
        )
    else:
        data = (_isbi_like(mirror) / "train-volume.tif").read_bytes()
        (mirror / "train-volume.tif").write_bytes(data[: len(data) // 2])
    before = _digests(mirror)
    out = tmp_path / "d"
    _fails(
        capsys,
        [
            "fetch",
            "isbi2012",
            "--out",
            str(out),
            "--mirror",
            str(mirror),
            "--entry",
            json.dumps(NO_HASH),
            "--no-progress",
        ],
        *needles,
    )
    _no_output(out, "isbi2012")
    assert _digests(mirror) == before


def test_checksum_mismatch_against_the_registry(capsys, tmp_path) -> None:
    mirror = _isbi_like(tmp_path / "mirror")
    out = tmp_path / "d"
    _fails(
        capsys,
        ["fetch", "isbi2012", "--out", str(out), "--mirror", str(mirror), "--no-progress"],
        f"{mirror}/train-volume.tif: sha256 ",
        "does not match the expected ffd3f1d01cfe",
    )
    _no_output(out, "isbi2012")
    assert not list((out / "downloads").rglob("*.tif*"))


def test_http_404_and_timeout(capsys, tmp_path) -> None:
    how = Behaviour(files={"/slow/a.tif": b"x"})
    with serve(how) as url:
        entry = {
            "format": "isbi2012",
            "files": {
                "train-volume.tif": {"url": f"{url}/gone/train-volume.tif"},
                "train-labels.tif": {"url": f"{url}/slow/a.tif"},
            },
        }
        argv = [
            "fetch",
            "em",
            "--out",
            str(tmp_path / "d"),
            "--entry",
            json.dumps(entry),
            "--no-progress",
            "--retries",
            "1",
            "--backoff",
            "0.01",
            "--timeout",
            "0.2",
        ]
        _fails(
            capsys, argv, "train-volume.tif: not found; tried", "/gone/train-volume.tif: HTTP 404"
        )
        entry["files"]["train-volume.tif"]["url"] = f"{url}/slow/a.tif"
        how.delay = 0.6
        argv[argv.index("--entry") + 1] = json.dumps(entry)
        _fails(capsys, argv, "/slow/a.tif: download failed after 2 tries: timed out")
    _no_output(tmp_path / "d", "em")


def _ctc_zip(path: Path, entries: dict[str, np.ndarray | bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            if isinstance(data, np.ndarray):
                buffer = io.BytesIO()
                tifffile.imwrite(buffer, data)
                data = buffer.getvalue()
            zf.writestr(name, data)
    return path


FRAME = np.ones((16, 16), np.uint16)


@pytest.mark.parametrize(
    ("entries", "needles"),
    [
        (
            {"X/01/t000.tif": FRAME},
            ["no segmentation ground truth; expected the Cell Tracking Challenge layout"],
        ),
        (
            {"X/01_GT/SEG/man_seg000.tif": FRAME},
            ["X/01_GT/SEG/man_seg000.tif has no raw frame; expected X/01/t000.tif"],
        ),
        (
            {"X/01/t000.tif": FRAME, "X/01_GT/SEG/man_seg000.tif": np.ones((8, 16), np.uint16)},
            ["man_seg000.tif: uint16 (8, 16); expected integer ids of shape (16, 16) like its"],
        ),
        (
            {"X/01/t000.tif": FRAME, "X/01_GT/SEG/man_seg000.tif": FRAME, "X/../../evil.tif": b"x"},
            ["refusing entry 'X/../../evil.tif' with a '..' component"],
        ),
        (
            {"X/01/t000.tif": b"not a tiff", "X/01_GT/SEG/man_seg000.tif": FRAME},
            ["X/01/t000.tif: not a readable TIFF"],
        ),
    ],
)
def test_bad_ctc_zips(capsys, tmp_path, entries, needles) -> None:
    mirror = tmp_path / "mirror"
    _ctc_zip(mirror / "Fluo-N2DH-BAD.zip", entries)
    before = _digests(mirror)
    out = tmp_path / "d"
    _fails(
        capsys,
        ["fetch", "Fluo-N2DH-BAD", "--out", str(out), "--mirror", str(mirror), "--no-progress"],
        *needles,
    )
    _no_output(out, "Fluo-N2DH-BAD")
    assert _digests(mirror) == before and not (tmp_path / "evil.tif").exists()
    assert [p.name for p in (out / "downloads" / "Fluo-N2DH-BAD").iterdir()] in (
        ["Fluo-N2DH-BAD.zip", "sha256.lock.json"],
        ["sha256.lock.json", "Fluo-N2DH-BAD.zip"],
    )


def test_ctc_has_no_test_store(capsys, tmp_path) -> None:
    _fails(
        capsys,
        ["fetch", "Fluo-N2DL-HeLa", "--out", str(tmp_path), "--stores", "test"],
        "dataset 'Fluo-N2DL-HeLa' (ctc) has no unlabelled test slices",
    )
