"""``unet info``: package versions, torch build and the compute device found."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from typing import Any

from unet import __version__

PACKAGES = ("snakemake", "torch", "zarr", "dask", "numpy", "scipy", "tifffile", "pandas")


def package_version(package: str) -> str:
    """The installed version of ``package``, or "not installed"."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def device_info() -> dict[str, Any]:
    """The device torch would use (cuda, then mps, then cpu) and what it offers."""
    import torch

    info: dict[str, Any] = {
        "torch_cuda_build": torch.version.cuda,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(device="cuda", device_name=props.name, device_count=torch.cuda.device_count(),
                    device_memory_gib=round(props.total_memory / 2**30, 1))  # fmt: skip
    elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        info.update(device="mps", device_name="Apple MPS")
    else:
        info.update(device="cpu", device_name=platform.processor() or platform.machine())
    return info


def model_summary(model_config: dict[str, Any], tile: int = 572) -> dict[str, Any]:
    """Parameter count, halo, tiling margins, pooling step and one tile's shapes."""
    import torch

    from unet.model import UNet
    from unet.shapes import margins, tile_sizes

    with torch.device("meta"):
        model = UNet(**model_config)
    tile_in, tile_out = tile_sizes(tile, model.config["depth"], model.config["padding"])
    return {
        "config": model.config,
        "parameters": sum(p.numel() for p in model.parameters()),
        "halo": model.halo,
        "margins": list(margins(model.config["depth"], model.config["padding"])),
        "step": model.step,
        "tile_input": tile_in,
        "tile_output": tile_out,
    }


def collect(model_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything ``unet info`` reports, as a JSON-serialisable dict."""
    info = {
        "unet": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {name: package_version(name) for name in PACKAGES},
        **device_info(),
    }
    if model_config is not None:
        info["model"] = model_summary(model_config)
    return info
