"""The training step (paper Sec. 3): batch 1, large tiles, weighted softmax cross-entropy.

The energy is the paper's eq. 1, ``E = sum_x w(x) log p_l(x)(x)``, divided by the tile's
pixel count: the cross-entropy of the softmax at every output pixel, weighted by the
precomputed weight map (:mod:`unet.weights`); weight 0 leaves a pixel out entirely. The
optimizer is SGD with momentum 0.99 as in the paper, or Adam (``optimizer``); the learning
rate follows ``schedule`` (constant, cosine or poly, after a linear ``warmup``), one step
per tile. He initialisation and dropout are the model's own (:mod:`unet.model`). On CUDA the
step runs under autocast (bf16 where supported) with channels_last tensors.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from unet.errors import InputError
from unet.model import UNet

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "cosine", "poly")
AMPS = ("auto", "bf16", "none")
RUNTIME = ("device", "threads", "amp", "progress", "restart")  # not part of a run's identity
LOSS_POINTS = 200  # training-loss points in the history (means over equal spans)


@dataclass(frozen=True)
class TrainConfig:
    """Training settings (``unet train --help``; config section ``train``). The defaults
    are the ``paper`` preset's: SGD, momentum 0.99 (the paper), the rest our choice."""

    iterations: int = 40000
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.99
    weight_decay: float = 0.0
    schedule: str = "poly"
    warmup: int = 500
    min_lr: float = 0.0
    checkpoint_every: int = 1000
    validate_every: int = 1000
    patience: int = 0  # validations without a better Rand error before stopping; 0: never
    seed: int = 0
    val_tile: int = 512
    val_tta: bool = False
    device: str = "auto"
    threads: int = 0
    amp: str = "auto"
    progress: bool = True
    restart: bool = False

    def __post_init__(self) -> None:
        counts = ("iterations", "warmup", "checkpoint_every", "validate_every", "patience",
                  "seed", "val_tile", "threads")  # fmt: skip
        bad = [f"{k}={getattr(self, k)!r}" for k in counts if getattr(self, k) < 0]
        bad += [f"{k}={getattr(self, k)!r}" for k in ("iterations", "val_tile")
                if getattr(self, k) < 1]  # fmt: skip
        if not (self.lr > 0 and 0 <= self.min_lr <= self.lr and 0 <= self.momentum < 1):
            bad.append(f"lr={self.lr}, min_lr={self.min_lr}, momentum={self.momentum}")
        for name, allowed in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES),
                              ("amp", AMPS)):  # fmt: skip
            if getattr(self, name) not in allowed:
                bad.append(f"{name}={getattr(self, name)!r} (one of {', '.join(allowed)})")
        if bad or self.weight_decay < 0:
            shown = ", ".join(bad) or f"weight_decay={self.weight_decay}"
            raise InputError(f"training settings out of range: {shown}")

    def identity(self) -> dict[str, Any]:
        """The settings that determine the run (all but :data:`RUNTIME`)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in RUNTIME}


def lr_factor(cfg: TrainConfig, step: int) -> float:
    """Learning-rate multiplier for the 0-based ``step``: linear warm-up, then the schedule
    from 1 down to ``min_lr / lr`` at the last iteration."""
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    if cfg.schedule == "constant":
        return 1.0
    t = min(1.0, (step - cfg.warmup) / max(1, cfg.iterations - cfg.warmup))
    floor = cfg.min_lr / cfg.lr
    shape = 0.5 * (1 + math.cos(math.pi * t)) if cfg.schedule == "cosine" else (1 - t) ** 0.9
    return floor + (1 - floor) * shape


def weighted_cross_entropy(logits: torch.Tensor, target: torch.Tensor,
                           weight: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """Paper eq. 1 over the pixel count: mean of ``w(x) * -log softmax(logits)_l(x)(x)``,
    in float32; pixels of weight 0 contribute nothing, not even a NaN."""
    ce = F.cross_entropy(logits.float(), target, reduction="none")
    return torch.where(weight > 0, ce * weight, torch.zeros_like(ce)).mean()


def resolve_device(name: str) -> str:
    """``auto``: cuda, else mps, else cpu; InputError for a device this machine lacks."""
    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        return "mps" if mps is not None and mps.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"--device {name}: expected auto, cpu, cuda, cuda:N or mps") from None
    available = {"cpu": True, "cuda": torch.cuda.is_available(),
                 "mps": bool(getattr(torch.backends, "mps", None)
                             and torch.backends.mps.is_available())}  # fmt: skip
    if not available.get(device.type, False):
        raise InputError(f"--device {name}: not available on this machine")
    return str(device)


def amp_dtype(amp: str, device: str) -> torch.dtype | None:
    """The autocast dtype: bf16 on CUDA where supported (``auto``), else none."""
    cuda = device.startswith("cuda")
    if amp == "bf16" and not (cuda and torch.cuda.is_bf16_supported()):
        raise InputError(f"--amp bf16: needs a CUDA device with bf16 support, not {device}")
    if amp == "bf16" or (amp == "auto" and cuda and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return None


class Trainer:
    """The model with its optimizer and schedule: :meth:`step` is one training iteration."""

    def __init__(self, model: UNet, cfg: TrainConfig, device: str) -> None:
        self.model, self.cfg, self.device = model, cfg, device
        self.amp = amp_dtype(cfg.amp, device)
        self.cuda = device.startswith("cuda")
        model.to(device)
        if self.cuda:
            model.to(memory_format=torch.channels_last)
        params = model.parameters()
        if cfg.optimizer == "sgd":
            self.optimizer: torch.optim.Optimizer = torch.optim.SGD(
                params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
            )
        else:
            self.optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_factor(cfg, step)
        )

    @property
    def lr(self) -> float:
        """The learning rate of the next step."""
        return float(self.optimizer.param_groups[0]["lr"])

    def to_device(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Tensors on the training device (raw channels_last on CUDA)."""
        moved = tuple(t.to(self.device, non_blocking=True) for t in tensors)
        if self.cuda:
            moved = (moved[0].contiguous(memory_format=torch.channels_last), *moved[1:])
        return moved

    def step(self, raw: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> float:
        """Forward, weighted loss, backward, optimizer and schedule step; the loss value."""
        self.model.train()
        with torch.autocast(torch.device(self.device).type, dtype=self.amp,
                            enabled=self.amp is not None):  # fmt: skip
            logits = self.model(raw)
        loss = weighted_cross_entropy(logits, target, weight)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        return float(loss.item())
