"""``unet report``: one run's results as ``OUTDIR/index.html`` and ``OUTDIR/report.md``.

The report puts the evaluation's metrics beside the paper's leaderboard rows
(:mod:`unet.paper`) with the evaluation split and protocol, then per-slice values, the
training curves, the weight-map and augmentation figures, prediction overlays with split and
merge errors (:mod:`unet.split_merge`), inference throughput and peak memory, and the
provenance (:mod:`unet.provenance`). ``report.md`` links ``figures/*.png``; ``index.html``
embeds them and opens offline, alone (:mod:`unet.document`). OUTDIR is built in a hidden
sibling folder and renamed into place when complete; an earlier report there is replaced,
any other non-empty folder refused. Inputs are read and checked first
(:mod:`unet.report_inputs`), so bad input writes nothing.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from unet import figures, report_metrics, report_provenance
from unet.document import FIGURES, Figure, Note, Section, Table, Text, to_html, to_markdown
from unet.errors import InputError
from unet.report_inputs import CSV_COLUMNS, Inputs


@contextlib.contextmanager
def report_folder(outdir: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a new hidden sibling of ``outdir``; on success it replaces ``outdir`` (absent,
    empty or an earlier report), on failure it is removed and ``outdir`` left as it was."""
    final = Path(outdir)
    if final.exists() and not (
        final.is_dir() and (not any(final.iterdir()) or (final / "index.html").is_file())
    ):
        raise InputError(f"OUTDIR {final}: exists and is not a report; expected a new path")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(final, "partial")
    try:
        yield tmp
        old = _sibling(final, "old")
        if final.exists():
            os.replace(final, old)  # onto the empty folder
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _sibling(final: Path, what: str) -> Path:
    """A new empty hidden folder beside ``final`` (permissions by the umask, unlike mkdtemp)."""
    path = final.with_name(f".{final.name}.{what}-{os.getpid()}-{secrets.token_hex(4)}")
    path.mkdir()
    return path


def write_report(inputs: Inputs, outdir: str | os.PathLike[str]) -> Path:
    """Write the report of ``inputs`` into ``outdir`` (see the module docstring)."""
    title = f"U-Net report: {inputs.dataset}"
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with report_folder(outdir) as tmp:
        out = tmp / FIGURES
        out.mkdir()
        sections = [
            report_metrics.summary(inputs, when),
            report_metrics.metrics(inputs),
            per_slice(inputs, out),
            training(inputs, out),
            inputs_figures(inputs, out),
            overlays(inputs, out),
            *test_volume(inputs, out),
            report_provenance.inference(inputs),
            report_provenance.provenance(inputs),
        ]
        (tmp / "report.md").write_text(to_markdown(title, sections))
        (tmp / "index.html").write_text(to_html(title, sections, out))
    return Path(outdir)


def per_slice(inputs: Inputs, out: Path) -> Section:
    """The per-slice table and plot."""
    ev = inputs.evaluation
    values = {name: result["per_slice"] for name, result in ev["metrics"].items()}
    blocks: list[Any] = [report_metrics.per_slice_table(inputs)]
    if values:
        figures.per_slice_figure(ev["slices"], values, out / "per-slice.png")
        blocks.insert(0, Figure("per-slice.png", "Each metric on every evaluated slice"))
    else:
        blocks.insert(0, Note(f"{inputs.eval_path} holds no metric"))
    return Section("per-slice", "Per-slice metrics", blocks)


def training(inputs: Inputs, out: Path) -> Section:
    """The training curves and the validation table of the training folder."""
    if inputs.train_dir is None:
        note = Note("training curves: no training folder given (--train-dir)")
        return Section("training", "Training", [note])
    rows, curve = inputs.validation, inputs.train_dir / "curve.png"
    blocks: list[Any] = []
    if curve.is_file():
        shutil.copyfile(curve, out / "training-curve.png")
    elif rows:
        loss = [[r["iteration"], r["train_loss"]] for r in rows if r["train_loss"] is not None]
        figures.training_curve(loss, rows, out / "training-curve.png", best=_best(rows))
    if (out / "training-curve.png").is_file():
        what = "Training loss, validation loss and the validation errors against the iteration"
        blocks.append(Figure("training-curve.png", what))
    if not rows:
        csv = inputs.train_dir / "validation.csv"
        blocks.append(Note(f"validation metrics: {csv} is missing or empty (no validation)"))
        return Section("training", "Training", blocks)
    best, columns = _best(rows), list(CSV_COLUMNS)
    number = report_metrics.number
    table = [[("best " if r["iteration"] == best else "") + number(r["iteration"]),
              *(number(r.get(c)) for c in columns[1:])] for r in rows]  # fmt: skip
    caption = "Validations during training (best: lowest Rand error, the checkpoint best.pt)"
    blocks.append(Table(columns, table, caption=caption))
    return Section("training", "Training", blocks)


def _best(rows: list[dict[str, Any]]) -> float | None:
    scored = [r for r in rows if r.get("rand_error") is not None]
    return min(scored, key=lambda r: r["rand_error"])["iteration"] if scored else None


