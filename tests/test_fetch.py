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
        (
            "slices",
            [
                "train-volume.tif): the split names 25 slices (up to index 24) but the data has "
                "30 slices (0-29)",
                "set datasets.isbi2012.split (config, or fetch --entry) to train/val/test ranges",
                "or to val_last/test_last counts (e.g. {val_last: 5})",
            ],
        ),
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
    entry = NO_HASH | ({"split": {"train": "0-19", "val": "20-24"}} if case == "slices" else {})
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
            json.dumps(entry),
            "--no-progress",
        ],
        *needles,
    )
    _no_output(out, "isbi2012")
    assert _digests(mirror) == before


def test_checksum_mismatch_against_the_registry(capsys, tmp_path) -> None:
    """Where the official hash is known, a mirror file must be the mirror copy or the official
    file."""
    mirror = _isbi_like(tmp_path / "mirror")
    out = tmp_path / "d"
    official = {"files": {"train-volume.tif": {"sha256": "0" * 64}}}
    argv = ["fetch", "isbi2012", "--out", str(out), "--mirror", str(mirror), "--no-progress"]
    _fails(
        capsys,
        [*argv, "--entry", json.dumps(official)],
        f"{mirror}/train-volume.tif: sha256 ",
        f"does not match the expected {'0' * 64} or ffd3f1d01cfe",
    )
    _no_output(out, "isbi2012")
    assert not list((out / "downloads").rglob("*.tif*"))


def test_mirror_file_unlike_the_mirror_copy_is_taken_as_the_official_one(caplog, tmp_path) -> None:
    """The official ISBI files' hashes are unknown: a mirror may hold them (30 slices here),
    so a file that is not the shared mirror copy is recorded in the lock file, with a note."""
    mirror = _isbi_like(tmp_path / "mirror", slices=30)
    out = tmp_path / "d"
    argv = ["fetch", "isbi2012", "--out", str(out), "--mirror", str(mirror), "--no-progress"]
    with caplog.at_level("WARNING", logger="unet.download"):
        assert main(argv) == 0
    lock = json.loads((out / "downloads" / "isbi2012" / "sha256.lock.json").read_text())["files"]
    assert {name: entry["sha256"] for name, entry in lock.items()} == _digests(mirror)
    notes = [r.getMessage() for r in caplog.records]
    assert len(notes) == 3 and all("is not the known mirror copy's" in n for n in notes)
    split = zarr.open_group(out / "isbi2012.zarr", mode="r").attrs["split"]
    assert split["val"] == list(range(25, 30))
    lock_before = _digests(out / "downloads")
    assert main(argv) == 0  # the cached files are checked against the lock file
    assert _digests(out / "downloads") == lock_before


@pytest.mark.parametrize("slices", [25, 30])
def test_isbi_split_fits_any_slice_count(tmp_path, slices) -> None:
    """The registry split (the last 5 slices validate) fits the shared 25 and the official 30."""
    mirror = _isbi_like(tmp_path / "mirror", slices=slices)
    out = tmp_path / "d"
    argv = ["fetch", "isbi2012", "--out", str(out), "--mirror", str(mirror), "--no-progress"]
    assert main([*argv, "--entry", json.dumps(NO_HASH), "--stores", "labelled"]) == 0
    split = zarr.open_group(out / "isbi2012.zarr", mode="r").attrs["split"]
    cut = slices - 5
    assert split == {"train": list(range(cut)), "val": list(range(cut, slices)), "test": []}


