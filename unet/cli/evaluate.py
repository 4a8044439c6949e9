"""``unet evaluate``: challenge metrics of a prediction -> JSON and CSV."""

from __future__ import annotations

import argparse
import json

import numpy as np

from unet.errors import InputError
from unet.evaluate import (
    AUTO,
    METRICS,
    evaluate,
    finite,
    load_ground_truth,
    load_prediction,
    make_instances,
    resolve_metrics,
    split_slices,
    to_csv,
)


def _inputs(args: argparse.Namespace) -> tuple[np.ndarray, ...]:
    """(probability, labels, binary ground truth or None, ground-truth labels) as (Z, Y, X)
    stacks restricted to the ``--split`` slices, and the slice indices; prints how the
    prediction was read."""
    prob, labels, reading = load_prediction(
        args.prediction, args.prediction_array, args.prediction_kind
    )
    print(f"prediction: {reading}", flush=True)
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
        raise InputError(
            f"prediction {args.prediction} has shape {prob.shape}, ground truth "
            f"{args.ground_truth} has {gt_labels.shape} (split {args.split}); expected equal shapes"
        )
    if labels is None:  # instances only of the slices scored
        labels = make_instances(prob, args.instances, args.threshold)
    return prob, labels, gt_binary, gt_labels, np.array(slices), reading


def _run(args: argparse.Namespace) -> int:
    from unet.io import write_text_atomic

    if args.threads:
        import numba

        numba.set_num_threads(max(1, min(args.threads, numba.config.NUMBA_NUM_THREADS)))
    prob, labels, gt_binary, gt_labels, slices, reading = _inputs(args)
    names = resolve_metrics(args.metrics, args.ground_truth, gt_binary is not None)
    if "auto" in args.metrics:
        print(f"metrics: {' '.join(args.metrics)} = {' '.join(names)}", flush=True)
    results = evaluate(prob, labels, gt_binary, gt_labels, names, args.threshold,
                       args.ground_truth, progress=True)  # fmt: skip
    report = dict(prediction=str(args.prediction), prediction_reading=reading,
                  ground_truth=str(args.ground_truth), shape=list(prob.shape), split=args.split,
                  slices=slices.tolist(), threshold=args.threshold, instances=args.instances,
                  metrics=results)  # fmt: skip
    write_text_atomic(args.out_json, json.dumps(finite(report), indent=1) + "\n")
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
    auto = "; ".join(f"{fmt}: {' '.join(names)}" for fmt, names in AUTO.items())
    p.add_argument(
        "--metrics",
        nargs="+",
        choices=[*METRICS, "auto"],
        default=list(METRICS),
        metavar="METRIC",
        help=f"any of {', '.join(METRICS)} (default all), or auto: by the format attribute "
        f"of a dataset store ({auto}; else all that the ground truth allows)",
    )
    p.add_argument("--out-json", required=True, help="report with tables (written atomically)")
    p.add_argument("--out-csv", required=True, help="per-slice values and total")
    p.add_argument("--prediction-array", help="array name inside a prediction zarr group")
    p.add_argument("--ground-truth-array", help="array name inside a ground-truth zarr group")
    p.add_argument(
        "--prediction-kind",
        choices=["auto", "probability", "labels"],
        default="auto",
        help="how to read the prediction (printed). auto: float = probability in [0, 1]; "
        "bool or integers 0/v = mask; other uint8 = probability 0-255 (scaled to [0, 1]); "
        "other integers = labels (instance ids). probability: uint8/uint16 scaled by "
        "255/65535. labels: any integers as instance ids",
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
