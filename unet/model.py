"""The U-Net of Ronneberger et al. (2015), with 2-D/3-D, same-padding and normalisation options.

``UNet()`` with its defaults is the paper's network exactly: 23 convolution layers
(18 3x3 convolutions, 4 2x2 up-convolutions, one final 1x1 convolution), 31,030,658
parameters for one input channel and two classes, a 572x572 input giving a 388x388 output,
He-normal initialisation, and drop-out at the end of the contracting path (on the last
two levels, as in the authors' released Caffe model).
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unet import shapes
from unet.defaults import MODEL
from unet.errors import InputError
from unet.io import atomic_output

NORMS = (None, "batch", "group")


def _layers(dims: int) -> tuple[type[nn.Module], type[nn.Module], type[nn.Module], type[nn.Module]]:
    if dims == 2:
        return nn.Conv2d, nn.ConvTranspose2d, nn.MaxPool2d, nn.BatchNorm2d
    return nn.Conv3d, nn.ConvTranspose3d, nn.MaxPool3d, nn.BatchNorm3d


class _DoubleConv(nn.Sequential):
    """Two 3x3 convolutions, each followed by optional normalisation and ReLU."""

    def __init__(self, c_in: int, c_out: int, dims: int, padding: str, norm: str | None) -> None:
        conv, _, _, batchnorm = _layers(dims)
        layers: list[nn.Module] = []
        for c in (c_in, c_out):
            layers.append(
                conv(c, c_out, 3, padding=1 if padding == "same" else 0, bias=norm is None)
            )
            if norm == "batch":
                layers.append(batchnorm(c_out))
            elif norm == "group":
                layers.append(nn.GroupNorm(math.gcd(32, c_out), c_out))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


def center_crop(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Crop the trailing spatial axes of ``x`` to ``shape`` around the centre."""
    slices = [slice(None)] * (x.ndim - len(shape))
    for have, want in zip(x.shape[-len(shape) :], shape, strict=True):
        start = (have - want) // 2
        slices.append(slice(start, start + want))
    return x[tuple(slices)]


