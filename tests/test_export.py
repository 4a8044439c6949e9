"""bioimage.io export (``unet export``) and the way back (:func:`unet.export_load.load_package`).

The package's network (unet/export_arch.py, self-contained) must be ours: the same state
dict keys and logits, the same when scripted. Packages are checked with bioimageio.core's
own model test, offline, for both weight formats, and predicted block-wise by
bioimageio.core against our predictor. Tests that need the optional extra skip with the
reason where it is absent; the architecture, halo and bad-input tests need no extra.
"""

from __future__ import annotations

import ast
import json
import socket
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import yaml
import zarr
from conftest import bioimageio, foreign_package

from unet import export, export_load, shapes
from unet.cli import main
from unet.errors import InputError
from unet.export_arch import UNet as ArchUNet
from unet.export_arch import UNetForeground
from unet.export_docs import PAPER_DOI
from unet.inference import predict_array
from unet.model import UNet, save_checkpoint
from unet.normalize import resolve
from unet.predict import Options, run

FORMATS = ("pytorch_state_dict", "torchscript")
PERCENTILE = {"kind": "percentile", "low": 1.0, "high": 99.8, "clip": True}
# torch 2.13 deprecates TorchScript, which the bioimage.io format still names
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*:DeprecationWarning")


def _core():
    """bioimageio.core, imported with our cache setting (skip without the extra)."""
    export.set_cache()
    return bioimageio("bioimageio.core")


def _model(seed: int = 0, **config) -> UNet:
    torch.manual_seed(seed)
    return UNet(**{"base_channels": 2, "depth": 3, "dropout": 0.0, **config}).eval()


