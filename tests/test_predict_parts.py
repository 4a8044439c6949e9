"""Scattered prediction (``unet predict --part K/N``, ``--gather``): unet/predict_parts.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import zarr
from conftest import run_snakemake, sigkill_when

from unet import predict_parts as parts
from unet.cli import main
from unet.errors import InputError
from unet.inference import RECORDS
from unet.io import create_exclusive
from unet.model import UNet, save_checkpoint


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Path]:
    """A bare width-2 checkpoint and a uint8 (Z, Y, X) TIFF stack of odd size."""
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "m.pt", UNet(in_channels=1, num_classes=2, base_channels=2,
                                            depth=3))  # fmt: skip
    raw = (np.random.default_rng(9).random((3, 90, 77)) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "raw.tif", raw, photometric="minisblack")
    return {"dir": tmp_path, "ckpt": tmp_path / "m.pt", "tif": tmp_path / "raw.tif"}


def _args(setup, target: Path, *flags: str) -> list[str]:
    return ["predict", str(setup["ckpt"]), str(setup["tif"]), str(target), "--quiet",
            "--tile", "16", "--levels", "1", "--threads", "1", *flags]  # fmt: skip


def _chunks(store: Path) -> dict[str, bytes]:
    """Every file of the store but the root metadata (chunks and array metadata)."""
    files = (p for p in store.rglob("*") if p.is_file() and p != store / "zarr.json")
    return {str(p.relative_to(store)): p.read_bytes() for p in files}


def _unet(store: Path) -> dict:
    return json.loads((store / "zarr.json").read_text())["attributes"]["unet"]


def test_parts_cover_the_batches_once_in_contiguous_ranges() -> None:
    for groups, n in [(10, 3), (3, 3), (2, 5), (1000, 7)]:
        ranges = [parts.groups_of((k, n), groups) for k in range(1, n + 1)]
        assert np.array_equal(np.concatenate(ranges), np.arange(groups))
        sizes = [len(r) for r in ranges]
        assert max(sizes) - min(sizes) <= 1
    assert parts.parse("2/3") == (2, 3)
    for bad in ("0/3", "4/3", "3", "a/b", "1/0"):
        with pytest.raises(InputError, match="expected K/N"):
            parts.parse(bad)


def test_three_concurrent_parts_then_gather_equal_one_run(setup, capsys) -> None:
    whole, scattered = setup["dir"] / "whole.zarr", setup["dir"] / "scattered.zarr"
    assert main(_args(setup, whole)) == 0
    procs = [subprocess.Popen([sys.executable, "-m", "unet", *_args(setup, scattered,
             "--part", f"{k}/3")]) for k in (1, 2, 3)]  # fmt: skip
    assert [p.wait() for p in procs] == [0, 0, 0]
    staging = setup["dir"] / "scattered.zarr.parts"
    assert sorted(p.name for p in staging.iterdir()) == [
        "1-of-3.json", "2-of-3.json", "3-of-3.json", "store.zarr"]  # fmt: skip
    assert not scattered.exists()  # TARGET appears only when gathered
    capsys.readouterr()
    assert main(_args(setup, scattered, "--gather")) == 0
    assert "gathered 90 chunks" in capsys.readouterr().out
    assert not staging.exists() and _chunks(scattered) == _chunks(whole)
    a, b = _unet(whole), _unet(scattered)
    assert b["complete"] and {k: v for k, v in a.items() if k != "run"} == {
        k: v for k, v in b.items() if k != "run"}  # fmt: skip
    assert (b["run"]["parts"], b["run"]["chunks"], b["run"]["computed"]) == (3, 90, 90)
    assert not (scattered / "0" / RECORDS).exists()
    assert main(_args(setup, scattered, "--gather")) == 0  # again: nothing to do
    assert "is complete; nothing to gather" in capsys.readouterr().out


def test_gather_before_every_part_names_the_missing_ones(setup, capsys) -> None:
    target = setup["dir"] / "out.zarr"
    assert main(_args(setup, target, "--gather")) == 2
    err = capsys.readouterr().err
    assert "run the parts first" in err and len(err.strip().splitlines()) == 1
    assert main(_args(setup, target, "--part", "2/3")) == 0
    capsys.readouterr()
    assert main(_args(setup, target, "--gather")) == 2
    err = capsys.readouterr().err.strip()
    assert "60 of 90 chunks are not written (parts without a record: 1/3, 3/3)" in err
    assert len(err.splitlines()) == 1 and not target.exists()


@pytest.mark.parametrize("flags, message", [
    (("--part", "4/3"), "expected K/N with 1 <= K <= N"),
    (("--part", "1/2", "--gather"), "not allowed with argument"),
])  # fmt: skip
def test_bad_part_flags_are_refused(setup, capsys, flags, message) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(_args(setup, setup["dir"] / "out.zarr", *flags))
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_a_part_needs_a_tile_and_the_parameters_of_the_others(setup, capsys) -> None:
    target = setup["dir"] / "out.zarr"
    args = ["predict", str(setup["ckpt"]), str(setup["tif"]), str(target), "--quiet"]
    assert main([*args, "--part", "1/2"]) == 2
    assert "expected --tile (every part must cut the same tiles)" in capsys.readouterr().err
    assert main(_args(setup, target, "--part", "1/2")) == 0
    assert main(_args(setup, target, "--part", "2/2", "--tta")) == 2
    err = capsys.readouterr().err
    assert "written with other parameters (tta)" in err and "to start the parts over" in err


_KILLED = """\
import sys
import unet.inference as inference
from unet.cli import main

