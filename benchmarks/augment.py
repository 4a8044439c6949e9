"""Throughput of augmentation: augmented 572x572 (raw, target, weight) triples per second per core.

Target: >= 10 triples/s/core. Everything runs on one thread (torch, BLAS, OpenMP). Rows:

- ``torch`` (the path ``unet.augment`` uses everywhere: the cache blocks and on-the-fly
  training): sampling grid in NumPy, raw by ``grid_sample`` bicubic, weight bilinear,
  labels by an exact NumPy gather, gray values;
- ``torch, raw bilinear``: the same with ``--raw-mode bilinear``;
- ``scipy`` reference: the same sampling grid through ``scipy.ndimage.map_coordinates``
  (cubic spline with prefilter, linear, nearest; mode "mirror") - not used by the package;
- ``block write``: ``unet.cache.write_block`` end to end (sampling + zarr compression + disk).

The training image is generated (a seeded smooth random field, its threshold as the target
and a border-like weight), so the script needs no dataset and runs the same in any clone;
the cost depends on the tile sizes, not on the image content.

Usage: ``python benchmarks/augment.py [--image 512] [--seconds 3]``. Each row says whether
it meets the target, judged on triples per CPU second (per core: the wall rate is lower
when other processes share the core); the last line gives the verdict for the package path.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy import ndimage  # noqa: E402

from unet.augment import (  # noqa: E402
    AugmentConfig,
    augment_tile,
    gray_value,
    random_transform,
    sampling_grid,
)
from unet.cache import TrainingData, write_block  # noqa: E402

TARGET = 10.0  # triples / s / core
TILE_IN, TILE_OUT = (572, 572), (388, 388)


def _images(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    raw = ndimage.gaussian_filter(rng.random((size, size)), 2).astype(np.float32)
    raw = (raw - raw.min()) / (raw.max() - raw.min())
    target = (raw > 0.5).astype(np.uint8)
    weight = (1 + 9 * (np.abs(raw - 0.5) < 0.05)).astype(np.float32)
    return raw, target, weight


def _scipy_triple(rng, raw, target, weight, config) -> None:
    t = random_transform(rng, raw.shape, TILE_OUT, config)
    coords = sampling_grid(t, TILE_IN)
    o = (TILE_IN[0] - TILE_OUT[0]) // 2
    inner = coords[:, o:-o, o:-o]
    gray_value(ndimage.map_coordinates(raw, coords, order=3, mode="mirror"), t)
    ndimage.map_coordinates(target, inner, order=0, mode="mirror")
    ndimage.map_coordinates(weight, inner, order=1, mode="mirror")


def _rate(step: Callable[[int], None], seconds: float) -> tuple[float, float, int]:
    """Triples per wall second and per CPU second over at least ``seconds``."""
    step(0)  # warm up
    n, wall0, cpu0 = 0, time.perf_counter(), time.process_time()
    while (wall := time.perf_counter() - wall0) < seconds or n < 3:
        n += 1
        step(n)
    return n / wall, n / (time.process_time() - cpu0), n


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--image", type=int, default=512, help="training image size (512)")
    parser.add_argument("--seconds", type=float, default=3.0, help="time per row (3)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    raw, target, weight = _images(args.image)
    config, bilinear = AugmentConfig(), AugmentConfig(raw_mode="bilinear")
    rng = np.random.default_rng(0)
    data = TrainingData("bench", [0], [raw], [target], [weight])
    tmp = tempfile.TemporaryDirectory()

    rows = {
        "sampling grid only (572x572)": lambda i: sampling_grid(
            random_transform(rng, raw.shape, TILE_OUT, config), TILE_IN),
        "torch (package path), raw bicubic": lambda i: augment_tile(
            rng, raw, target, weight, tile_in=TILE_IN, tile_out=TILE_OUT, config=config),
        "torch, raw bilinear": lambda i: augment_tile(
            rng, raw, target, weight, tile_in=TILE_IN, tile_out=TILE_OUT, config=bilinear),
        "scipy map_coordinates (reference)": lambda i: _scipy_triple(
            rng, raw, target, weight, config),
    }  # fmt: skip
    print(f"augmented {TILE_IN[0]}x{TILE_IN[1]} triples from a {args.image}x{args.image} image, "
          f"1 thread, torch {torch.__version__}, target {TARGET:g}/s/core")  # fmt: skip
    print(f"| {'path':<36} | {'ms/triple':>9} | {'triples/s (wall)':>16} | "
          f"{'triples/s (cpu)':>15} | {'cpu/s / target':>15} | {'target':<7} |")  # fmt: skip
    print(f"|{'-' * 38}|{'-' * 11}|{'-' * 18}|{'-' * 17}|{'-' * 17}|{'-' * 9}|")
    rates = {name: _rate(step, args.seconds) for name, step in rows.items()}
    for name, rate in rates.items():
        _report(name, *rate)
    n = 16
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    write_block(data, f"{tmp.name}/block.zarr", block=0, n=n, seed=0, tile_in=TILE_IN,
                tile_out=TILE_OUT, config=config)  # fmt: skip
    wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
    _report(f"block write ({n} tiles, zarr)", n / wall, n / cpu, n)
    tmp.cleanup()
    package = rates["torch (package path), raw bicubic"][1]
    print(f"\ntarget: >= {TARGET:g} augmented triples/s/core on the package path: "
          f"{_verdict(package)} ({package:.1f}/s per CPU second)")  # fmt: skip


def _verdict(cpu_rate: float) -> str:
    return "met" if cpu_rate >= TARGET else "NOT met"


def _report(name: str, wall_rate: float, cpu_rate: float, n: int) -> None:
    print(f"| {name:<36} | {1000 / wall_rate:>9.1f} | {wall_rate:>16.1f} | {cpu_rate:>15.1f} | "
          f"{cpu_rate / TARGET:>14.2f}x | {_verdict(cpu_rate):<7} |")  # fmt: skip


if __name__ == "__main__":
    main()
