"""The U-Net as one self-contained source file: the architecture of a bioimage.io package.

``unet export`` ships this file with the ``pytorch_state_dict`` weights, and scripts
:class:`UNetForeground` for the ``torchscript`` weights, so it imports torch alone (no other
module of this package: consumers load it without ``unet`` installed) and is TorchScript
compatible. Its modules carry the names of :class:`unet.model.UNet`'s, so the state dict of
a checkpoint loads unchanged, and the same layers give the same logits (tests/test_export.py
checks both).

:class:`UNetForeground` is what the package's consumers run: the softmax probability of the
foreground (classes >= 1 summed, as ``unet predict`` computes it) in one channel, of the
largest valid window of its input from pixel ``shift`` on, placed back with zeros at the
input's spatial size, so that the output axes can reference the input axes; the package
declares a halo that covers that border, which consumers crop (the geometry:
``unet.export.package_geometry``).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional


def _double_conv(c_in: int, c_out: int, dims: int, padding: str, norm: str | None) -> nn.Module:
    """Two 3x3 convolutions, each followed by optional normalisation and ReLU."""
    conv = nn.Conv2d if dims == 2 else nn.Conv3d
    batchnorm = nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d
    layers: list[nn.Module] = []
    for c in (c_in, c_out):
        layers.append(conv(c, c_out, 3, padding=1 if padding == "same" else 0, bias=norm is None))
        if norm == "batch":
            layers.append(batchnorm(c_out))
        elif norm == "group":
            layers.append(nn.GroupNorm(math.gcd(32, c_out), c_out))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class UNet(nn.Module):
    """The network of :class:`unet.model.UNet` (same arguments, module names and logits)."""

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        base_channels: int = 64,
        depth: int = 5,
        padding: str = "valid",
        dims: int = 2,
        dropout: float = 0.5,
        norm: str | None = None,
    ) -> None:
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        upconv = nn.ConvTranspose2d if dims == 2 else nn.ConvTranspose3d
        widths = [base_channels * 2**i for i in range(depth)]
        self.encoder = nn.ModuleList(
            _double_conv(c_in, c_out, dims, padding, norm)
            for c_in, c_out in zip([in_channels, *widths[:-1]], widths, strict=True)
        )
        self.pool = nn.MaxPool2d(2) if dims == 2 else nn.MaxPool3d(2)
        # drop-out on the last two levels of the contracting path, as unet.model.UNet
        self.drop_at = [dropout > 0 and level >= depth - 2 for level in range(depth)]
        self.drop = nn.Dropout(dropout)
        self.up = nn.ModuleList(upconv(w, w // 2, 2, stride=2) for w in reversed(widths[1:]))
        self.decoder = nn.ModuleList(
            _double_conv(w, w // 2, dims, padding, norm) for w in reversed(widths[1:])
        )
        self.head = conv(base_channels, num_classes, 1)
        # valid spatial sizes: first + n * step (unet.shapes.valid_inputs_near(1, ...)[1])
        self.step = 2 ** (depth - 1)
        s = self.step
        self.first = s * (4 - 3 // s) + 8 * s - 4 if padding == "valid" else s

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_channels, *spatial) -> (N, num_classes, *output spatial) logits."""
        skips: list[torch.Tensor] = []
        levels = len(self.encoder)
        for level, block in enumerate(self.encoder):
            x = block(x)
            if self.drop_at[level]:
                x = self.drop(x)
            if level < levels - 1:
                skips.append(x)
                x = self.pool(x)
        for i, (up, block) in enumerate(zip(self.up, self.decoder, strict=True)):
            x = up(x)
            skip = _center_crop(skips[len(skips) - 1 - i], x)
            x = block(torch.cat([skip, x], dim=1))
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The logits (see :meth:`logits`)."""
        return self.logits(x)


class UNetForeground(UNet):
    """:class:`UNet` whose output is the foreground probability, placed at the input's size.

    ``shift``: input pixels dropped at the start of each spatial axis, so that the network's
    pooling grid starts where ``unet predict``'s does when consumers pad by the package's
    halo (see :func:`unet.export.package_geometry`)."""

    def __init__(self, shift: int = 0, **config: object) -> None:
        super().__init__(**config)  # the arguments of :class:`UNet`
        self.shift = shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_channels, *spatial) -> (N, 1, *spatial) probability of classes >= 1, 0
        where the network gives none. The network reads the input from pixel ``shift`` on,
        as far as the largest size ``first + n * step`` reaches (an input smaller than
        ``first`` is padded with its edge values)."""
        ends: list[int] = []
        for d in range(x.dim() - 1, 1, -1):  # functional.pad: the last axis first
            n = x.size(d) - self.shift
            size = self.first + max(0, (n - self.first) // self.step) * self.step
            ends += [-self.shift, size - n]
        window = functional.pad(x, ends, mode="replicate")
        logits = self.logits(window)
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        prob = torch.softmax(logits, dim=1)[:, 1:].sum(dim=1, keepdim=True)
        pads: list[int] = []  # where the output lies in the input: pad (or crop) to its size
        for d in range(x.dim() - 1, 1, -1):
            start = self.shift + (window.size(d) - prob.size(d)) // 2
            pads += [start, x.size(d) - start - prob.size(d)]
        return functional.pad(prob, pads)


def _center_crop(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Crop the spatial axes of ``x`` to those of ``like`` around the centre."""
    for d in range(2, x.dim()):
        start = (x.size(d) - like.size(d)) // 2
        x = x.narrow(d, start, like.size(d))
    return x
