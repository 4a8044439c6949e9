"""Validation during training: whole val slices through the overlap-tile predictor.

Each val slice of the dataset store is predicted whole by :func:`unet.inference.predict_array`
(mirrored borders, the same tiles and arithmetic as ``unet predict``), scaled by the
training's :class:`unet.normalize.Scaling`. The scores are the weighted cross-entropy of
the training loss (paper eq. 1 over the val pixels, the store's weight maps) and the ISBI
2012 pixel, Rand and warping errors of :mod:`unet.metrics` (threshold sweeps,
4-connected segments) against the binary ``semantic`` ground truth.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from unet.errors import InputError
from unet.io import open_store, write_text_atomic
from unet.normalize import Scaling

COLUMNS = ("iteration", "elapsed_s", "lr", "train_loss", "val_loss", "pixel_error",
           "rand_error", "warping_error", "pixel_threshold", "rand_threshold")  # fmt: skip
EPS = 1e-7  # probability floor of the validation loss


@dataclass
class ValData:
    """The validation slices of a dataset: raw as stored, 0/1 ground truth, weight maps."""

    slices: list[int]
    raw: np.ndarray
    truth: np.ndarray
    weight: np.ndarray


def load_val(store: str | os.PathLike[str], weights: str | os.PathLike[str]) -> ValData | None:
    """The store's ``split['val']`` slices (None if it has none)."""
    group = open_store(store, ("raw", "semantic"))
    wmap = open_store(weights, ("weights",))["weights"]
    split = group.attrs.get("split")
    slices = list(split.get("val") or []) if isinstance(split, dict) else []
    if not slices:
        return None
    depth = group["raw"].shape[0]
    bad = [z for z in slices if not isinstance(z, int) or not 0 <= z < depth]
    if bad:
        raise InputError(f"{store}: validation slices {bad} are outside 0..{depth - 1}")
    truth = np.stack([np.asarray(group["semantic"][z]) for z in slices])
    if truth.max() > 1:
        raise InputError(f"{store}: semantic holds values > 1; expected 0/1 ground truth")
    return ValData(
        slices=slices,
        raw=np.stack([np.asarray(group["raw"][z]) for z in slices]),
        truth=truth.astype(np.uint8),
        weight=np.stack([np.asarray(wmap[z], dtype=np.float32) for z in slices]),
    )


class OnDevice:
    """A model as :func:`unet.inference.predict_array` takes it (a CPU tensor in, CPU logits
    out) that runs on another device, with autocast ``amp`` (a torch dtype or None)."""

    def __init__(self, model: Any, device: str, amp: Any = None) -> None:
        self.model, self.device, self.amp = model, device, amp
        self.config = model.config

    def parameters(self) -> Any:
        """The model's parameters (their dtype is what the input is cast to)."""
        return self.model.parameters()

    def __call__(self, x: Any) -> Any:
        import torch

        x = x.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        with torch.autocast(torch.device(self.device).type, dtype=self.amp,
                            enabled=self.amp is not None):  # fmt: skip
            return self.model(x).float().cpu()


def predict(model: Any, val: ValData, scaling: Scaling, tile: int, tta: bool = False) -> np.ndarray:
    """The foreground probability of every val slice, (Z, Y, X) float32."""
    from unet.inference import predict_array

    return np.stack([predict_array(model, raw, tile, scaling, tta) for raw in val.raw])


def weighted_loss(prob: np.ndarray, truth: np.ndarray, weight: np.ndarray) -> float:
    """Mean over pixels of ``-w log p_true`` (paper eq. 1 over the pixel count)."""
    p_true = np.where(truth > 0, prob, 1.0 - prob).astype(np.float64)
    return float(np.mean(-weight * np.log(np.clip(p_true, EPS, 1.0))))


def evaluate(model: Any, val: ValData, scaling: Scaling, tile: int, tta: bool = False) -> dict:
    """Validation scores of ``model`` (in eval mode, no gradients) as a dict."""
    import torch

    from unet.metrics import pixel_error, rand_error, warping_error

    with torch.no_grad():
        prob = predict(model, val, scaling, tile, tta)
    pixel, rand = pixel_error(val.truth, prob), rand_error(val.truth, prob)
    return {
        "val_loss": weighted_loss(prob, val.truth, val.weight),
        "pixel_error": pixel.value,
        "rand_error": rand.value,
        "warping_error": warping_error(val.truth, prob).value,
        "pixel_threshold": pixel.threshold,
        "rand_threshold": rand.threshold,
    }


def csv_text(rows: list[dict[str, Any]]) -> str:
    """The validation rows as CSV text (:data:`COLUMNS`)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _format(row.get(k)) for k in COLUMNS})
    return out.getvalue()


def _format(value: Any) -> Any:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return value


def write_csv(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Write the validation CSV atomically."""
    write_text_atomic(path, csv_text(rows))
