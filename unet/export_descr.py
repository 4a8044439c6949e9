"""The bioimage.io model description (format 0.5) of a U-Net, built with ``bioimageio.spec``.

The files it names (weights, architecture, test tensors, cover, documentation) are written
into a working folder first; :func:`unet.export.export` saves the package from there. Imports
``bioimageio.spec`` (the optional extra): :mod:`unet.export` imports this module only when
it writes a package.
"""

from __future__ import annotations

import string
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import torch
from bioimageio.spec.model import v0_5 as bio

from unet import __version__, export_arch
from unet.errors import InputError
from unet.export_docs import PAPER_DOI
from unet.normalize import dtype_range
from unet.paper import REFERENCE

DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64", "float32",
          "float64")  # fmt: skip
TAGS = ("unet", "segmentation", "semantic-segmentation", "microscopy", "pytorch")
_NAME_CHARS = set(string.ascii_letters + string.digits + "_+- ()")


def describe(tmp: Path, model: Any, raw: np.ndarray, expected: np.ndarray, text: str,
             info: dict[str, Any], meta: dict[str, Any]) -> bio.ModelDescr:  # fmt: skip
    """The model description of ``model`` (files written into ``tmp``); ``info`` holds halo,
    min, step, spec, name, params and arch (the class of unet/export_arch.py); ``meta``
    authors, license and tags (None: defaults)."""
    config = model.config
    license = _license(meta["license"])
    (tmp / "README.md").write_text(text)
    np.save(tmp / "test_input.npy", raw[None, None])
    np.save(tmp / "test_output.npy", expected)
    tifffile.imwrite(tmp / "sample_input.tif", raw)  # what people look at (FAIR)
    tifffile.imwrite(tmp / "sample_output.tif", expected[0, 0])
    _cover(tmp / "cover.png", raw, expected, info["halo"])
    dims = "2d" if config["dims"] == 2 else "3d"
    tags = [*(meta["tags"] or TAGS), dims]
    authors = meta["authors"] or ["Anonymous"]
    for author in authors:
        if "/" in author or not author.strip():
            raise InputError(f"--author {author!r}: expected a name (without '/')")
    return bio.ModelDescr(
        name=_name(info["name"] or f"U-Net {info['checkpoint']}"),
        description=(
            f"U-Net (Ronneberger et al. 2015), {dims.upper()}, depth {config['depth']}, "
            f"{config['base_channels']} base channels, {config['padding']} padding: "
            "softmax foreground probability"
        ),
        authors=[bio.Author(name=a) for a in authors],
        cite=[bio.CiteEntry(text=REFERENCE, doi=bio.Doi(PAPER_DOI))],
        license=license,
        tags=list(dict.fromkeys(tags)),
        documentation=bio.FileDescr(source=tmp / "README.md"),
        covers=[bio.FileDescr(source=tmp / "cover.png")],
        inputs=[_input(tmp, raw, info)],
        outputs=[_output(tmp, config["dims"], info["halo"])],
        weights=_weights(tmp, model, info["arch"], info["shift"]),
        config=bio.Config(
            bioimageio=bio.BioimageioConfig(
                architecture_type="U-Net",
                task="segmentation",
                model_parameter_count=info["params"],
            ),
            unet={
                "version": __version__,
                "model": dict(config),
                "normalization": info["spec"],
                "halo": info["halo"],
                "shift": info["shift"],
            },
        ),
    )


def _license(text: str) -> Any:
    """The SPDX license id ``text``; InputError if the format knows no such id."""
    from pydantic import ValidationError

    try:
        return bio.LicenseId(text)
    except ValidationError:
        raise InputError(
            f"--license {text!r}: not an SPDX license id; expected e.g. MIT, CC-BY-4.0, "
            "BSD-3-Clause, Apache-2.0 (https://spdx.org/licenses)"
        ) from None


def _name(text: str) -> str:
    """``text`` with the characters a bioimage.io name allows (others -> '-'), 5-64 long."""
    name = "".join(c if c in _NAME_CHARS else "-" for c in text)[:64]
    return name if len(name) >= 5 else f"U-Net {name}"


def _spatial(dims: int) -> list[str]:
    return ["z", "y", "x"][3 - dims :]


def _input(tmp: Path, raw: np.ndarray, info: dict[str, Any]):
    """The input tensor ``raw``: its sizes, dtype and the preprocessing of ``info['spec']``."""
    dtype = str(raw.dtype)
    if dtype not in DTYPES:
        raise InputError(f"test input of dtype {dtype}; expected one of {', '.join(DTYPES)}")
    size = bio.ParameterizedSize(min=info["min"], step=info["step"])
    axes = [bio.BatchAxis(), bio.ChannelAxis(channel_names=[bio.Identifier("raw")])]
    axes += [bio.SpaceInputAxis(id=bio.AxisId(a), size=size) for a in _spatial(raw.ndim)]
    return bio.InputTensorDescr(
        id=bio.TensorId("raw"),
        description="raw image, the values as recorded (preprocessing scales them)",
        axes=axes,
        test_tensor=bio.FileDescr(source=tmp / "test_input.npy"),
        sample_tensor=bio.FileDescr(source=tmp / "sample_input.tif"),
        data=bio.IntervalOrRatioDataDescr(type=dtype),
        preprocessing=preprocessing(info["spec"], raw.dtype, raw.ndim),
    )


