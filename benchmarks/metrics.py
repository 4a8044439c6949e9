"""Speed of the ISBI 2012 metrics on a 30x512x512 stack, against the issue's targets.

The stack is the ISBI 2012 training labels (25 slices in the offline mirror) tiled to 30
slices (the first 5 again, mirrored left-right), with a probability made from them by a
Gaussian blur (sigma 2 px) and Gaussian noise (sd 0.15), clipped to [0, 1], seeded. Without
the mirror (``DATASETS/isbi2012/train-labels.tif``, e.g. in a clone without the shared
folder), 30 generated EM-like slices of ``unet.synthetic`` (512x512, about 130 cells each,
membranes 2-6 px) are used instead, and the output says so.

    python benchmarks/metrics.py [--datasets ../shared/datasets] [--labels PATH] [--repeat N]

Prints one table: value, best threshold, seconds (best of N runs), target, time / target,
and whether each target was met. The numba compilation of the warping kernel is timed apart
(it is cached on disk).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

TARGETS = {"warping_error": 30.0, "rand_error": 5.0, "pixel_error": 1.0}
DEFAULT_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def stack(labels_path: Path, depth: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """(ground truth 0/255, probability float32, description) of shape (depth, 512, 512)."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    if labels_path.is_file():
        import tifffile

        labels = tifffile.imread(labels_path)
        source = f"{labels_path.name} {labels.shape[0]} slices, tiled to {depth}"
    else:
        from unet.synthetic import SyntheticParams, synthetic_slices

        params = SyntheticParams(size=512, cell_diameter=40.0)  # ~130 cells, like ISBI
        cells = np.stack([ids for _, ids in synthetic_slices(depth, seed, params)])
        labels = np.where(cells > 0, 255, 0).astype(np.uint8)
        source = f"generated EM-like slices (unet.synthetic; {labels_path} not found)"
    reps = -(-depth // labels.shape[0])
    tiles = [labels if k % 2 == 0 else labels[:, :, ::-1] for k in range(reps)]
    gt = np.concatenate(tiles)[:depth]
    blurred = ndimage.gaussian_filter(gt.astype(np.float32) / 255, (0, 2, 2))
    prob = np.clip(blurred + rng.normal(0, 0.15, gt.shape), 0, 1).astype(np.float32)
    return gt, prob, source


def _timed(func, repeat: int):
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--datasets",
        type=Path,
        default=DEFAULT_DATASETS,
        help="offline dataset mirror with isbi2012/train-labels.tif (default: %(default)s); "
        "a generated stack where it is absent",
    )
    parser.add_argument("--labels", type=Path, help="ISBI-style labels TIFF (overrides --datasets)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per metric (best is shown)")
    args = parser.parse_args()
    labels = args.labels or args.datasets / "isbi2012" / "train-labels.tif"

    import numba

    from unet import metrics

    gt, prob, source = stack(labels)
    start = time.perf_counter()
    metrics.warping_error(gt[:1, :32, :32], prob[:1, :32, :32])  # compile or load the cache
    warmup = time.perf_counter() - start
    print(
        f"stack {gt.shape} from {source}; {os.cpu_count()} cores, numba threads "
        f"{numba.get_num_threads()}; kernel compile/load {warmup:.1f} s"
    )
    print(
        f"{'metric':<14} {'value':>10} {'best th':>8} {'time s':>8} {'target s':>9} "
        f"{'time/target':>12}  verdict"
    )
    for name in ("pixel_error", "rand_error", "warping_error"):
        seconds, result = _timed(lambda n=name: getattr(metrics, n)(gt, prob), args.repeat)
        target = TARGETS[name]
        print(
            f"{name:<14} {result.value:>10.6f} {result.threshold:>8.1f} {seconds:>8.2f} "
            f"{target:>9.1f} {seconds / target:>12.3f}  {'met' if seconds <= target else 'NOT met'}"
        )


if __name__ == "__main__":
    main()
