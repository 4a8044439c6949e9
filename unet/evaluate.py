"""``unet evaluate``: challenge metrics of a prediction against its ground truth.

The prediction is a cell probability (float in [0, 1], or uint8 grey values 0-255 scaled to
[0, 1]), a mask (bool, or 0 and one positive value such as 0/255) or labels (other integers:
instance ids); ``--prediction-kind`` overrides the reading, which is always reported. The
ground truth is binary (0 = membrane / background, one positive value = cell) or instance
ids; a canonical dataset store gives both (``semantic`` and ``instances``) and its ``split``
metadata, so ``--split val`` scores only those slices. Instances of a probability map come
from ``--instances`` (the challenge protocol by default: threshold then 4-connected
components). Writes a JSON report (values, best thresholds, per-threshold tables, per-slice
values) and a CSV with one row per slice and a ``total`` row.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any, NamedTuple

import numpy as np

from unet.errors import InputError

METRICS = ("pixel", "rand", "warping", "voi", "seg", "iou", "dice")
ISBI = {"pixel": "pixel_error", "rand": "rand_error", "warping": "warping_error"}
# ``--metrics auto``: the measures of the challenge a dataset's format comes from (the
# ground-truth store's ``format`` attribute): the ISBI 2012 errors for EM-like data, the
# Cell Tracking Challenge's SEG with IoU and Dice for CTC data.
AUTO = {
    "isbi2012": ("pixel", "rand", "warping"),
    "synthetic": ("pixel", "rand", "warping"),
    "ctc": ("seg", "iou", "dice"),
}


class Prediction(NamedTuple):
    """A prediction as read: cell probability in [0, 1], instance labels (None unless read as
    labels, see :func:`make_instances`) and how the file was read, in words."""

    probability: np.ndarray
    labels: np.ndarray | None
    reading: str


def auto_kind(data: np.ndarray) -> str:
    """How ``--prediction-kind auto`` reads ``data``: 'probability' (float, or uint8 grey
    values 0-255), 'mask' (bool, or integers 0 and one positive value) or 'labels' (other
    integers: instance ids)."""
    from unet.labels import is_binary

    if data.dtype.kind == "f":
        return "probability"
    if data.dtype == bool or is_binary(data):
        return "mask"
    return "probability" if data.dtype == np.uint8 else "labels"


def load_prediction(path: str, array: str | None, kind: str) -> Prediction:
    """Read a prediction file as ``kind`` ('auto', 'probability' or 'labels'; see
    :func:`auto_kind`). An integer probability is scaled by its dtype's maximum; a 0/v mask
    is a probability of 0 or 1 whatever ``kind`` says, except 'labels'."""
    from unet.labels import is_binary
    from unet.readers import read_volume

    data = read_volume(path, array)
    read_as = auto_kind(data) if kind == "auto" else kind
    if kind == "probability" and data.dtype.kind in "biu" and is_binary(data):
        read_as = "mask"
    asked = _note(kind, read_as, data.dtype)
    if read_as == "labels":
        if data.dtype.kind not in "biu":
            raise InputError(f"{path}: labels must be integers, got dtype {data.dtype}")
        reading = f"{data.dtype}, read as labels (instance ids, 0 = background{asked})"
        return Prediction((data > 0).astype(np.float32), data, reading)
    if read_as == "mask":
        reading = f"{data.dtype}, read as a mask (0 = background, > 0 = cell{asked})"
        return Prediction((data > 0).astype(np.float32), None, reading)
    return _probability(path, data, asked)


def _note(kind: str, read_as: str, dtype: np.dtype) -> str:
    """The reason for a reading, or the option that reads an ambiguous integer otherwise."""
    if kind != "auto":
        return f"; --prediction-kind {kind}"
    if read_as == "probability" and dtype.kind == "u":
        return "; instance ids need --prediction-kind labels"
    if read_as == "labels" and dtype == np.uint16:
        return "; grey values need --prediction-kind probability"
    return ""


def _probability(path: str, data: np.ndarray, asked: str) -> Prediction:
    reading = f"{data.dtype}, read as probability"
    if data.dtype.kind in "iu":
        if data.dtype not in (np.uint8, np.uint16):
            raise InputError(f"{path}: integer probabilities must be uint8 or uint16")
        top = np.iinfo(data.dtype).max
        data = data / top  # 0..255 or 0..65535 grey values
        reading += f" (0-{top} scaled to [0, 1]{asked})"
    elif asked:
        reading += f" ({asked[2:]})"
    prob = np.asarray(data, dtype=np.float32)
    if np.isnan(prob).any():
        raise InputError(f"{path}: probability contains {int(np.isnan(prob).sum())} NaN values")
    if prob.size and (prob.min() < 0 or prob.max() > 1):
        raise InputError(
            f"{path}: probability must lie in [0, 1], got values in "
            f"[{prob.min():g}, {prob.max():g}]"
        )
    return Prediction(prob, None, reading)


def make_instances(prob: np.ndarray, instances: str, threshold: float) -> np.ndarray:
    """Instance labels of a probability map by the ``--instances`` method."""
    from unet.postprocess import challenge_instances, ctc_instances, watershed_instances

    make = {
        "challenge": challenge_instances,
        "watershed": watershed_instances,
        "ctc": ctc_instances,
    }[instances]
    return make(prob, threshold=threshold)


def load_ground_truth(path: str, array: str | None) -> tuple[np.ndarray | None, np.ndarray]:
    """(binary mask or None when not binary, instance labels) of a ground-truth file."""
    from unet.labels import is_binary
    from unet.postprocess import label_slices
    from unet.readers import group_arrays, read_volume

    if array is None and {"semantic", "instances"} <= set(group_arrays(path)):
        return read_volume(path, "semantic") > 0, read_volume(path, "instances")
    data = read_volume(path, array)
    if data.dtype.kind not in "biu":
        raise InputError(
            f"{path}: ground truth must be integer labels or a mask, got dtype {data.dtype}"
        )
    return (data > 0, label_slices(data)) if is_binary(data) else (None, data)


def resolve_metrics(names: list[str], gt_path: str, binary: bool) -> list[str]:
    """``names`` with ``auto`` replaced by the metrics of the ground truth's format (its
    store's ``format`` attribute, :data:`AUTO`); without a known format, every metric that
    the ground truth allows (the ISBI errors need a binary one). Order kept, no repeats."""
    from unet.readers import group_attrs

    if "auto" in names:
        fmt = group_attrs(gt_path).get("format")
        usable = [m for m in METRICS if binary or m not in ISBI]
        auto = AUTO.get(fmt, usable)
        names = [m for name in names for m in (auto if name == "auto" else [name])]
    return list(dict.fromkeys(names))


def split_slices(path: str, split: str, depth: int) -> list[int]:
    """Indices along Z of ``split`` in the ground truth's ``split`` metadata (all for 'all')."""
    from unet.readers import group_attrs

    if split == "all":
        return list(range(depth))
    splits = group_attrs(path).get("split")
    if not isinstance(splits, dict):
        raise InputError(f"{path}: no 'split' metadata; use --split all")
    indices = [int(z) for z in splits.get(split, [])]
    if not indices:
        raise InputError(f"{path}: split {split!r} is empty (splits: {', '.join(splits)})")
    if max(indices) >= depth:
        raise InputError(f"{path}: split {split!r} names slice {max(indices)} of {depth}")
    return indices


