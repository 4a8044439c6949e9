"""Report figures (PNG, written atomically): weight maps, augmentations, training curves.

- :func:`weights_figure`: raw image, instance boundaries and weight map side by side, as
  the paper's Fig. 3; an ignore mask (unannotated cells, weight 0) is shown grey and hatched.
- :func:`augmentation_figure`: one training image under several augmentations with the
  deformed grid overlaid. A regular line grid is warped with the very sampling grid that
  warps the image, so the overlay shows the transform (elastic deformation, rotation,
  flips) the tile went through.
- :func:`training_curve`: training and validation loss, and the validation pixel, Rand and
  warping errors, against the iteration (the rows of a training run's validation CSV).
- :func:`per_slice_figure`: each metric's value on every evaluated slice.
- :func:`overlay_figure`: raw | probability | split and merge errors
  (:mod:`unet.split_merge`) of one slice; :func:`unlabelled_overlay_figure`: raw | probability.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from unet.augment import (
    DEFAULT,
    AugmentConfig,
    Transform,
    gray_value,
    random_transform,
    sampling_grid,
)
from unet.io import atomic_output
from unet.labels import relabel
from unet.resample import warp as _warp


def _pyplot() -> Any:
    """matplotlib.pyplot on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | os.PathLike[str], dpi: int) -> Path:
    """Write ``fig`` as a PNG at ``path`` atomically and close it."""
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    _pyplot().close(fig)
    return Path(path)


def weights_figure(
    raw: np.ndarray,
    instances: np.ndarray,
    weights: np.ndarray,
    path: str | os.PathLike[str],
    ignore: np.ndarray | None = None,
) -> Path:
    """Raw image, instance boundaries and weight map side by side (the paper's Fig. 3).

    ``ignore`` (nonzero = unannotated, weight 0) is drawn grey and hatched on the instances
    and the weight map, its share of the pixels in the titles.
    """
    from scipy import ndimage

    plt = _pyplot()
    labels = relabel(instances, sequential=True)
    edges = ndimage.maximum_filter(labels, 3) != ndimage.minimum_filter(labels, 3)
    colours = np.random.default_rng(0).uniform(0.2, 1.0, (int(labels.max()) + 1, 3))
    overlay = np.where((labels > 0)[..., None], colours[labels], 0.0)
    overlay[edges] = 1.0
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.4), layout="constrained")
    low, high = np.percentile(raw, [0.5, 99.5])  # dim fluorescence stays visible
    axes[0].imshow(raw, cmap="gray", vmin=low, vmax=max(high, low + 1e-6))
    axes[1].imshow(overlay, interpolation="nearest")
    image = axes[2].imshow(weights, cmap="jet")
    fig.colorbar(image, ax=axes[2], shrink=0.8, label="w(x)")
    cells = len(np.unique(labels)) - int(labels.min() == 0)
    titles = ["raw image", f"{cells} instances and their boundaries", "weight map"]
    if ignore is not None and np.any(ignore):
        mask = np.asarray(ignore) != 0
        for ax in axes[1:]:
            _hatch(ax, mask)
        share = f"{100 * mask.mean():.1f}% of the pixels"
        titles[1] += f"\nhatched: unannotated cells ({share})"
        titles[2] += f"\nhatched: ignored, weight 0 ({share})"
    for ax, title in zip(axes, titles, strict=True):
        ax.set_title(title)
        ax.set_axis_off()
    return _save(fig, path, dpi=100)


def _hatch(ax: Any, mask: np.ndarray) -> None:
    """Grey out and hatch ``mask`` on ``ax`` (image coordinates)."""
    grey = np.zeros((*mask.shape, 4), dtype=np.float32)
    grey[mask] = (0.5, 0.5, 0.5, 0.85)
    ax.imshow(grey, interpolation="nearest")
    ax.contourf(mask.astype(np.float32), levels=[0.5, 1.5], colors="none", hatches=["////"])


def grid_lines(shape: tuple[int, int], spacing: int = 32, width: int = 2) -> np.ndarray:
    """A float32 image, 1 on horizontal and vertical lines every ``spacing`` pixels."""
    lines = np.zeros(shape, dtype=np.float32)
    for axis in (0, 1):
        on = (np.arange(shape[axis]) % spacing) < width
        if axis == 0:
            lines[on, :] = 1
        else:
            lines[:, on] = 1
    return lines


def _identity(shape: tuple[int, int], grid: int) -> Transform:
    return Transform(center=((shape[0] - 1) / 2, (shape[1] - 1) / 2), angle=0.0, flip=(1, 1),
                     displacement=np.zeros((2, grid, grid)))  # fmt: skip