real = inference.run_groups
def slow(job, groups):
    import time
    time.sleep(0.05)
    return real(job, groups)
inference.run_groups = slow
sys.exit(main(sys.argv[1:]))
"""


def test_a_killed_part_resumes_its_own_range(setup) -> None:
    target = setup["dir"] / "out.zarr"
    records = parts.store(target) / "0" / RECORDS
    cmd = [sys.executable, "-c", _KILLED, *_args(setup, target, "--part", "2/3",
           "--scheduler", "sync")]  # fmt: skip
    done = sigkill_when(cmd, records, 5)
    assert 5 <= done < 30 and not parts.record_path(target, (2, 3)).exists()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    assert f"part 2/3 has 30: {done} done, {30 - done} to compute" in out
    assert len(os.listdir(records)) == 30  # only part 2's range: chunks 30-59
    assert json.loads(parts.record_path(target, (2, 3)).read_text())["computed"] == 30 - done


def test_create_exclusive_never_replaces_what_another_writer_made(tmp_path: Path) -> None:
    path = tmp_path / "store.zarr"
    assert create_exclusive(path, lambda tmp: zarr.open_group(str(tmp), mode="w"))
    (path / "mine").write_text("kept")

    def late(tmp: Path) -> None:  # another writer that started before `path` appeared
        zarr.open_group(str(tmp), mode="w")

    assert not create_exclusive(path, late)
    assert (path / "mine").read_text() == "kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.zarr"]  # no leftovers


def test_workflow_scatters_prediction_over_part_jobs(tmp_path: Path) -> None:
    plan = run_snakemake(tmp_path, "-n", "-p", "--config", "predict={parts: 3, tile: 64}")
    assert plan.returncode == 0, plan.stderr[-3000:]
    table = plan.stdout.split("Job stats:")[1].split("\ntotal")[0]
    counts = {line.split()[0]: int(line.split()[1]) for line in table.splitlines()[3:] if line}
    assert counts["predict_part"] == 3 and counts["predict_gather"] == 1
    assert "predict" not in counts
    assert "--part 2/3" in plan.stdout and "--gather" in plan.stdout
    no_tile = run_snakemake(tmp_path, "-n", "--config", "predict={parts: 3}")
    assert no_tile.returncode != 0
    assert "On instance['predict']['tile']" in no_tile.stdout + no_tile.stderr