def _isbi(name: str, gt: np.ndarray | None, prob: np.ndarray, gt_path: str, progress: bool):
    from unet import metrics

    if gt is None:
        raise InputError(
            f"{gt_path}: ground truth is not binary (instance ids); the {name} "
            "error needs 0 = membrane and one positive value = cell"
        )
    if name == "warping":
        return metrics.warping_error(gt, prob, progress=progress)
    return getattr(metrics, ISBI[name])(gt, prob)


def _per_slice(func, gt: np.ndarray, pred: np.ndarray) -> list[Any]:
    return [func(gt[z], pred[z]) for z in range(gt.shape[0])]


def evaluate(
    prob: np.ndarray,
    labels: np.ndarray,
    gt_binary: np.ndarray | None,
    gt_labels: np.ndarray,
    names: list[str],
    threshold: float = 0.5,
    gt_path: str = "ground truth",
    progress: bool = False,
) -> dict[str, dict[str, Any]]:
    """Every requested metric as ``{column: {"value", "per_slice", ...}}`` on (Z, Y, X) arrays."""
    from tqdm import tqdm

    from unet import metrics
    from unet.postprocess import above

    out: dict[str, dict[str, Any]] = {}
    mask = above(prob, threshold)
    gt_mask = gt_binary if gt_binary is not None else gt_labels > 0
    for name in tqdm(names, desc="evaluate", unit="metric", disable=not progress):
        if name in ISBI:
            out[ISBI[name]] = _isbi(name, gt_binary, prob, gt_path, progress).to_dict()
        elif name == "voi":
            total = metrics.variation_of_information(gt_labels, labels)
            slices = _per_slice(metrics.variation_of_information, gt_labels, labels)
            out["voi_split"] = {"value": total.split, "per_slice": [v.split for v in slices]}
            out["voi_merge"] = {"value": total.merge, "per_slice": [v.merge for v in slices]}
        elif name == "seg":
            out["seg"] = {
                "value": metrics.seg_score(gt_labels, labels),
                "per_slice": _per_slice(metrics.seg_score, gt_labels, labels),
            }
        else:
            func = getattr(metrics, name)
            out[name] = {"value": func(gt_mask, mask), "per_slice": _per_slice(func, gt_mask, mask)}
    return out


def finite(value: Any) -> Any:
    """NaN (no object to score) as JSON null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


def to_csv(results: dict[str, dict[str, Any]], slices: list[int]) -> str:
    """One row per slice (its index along Z) and a ``total`` row."""
    columns = list(results)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["slice", *columns])
    cell = lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else repr(v)  # noqa: E731
    for i, z in enumerate(slices):
        writer.writerow([z, *(cell(results[c]["per_slice"][i]) for c in columns)])
    writer.writerow(["total", *(cell(results[c]["value"]) for c in columns)])
    return buffer.getvalue()