def _title(t: Transform) -> str:
    flips = "".join(a for a, f in zip("yx", t.flip, strict=True) if f < 0) or "none"
    angle = math.degrees(t.angle)
    return f"rot {angle:.0f} deg, flip {flips}\ngamma {t.gamma:.2f}, contrast {t.contrast:.2f}"


def augmentation_figure(
    raw: np.ndarray,
    target: np.ndarray,
    path: str | os.PathLike[str],
    *,
    rng: np.random.Generator,
    weight: np.ndarray | None = None,
    config: AugmentConfig = DEFAULT,
    n: int = 5,
    spacing: int = 32,
) -> Path:
    """Write a PNG: the image and ``n`` whole-image augmentations (top: raw with the warped
    grid in red; bottom: the warped weight map, or the target if no weight is given)."""
    plt = _pyplot()
    shape = raw.shape
    lines, below = grid_lines(shape, spacing), target if weight is None else weight
    transforms = [_identity(shape, config.grid)]
    transforms += [random_transform(rng, shape, shape, config) for _ in range(n)]
    fig, axes = plt.subplots(2, n + 1, figsize=(2.6 * (n + 1), 5.6), squeeze=False)
    for col, t in enumerate(transforms):
        coords = sampling_grid(t, shape)
        overlay = np.zeros((*shape, 4), dtype=np.float32)
        overlay[..., 0] = 1.0
        overlay[..., 3] = np.clip(_warp(lines, coords, "bilinear"), 0, 1) * 0.8
        axes[0, col].imshow(gray_value(_warp(raw, coords, config.raw_mode), t), cmap="gray",
                            vmin=0, vmax=1)  # fmt: skip
        axes[0, col].imshow(overlay)
        mode = "nearest" if weight is None else "bilinear"
        axes[1, col].imshow(_warp(below, coords, mode), cmap="magma")
        axes[0, col].set_title("original" if col == 0 else _title(t), fontsize=8)
        for ax in axes[:, col]:
            ax.set_axis_off()
    fig.suptitle(f"elastic sigma={config.elastic_sigma:g} px on a {config.grid}x{config.grid} grid,"
                 " bicubic; labels nearest, weights bilinear", fontsize=9)  # fmt: skip
    fig.tight_layout()
    return _save(fig, path, dpi=110)


def figure_for_block(data, path: str | os.PathLike[str], *, seed: int, block: int,
                     config: AugmentConfig = DEFAULT, n: int = 5) -> Path:  # fmt: skip
    """The figure for the first training slice of ``data`` (a :class:`unet.cache.TrainingData`),
    with augmentations drawn from (seed, block)."""
    rng = np.random.default_rng([seed, block])
    return augmentation_figure(data.raw[0], data.target[0], path, rng=rng,
                               weight=data.weight[0], config=config, n=n)  # fmt: skip


