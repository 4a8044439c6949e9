"""Speed of the ISBI 2012 metrics on a 30x512x512 stack, against the issue's targets.

The stack is the ISBI 2012 training labels (25 slices in the offline mirror) tiled to 30
slices (the first 5 again, mirrored left-right), with a probability made from them by a
Gaussian blur (sigma 2 px) and Gaussian noise (sd 0.15), clipped to [0, 1], seeded. Without
the mirror, a synthetic membrane stack of the same size is used (and said so).

    python benchmarks/metrics.py [--labels PATH] [--repeat N]

Prints one table: value, best threshold, seconds (best of N runs), target, time / target.
The numba compilation of the warping kernel is timed apart (it is cached on disk).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

TARGETS = {"warping_error": 30.0, "rand_error": 5.0, "pixel_error": 1.0}
DEFAULT_LABELS = Path(__file__).resolve().parents[2] / "shared/datasets/isbi2012/train-labels.tif"


def stack(labels_path: Path, depth: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """(ground truth 0/255, probability float32, description) of shape (depth, 512, 512)."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    if labels_path.exists():
        import tifffile

        labels = tifffile.imread(labels_path)
        source = f"{labels_path.name} {labels.shape[0]} slices, tiled to {depth}"
    else:
        cells = ndimage.gaussian_filter(rng.random((depth, 512, 512)), (0, 6, 6))
        edges = ndimage.morphological_gradient(
            np.digitize(cells, np.quantile(cells, [0.5])), size=(1, 3, 3)
        )
        labels = np.where(edges > 0, 0, 255).astype(np.uint8)
        source = "synthetic membranes (ISBI labels not found)"
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, default=DEFAULT_LABELS)
    parser.add_argument("--repeat", type=int, default=1, help="runs per metric (best is shown)")
    args = parser.parse_args()

    import numba

    from unet import metrics

    gt, prob, source = stack(args.labels)
    start = time.perf_counter()
    metrics.warping_error(gt[:1, :32, :32], prob[:1, :32, :32])  # compile or load the cache
    warmup = time.perf_counter() - start
    print(
        f"stack {gt.shape} from {source}; {os.cpu_count()} cores, numba threads "
        f"{numba.get_num_threads()}; kernel compile/load {warmup:.1f} s"
    )
    print(
        f"{'metric':<14} {'value':>10} {'best th':>8} {'time s':>8} {'target s':>9} "
        f"{'time/target':>12}"
    )
    for name in ("pixel_error", "rand_error", "warping_error"):
        seconds, result = _timed(lambda n=name: getattr(metrics, n)(gt, prob), args.repeat)
        target = TARGETS[name]
        print(
            f"{name:<14} {result.value:>10.6f} {result.threshold:>8.1f} {seconds:>8.2f} "
            f"{target:>9.1f} {seconds / target:>12.3f}"
        )


if __name__ == "__main__":
    main()
