"""The way back from a bioimage.io package that ``unet export`` wrote: (model, normalisation).

:func:`load_package` reads the package (zip or folder) with the standard library, PyYAML and
torch alone (no bioimageio extra): its rdf.yaml names our architecture
(``weights.pytorch_state_dict.architecture.callable``) and holds, under ``config.unet``, the
model configuration and the :mod:`unet.normalize` definition; the state dict loads into
:class:`unet.model.UNet` unchanged. Packages of other architectures are an InputError.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

from unet import normalize
from unet.errors import InputError

ARCH_CALLABLE = "UNetForeground"  # the class of unet/export_arch.py the package names


def check_model(model: Any, path: Path) -> None:
    """The checks of :func:`unet.predict.load_model`: one input channel, two classes or
    more, tileable (consumers predict in blocks)."""
    config = model.config
    if config["in_channels"] != 1 or config["num_classes"] < 2:
        raise InputError(
            f"{path}: a model for {config['in_channels']} input channel(s) and "
            f"{config['num_classes']} class(es); expected 1 channel and >= 2 classes"
        )
    try:
        model.check_tileable()
    except InputError as err:
        raise InputError(f"{path}: {err}") from None


def is_package(path: str | Path) -> bool:
    """Whether ``path`` is a bioimage.io package: a .zip file or a folder with rdf.yaml."""
    path = Path(path)
    if path.is_dir():
        return any((path / n).is_file() for n in ("rdf.yaml", "bioimageio.yaml"))
    return path.suffix == ".zip" and path.is_file()


def load_package(path: str | Path, map_location: Any = "cpu") -> tuple[Any, dict[str, Any]]:
    """(model in eval mode, normalisation definition) of a package ``unet export`` wrote
    (zip or folder), as :func:`unet.predict.load_model` returns them for its checkpoint;
    InputError for a package of another architecture or a damaged one. Needs no extra."""
    import torch

    from unet.model import UNet

    path = Path(path)
    rdf, read = _open_package(path)
    unet = (rdf.get("config") or {}).get("unet")
    weights = (rdf.get("weights") or {}).get("pytorch_state_dict") or {}
    arch = (weights.get("architecture") or {}).get("callable")
    if not isinstance(unet, dict) or arch != ARCH_CALLABLE or "model" not in unet:
        raise InputError(
            f"{path}: a bioimage.io model of another architecture ({arch or 'no state dict'}, "
            f"{rdf.get('name')!r}); expected a U-Net package written by unet export"
        )
    data = read(str(weights.get("source")))
    try:
        state = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
        model = UNet(**unet["model"])
        model.load_state_dict(state)
    except (RuntimeError, TypeError, KeyError, EOFError, pickle.UnpicklingError) as err:
        why = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"{path}: weights that do not fit its U-Net ({why})") from err
    spec = normalize.check(unet.get("normalization"), f"{path}: config.unet.normalization")
    check_model(model, path)
    return model.eval(), spec


def model_sha256(path: str | Path) -> str:
    """The sha256 that identifies a model file: of a checkpoint or a zipped package, or of a
    package folder's rdf.yaml (which holds the sha256 of every file of the package)."""
    from unet.io import sha256_file

    path = Path(path)
    return sha256_file(path / "rdf.yaml" if path.is_dir() else path)


def load_network(path: str | Path, map_location: Any = "cpu") -> Any:
    """The network of a checkpoint or of a package that ``unet export`` wrote (not in eval
    mode, not checked: :func:`unet.predict.load_model` checks it once per run)."""
    from unet.model import load_checkpoint

    if is_package(path):
        return load_package(path, map_location)[0]
    return load_checkpoint(path, map_location=map_location)


def _open_package(path: Path) -> tuple[dict[str, Any], Any]:
    """(the rdf.yaml contents, read(name) -> bytes of a file of the package)."""
    import yaml

    if not path.exists():
        raise FileNotFoundError(f"{path}: no such package")
    if path.is_dir():

        def read(name: str) -> bytes:
            file = path / name
            if not file.is_file():
                raise InputError(f"{path}: no file {name}; expected a complete package")
            return file.read_bytes()
    else:
        if not zipfile.is_zipfile(path):
            raise InputError(f"{path}: not a zip file; expected a bioimage.io package")

        def read(name: str) -> bytes:
            with zipfile.ZipFile(path) as zf:
                try:
                    return zf.read(name)
                except KeyError:
                    raise InputError(
                        f"{path}: no file {name}; expected a complete package"
                    ) from None

    for name in ("rdf.yaml", "bioimageio.yaml"):
        try:
            rdf = yaml.safe_load(read(name))
        except InputError:
            continue
        if isinstance(rdf, dict) and rdf.get("type") == "model":
            return rdf, read
    raise InputError(f"{path}: no model rdf.yaml; expected a bioimage.io model package")
