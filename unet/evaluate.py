"""``unet evaluate``: challenge metrics of a prediction against its ground truth.

The prediction is a cell probability in [0, 1] (float), or labels (integer: a 0/255 mask or
instance ids). The ground truth is binary (0 = membrane / background, one positive value =
cell) or instance ids; a canonical dataset store gives both (``semantic`` and ``instances``)
and its ``split`` metadata, so ``--split val`` scores only those slices. Instances of a
probability map come from ``--instances`` (the challenge protocol by default: threshold
then 4-connected components). Writes a JSON report (values, best thresholds, per-threshold
tables, per-slice values) and a CSV with one row per slice and a ``total`` row.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
from typing import Any

import numpy as np

METRICS = ("pixel", "rand", "warping", "voi", "seg", "iou", "dice")
ISBI = {"pixel": "pixel_error", "rand": "rand_error", "warping": "warping_error"}


def load_prediction(
    path: str, array: str | None, kind: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """(probability float32, instance labels) of a prediction file; the labels are None for
    a probability map (see :func:`make_instances`)."""
    from unet.volumes import is_binary, read_volume

    data = read_volume(path, array)
    if kind == "auto":
        floating = data.dtype.kind == "f"
        kind = "probability" if floating or data.dtype == bool or is_binary(data) else "labels"
    if kind == "labels":
        if data.dtype.kind not in "biu":
            raise ValueError(f"{path}: labels must be integers, got dtype {data.dtype}")
        return (data > 0).astype(np.float32), data
    if data.dtype.kind in "iu" and not is_binary(data):
        if data.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"{path}: integer probabilities must be uint8 or uint16")
        data = data / np.iinfo(data.dtype).max  # 0..255 or 0..65535 grey values
    prob = (data > 0) if data.dtype.kind in "biu" else data
    prob = np.asarray(prob, dtype=np.float32)
    if np.isnan(prob).any():
        raise ValueError(f"{path}: probability contains {int(np.isnan(prob).sum())} NaN values")
    if prob.size and (prob.min() < 0 or prob.max() > 1):
        raise ValueError(
            f"{path}: probability must lie in [0, 1], got values in "
            f"[{prob.min():g}, {prob.max():g}]"
        )
    return prob, None


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
    from unet.postprocess import label_slices
    from unet.volumes import group_arrays, is_binary, read_volume

    if array is None and {"semantic", "instances"} <= set(group_arrays(path)):
        return read_volume(path, "semantic") > 0, read_volume(path, "instances")
    data = read_volume(path, array)
    if data.dtype.kind not in "biu":
        raise ValueError(
            f"{path}: ground truth must be integer labels or a mask, got dtype {data.dtype}"
        )
    return (data > 0, label_slices(data)) if is_binary(data) else (None, data)


def split_slices(path: str, split: str, depth: int) -> list[int]:
    """Indices along Z of ``split`` in the ground truth's ``split`` metadata (all for 'all')."""
    from unet.volumes import group_attrs

    if split == "all":
        return list(range(depth))
    splits = group_attrs(path).get("split")
    if not isinstance(splits, dict):
        raise ValueError(f"{path}: no 'split' metadata; use --split all")
    indices = [int(z) for z in splits.get(split, [])]
    if not indices:
        raise ValueError(f"{path}: split {split!r} is empty (splits: {', '.join(splits)})")
    if max(indices) >= depth:
        raise ValueError(f"{path}: split {split!r} names slice {max(indices)} of {depth}")
    return indices


