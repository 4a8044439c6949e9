"""Speed of ``unet.weights.weight_map`` against the whole-image brute force, on one core.

    python benchmarks/weights.py [--datasets ../shared/datasets] [--repeats 5]

Cases: an ISBI 2012 training slice (512x512, target <= 0.2 s), a 2048x2048 mosaic of 16
ISBI slices and a 2048x2048 synthetic image with 5000 cells. Without the ISBI labels
(``DATASETS/isbi2012/train-labels.tif``, e.g. in a clone without the shared mirror), the
ISBI cases use generated 512x512 slices of ``unet.synthetic`` with a comparable cell count
(about 130 cells, ISBI has 88-136), and the output says which data was used.

The brute force runs one distance transform per instance over the whole image and keeps the
two smallest per pixel; on the 2048x2048 cases it is timed on a sample of instances and
scaled to all of them.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage

from unet.synthetic import SyntheticParams, synthetic_slice
from unet.weights import class_weight_values, weight_map

TARGET_ISBI_S = 0.2
DEFAULT_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
GENERATED = SyntheticParams(size=512, cell_diameter=40.0)  # ~130 cells, like ISBI slices


def brute_force(labels: np.ndarray, ids: np.ndarray | None = None) -> np.ndarray:
    """The paper's weight map from one whole-image distance transform per instance."""
    ids = np.unique(labels[labels > 0]) if ids is None else ids
    d1, d2 = np.full(labels.shape, np.inf), np.full(labels.shape, np.inf)
    for i in ids:
        dist = ndimage.distance_transform_edt(labels != i)
        np.minimum(d2, np.maximum(d1, dist), out=d2)
        np.minimum(d1, dist, out=d1)
    w_bg, w_cell = class_weight_values(labels, "balanced")
    border = 10.0 * np.exp(-((d1 + d2) ** 2) / 50.0)
    return np.where(labels > 0, w_cell, w_bg + border).astype(np.float32)


def _seconds(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def isbi_slice(datasets: Path, z: int) -> np.ndarray:
    """4-connected components of the cells (255) of ISBI training slice ``z``.

    Without the ISBI labels under ``datasets``, generated slice ``z`` (seeded).
    """
    path = datasets / "isbi2012" / "train-labels.tif"
    if not path.is_file():
        return synthetic_slice(np.random.default_rng([0, z]), GENERATED)[1].astype(np.int64)
    labels = tifffile.imread(path, key=z)
    return ndimage.label(labels == 255)[0]


def data_source(datasets: Path) -> str:
    """Which data the ISBI cases use: the mirror's labels or generated slices."""
    path = datasets / "isbi2012" / "train-labels.tif"
    if path.is_file():
        return f"ISBI 2012 labels from {path}"
    return (f"generated slices (unet.synthetic, 512x512, cell diameter "
            f"{GENERATED.cell_diameter:g}): {path} not found")  # fmt: skip


def isbi_mosaic(datasets: Path) -> np.ndarray:
    """16 ISBI (or generated) slices tiled 4x4 into 2048x2048, each cell its own instance."""
    tiles = [isbi_slice(datasets, z) for z in range(16)]
    offsets = np.cumsum([0] + [t.max() for t in tiles[:-1]])
    tiles = [np.where(t > 0, t + o, 0) for t, o in zip(tiles, offsets, strict=True)]
    return np.block([tiles[r * 4 : r * 4 + 4] for r in range(4)])


def synthetic(shape: tuple[int, int], n: int, seed: int = 0) -> np.ndarray:
    """``n`` Voronoi cells of random radius, separated by 1-pixel gaps."""
    rng = np.random.default_rng(seed)
    seeds = np.ones(shape, bool)
    points = rng.choice(seeds.size, n, replace=False)
    seeds.flat[points] = False
    dist, index = ndimage.distance_transform_edt(seeds, return_indices=True)
    ids = np.zeros(shape, np.int64)
    ids.flat[points] = np.arange(1, n + 1)
    labels = ids[tuple(index)]
    labels[dist > rng.uniform(8.0, 20.0, n + 1)[labels]] = 0
    labels[ndimage.maximum_filter(labels, 3) != labels] = 0
    return labels


def measure(name: str, labels: np.ndarray, repeats: int, sample: int | None) -> dict:
    """Time weight_map and the brute force (on ``sample`` instances, scaled) on ``labels``."""
    ids = np.unique(labels[labels > 0])
    fast = _seconds(lambda: weight_map(labels), repeats)
    row = {"case": name, "size": "x".join(map(str, labels.shape)), "instances": len(ids),
           "fast_s": fast, "ms_per_mpx": 1e3 * fast / (labels.size / 1e6)}  # fmt: skip
    if sample is None or sample >= len(ids):
        start = time.perf_counter()
        reference = brute_force(labels)
        row["brute_s"], row["brute_kind"] = time.perf_counter() - start, "measured"
        ours = weight_map(labels)
        row["max_rel_diff"] = float(np.max(np.abs(ours - reference) / reference))
    else:
        picked = np.random.default_rng(0).choice(ids, sample, replace=False)
        start = time.perf_counter()
        brute_force(labels, picked)
        per_instance = (time.perf_counter() - start) / sample
        row["brute_s"], row["brute_kind"] = per_instance * len(ids), f"est. from {sample}"
        row["max_rel_diff"] = None
    row["ratio"] = row["brute_s"] / fast
    return row


def print_table(rows: list[dict]) -> None:
    """One line per case: times, the speed-up over the brute force, the largest difference."""
    head = (f"{'case':<24}{'size':>10}{'instances':>10}{'weight_map s':>14}{'ms/Mpx':>8}"
            f"{'brute force s':>15}  {'(how)':<16}{'speed-up':>9}{'max rel diff':>14}")  # fmt: skip
    print(head)
    print("-" * len(head))
    for r in rows:
        diff = "-" if r["max_rel_diff"] is None else f"{r['max_rel_diff']:.1e}"
        print(f"{r['case']:<24}{r['size']:>10}{r['instances']:>10}{r['fast_s']:>14.3f}"
              f"{r['ms_per_mpx']:>8.0f}{r['brute_s']:>15.2f}  {r['brute_kind']:<16}"
              f"{r['ratio']:>8.0f}x{diff:>14}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS,
                        help="offline dataset mirror with isbi2012/train-labels.tif (default: "
                        "%(default)s); generated slices where it is absent")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=5, help="timed runs (median)")
    parser.add_argument("--slice", type=int, default=0, help="ISBI training slice")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    source = data_source(args.datasets)
    kind = "ISBI" if source.startswith("ISBI") else "generated"
    print(f"data: {source}\n")
    isbi = isbi_slice(args.datasets, args.slice)
    rows = [
        measure(f"{kind} slice {args.slice}", isbi, args.repeats, None),
        measure(f"{kind} 4x4 mosaic", isbi_mosaic(args.datasets), max(1, args.repeats // 2), 12),
        measure("synthetic, gaps", synthetic((2048, 2048), 5000), max(1, args.repeats // 2), 12),
    ]
    print_table(rows)
    verdict = "met" if rows[0]["fast_s"] <= TARGET_ISBI_S else "NOT met"
    print(f"\ntarget: {kind} 512x512 slice <= {TARGET_ISBI_S} s on one core: {verdict} "
          f"({rows[0]['fast_s']:.3f} s, median of {args.repeats})")  # fmt: skip


if __name__ == "__main__":
    main()