def training_curve(
    loss: list[list[float]],
    rows: list[dict[str, Any]],
    path: str | os.PathLike[str],
    best: int | None = None,
) -> Path:
    """Left: training loss (``[iteration, mean loss]`` points) and validation loss; right:
    validation pixel and Rand error, warping error on its own axis; ``best`` marked."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained")
    if loss:
        its, values = zip(*loss, strict=True)
        left.plot(its, values, color="tab:blue", lw=1, label="training (mean)")
    its = [r["iteration"] for r in rows]
    if rows:
        left.plot(its, [r["val_loss"] for r in rows], "o-", color="tab:orange", ms=3,
                  label="validation")  # fmt: skip
        right.plot(its, [r["pixel_error"] for r in rows], "o-", ms=3, label="pixel error")
        right.plot(its, [r["rand_error"] for r in rows], "s-", ms=3, label="Rand error")
        warp = right.twinx()
        warp.plot(its, [r["warping_error"] for r in rows], "^--", ms=3, color="tab:green",
                  label="warping error (right axis)")  # fmt: skip
        warp.set_ylabel("warping error")
    for ax in (left, right):
        if best is not None:
            ax.axvline(best, color="grey", ls=":", lw=1, label=f"best (iteration {best})")
        ax.set_xlabel("iteration")
    handles = [h for ax in fig.axes[1:] for h in ax.get_legend_handles_labels()[0]]
    for ax, shown in ((left, left.get_legend_handles_labels()[0]), (right, handles)):
        if shown:
            ax.legend(handles=shown, loc="upper right", fontsize=8)
    left.set_ylabel("weighted cross-entropy")
    if loss and min(v for _, v in loss) > 0:
        left.set_yscale("log")
    right.set_ylabel("error")
    left.set_title("loss")
    right.set_title("validation (whole val slices, overlap-tile)")
    return _save(fig, path, dpi=100)


def per_slice_figure(
    slices: list[int], values: dict[str, list[float | None]], path: str | os.PathLike[str]
) -> Path:
    """One panel per metric: its value on every slice (None: no value, a gap)."""
    plt = _pyplot()
    rows = math.ceil(len(values) / 2)
    fig, axes = plt.subplots(
        rows, 2, figsize=(10, 0.6 + 2.0 * rows), sharex=True, squeeze=False, layout="constrained"
    )
    for ax, (name, column) in zip(axes.flat, values.items(), strict=False):
        ys = [np.nan if v is None else v for v in column]
        ax.plot(slices, ys, "o-", ms=4, lw=1)
        ax.set_title(name.replace("_", " "), fontsize=9)
        ax.grid(alpha=0.3)
        if len(slices) <= 30:
            ax.set_xticks(slices)
    for ax in axes.flat[len(values) :]:
        ax.set_axis_off()
    for ax in axes[-1]:
        ax.set_xlabel("slice (index along Z)")
    return _save(fig, path, dpi=90)


SPLIT_COLOUR, MERGE_COLOUR = "#0072B2", "#D55E00"  # blue and vermillion (colour-blind safe)


def _stretch(ax: Any, raw: np.ndarray) -> None:
    low, high = np.percentile(raw, [0.5, 99.5])
    ax.imshow(raw, cmap="gray", vmin=low, vmax=max(high, low + 1e-6))


def _tint(ax: Any, mask: np.ndarray, colour: str, alpha: float = 0.6) -> None:
    from matplotlib.colors import to_rgba

    layer = np.zeros((*mask.shape, 4), dtype=np.float32)
    layer[mask] = to_rgba(colour, alpha)
    ax.imshow(layer, interpolation="nearest")


def overlay_figure(
    raw: np.ndarray,
    probability: np.ndarray,
    errors: Any,
    path: str | os.PathLike[str],
    threshold: float | None = None,
) -> Path:
    """Raw image, cell probability, and the raw image with the split ground-truth cells
    (blue) and the merging predicted segments (vermillion) of ``errors`` (a
    :class:`unet.split_merge.SplitMerge`) filled, with a legend."""
    from matplotlib.patches import Patch

    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 5), layout="constrained")
    _stretch(axes[0], raw)
    image = axes[1].imshow(probability, cmap="magma", vmin=0, vmax=1)
    fig.colorbar(image, ax=axes[1], shrink=0.7, label="cell probability")
    _stretch(axes[2], raw)
    _tint(axes[2], errors.split, SPLIT_COLOUR)
    _tint(axes[2], errors.merge, MERGE_COLOUR)
    legend = [
        Patch(color=SPLIT_COLOUR, label=f"split: {len(errors.split_cells)} cells cut"),
        Patch(
            color=MERGE_COLOUR, label=f"merge: {len(errors.merge_segments)} segments joining cells"
        ),
    ]
    axes[2].legend(
        handles=legend,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.02),
        fontsize=9,
        ncol=1,
        frameon=False,
    )
    at = "" if threshold is None else f" (p > {threshold:.1f})"
    for ax, name in zip(axes, ("raw", "probability", f"split and merge errors{at}"), strict=True):
        ax.set_title(name)
        ax.set_axis_off()
    return _save(fig, path, dpi=80)


def unlabelled_overlay_figure(
    raw: np.ndarray | None, probability: np.ndarray, path: str | os.PathLike[str]
) -> Path:
    """Raw image and cell probability side by side (a slice without ground truth); the
    probability alone when ``raw`` is None."""
    plt = _pyplot()
    panels = 1 if raw is None else 2
    fig, axes = plt.subplots(1, panels, figsize=(0.5 + 4.5 * panels, 4.6), squeeze=False,
                             layout="constrained")  # fmt: skip
    if raw is not None:
        _stretch(axes[0, 0], raw)
        axes[0, 0].set_title("raw")
    image = axes[0, -1].imshow(probability, cmap="magma", vmin=0, vmax=1)
    fig.colorbar(image, ax=axes[0, -1], shrink=0.7, label="cell probability")
    axes[0, -1].set_title("probability")
    for ax in axes[0]:
        ax.set_axis_off()
    return _save(fig, path, dpi=80)
