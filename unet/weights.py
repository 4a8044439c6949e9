"""``unet weights``: the paper's pixel-wise loss weights, exact and in time linear in pixels.

Ronneberger et al. (2015), eq. 2: for every pixel x of a ground-truth segmentation

    w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))**2 / (2 * sigma**2))

with d1, d2 the Euclidean distances (in pixels) from x to the nearest and the second-nearest
cell (instance). The border term is added on background pixels only (id 0: membranes, the
gaps between touching cells); with fewer than two instances d2 is infinite and it vanishes.

Ignored pixels. Training multiplies each pixel's cross-entropy by w(x), so weight 0 leaves a
pixel out of the loss. A store's ``ignore`` mask (1 = unannotated foreground: cells that the
partial ground truth of Cell Tracking Challenge frames leaves out, see :mod:`unet.ignore`)
gets weight 0, and the balanced class weights count the annotated pixels only. The weight
map carries the zeros into the augmentation cache (warped bilinearly like the rest).

Exactness and cost. Each instance's distance transform is computed only inside its bounding
box grown by a radius R, so the work grows with the pixels, not pixels x instances. Inside
that box it is exact (every pixel of the instance lies in it). A pixel left out of an
instance's box is farther than R from it, so d1 and d2 are exact wherever d2 <= R; elsewhere
both the true and the computed d1 + d2 exceed R. R is chosen so that w0 * exp(-R**2 / (2
sigma**2)) is below float32 resolution of the background class weight (2**-24 * w_c, or the
float32 underflow 2**-150 when that weight is 0): the float32 map equals the whole-image
brute force up to one float32 rounding step (in practice bit for bit).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from unet.errors import InputError
from unet.labels import relabel

ClassWeights = str | Mapping[int, float] | None

_RELATIVE = 2.0**-24  # float32 resolution: omitted terms below this fraction of w_c
_UNDERFLOW = 2.0**-150  # below half the smallest float32 subnormal: rounds to 0


def _check_instances(instances: Any) -> np.ndarray:
    array = np.asarray(instances)
    if array.ndim != 2:
        expected, got = "a 2-D (Y, X) array of instance ids", f"shape {array.shape}"
    elif not np.issubdtype(array.dtype, np.integer):
        expected, got = "integer instance ids", f"dtype {array.dtype}"
    elif array.size and array.min() < 0:
        expected, got = "ids >= 0 (0 = background)", f"minimum {array.min()}"
    else:
        return array
    raise InputError(f"instances: expected {expected}, got {got}")


def _check_parameters(w0: float, sigma: float) -> None:
    if not (math.isfinite(w0) and w0 >= 0):
        raise InputError(f"w0: expected a finite number >= 0, got {w0}")
    if not (math.isfinite(sigma) and sigma > 0):
        raise InputError(f"sigma: expected a finite number > 0, got {sigma}")


def class_weight_values(instances: np.ndarray, class_weights: ClassWeights) -> tuple[float, float]:
    """The class weights ``(w_background, w_cell)`` for one label image.

    ``"balanced"``: w_c(k) = N / (K * n_k), N the pixels, n_k those of class k, K the classes
    present (1 or 2), so that w_c averages to 1 over the image and both classes weigh the
    same in total; an absent class gets weight 0 (it has no pixels). ``"none"`` (or None):
    1 for both. A mapping ``{0: background, 1: cell}``: those values (finite, >= 0).
    """
    if class_weights is None or class_weights == "none":
        return 1.0, 1.0
    if class_weights == "balanced":
        cells = int(np.count_nonzero(instances))
        counts = (instances.size - cells, cells)
        present = sum(1 for n in counts if n)
        bg, cell = (instances.size / (present * n) if n else 0.0 for n in counts)
        return bg, cell
    if isinstance(class_weights, Mapping) and set(class_weights) == {0, 1}:
        bg, cell = float(class_weights[0]), float(class_weights[1])
        if all(math.isfinite(v) and v >= 0 for v in (bg, cell)):
            return bg, cell
    raise InputError(
        "class_weights: expected 'balanced', 'none' or {0: background, 1: cell} with finite "
        f"weights >= 0, got {class_weights!r}"
    )


def cutoff_radius(w0: float, sigma: float, w_background: float) -> float:
    """Distance beyond which the border term is below float32 resolution of ``w_background``."""
    negligible = max(_RELATIVE * w_background, _UNDERFLOW)
    if w0 <= negligible:
        return 0.0
    return sigma * math.sqrt(2.0 * math.log(w0 / negligible))


def two_nearest_distances(
    instances: Any, radius: float = math.inf
) -> tuple[np.ndarray, np.ndarray]:
    """Distances (float64) from every pixel to its nearest and second-nearest instance.

    Exact wherever the second-nearest instance is within ``radius``; elsewhere both values
    are >= the true ones and d2 > ``radius`` (inf where there is no such instance nearby).
    Pixels of an instance have d1 = 0.
    """
    from scipy import ndimage

    labels = relabel(_check_instances(instances))
    d1 = np.full(labels.shape, np.inf)
    d2 = np.full(labels.shape, np.inf)
    grow = math.ceil(radius) if math.isfinite(radius) else max(labels.shape, default=0)
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        box = tuple(
            slice(max(s.start - grow, 0), min(s.stop + grow, n))
            for s, n in zip(box, labels.shape, strict=True)
        )
        dist = ndimage.distance_transform_edt(labels[box] != index)
        near, second = d1[box], d2[box]
        np.minimum(second, np.maximum(near, dist), out=second)
        np.minimum(near, dist, out=near)
    return d1, d2


def weight_map(
    instances: Any,
    w0: float = 10.0,
    sigma: float = 5.0,
    class_weights: ClassWeights = "balanced",
    ignore: Any = None,
) -> np.ndarray:
    """The paper's loss weight map (float32, shape of ``instances``) of one label image.

    ``instances``: 2-D integer ids, 0 = background, each other id one cell (ids need not be
    consecutive). w = w_c + w0 * exp(-(d1 + d2)**2 / (2 sigma**2)) on background pixels,
    w = w_c on cell pixels; see :func:`class_weight_values` for w_c. With 0 or 1 instances
    there is no second-nearest cell and w = w_c. ``ignore`` (optional, same shape, nonzero =
    unannotated): w = 0 there (left out of the loss), and w_c is computed from the other
    pixels. Raises ValueError on non-integer or negative ids, a shape that is not 2-D, an
    ``ignore`` of another shape, w0 < 0, sigma <= 0 or bad class weights.
    """
    labels = _check_instances(instances)
    _check_parameters(w0, sigma)
    ignored = _check_ignore(ignore, labels.shape)
    annotated = labels if ignored is None else labels[~ignored]
    w_bg, w_cell = class_weight_values(annotated, class_weights)
    background = labels == 0
    weights = np.where(background, w_bg, w_cell)
    if w0 > 0 and labels.size:
        d1, d2 = two_nearest_distances(labels, cutoff_radius(w0, sigma, w_bg))
        total = d1[background] + d2[background]
        weights[background] += w0 * np.exp(-(total * total) / (2.0 * sigma * sigma))
    if ignored is not None:
        weights[ignored] = 0.0
    return weights.astype(np.float32)


def _check_ignore(ignore: Any, shape: tuple[int, ...]) -> np.ndarray | None:
    if ignore is None:
        return None
    mask = np.asarray(ignore)
    if mask.shape != shape:
        raise InputError(f"ignore: expected a mask of shape {shape}, got {mask.shape}")
    return mask != 0


def parse_class_weights(text: str) -> ClassWeights:
    """``balanced``, ``none`` or ``BACKGROUND,CELL`` (two numbers) as :func:`weight_map` takes."""
    if text in ("balanced", "none"):
        return text
    try:
        background, cell = (float(value) for value in text.split(","))
    except ValueError:
        raise InputError(
            f"class weights: expected 'balanced', 'none' or BACKGROUND,CELL, got {text!r}"
        ) from None
    return {0: background, 1: cell}


def open_labels(store: Path) -> tuple[Any, Any, Any]:
    """The store's group, its ``instances`` array and its ``semantic`` array (or None)."""
    import zarr

    from unet.io import open_store

    if not store.exists():
        raise FileNotFoundError(f"{store}: no such dataset store")
    group = open_store(store, ("instances",))
    instances = group["instances"]
    is_array = isinstance(instances, zarr.Array)
    kind = f"{instances.shape} {instances.dtype}" if is_array else "a group"
    if not is_array or instances.ndim != 3 or not np.issubdtype(instances.dtype, np.integer):
        raise InputError(f"{store}: expected 'instances' as (Z, Y, X) integer ids, got {kind}")
    semantic = group["semantic"] if "semantic" in group else None
    if semantic is not None and semantic.shape != instances.shape:
        raise InputError(f"{store}: 'semantic' shape {semantic.shape} != {instances.shape}")
    return group, instances, semantic