def inputs_figures(inputs: Inputs, out: Path) -> Section:
    """The weight map (the paper's Fig. 3) and the augmentations of one image."""
    blocks: list[Any] = []
    if inputs.weights is None:
        blocks.append(Note("weight-map figure: no weight-map store given (--weights)"))
    else:
        z = _weights_figure(inputs, out / "weights.png")
        blocks.append(
            Figure(
                "weights.png",
                f"Slice {z}: raw, instances and the loss weight map w(x) (the paper's Fig. 3)",
            )
        )
    if inputs.augment_block is None or inputs.weights is None:
        missing = "--augment-block" if inputs.augment_block is None else "--weights"
        blocks.append(Note(f"augmentation figure: needs {missing}"))
    else:
        _augmentation_figure(inputs, out / "augmentation.png")
        blocks.append(
            Figure(
                "augmentation.png",
                "One training image under augmentations of "
                f"{inputs.augment_block.name}'s settings, the deformed grid in red",
            )
        )
    return Section("inputs", "Loss weights and augmentation", blocks)


def _weights_figure(inputs: Inputs, path: Path) -> int:
    import zarr

    from unet.weights import open_ignore, open_labels, target_labels

    group, instances, semantic = open_labels(inputs.store)
    z = ((group.attrs.get("split") or {}).get("train") or [0])[0]
    weights = zarr.open_group(str(inputs.weights), mode="r")["weights"]
    ignore = open_ignore(inputs.store, group, instances.shape)
    figures.weights_figure(
        np.asarray(group["raw"][z]),
        target_labels(instances, semantic, z),
        weights[z],
        path,
        ignore=None if ignore is None else ignore[z],
    )
    return int(z)


def _augmentation_figure(inputs: Inputs, path: Path) -> None:
    import zarr

    from unet.augment import AugmentConfig
    from unet.cache import load_training

    attrs = dict(zarr.open_group(str(inputs.augment_block), mode="r").attrs)
    config = AugmentConfig(**attrs["augment"])  # checked by report_inputs.load
    seed, block = int(attrs["seed"]), int(attrs["block"])
    data = load_training(inputs.store, inputs.weights, attrs.get("normalization"))
    figures.figure_for_block(data, path, seed=seed, block=block, config=config, n=3)


def _probability(image: Any, z: int) -> np.ndarray:
    p = np.asarray(image[z])
    return p / np.iinfo(p.dtype).max if p.dtype.kind in "iu" else p.astype(np.float32)


def overlays(inputs: Inputs, out: Path) -> Section:
    """Raw | probability | split and merge errors on the first evaluated slices."""
    from unet.evaluate import make_instances
    from unet.io import open_store
    from unet.readers import open_image
    from unet.split_merge import split_merge

    ev = inputs.evaluation
    rand = ev["metrics"].get("rand_error") or {}
    th = rand.get("threshold")
    th, chosen = (ev["threshold"], "the evaluation's") if th is None else (th, "Rand's best")
    slices = ev["slices"][: inputs.overlays]
    if not slices:
        return Section("overlays", "Prediction overlays", [Note("no overlays (--overlays 0)")])
    group = open_store(inputs.store, ("raw", "instances"))
    blocks: list[Any] = [_overlay_text(ev["instances"], th, chosen)]
    with open_image(inputs.prediction) as image:
        for z in slices:
            prob = _probability(image, z)
            pred = make_instances(prob[None], ev["instances"], th)[0]
            errors = split_merge(np.asarray(group["instances"][z]), pred)
            name = f"overlay-z{z}.png"
            figures.overlay_figure(
                np.asarray(group["raw"][z]), prob, errors, out / name, threshold=th
            )
            blocks.append(
                Figure(
                    name,
                    f"Slice {z}: {len(errors.split_cells)} split cells, "
                    f"{len(errors.merge_segments)} merging segments",
                )
            )
    return Section("overlays", "Prediction overlays", blocks)


def _overlay_text(instances: str, th: float, chosen: str) -> Text:
    from unet.split_merge import FLOOR, FRACTION

    return Text(
        f"Predicted segments: {instances} instances at threshold {th:.1f} ({chosen} "
        "threshold). Blue: a ground-truth cell that two or more predicted segments overlap "
        "(split error); vermillion: a predicted segment that overlaps two or more ground-truth "
        f"cells (merge error). A segment overlaps a cell when it covers {FRACTION:.0%} of the "
        f"cell's pixels, and at least {FLOOR} px."
    )


def test_volume(inputs: Inputs, out: Path) -> list[Section]:
    """Raw | probability on a few test slices (no ground truth); none without a test run."""
    if inputs.test_prediction is None:
        return []
    from unet.readers import open_image

    blocks: list[Any] = []
    if inputs.test_store is None:
        blocks.append(Note("raw test images: no test store given (--test-store)"))
    with contextlib.ExitStack() as stack:
        image = stack.enter_context(open_image(inputs.test_prediction))
        raw = None if inputs.test_store is None else open_image(inputs.test_store)
        if raw is not None:
            stack.enter_context(raw)
        count, depth = min(max(inputs.overlays, 1), image.shape[0]), image.shape[0]
        for z in range(count):
            name = f"test-z{z}.png"
            shown = None if raw is None else np.asarray(raw[z])
            figures.unlabelled_overlay_figure(shown, _probability(image, z), out / name)
            blocks.append(Figure(name, f"Test slice {z}: raw and probability (no ground truth)"))
    text = f"{inputs.test_prediction.name}: the first {count} of {depth} test slices."
    blocks.insert(0, Text(text))
    return [Section("test", "Test volume", blocks)]