def test_corrupt_download_is_not_locked_in(capsys, tmp_path) -> None:
    """A corrupt TIFF with no known hash fails and is not recorded; once the source is fixed,
    a rerun succeeds with nothing edited by hand."""
    good = _isbi_like(tmp_path / "good")
    files = {f"/isbi/{p.name}": p.read_bytes() for p in good.iterdir()}
    whole = files["/isbi/train-volume.tif"]
    how = Behaviour(files={**files, "/isbi/train-volume.tif": whole[: len(whole) // 2]})
    out, cache = tmp_path / "d", tmp_path / "d" / "downloads" / "em"
    with serve(how) as url:
        entry = {
            "format": "isbi2012",
            "files": {
                name: {"url": f"{url}/isbi/{name}"}
                for name in ("train-volume.tif", "train-labels.tif", "test-volume.tif")
            },
        }
        argv = ["fetch", "em", "--out", str(out), "--entry", json.dumps(entry), "--no-progress"]
        _fails(
            capsys,
            argv,
            f"{url}/isbi/train-volume.tif: not a readable TIFF",
            "deleted, nothing recorded",
        )
        _no_output(out, "em")
        assert [p.name for p in cache.iterdir()] == []  # no file, no part, no lock file
        how.files["/isbi/train-volume.tif"] = whole  # the source is fixed
        assert main(argv) == 0
    lock = json.loads((cache / "sha256.lock.json").read_text())["files"]
    assert {name: entry["sha256"] for name, entry in lock.items()} == _digests(good)
    assert zarr.open_group(out / "em.zarr", mode="r")["raw"].shape == (25, 32, 32)


def test_corrupt_zip_is_not_locked_in(capsys, tmp_path) -> None:
    """A zip member failing its CRC test is caught at download, before the hash is recorded."""
    frame = np.arange(256, dtype=np.uint16).reshape(16, 16)
    entries = {"X/01/t000.tif": frame, "X/01_GT/SEG/man_seg000.tif": (frame > 99).astype(np.uint16)}
    zip_path = _ctc_zip(tmp_path / "mirror" / "Fluo-N2DH-CRC.zip", entries)
    whole = zip_path.read_bytes()
    at = whole.index(frame.tobytes()[:64])  # stored, not compressed: flip one bit
    zip_path.write_bytes(whole[:at] + bytes([whole[at] ^ 1]) + whole[at + 1 :])
    out = tmp_path / "d"
    argv = ["fetch", "Fluo-N2DH-CRC", "--out", str(out), "--mirror", str(tmp_path / "mirror")]
    _fails(
        capsys,
        [*argv, "--no-progress"],
        f"{zip_path}: corrupt zip archive (entry 'X/01/t000.tif' fails its CRC test)",
        "deleted, nothing recorded",
    )
    assert [p.name for p in (out / "downloads" / "Fluo-N2DH-CRC").iterdir()] == []
    zip_path.write_bytes(whole)  # the mirror is fixed
    assert main([*argv, "--no-progress"]) == 0
    lock = json.loads((out / "downloads" / "Fluo-N2DH-CRC" / "sha256.lock.json").read_text())
    assert lock["files"]["Fluo-N2DH-CRC.zip"]["sha256"] == sha256_file(zip_path)


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
    kept = sorted(p.name for p in (out / "downloads" / "Fluo-N2DH-BAD").iterdir())
    hostile = any(".." in name for name in entries)  # refused whole at download: not kept
    assert kept == ([] if hostile else ["Fluo-N2DH-BAD.zip", "sha256.lock.json"])


def test_ctc_has_no_test_store(capsys, tmp_path) -> None:
    _fails(
        capsys,
        ["fetch", "Fluo-N2DL-HeLa", "--out", str(tmp_path), "--stores", "test"],
        "dataset 'Fluo-N2DL-HeLa' (ctc) has no unlabelled test slices",
    )


def _partly_annotated_zip(
    path: Path, tra_shape: tuple[int, int] = (32, 32), frames: tuple[int, ...] = (0, 1)
) -> Path:
    """Frames with TRA markers for 3 cells: t000 annotates all, t001 one (1/3 covered),
    t002 none."""
    cells = np.zeros((32, 32), np.uint16)
    cells[2:8, 2:8], cells[12:18, 12:18], cells[24:30, 20:26] = 1, 2, 3
    raw = np.where(cells > 0, 900, 100).astype(np.uint16)
    markers = np.zeros(tra_shape, np.uint16)
    markers[: min(tra_shape[0], 32), :32] = cells[: tra_shape[0]]
    entries: dict[str, np.ndarray | bytes] = {}
    segs = [cells, np.where(cells == 1, 7, 0).astype(np.uint16), np.zeros_like(cells)]
    for t in frames:
        seg = segs[t]
        entries[f"X/01/t00{t}.tif"] = raw
        entries[f"X/01_GT/SEG/man_seg00{t}.tif"] = seg
        entries[f"X/01_GT/TRA/man_track00{t}.tif"] = markers
    return _ctc_zip(path, entries)


def test_ctc_min_annotated_and_ignore_flags(capsys, tmp_path) -> None:
    mirror = tmp_path / "mirror"
    _partly_annotated_zip(mirror / "Fluo-N2DH-PART.zip")
    base = ["fetch", "Fluo-N2DH-PART", "--mirror", str(mirror), "--no-progress"]
    assert main([*base, "--out", str(tmp_path / "a"), "--min-annotated", "0.5"]) == 0
    printed = capsys.readouterr().out
    assert "ignore mask (tra) of unannotated cells" in printed
    assert "1 frames dropped (min_annotated 0.5)" in printed
    root = zarr.open_group(tmp_path / "a" / "Fluo-N2DH-PART.zarr", mode="r")
    assert root.attrs["frames"] == ["01/t000"] and root["ignore"].shape == (1, 32, 32)
    assert root.attrs["ignore"]["dropped"] == {"01/t001": pytest.approx(1 / 3, abs=1e-4)}
    assert root.attrs["ignore"]["annotated_fraction"] == [1.0] and not root["ignore"][0].any()
    assert main([*base, "--out", str(tmp_path / "b"), "--ignore", "none"]) == 0
    root = zarr.open_group(tmp_path / "b" / "Fluo-N2DH-PART.zarr", mode="r")
    assert "ignore" not in root and root.attrs["ignore"] == {"method": "none"}
    assert root.attrs["frames"] == ["01/t000", "01/t001"]


@pytest.mark.parametrize(
    ("flags", "needles"),
    [
        (["--min-annotated", "1.5"], ["min_annotated: expected a fraction in [0, 1], got 1.5"]),
        (["--ignore", "none", "--min-annotated", "0.5"], ["needs an ignore method"]),
        (["--marker-radius", "-2"], ["ignore marker_radius: expected a number >= 0"]),
        (["--ignore", "tra"], ["argument --ignore: invalid choice: 'tra'"]),
    ],
)
def test_bad_ctc_options_are_one_line_errors(capsys, tmp_path, flags, needles) -> None:
    mirror = tmp_path / "mirror"
    _partly_annotated_zip(mirror / "Fluo-N2DH-PART.zip")
    out = tmp_path / "d"
    argv = ["fetch", "Fluo-N2DH-PART", "--out", str(out), "--mirror", str(mirror), *flags]
    if "tra" in flags:  # argparse's own usage error
        with pytest.raises(SystemExit):
            main(argv)
        assert needles[0] in capsys.readouterr().err
    else:
        _fails(capsys, argv, *needles)
    _no_output(out, "Fluo-N2DH-PART")


def test_ctc_no_frame_covered_enough_or_bad_markers(capsys, tmp_path) -> None:
    mirror = tmp_path / "mirror"
    _partly_annotated_zip(mirror / "Fluo-N2DH-PART.zip", frames=(0, 1, 2))
    out = tmp_path / "d"
    base = ["fetch", "Fluo-N2DH-PART", "--out", str(out), "--mirror", str(mirror), "--no-progress"]
    assert main([*base, "--min-annotated", "0.2"]) == 0  # t002 annotates none of its cells
    root = zarr.open_group(out / "Fluo-N2DH-PART.zarr", mode="r")
    assert root.attrs["ignore"]["dropped"] == {"01/t002": 0.0}
    assert root.attrs["ignore"]["methods"] == ["tra", "tra"]
    assert root.attrs["split"]["train"] + root.attrs["split"]["val"] in ([0, 1], [1, 0])
    bad = tmp_path / "bad"
    _partly_annotated_zip(bad / "Fluo-N2DH-PART.zip", tra_shape=(8, 32))
    argv = ["fetch", "Fluo-N2DH-PART", "--out", str(tmp_path / "e"), "--mirror", str(bad)]
    argv.append("--no-progress")
    _fails(capsys, argv, "man_track000.tif: uint16 (8, 32); expected integer ids of shape "
           "(32, 32) like its frame t000.tif")  # fmt: skip
    _no_output(tmp_path / "e", "Fluo-N2DH-PART")
    one = tmp_path / "one"
    _partly_annotated_zip(one / "Fluo-N2DH-PART.zip", frames=(1, 2))
    argv = ["fetch", "Fluo-N2DH-PART", "--out", str(tmp_path / "f"), "--mirror", str(one)]
    _fails(capsys, [*argv, "--no-progress", "--min-annotated", "0.5"],
           "Fluo-N2DH-PART: no frame's annotation covers min_annotated=0.5 of its foreground "
           "(the best covers 0.333)")  # fmt: skip
    _no_output(tmp_path / "f", "Fluo-N2DH-PART")


def test_snakemake_fetch_passes_the_ctc_section(tmp_path) -> None:
    from conftest import run_snakemake

    _partly_annotated_zip(tmp_path / "mirror" / "Fluo-N2DH-PART.zip")
    config = tmp_path / "ctc.yaml"
    config.write_text(
        f"dataset: Fluo-N2DH-PART\ndownload:\n  mirror: {tmp_path / 'mirror'}\n"
        "ctc:\n  min_annotated: 0.5\n  marker_radius: 4\n"
    )
    target = "results/data/Fluo-N2DH-PART.zarr"
    run = run_snakemake(tmp_path, target, configfiles=(config,), allowed_rules=("fetch",))
    assert run.returncode == 0, run.stderr[-3000:]
    info = zarr.open_group(tmp_path / target, mode="r").attrs["ignore"]
    assert (info["min_annotated"], info["marker_radius"]) == (0.5, 4.0)
    assert list(info["dropped"]) == ["01/t001"]