def open_ignore(store: Path, group: Any, shape: tuple[int, ...]) -> Any:
    """The store's ``ignore`` array (1 = left out of the loss), or None if it has none."""
    if "ignore" not in group:
        return None
    ignore = group["ignore"]
    if getattr(ignore, "shape", None) != shape or ignore.dtype.kind not in "biu":
        kind = f"{ignore.shape} {ignore.dtype}" if hasattr(ignore, "shape") else "a group"
        raise InputError(f"{store}: expected 'ignore' as a {shape} integer mask, got {kind}")
    return ignore


def target_labels(instances: Any, semantic: Any, z: int) -> np.ndarray:
    """Slice ``z``'s instances; pixels the target (``semantic``) calls background get id 0."""
    labels = _check_instances(instances[z])
    if semantic is None:
        return labels
    return np.where(np.asarray(semantic[z]) > 0, labels, 0)


def _in_order(pool: ThreadPoolExecutor, fn: Any, items: range, window: int) -> Iterator[Any]:
    """``pool.map(fn, items)`` with at most ``window`` results waiting in memory."""
    pending: deque[Future[Any]] = deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def compute_store(
    store: Path,
    out: Path,
    *,
    w0: float = 10.0,
    sigma: float = 5.0,
    class_weights: ClassWeights = "balanced",
    threads: int = 1,
) -> None:
    """Write ``out``: a zarr group with ``weights`` (Z, Y, X) float32 for ``store``'s labels.

    The labels are ``instances`` with the pixels that ``semantic`` (if present: the training
    target) calls background set to 0, so gaps between touching cells get the border term.
    Pixels of the store's ``ignore`` mask (if present) get weight 0 and the class balance is
    over the other pixels; the attribute ``ignored_fraction`` then holds their share per
    slice. Slices are computed in ``threads`` threads; ``out`` appears only when complete.
    """
    import zarr
    from tqdm import tqdm

    from unet.io import atomic_output

    _check_parameters(w0, sigma)
    explicit = class_weight_values(np.zeros((1, 1), np.uint8), class_weights)  # validates
    if threads < 1:
        raise InputError(f"threads: expected >= 1, got {threads}")
    if out.resolve() == store.resolve():
        raise InputError(f"{out}: the output must not be the input store")
    group, instances, semantic = open_labels(store)
    ignore = open_ignore(store, group, instances.shape)
    saved = class_weights if isinstance(class_weights, str | None) else list(explicit)
    attrs = {"dataset": group.attrs.get("dataset", store.name.removesuffix(".zarr")),
             "source": str(store), "w0": w0, "sigma": sigma, "class_weights": saved}  # fmt: skip

    def work(z: int) -> tuple[np.ndarray, float]:
        try:
            mask = None if ignore is None else np.asarray(ignore[z]) != 0
            labels = target_labels(instances, semantic, z)
            share = 0.0 if mask is None else round(float(mask.mean()), 6)
            return weight_map(labels, w0, sigma, class_weights, mask), share
        except ValueError as err:
            raise InputError(f"{store}: slice {z}: {err}") from None

    with atomic_output(out) as tmp, ThreadPoolExecutor(threads) as pool:
        root = zarr.open_group(tmp, mode="w", attributes=attrs)
        array = root.create_array(
            "weights", shape=instances.shape, chunks=instances.chunks, dtype="float32"
        )
        depth, ignored = instances.shape[0], []
        results = _in_order(pool, work, range(depth), window=2 * threads)
        for z, (weights, share) in enumerate(tqdm(results, store.name, depth, unit="slice")):
            array[z] = weights
            ignored.append(share)
        if ignore is not None:
            root.attrs["ignored_fraction"] = ignored
