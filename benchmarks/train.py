"""Training-step wall time: the real training loop against the bare step on one tile in memory.

    python benchmarks/train.py [--configs w16 paper] [--sources cache fly] [--steps 12]
        [--paper-steps 3] [--threads 2] [--device auto]

Target (issue 11, deliverable 5): a training step's wall time <= 1.10x the bare forward +
backward + optimizer step on the same tile in memory, i.e. the data path (reading a cache
block or augmenting on the fly, conversion to tensors, the copy to the device) is hidden
behind compute. Rows:

- ``bare``: :meth:`unet.trainer.Trainer.step` on one (raw, target, weight) tile held in
  memory (on the device), over and over;
- ``cache``: the loop body of :class:`unet.train.Loop` (``prefetch.next()``, to the device,
  ``step``) with tiles from augmentation cache blocks on disk, read ahead by the
  :class:`unet.train_data.Prefetcher` thread;
- ``fly``: the same with tiles augmented on the fly in that thread.

The networks: ``paper`` (width 64, depth 5, tile 572 -> 388) and ``w16`` (width 16, depth 5,
572 tiles), SGD momentum 0.99, batch 1, the weighted cross-entropy. Bare and pipeline steps
alternate in rounds (one step of each per round) so that a change of the machine's load hits
both; the medians are compared. The data are generated (a synthetic store of 512^2 slices,
its weight maps and two cache blocks in a temporary folder): the script runs the same in a
fresh clone. ``OMP_WAIT_POLICY=PASSIVE`` is set before torch loads, as the workflow's train
rule does (see workflow/rules/train.smk). On CUDA the table adds peak GPU memory.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import contextlib
import io
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch

from unet import train_data
from unet.cache import load_training, write_block
from unet.cli import main as unet
from unet.defaults import MODEL
from unet.model import UNet
from unet.trainer import TrainConfig, Trainer, resolve_device

TARGET = 1.10
CONFIGS = {"w16": dict(base_channels=16, depth=5), "paper": dict(base_channels=64, depth=5)}
TILE = 572


def _data(root: Path) -> tuple[Path, Path]:
    """A synthetic store (8 slices of 512^2) and its weight maps, quietly."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert unet(["fetch", "synthetic", "--out", str(root), "--slices", "8", "--size",
                     "512", "--no-progress"]) == 0  # fmt: skip
        store, weights = root / "synthetic.zarr", root / "synthetic.weights.zarr"
        assert unet(["weights", str(store), "--out", str(weights)]) == 0
    return store, weights


def _blocks(root: Path, store: Path, weights: Path, depth: int) -> tuple[Path, ...]:
    data = load_training(store, weights)
    plan = train_data.plan(train_data.Source(tile=TILE), data, {"dims": 2, "depth": depth,
                                                                 "padding": "valid"})  # fmt: skip
    with contextlib.redirect_stderr(io.StringIO()):
        return tuple(write_block(data, root / f"d{depth}-block-{b}.zarr", block=b, n=8, seed=0,
                                 tile_in=plan.tile_in, tile_out=plan.tile_out)
                     for b in range(2))  # fmt: skip


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(name: str, source: str, store: Path, weights: Path, blocks: tuple[Path, ...],
            steps: int, device: str) -> dict:  # fmt: skip
    """Median bare and pipeline step times of one network and tile source."""
    model_cfg = {**MODEL, **CONFIGS[name]}
    torch.manual_seed(0)
    trainer = Trainer(UNet(**model_cfg), TrainConfig(warmup=0, schedule="constant"), device)
    data = load_training(store, weights)
    src = train_data.Source(blocks=tuple(map(str, blocks)) if source == "cache" else (),
                            tile=TILE)  # fmt: skip
    plan = train_data.plan(src, data, model_cfg)
    prefetch = train_data.Prefetcher(train_data.samples(src, data, plan, 0), 0, 2,
                                     pin=device.startswith("cuda"))  # fmt: skip
    tile = trainer.to_device(*prefetch.next())
    bare, loop = [], []

    def pipeline() -> None:
        trainer.step(*trainer.to_device(*prefetch.next()))

    try:
        for _ in range(2):  # warm-up (allocator, oneDNN / cuDNN choices)
            trainer.step(*tile)
            pipeline()
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        for _ in range(steps):
            _sync(device)
            bare.append(_timed(lambda: (trainer.step(*tile), _sync(device))))
            loop.append(_timed(lambda: (pipeline(), _sync(device))))
    finally:
        prefetch.close()
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None
    return {
        "name": name,
        "source": source,
        "bare": statistics.median(bare),
        "loop": statistics.median(loop),
        "steps": steps,
        "peak_gib": peak,
    }


def _row(r: dict) -> str:
    ratio = r["loop"] / r["bare"]
    verdict = "met" if ratio <= TARGET else "NOT met"
    peak = f"{r['peak_gib']:.2f}" if r["peak_gib"] is not None else "-"
    return (f"| {r['name']:<6} | {r['source']:<6} | {r['steps']:>5} | {r['bare']:>9.3f} | "
            f"{r['loop']:>9.3f} | {1 / r['loop']:>6.2f} | {ratio:>6.3f} | {peak:>8} | "
            f"{verdict:<7} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=["w16", "paper"])
    parser.add_argument("--sources", nargs="+", choices=["cache", "fly"],
                        default=["cache", "fly"])  # fmt: skip
    parser.add_argument("--steps", type=int, default=12, help="timed rounds (width 16)")
    parser.add_argument("--paper-steps", type=int, default=3, help="timed rounds (paper)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (2)")
    parser.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if device.startswith("cuda"):
        args.paper_steps = max(args.paper_steps, args.steps)
    print(f"training step, batch 1, tile {TILE}, SGD momentum 0.99, {device}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store, weights = _data(root)
        blocks = _blocks(root, store, weights, depth=5)
        print(f"| {'model':<6} | {'tiles':<6} | {'steps':>5} | {'bare s':>9} | {'loop s':>9} | "
              f"{'it/s':>6} | {'ratio':>6} | {'GPU GiB':>8} | {'<= 1.10':<7} |")  # fmt: skip
        print(f"|{'-' * 8}|{'-' * 8}|{'-' * 7}|{'-' * 11}|{'-' * 11}|{'-' * 8}|{'-' * 8}|"
              f"{'-' * 10}|{'-' * 9}|")  # fmt: skip
        for name in args.configs:
            steps = args.paper_steps if name == "paper" else args.steps
            for source in args.sources:
                rows.append(measure(name, source, store, weights, blocks, steps, device))
                print(_row(rows[-1]), flush=True)
    worst = max(r["loop"] / r["bare"] for r in rows)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"\npeak RSS {rss:.2f} GiB; load average {os.getloadavg()[0]:.2f}; worst ratio "
          f"{worst:.3f}: target <= {TARGET} {'met' if worst <= TARGET else 'NOT met'}")  # fmt: skip


if __name__ == "__main__":
    main()
