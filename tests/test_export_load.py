"""``unet predict PACKAGE``: a bioimage.io package that ``unet export`` wrote, in place of a
checkpoint (unet/export_load.py, wired into unet.predict and unet.inference)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import zarr
from conftest import bioimageio, foreign_package

from unet import export
from unet.cli import main
from unet.model import UNet, save_checkpoint


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    image = (np.random.default_rng(4).random((2, 61, 53)) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "raw.tif", image, photometric="minisblack")
    return tmp_path / "raw.tif"


def _predict(model: Path, raw: Path, out: Path, *flags: str) -> int:
    return main(["predict", str(model), str(raw), str(out), "--tile", "16", "--quiet", *flags])


@pytest.mark.filterwarnings("ignore:`torch.jit.*:DeprecationWarning")
def test_predict_with_the_package_equals_the_checkpoint(tmp_path: Path, raw: Path) -> None:
    export.set_cache()
    bioimageio("bioimageio.spec")
    torch.manual_seed(1)
    ckpt, package = tmp_path / "m.pt", tmp_path / "m.zip"
    save_checkpoint(ckpt, UNet(base_channels=2, depth=3, dropout=0.0),
                    normalization={"kind": "dtype"})  # fmt: skip
    export.export(ckpt, package)
    folder = tmp_path / "unpacked"
    zipfile.ZipFile(package).extractall(folder)
    outputs = {}
    for name, model in (("ckpt", ckpt), ("zip", package), ("folder", folder)):
        assert _predict(model, raw, tmp_path / f"{name}.zarr", "--levels", "1") == 0
        outputs[name] = zarr.open_array(str(tmp_path / f"{name}.zarr" / "0"), mode="r")[...]
    assert np.array_equal(outputs["zip"], outputs["ckpt"])
    assert np.array_equal(outputs["folder"], outputs["ckpt"])
    attrs = json.loads((tmp_path / "zip.zarr" / "zarr.json").read_text())["attributes"]
    assert attrs["unet"]["provenance"]["checkpoint"] == str(package.resolve())
    # the archive mode takes it too
    sheet = tmp_path / "sheet.tsv"
    sheet.write_text(f"id\tpath\nimg\t{raw.name}\n")
    out = tmp_path / "archive"
    assert main(["predict-archive", str(package), str(sheet), str(out), "--tile", "16",
                 "--quiet"]) == 0  # fmt: skip
    got = zarr.open_array(str(out / "img.ome.zarr" / "0"), mode="r")[...]
    assert np.array_equal(got, outputs["ckpt"])


def test_predict_refuses_a_package_of_another_architecture(tmp_path, raw, capsys) -> None:
    package = foreign_package(tmp_path)
    assert _predict(package, raw, tmp_path / "out.zarr") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "another architecture (StarDist2D" in err
    assert str(package) in err and not (tmp_path / "out.zarr").exists()