def _image(shape: tuple[int, ...], dtype: str, seed: int = 0) -> np.ndarray:
    """A smooth random image over most of the ``dtype``'s range (uint16: a narrow band)."""
    from scipy import ndimage

    smooth = ndimage.gaussian_filter(np.random.default_rng(seed).random(shape), 2)
    smooth = (smooth - smooth.min()) / np.ptp(smooth)
    return (smooth * 250).astype(dtype) if dtype == "uint8" else (3000 + smooth * 900).astype(dtype)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No network: every connection and name lookup fails."""

    def refuse(*args, **kwargs):
        raise OSError("no network in this test")

    for name in ("create_connection", "getaddrinfo"):
        monkeypatch.setattr(socket, name, refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path, Path]]:
    """(checkpoint, package, sample TIFF) of a 2-D dtype-scaled model of depth 4 (synthetic
    test input), a 2-D percentile-scaled one of depth 3 (uint16 sample) and a 3-D one."""
    _core()
    root = tmp_path_factory.mktemp("packages")
    cases = {
        "dtype": ({"kind": "dtype"}, {"depth": 4}, None),  # halo 48, shift 4, sizes 104 + 8n
        "percentile": (PERCENTILE, {}, _image((90, 70), "uint16")),
        "3d": ({"kind": "dtype"}, {"dims": 3, "depth": 2}, None),
    }
    out = {}
    for name, (spec, config, sample) in cases.items():
        ckpt, zipped, tif = root / f"{name}.pt", root / f"{name}.zip", root / f"{name}.tif"
        save_checkpoint(ckpt, _model(**config), normalization=spec)
        if sample is not None:
            tifffile.imwrite(tif, sample, photometric="minisblack")
        export.export(ckpt, zipped, sample=tif if sample is not None else None)
        out[name] = (ckpt, zipped, tif)
    return out


# --- the architecture file and the halo (no extra needed) ---------------------------------


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"padding": "same", "norm": "batch"},
        {"dims": 3, "depth": 2},
        {"depth": 4, "dropout": 0.5},
    ],
)
def test_architecture_file_is_our_network(config) -> None:
    ours = _model(**config)
    depth, padding, dims = ours.config["depth"], ours.config["padding"], ours.config["dims"]
    _, shift, first = export.package_geometry(depth, padding)
    net = UNetForeground(**ours.config, shift=shift).eval()
    assert list(net.state_dict()) == list(ours.state_dict())
    net.load_state_dict(ours.state_dict())
    scripted = torch.jit.script(net)
    x = torch.rand(2, 1, *(first + shapes.step(depth),) * dims)
    valid = x[:, :, *(slice(0, shapes.valid_inputs_near(1, depth, padding)[1]),) * dims]
    with torch.no_grad():
        assert torch.equal(ArchUNet.logits(net, valid), ours(valid))
        assert torch.equal(scripted(x), net(x))
        for n in (first, first + shapes.step(depth), first + 1):  # package sizes, and another
            one = x[:1, :, *(slice(0, n),) * dims]
            assert np.array_equal(
                scripted(one).numpy(), export._expected(ours, one[0, 0].numpy(), shift)
            )
    assert (net.first, net.step) == (
        shapes.valid_inputs_near(1, depth, padding)[1],
        shapes.step(depth),
    )


def test_architecture_file_imports_torch_alone(repo: Path) -> None:
    tree = ast.parse((repo / "unet" / "export_arch.py").read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert {name.split(".")[0] for name in names} == {"__future__", "math", "torch"}


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_package_geometry_puts_every_block_on_our_pooling_grid(padding: str) -> None:
    for depth in range(1, 7):
        s, first = shapes.step(depth), shapes.valid_inputs_near(1, depth, padding)[1]
        before, after = shapes.margins(depth, padding)
        halo, shift, size = export.package_geometry(depth, padding)
        assert halo >= max(before, after) and size % s == 0 and 2 * halo % s == 0
        assert (halo - shift - before) % s == 0  # the network's grid is unet predict's
        assert shift + before <= halo  # its output starts before the part kept
        for n in (size, size + s, size + 2 * s, size + 2 * halo):  # blocks, a padded image
            window = shapes.valid_inputs_near(n - shift, depth, padding)[0]
            assert window is not None and shift + window - after >= n - halo, (depth, n)
        smaller = size - s  # the minimum is the smallest size that keeps a pixel
        assert size - 2 * halo >= 1 and (smaller - 2 * halo < 1 or smaller - shift < first)
    assert [export.package_geometry(d, "valid") for d in (2, 3, 5)] == [
        (8, 0, 18), (20, 0, 44), (96, 4, 208),
    ]  # fmt: skip


# --- bad input (no extra needed) -----------------------------------------------------------


@pytest.mark.parametrize("case", ["not-unet", "text", "missing", "package", "group", "exists",
                                  "suffix", "same", "metrics"])  # fmt: skip
def test_bad_input_is_one_line_exit_2_and_no_package(tmp_path, capsys, case: str) -> None:
    ckpt, out = tmp_path / "m.pt", tmp_path / "out.zip"
    save_checkpoint(ckpt, _model(), normalization={"kind": "dtype"})
    if case == "not-unet":
        torch.save({"weights": torch.zeros(3)}, ckpt)
    elif case == "text":
        ckpt.write_text("not a checkpoint\n")
    elif case == "missing":
        ckpt.unlink()
    elif case == "package":
        ckpt = tmp_path / "other.zip"
        zipfile.ZipFile(ckpt, "w").close()
    elif case == "group":  # consumers tile; group normalisation cannot be tiled
        save_checkpoint(ckpt, _model(norm="group"), normalization={"kind": "dtype"})
    elif case == "exists":
        out.write_bytes(b"kept")
    elif case == "suffix":
        out = tmp_path / "out.tar"
    elif case == "same":
        out = ckpt
    metrics = tmp_path / "eval.json"
    metrics.write_text('{"metrics": {}}' if case != "metrics" else "pixel_error: 0.06\n")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert main(["export", str(ckpt), str(out), "--metrics", str(metrics)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("unet export: error: ") and err.count("\n") == 1, err
    named = {"exists": out, "suffix": out, "same": out, "metrics": metrics}.get(case, ckpt)
    assert str(named) in err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_without_the_extra_export_says_how_to_install_it(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "bioimageio.spec", None)  # as if not installed
    ckpt = tmp_path / "m.pt"
    save_checkpoint(ckpt, _model(), normalization={"kind": "dtype"})
    assert main(["export", str(ckpt), str(tmp_path / "m.zip")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install -e '.[bioimageio]'" in err
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_a_package_of_another_architecture_is_refused(tmp_path: Path) -> None:
    path = foreign_package(tmp_path)
    folder = tmp_path / "unpacked"
    zipfile.ZipFile(path).extractall(folder)
    for package in (path, folder):
        assert export_load.is_package(package)
        with pytest.raises(InputError, match="another architecture") as err:
            export_load.load_package(package)
        assert str(package) in str(err.value) and "StarDist2D" in str(err.value)
    (tmp_path / "broken.zip").write_text("not a zip")
    with pytest.raises(InputError, match="not a zip file"):
        export_load.load_package(tmp_path / "broken.zip")
    with zipfile.ZipFile(tmp_path / "empty.zip", "w") as zf:
        zf.writestr("README.md", "")
    with pytest.raises(InputError, match=r"no model rdf\.yaml"):
        export_load.load_package(tmp_path / "empty.zip")


# --- the packages, tested by bioimageio.core -----------------------------------------------


@pytest.mark.parametrize("weight_format", FORMATS)
@pytest.mark.parametrize("case", ["dtype", "percentile", "3d"])
def test_bioimageio_model_test_passes_offline(packages, offline, case, weight_format) -> None:
    core = _core()
    summary = core.test_model(packages[case][1], weight_format=weight_format, devices=["cpu"])
    assert summary.status == "passed", summary.format()
    names = {d.name for d in summary.details if d.status == "passed"}
    assert f"Reproduce test outputs from test inputs ({weight_format})" in names


@pytest.mark.parametrize(("case", "shape"), [("dtype", (184, 200)), ("percentile", (100, 120))])
def test_bioimageio_blockwise_prediction_equals_our_predictor(packages, case, shape) -> None:
    core = _core()
    package = packages[case][1]
    image = _image(shape, "uint8" if case == "dtype" else "uint16", seed=3)
    model, spec = export_load.load_package(package)
    ours = predict_array(model, image, 16, resolve(spec, image))
    descr = core.load_description(package)
    # bioimageio.core computes percentiles after padding the sample when it does not block:
    # the whole-sample pass equals ours for the data-independent scalings only
    for n in (1, 3) if case == "percentile" else (1, 3, None):  # (0 means its default, 10)
        out = core.predict(model=descr, inputs=image[None, None], blocksize_parameter=n)
        prob = out.members["foreground"].data.values[0, 0]
        assert prob.shape == image.shape
        np.testing.assert_allclose(prob, ours, rtol=0, atol=1e-6)


def test_load_package_gives_the_checkpoint_model(packages, tmp_path: Path) -> None:
    ckpt, package, _ = packages["percentile"]
    folder = tmp_path / "unpacked"
    zipfile.ZipFile(package).extractall(folder)
    image = _image((45, 61), "uint16", seed=5)
    tifffile.imwrite(tmp_path / "raw.tif", image, photometric="minisblack")
    run(ckpt, tmp_path / "raw.tif", tmp_path / "ckpt.zarr", Options(tile=16, progress=False))
    by_checkpoint = zarr.open_array(str(tmp_path / "ckpt.zarr" / "0"), mode="r")[...]
    reference = UNet(**torch.load(ckpt, weights_only=True)["config"])
    reference.load_state_dict(torch.load(ckpt, weights_only=True)["state_dict"])
    for path in (package, folder):
        model, spec = export_load.load_package(path)
        assert spec == PERCENTILE and not model.training
        assert model.config == reference.config
        for (key, a), b in zip(model.state_dict().items(), reference.state_dict().values(),
                               strict=True):  # fmt: skip
            assert torch.equal(a, b), key
        assert np.array_equal(predict_array(model, image, 16, resolve(spec, image)), by_checkpoint)


def test_export_command_writes_the_documented_package(tmp_path: Path, capsys) -> None:
    _core()
    ckpt, out = tmp_path / "best.pt", tmp_path / "model.zip"
    save_checkpoint(ckpt, _model(), normalization={"kind": "dtype"})
    sample = _image((3, 50, 40), "uint8")
    tifffile.imwrite(tmp_path / "raw.tif", sample, photometric="minisblack")
    metrics = {"pixel_error": {"value": 0.0611}, "rand_error": {"value": 0.0382}}
    evaluation = {"split": "val", "ground_truth": "data/isbi2012.zarr", "metrics": metrics}
    (tmp_path / "eval.json").write_text(json.dumps(evaluation))
    argv = ["export", str(ckpt), str(out), "--author", "Ada Lovelace", "--author", "A. Turing",
            "--license", "CC-BY-4.0", "--tag", "em", "--sample", str(tmp_path / "raw.tif"),
            "--metrics", str(tmp_path / "eval.json"), "--preset", "cpu",
            "--test-size", "60"]  # fmt: skip
    assert main(argv) == 0
    assert f"{out}: bioimage.io model package" in capsys.readouterr().out
    with zipfile.ZipFile(out) as zf:
        rdf = yaml.safe_load(zf.read("rdf.yaml"))
        readme = zf.read("README.md").decode()
        test_input = np.load(zf.open("test_input.npy"))
        assert zf.read("cover.png")[:8] == b"\x89PNG\r\n\x1a\n"
    assert [a["name"] for a in rdf["authors"]] == ["Ada Lovelace", "A. Turing"]
    assert rdf["license"] == "CC-BY-4.0" and rdf["tags"] == ["em", "2d"]
    assert rdf["config"]["unet"]["model"] == _model().config
    assert rdf["inputs"][0]["axes"][2]["size"] == {"min": 44, "step": 4}
    assert rdf["outputs"][0]["axes"][2]["halo"] == 20
    # the test input: --test-size 60 (a valid size), the centre of the middle slice, mirrored
    centre = np.pad(sample[1], ((5, 5), (10, 10)), mode="symmetric")
    assert test_input.dtype == np.uint8 and np.array_equal(test_input[0, 0], centre)
    assert "# Validation" in readme and "pixel error 0.0611" in readme and "Preset: cpu" in readme
    assert "Ronneberger" in readme and rdf["cite"][0]["doi"] == PAPER_DOI


def test_a_refused_license_leaves_no_package(tmp_path: Path, capsys) -> None:
    _core()
    ckpt = tmp_path / "best.pt"
    save_checkpoint(ckpt, _model(), normalization={"kind": "dtype"})
    assert main(["export", str(ckpt), str(tmp_path / "m.zip"), "--license", "NOPE"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--license 'NOPE'" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt"]
