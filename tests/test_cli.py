"""The ``unet`` console script: version, info, error reporting."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from unet import __version__
from unet.cli import main


def test_version_via_console_script() -> None:
    run = subprocess.run(["unet", "--version"], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == f"unet {__version__}"


def test_info_json_reports_versions_device_and_model(tmp_path) -> None:
    out = tmp_path / "info.json"
    assert main(["info", "--json", "--model", "--out", str(out)]) == 0
    info = json.loads(out.read_text())
    assert info["packages"]["torch"].startswith("2.")
    assert info["device"] in {"cuda", "mps", "cpu"}
    assert info["threads"] >= 1
    assert info["model"]["parameters"] == 31_030_658
    assert (info["model"]["halo"], info["model"]["tile_input"], info["model"]["tile_output"]) == (
        92, 572, 388,
    )  # fmt: skip


def test_info_text_lists_packages() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "unet", "info"], capture_output=True, text=True, check=True
    )
    assert "snakemake: 9." in run.stdout and "device:" in run.stdout


def test_bad_model_value_is_one_line_error(capsys) -> None:
    assert main(["info", "--model", "--depth", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "unet info: error: depth must be a positive integer, got 0"


def test_os_errors_are_one_line_errors(tmp_path, capsys) -> None:
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "keep.txt").write_text("x")
    assert main(["info", "--json", "--out", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("unet info: error: ") and "not a zarr store" in err
    assert len(err.splitlines()) == 1 and (folder / "keep.txt").exists()


def test_a_bug_keeps_its_traceback(monkeypatch) -> None:
    """Only InputError and missing files are user errors; a ValueError from a bug propagates."""
    import unet.cli.info

    def broken(*args, **kwargs):
        raise ValueError("an internal bug")

    monkeypatch.setattr(unet.cli.info, "collect", broken)
    with pytest.raises(ValueError, match="an internal bug"):
        main(["info", "--json"])


def test_input_error_is_one_line(monkeypatch, capsys) -> None:
    import unet.cli.info
    from unet.errors import InputError

    def refuse(*args, **kwargs):
        raise InputError("data.tif: expected a 2-D image")

    monkeypatch.setattr(unet.cli.info, "collect", refuse)
    assert main(["info", "--json"]) == 2
    assert capsys.readouterr().err == "unet info: error: data.tif: expected a 2-D image\n"