def preprocessing(spec: dict[str, Any], dtype: Any, dims: int) -> list[Any]:
    """The bioimage.io preprocessing of the :mod:`unet.normalize` definition ``spec`` for
    an input of ``dtype``: float32, then ``(x - a) / (b - a)`` (``scale_linear``, or
    ``scale_range`` of the image's percentiles), then the clip to [0, 1] if any."""
    steps: list[Any] = [bio.EnsureDtypeDescr(kwargs=bio.EnsureDtypeKwargs(dtype="float32"))]
    if spec["kind"] == "percentile":
        low, high = float(spec["low"]), float(spec["high"])
        if not (low < 100 and high > 1):
            raise InputError(
                f"normalization {spec}: bioimage.io percentiles need low < 100 and high > 1"
            )
        axes = [bio.AxisId(a) for a in _spatial(dims)]
        kwargs = bio.ScaleRangeKwargs(axes=axes, min_percentile=low, max_percentile=high)
        steps.append(bio.ScaleRangeDescr(kwargs=kwargs))
    else:
        low, high = dtype_range(dtype) if spec["kind"] == "dtype" else (spec["low"], spec["high"])
        if (low, high) != (0.0, 1.0):
            gain = 1.0 / (high - low)
            kwargs = bio.ScaleLinearKwargs(gain=gain, offset=-low * gain)
            steps.append(bio.ScaleLinearDescr(kwargs=kwargs))
    if spec.get("clip"):
        steps.append(bio.ClipDescr(kwargs=bio.ClipKwargs(min=0.0, max=1.0)))
    steps.append(bio.EnsureDtypeDescr(kwargs=bio.EnsureDtypeKwargs(dtype="float32")))
    return steps


def _output(tmp: Path, dims: int, halo: int):
    axes = [bio.BatchAxis(), bio.ChannelAxis(channel_names=[bio.Identifier("foreground")])]
    axes += [
        bio.SpaceOutputAxisWithHalo(
            id=bio.AxisId(a),
            halo=halo,
            size=bio.SizeReference(tensor_id=bio.TensorId("raw"), axis_id=bio.AxisId(a)),
        )
        for a in _spatial(dims)
    ]
    return bio.OutputTensorDescr(
        id=bio.TensorId("foreground"),
        description=f"softmax foreground probability; crop the halo of {halo} px per side",
        axes=axes,
        test_tensor=bio.FileDescr(source=tmp / "test_output.npy"),
        sample_tensor=bio.FileDescr(source=tmp / "sample_output.tif"),
        data=bio.IntervalOrRatioDataDescr(type="float32", range=(0.0, 1.0)),
    )


def _weights(tmp: Path, model: Any, callable_name: str, shift: int) -> Any:
    """The state dict (architecture: unet/export_arch.py) and its TorchScript."""
    version = bio.Version(torch.__version__.split("+")[0])
    state = tmp / "weights.pt"
    torch.save(model.state_dict(), state)
    kwargs = {**model.config, "shift": shift}
    net = getattr(export_arch, callable_name)(**kwargs)
    net.load_state_dict(model.state_dict())
    scripted = tmp / "weights_torchscript.pt"
    with warnings.catch_warnings():  # torch 2.13 deprecates what the format still names
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(net.eval()).save(str(scripted))
    arch = bio.ArchitectureFromFileDescr(
        source=Path(export_arch.__file__), callable=bio.Identifier(callable_name),
        kwargs=kwargs,
    )  # fmt: skip
    return bio.WeightsDescr(
        pytorch_state_dict=bio.PytorchStateDictWeightsDescr(
            source=state, architecture=arch, pytorch_version=version
        ),
        torchscript=bio.TorchscriptWeightsDescr(
            source=scripted, parent="pytorch_state_dict", pytorch_version=version
        ),
    )


def _cover(path: Path, raw: np.ndarray, prob: np.ndarray, halo: int) -> None:
    """raw | probability of the test input's valid region (its middle slice in 3-D)."""
    from matplotlib.image import imsave

    image, p = raw.astype(np.float64), prob[0, 0]
    if image.ndim == 3:
        image, p = image[image.shape[0] // 2], p[p.shape[0] // 2]
    inner = (slice(halo, -halo),) * 2 if halo else (slice(None),) * 2
    image, p = image[inner], p[inner]
    low, high = np.percentile(image, [1, 99.8])
    shown = np.clip((image - low) / (high - low if high > low else 1.0), 0, 1)
    gap = np.ones((shown.shape[0], max(2, shown.shape[1] // 64)))
    imsave(path, np.concatenate([shown, gap, np.clip(p, 0, 1)], axis=1), cmap="gray",
           vmin=0, vmax=1)  # fmt: skip