class UNet(nn.Module):
    """U-Net; the defaults (:data:`unet.defaults.MODEL`) are the paper's network (see the
    module docstring)."""

    def __init__(
        self,
        in_channels: int = MODEL["in_channels"],
        num_classes: int = MODEL["num_classes"],
        base_channels: int = MODEL["base_channels"],
        depth: int = MODEL["depth"],
        padding: str = MODEL["padding"],
        dims: int = MODEL["dims"],
        dropout: float = MODEL["dropout"],
        norm: str | None = MODEL["norm"],
    ) -> None:
        super().__init__()
        _check_args(in_channels, num_classes, base_channels, depth, padding, dims, dropout, norm)
        self.config: dict[str, Any] = dict(
            in_channels=in_channels, num_classes=num_classes, base_channels=base_channels,
            depth=depth, padding=padding, dims=dims, dropout=dropout, norm=norm,
        )  # fmt: skip
        conv, upconv, pool, _ = _layers(dims)
        widths = [base_channels * 2**i for i in range(depth)]
        self.encoder = nn.ModuleList(
            _DoubleConv(c_in, c_out, dims, padding, norm)
            for c_in, c_out in zip([in_channels, *widths[:-1]], widths, strict=True)
        )
        self.pool = pool(2)
        # Drop-out on the last two levels of the contracting path, as in the released model.
        self.dropout_levels = {depth - 1, depth - 2} if dropout > 0 else set()
        self.drop = nn.Dropout(dropout)
        self.up = nn.ModuleList(upconv(w, w // 2, 2, stride=2) for w in reversed(widths[1:]))
        self.decoder = nn.ModuleList(
            _DoubleConv(w, w // 2, dims, padding, norm) for w in reversed(widths[1:])
        )
        self.head = conv(base_channels, num_classes, 1)
        self.apply(_he_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (N, in_channels, *spatial) to (N, num_classes, *output_shape(spatial)) logits."""
        self.check_input_shape(tuple(x.shape))
        skips = []
        for level, block in enumerate(self.encoder):
            x = block(x)
            if level in self.dropout_levels:
                x = self.drop(x)
            if level < len(self.encoder) - 1:
                skips.append(x)
                x = self.pool(x)
        for up, block, skip in zip(self.up, self.decoder, reversed(skips), strict=True):
            x = up(x)
            x = block(torch.cat([center_crop(skip, tuple(x.shape[2:])), x], dim=1))
        return self.head(x)

    def check_input_shape(self, shape: tuple[int, ...]) -> None:
        """Raise ValueError naming the bad shape if the network cannot take an input of it."""
        want = 2 + self.config["dims"]
        if len(shape) != want or shape[1] != self.config["in_channels"]:
            raise InputError(
                f"expected input of shape (N, {self.config['in_channels']}, "
                f"{', '.join(['size'] * self.config['dims'])}), got {shape}"
            )
        self.output_shape(shape[2:])

    def output_shape(self, spatial: tuple[int, ...]) -> tuple[int, ...]:
        """Spatial output shape for a spatial input shape (ValueError if invalid)."""
        return shapes.output_shape(spatial, self.config["depth"], self.config["padding"])

    def input_shape(self, spatial: tuple[int, ...]) -> tuple[int, ...]:
        """Smallest spatial input shape whose output covers ``spatial``."""
        return shapes.input_shape(spatial, self.config["depth"], self.config["padding"])

    @property
    def halo(self) -> int:
        """(input - output) / 2 of the valid network (92 for the paper's); a tiler needs
        :func:`unet.shapes.margins`, which also covers same padding."""
        return shapes.halo(self.config["depth"])

    @property
    def step(self) -> int:
        """Pooling factor: tile origins must be multiples of it for seamless tiling."""
        return shapes.step(self.config["depth"])

    def check_tileable(self) -> None:
        """Raise InputError if tiles cannot reproduce one whole-image pass of this network.

        With ``norm="group"`` they cannot: GroupNorm normalises by statistics over the whole
        input it is given, so every output pixel depends on the whole tile, and on what the
        tile leaves out. BatchNorm is fine in eval mode (running statistics, per pixel);
        tiled inference must run in eval mode anyway (dropout, batch statistics).
        """
        if self.config["norm"] == "group":
            raise InputError(
                "norm='group' cannot be tiled: GroupNorm statistics span the whole tile, so a "
                "tile's output depends on its size and neighbours; predict the whole image "
                "in one pass or use norm=None or 'batch' (fine in eval mode)"
            )


def _check_args(
    in_channels, num_classes, base_channels, depth, padding, dims, dropout, norm
) -> None:
    for name, value in (("in_channels", in_channels), ("num_classes", num_classes),
                        ("base_channels", base_channels), ("depth", depth)):  # fmt: skip
        if not isinstance(value, int) or value < 1:
            raise InputError(f"{name} must be a positive integer, got {value!r}")
    if padding not in shapes.PADDINGS:
        raise InputError(f"padding must be one of {shapes.PADDINGS}, got {padding!r}")
    if dims not in (2, 3):
        raise InputError(f"dims must be 2 or 3, got {dims!r}")
    if not 0.0 <= dropout < 1.0:
        raise InputError(f"dropout must be in [0, 1), got {dropout!r}")
    if norm not in NORMS:
        raise InputError(f"norm must be one of {NORMS}, got {norm!r}")


def _he_init(module: nn.Module) -> None:
    """He-normal initialisation, std = sqrt(2 / N), N = incoming nodes of one neuron."""
    if isinstance(module, nn.Conv2d | nn.Conv3d | nn.ConvTranspose2d | nn.ConvTranspose3d):
        weight = module.weight
        if isinstance(module, nn.ConvTranspose2d | nn.ConvTranspose3d):
            # (in, out, *k); with stride == kernel each output pixel sees one input per channel
            overlap = weight[0, 0].numel() // math.prod(module.stride)
            fan_in = weight.shape[0] * max(overlap, 1)
        else:
            fan_in = weight[0].numel()  # (out, in, *k): in x kernel
        nn.init.normal_(weight, 0.0, (2.0 / fan_in) ** 0.5)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def save_checkpoint(path: str | Path, model: UNet, **extra: Any) -> None:
    """Save weights with the constructor arguments, atomically (temp file, then rename)."""
    with atomic_output(path) as tmp:
        torch.save({"config": model.config, "state_dict": model.state_dict(), **extra}, tmp)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> UNet:
    """Rebuild a :class:`UNet` from a checkpoint file alone."""
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
        model = UNet(**payload["config"])
        model.load_state_dict(payload["state_dict"])
    except (OSError, RuntimeError, KeyError, TypeError, EOFError, pickle.UnpicklingError) as err:
        raise InputError(f"{path}: not a U-Net checkpoint ({err})") from err
    return model