def _isbi(name: str, gt: np.ndarray | None, prob: np.ndarray, gt_path: str, progress: bool):
    from unet import metrics

    if gt is None:
        raise ValueError(
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


def _finite(value: Any) -> Any:
    """NaN (no object to score) as JSON null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
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


def _inputs(args: argparse.Namespace) -> tuple[np.ndarray, ...]:
    """(probability, labels, binary ground truth or None, ground-truth labels) as (Z, Y, X)
    stacks restricted to the ``--split`` slices, and the slice indices."""
    prob, labels = load_prediction(args.prediction, args.prediction_array, args.prediction_kind)
    gt_binary, gt_labels = load_ground_truth(args.ground_truth, args.ground_truth_array)
    if gt_labels.ndim == 2:
        prob, gt_labels = prob[None], gt_labels[None]
        labels = None if labels is None else labels[None]
        gt_binary = None if gt_binary is None else gt_binary[None]
    slices = split_slices(args.ground_truth, args.split, gt_labels.shape[0])
    if prob.shape == gt_labels.shape:  # a prediction of every slice: keep the split's
        prob = prob[slices]
        labels = None if labels is None else labels[slices]
    gt_labels = gt_labels[slices]
    gt_binary = None if gt_binary is None else gt_binary[slices]
    if prob.shape != gt_labels.shape:
        raise ValueError(
            f"prediction {args.prediction} has shape {prob.shape}, ground truth "
            f"{args.ground_truth} has {gt_labels.shape} (split {args.split}); expected equal shapes"
        )
    if labels is None:  # instances only of the slices scored
        labels = make_instances(prob, args.instances, args.threshold)
    return prob, labels, gt_binary, gt_labels, np.array(slices)


def _run(args: argparse.Namespace) -> int:
    from unet.io import write_text_atomic

    if args.threads:
        import numba

        numba.set_num_threads(max(1, min(args.threads, numba.config.NUMBA_NUM_THREADS)))
    prob, labels, gt_binary, gt_labels, slices = _inputs(args)
    results = evaluate(prob, labels, gt_binary, gt_labels, args.metrics, args.threshold,
                       args.ground_truth, progress=True)  # fmt: skip
    report = dict(prediction=str(args.prediction), ground_truth=str(args.ground_truth),
                  shape=list(prob.shape), split=args.split, slices=slices.tolist(),
                  threshold=args.threshold, instances=args.instances, metrics=results)  # fmt: skip
    write_text_atomic(args.out_json, json.dumps(_finite(report), indent=1) + "\n")
    write_text_atomic(args.out_csv, to_csv(results, slices.tolist()))
    for name, result in results.items():
        best = result.get("threshold")
        at = "" if best is None else f" (threshold {best:.1f})"
        print(f"{name:>14}: {result['value']:.6g}{at}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``unet evaluate``."""
    p = sub.add_parser("evaluate", help="challenge metrics of a prediction -> JSON and CSV")
    p.add_argument("prediction", help="probability or labels: TIFF, zarr array/group, OME-Zarr")
    p.add_argument("ground_truth", help="binary mask or instance ids; or a dataset store")
    p.add_argument(
        "--metrics",
        nargs="+",
        choices=METRICS,
        default=list(METRICS),
        metavar="METRIC",
        help=f"any of {', '.join(METRICS)} (default all)",
    )
    p.add_argument("--out-json", required=True, help="report with tables (written atomically)")
    p.add_argument("--out-csv", required=True, help="per-slice values and total")
    p.add_argument("--prediction-array", help="array name inside a prediction zarr group")
    p.add_argument("--ground-truth-array", help="array name inside a ground-truth zarr group")
    p.add_argument(
        "--prediction-kind",
        choices=["auto", "probability", "labels"],
        default="auto",
        help="auto: float or 0/v mask = probability, other integers = labels",
    )
    p.add_argument(
        "--instances",
        choices=["challenge", "watershed", "ctc"],
        default="challenge",
        help="instances of a probability map for voi/seg (default: threshold + "
        "4-connected components)",
    )
    p.add_argument(
        "--threshold",
        type=_unit,
        default=0.5,
        help="probability threshold for instances, iou and dice (default 0.5)",
    )
    p.add_argument(
        "--threads", type=int, default=0, help="threads of the warping kernel (default: all cores)"
    )
    p.add_argument(
        "--split",
        default="all",
        help="score only this split of the ground truth's metadata (default all)",
    )
    p.set_defaults(func=_run)


def _unit(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1], got {text}")
    return value
