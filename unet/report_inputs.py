"""The inputs of ``unet report``, read and checked before anything is written.

:func:`load` reads the evaluation JSON (``unet evaluate --out-json``), the dataset store, the
prediction store and every optional input the command names (training folder, weight maps,
an augmentation block, a test prediction, the environment report, benchmark files, the
resolved configuration, the repository). An input that is named but missing or not what
it should be is an :class:`~unet.errors.InputError` naming it; an input that is not named
is None, and the report says what is missing.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unet.errors import InputError
from unet.io import open_store

EVAL_KEYS = (
    "prediction",
    "ground_truth",
    "shape",
    "split",
    "slices",
    "threshold",
    "instances",
    "metrics",
)
CSV_COLUMNS = (
    "iteration",
    "elapsed_s",
    "train_loss",
    "val_loss",
    "pixel_error",
    "rand_error",
    "warping_error",
)


@dataclass
class Inputs:
    """Everything a report is made of (optional parts None when not given)."""

    dataset: str
    store: Path
    store_attrs: dict[str, Any]
    shape: tuple[int, ...]  # of the store's raw (Z, Y, X)
    eval_path: Path
    evaluation: dict[str, Any]
    prediction: Path
    prediction_attrs: dict[str, Any]
    train_dir: Path | None = None
    validation: list[dict[str, Any]] | None = None  # rows of validation.csv
    weights: Path | None = None
    augment_block: Path | None = None
    test_prediction: Path | None = None
    test_store: Path | None = None
    environment: dict[str, Any] | None = None
    benchmarks: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] | None = None
    git: dict[str, Any] = field(default_factory=dict)
    overlays: int = 3

    @property
    def format(self) -> str:
        """isbi2012, ctc or synthetic (the store's ``format``; isbi2012 if it has none)."""
        return str(self.store_attrs.get("format") or "isbi2012")


def load_evaluation(path: str | Path) -> dict[str, Any]:
    """The JSON of ``unet evaluate --out-json``, checked for its keys and shapes."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--eval-json {path}: no such file; expected the JSON of unet evaluate")
    try:
        report = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not JSON ({err}); expected the JSON of unet evaluate") from None
    missing = [k for k in EVAL_KEYS if not isinstance(report, dict) or k not in report]
    if missing:
        raise InputError(f"{path}: no {', '.join(missing)}; expected the JSON of unet evaluate")
    shape, slices = report["shape"], report["slices"]
    if len(shape) != 3 or len(slices) != shape[0] or not isinstance(report["metrics"], dict):
        raise InputError(
            f"{path}: shape {shape} does not fit {len(slices)} slices; expected the JSON of "
            "unet evaluate"
        )
    for name, result in report["metrics"].items():
        if not isinstance(result, dict) or "value" not in result:
            raise InputError(f"{path}: metric {name} has no value; expected unet evaluate's JSON")
        if len(result.get("per_slice", [])) != len(slices):
            raise InputError(f"{path}: metric {name} has no value for every one of the slices")
    return report


def _check_evaluation(path: Path, report: dict[str, Any], store: Path, shape: tuple) -> None:
    depth, size = shape[0], tuple(shape[1:])
    if tuple(report["shape"][1:]) != size or max(report["slices"], default=0) >= depth:
        raise InputError(
            f"{path}: scores slices of {report['shape'][1]}x{report['shape'][2]} up to slice "
            f"{max(report['slices'], default=0)}, but {store} holds {depth} slices of "
            f"{size[0]}x{size[1]}; expected an evaluation of this dataset"
        )


def _image_shape(path: Path, what: str) -> tuple[int, ...]:
    from unet.readers import open_image

    if not path.exists():
        raise InputError(f"{what} {path}: no such file or store")
    with open_image(path) as image:
        return tuple(image.shape)


def _prediction(path: Path, shape: tuple[int, ...], store: Path, what: str) -> dict[str, Any]:
    from unet import ngff

    got = _image_shape(path, what)
    if got != shape:
        raise InputError(
            f"{what} {path}: shape {got}, but {store} holds {shape}; expected a prediction of it"
        )
    try:
        attrs = ngff.read_attrs(path)
    except Exception:
        return {}  # not an OME-Zarr of unet predict: nothing recorded
    if "predict" in attrs and attrs.get("complete") is not True:
        raise InputError(
            f"{what} {path}: not marked complete (a killed unet predict?); expected a "
            "finished prediction (rerun unet predict to complete it)"
        )
    return attrs


def read_validation(train_dir: Path) -> list[dict[str, Any]] | None:
    """The rows of ``train_dir/validation.csv`` as numbers (None if there is no CSV)."""
    path = train_dir / "validation.csv"
    if not path.is_file():
        return None
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if rows and not set(CSV_COLUMNS) <= set(rows[0]):
        raise InputError(f"{path}: expected columns {', '.join(CSV_COLUMNS)}")
    try:
        table = [
            {k: float(v) if v not in ("", None) else None for k, v in row.items()} for row in rows
        ]
    except ValueError as err:
        raise InputError(f"{path}: {err}; expected numbers") from None
    for row in table:
        row["iteration"] = int(row["iteration"] or 0)
    return table


def _json_file(path: Path, what: str) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{what} {path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{what} {path}: not JSON ({err})") from None
    if not isinstance(value, dict):
        raise InputError(f"{what} {path}: expected a JSON object")
    return value


def _config(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"--config-json: not JSON ({err}); expected the resolved config") from None
    if not isinstance(value, dict):
        raise InputError("--config-json: expected a JSON object (the resolved config)")
    return value


def _folder(path: Path | None, what: str, arrays: tuple[str, ...] = ()) -> Path | None:
    """``path`` checked to be a folder (a zarr store holding ``arrays``), or None."""
    if path is None:
        return None
    if not path.is_dir():
        raise InputError(f"{what} {path}: no such folder")
    if arrays:
        open_store(path, arrays)
    return path


def load(args: Any) -> Inputs:
    """Read and check what the ``unet report`` arguments ``args`` name (see the module)."""
    from unet.provenance import git_state, read_benchmarks

    store = Path(args.store)
    if not store.exists():
        raise InputError(f"--store {store}: no such dataset store")
    group = open_store(store, ("raw", "instances"))
    shape = tuple(group["raw"].shape)
    evaluation = load_evaluation(args.eval_json)
    _check_evaluation(Path(args.eval_json), evaluation, store, shape)
    path = lambda p: None if p is None else Path(p)  # noqa: E731
    inputs = Inputs(
        dataset=args.dataset,
        store=store,
        store_attrs=dict(group.attrs),
        shape=shape,
        eval_path=Path(args.eval_json),
        evaluation=evaluation,
        prediction=Path(args.prediction),
        prediction_attrs=_prediction(Path(args.prediction), shape, store, "--prediction"),
        train_dir=_folder(path(args.train_dir), "--train-dir"),
        weights=_folder(path(args.weights), "--weights", ("weights",)),
        augment_block=_folder(
            path(args.augment_block), "--augment-block", ("raw", "target", "weight")
        ),
        benchmarks=read_benchmarks(args.benchmarks or []),
        config=_config(args.config_json),
        git=git_state(args.repo),
        overlays=args.overlays,
    )
    if inputs.train_dir is not None:
        inputs.validation = read_validation(inputs.train_dir)
    _check_figure_inputs(inputs)
    if args.environment is not None:
        inputs.environment = _json_file(Path(args.environment), "--environment")
    _test_inputs(inputs, path(args.test_prediction), path(args.test_store))
    if args.overlays < 0:
        raise InputError(f"--overlays {args.overlays}: expected a count >= 0")
    return inputs


def _check_figure_inputs(inputs: Inputs) -> None:
    """The weight maps of the store's shape; an augmentation block's record of its settings."""
    import zarr

    from unet.augment import AugmentConfig

    if inputs.weights is not None:
        shape = tuple(zarr.open_group(str(inputs.weights), mode="r")["weights"].shape)
        if shape != inputs.shape:
            raise InputError(
                f"--weights {inputs.weights}: shape {shape}, but {inputs.store} holds "
                f"{inputs.shape}; expected the weight maps of this dataset"
            )
    if inputs.augment_block is not None:
        attrs = dict(zarr.open_group(str(inputs.augment_block), mode="r").attrs)
        try:
            AugmentConfig(**attrs["augment"]), int(attrs["seed"]), int(attrs["block"])
        except (KeyError, TypeError, ValueError) as err:
            raise InputError(
                f"--augment-block {inputs.augment_block}: no record of its settings ({err!r}); "
                "expected a block of unet augment"
            ) from None


def _test_inputs(inputs: Inputs, prediction: Path | None, store: Path | None) -> None:
    """The test-volume prediction and its raw store: shapes checked against each other."""
    if store is not None:
        inputs.test_store = store
        test_shape = _image_shape(store, "--test-store")
        if prediction is not None:
            _prediction(prediction, test_shape, store, "--test-prediction")
    elif prediction is not None:
        _image_shape(prediction, "--test-prediction")
    inputs.test_prediction = prediction


def slice_ranges(slices: list[int]) -> str:
    """[20, 21, 22, 24] -> "20-22, 24"."""
    parts: list[str] = []
    for z in sorted(slices):
        if parts and parts[-1].split("-")[-1] == str(z - 1):
            parts[-1] = f"{parts[-1].split('-')[0]}-{z}"
        else:
            parts.append(str(z))
    return ", ".join(parts)
