"""Speed and memory of ``unet predict`` (overlap-tile prediction, issue 10, deliverable 8).

    python benchmarks/predict.py [--parts a b c] [--threads 2] [--tile 512] [--repeats 2]
        [--a-size 2048 4096] [--b-size 16384] [--monai-path DIR] [--gpx 0.25 0.5 1 | --gpx 10]

Every measurement runs in its own Python process (this script with ``--child``), whose peak
resident memory (``VmHWM`` of /proc/self/status) and wall time are reported; all of them use
``--threads`` torch threads (2). ``--parts tiles`` adds a table of the bare forward
throughput by tile (no target). The networks are freshly initialised (the speed and memory
of a forward pass do not depend on the weights) and the images are generated, so the script
runs the same in a fresh clone. Parts:

a. Pipeline over bare model: ``unet.predict.run`` (a TIFF on disk -> a float32 OME-Zarr on
   disk, the threads scheduler, output tile ``--tile``) against the model's own forward pass
   on an in-memory tile of the same window size, for the paper's network (width 64, depth 5)
   and a width-16 one, on images of ``--a-size`` px (one per network); ``--repeats``
   interleaved runs of each side, the fastest counts. Target: pipeline Mpx/s (of output, the
   whole ``run`` call) / forward Mpx/s >= 0.9.
b. Against MONAI's ``sliding_window_inference`` on the same ``--b-size`` image (a TIFF): ours
   is the valid width-16 U-Net through ``unet.predict.run``; MONAI gets the same network
   same-padded (equal width, depth and FLOPs per input pixel), its usual settings (roi
   ``--roi``, overlap 0.25, ``sw_batch_size`` 1, mode constant), the TIFF read whole, the
   softmax foreground written to a TIFF. Goals: ours/MONAI throughput >= 1.3 and ours/MONAI
   peak RSS <= 1/4 (at a size where MONAI's full-size float32 buffers dominate). FLOPs per
   output pixel of both are counted from the layer shapes (torch's FlopCounterMode on the
   meta device). MONAI is not a project dependency: it is taken from ``--monai-path``
   (default benchmarks/.monai, installed there with ``pip install --no-deps --target`` when
   missing) and put on sys.path only in MONAI's own process.
c. Gigapixels: synthetic uint8 zarr arrays of ``--gpx`` gigapixels (1 Gpx = 2^30 px =
   32768 x 32768, chunks of 1024 x 1024), written chunk by chunk under ``--tmp``, predicted
   with a tiny model (width 4, depth 3) into a uint8 OME-Zarr (tile chosen by the predictor
   unless ``--c-tile``). Targets: peak RSS <= 1.5 GB at every size, and seconds per Gpx
   within 15% of the first size's (wall time, and CPU time, which other load on the machine
   changes less). ``--gpx 10`` runs the 10-gigapixel case (``--gpx 0.25 10`` with its
   ratio to 0.25 Gpx); the free disk is checked first (2 bytes per pixel at most).

The tables are markdown; every ratio is computed from figures measured in the same run,
and the load average is printed before and after (the machine may be shared). The measured
processes run with ``OMP_WAIT_POLICY=PASSIVE`` (``--omp-wait-policy``): with libgomp's
default spin-waiting, a bare forward pass on 2 threads ran 2-4x slower while other processes
loaded the 2 CPUs (its threads spin while waiting for a descheduled team member), whereas
our pipeline, whose forward passes run in dask worker threads, was hardly affected; a bare
reference slowed down that way would flatter every ratio. With PASSIVE both are as fast as
the pipeline was with the default.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

TARGET_A = 0.9  # pipeline / forward throughput
GOAL_B_SPEED, GOAL_B_RSS = 1.3, 0.25  # ours / MONAI
TARGET_C_RSS, TARGET_C_LINEAR = 1.5e9, 0.15  # bytes; relative deviation of s/Gpx
GPX = 2**30
NETWORKS = {  # name: UNet arguments
    "paper (width 64)": dict(base_channels=64, depth=5),
    "width 16": dict(base_channels=16, depth=5),
}
TINY = dict(base_channels=4, depth=3)
MONAI_DIR = Path(__file__).resolve().parent / ".monai"
ZARR_CHUNK = 1024  # chunk edge of the synthetic source arrays (a common OME-Zarr choice)
SCAN_BYTES = 3 * 2**30  # tiles part: larger forward passes are left out


# --- measurements, each in its own process ---------------------------------------------------


def _peak_rss() -> int:
    """Peak resident bytes of this process (VmHWM; ru_maxrss where /proc is absent)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _cpu() -> float:
    """User + system CPU seconds of this process so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _child_forward(spec: dict[str, Any]) -> dict[str, Any]:
    """Seconds (wall, CPU) of the bare forward pass on an in-memory (1, 1, *window) tile:
    one warm-up pass, then ``passes`` timed ones."""
    import torch

    from unet.model import load_checkpoint

    torch.set_num_threads(spec["threads"])
    model = load_checkpoint(spec["checkpoint"]).eval()
    x = torch.rand(1, 1, *spec["window"], generator=torch.Generator().manual_seed(0))
    times, cpus = [], []
    with torch.inference_mode():
        model(x)  # warm-up
        for _ in range(spec["passes"]):
            start, cpu = time.perf_counter(), _cpu()
            model(x)
            times.append(time.perf_counter() - start)
            cpus.append(_cpu() - cpu)
    return {"times": times, "cpus": cpus}


def _child_ours(spec: dict[str, Any]) -> dict[str, Any]:
    """``unet.predict.run`` from a file on disk to an OME-Zarr on disk, timed whole."""
    import dask  # noqa: F401  (imports are not timed: the forward side has them too)
    import tifffile  # noqa: F401
    import torch  # noqa: F401
    import tqdm  # noqa: F401
    import zarr  # noqa: F401

    from unet import inference, model, readers  # noqa: F401
    from unet.predict import Options, run

    opts = Options(tile=spec["tile"], dtype=spec["dtype"], threads=spec["threads"],
                   device="cpu", progress=False)  # fmt: skip
    start, cpu = time.perf_counter(), _cpu()
    summary = run(spec["checkpoint"], spec["source"], spec["target"], opts,
                  log=lambda text: print(text, file=sys.stderr))  # fmt: skip
    wall, cpu = time.perf_counter() - start, _cpu() - cpu
    return {"wall": wall, "cpu": cpu, "tile": list(summary["tile"]), "chunks": summary["chunks"],
            "compute_s": summary["seconds"], "compute_mpx_per_s": summary["mpx_per_s"]}  # fmt: skip


def _child_monai(spec: dict[str, Any]) -> dict[str, Any]:
    """MONAI's sliding_window_inference as a user runs it: TIFF read whole, logits of the
    whole image, softmax foreground written to a TIFF."""
    sys.path.insert(0, spec["monai_path"])
    import tifffile
    import torch
    from monai.inferers import sliding_window_inference

    from unet.model import load_checkpoint

    torch.set_num_threads(spec["threads"])
    model = load_checkpoint(spec["checkpoint"]).eval()
    calls = 0

    def predictor(x: torch.Tensor) -> torch.Tensor:
        nonlocal calls
        calls += len(x)
        return model(x)

    import monai

    start = time.perf_counter()
    image = torch.from_numpy(tifffile.imread(spec["source"])).float().div_(255)[None, None]
    read = time.perf_counter()
    with torch.inference_mode():
        logits = sliding_window_inference(image, spec["roi"], 1, predictor,
                                          overlap=spec["overlap"], mode="constant")  # fmt: skip
        computed = time.perf_counter()
        prob = torch.softmax(logits, dim=1)[0, 1:].sum(dim=0)
    tifffile.imwrite(spec["target"], prob.numpy())
    end = time.perf_counter()
    return {"wall": end - start, "compute_s": computed - read, "windows": calls,
            "monai": monai.__version__}  # fmt: skip


CHILDREN = {"forward": _child_forward, "ours": _child_ours, "monai": _child_monai}


def _spawn(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter; its result with ``rss`` (peak bytes)."""
    threads = str(spec["threads"])
    env = dict(os.environ, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads,
               OPENBLAS_NUM_THREADS=threads)  # fmt: skip
    command = [sys.executable, str(Path(__file__).resolve()), "--child", kind, json.dumps(spec)]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"{kind} measurement failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _ours(ckpt: Path, source: Path, target: Path, tile: int | None, dtype: str,
          threads: int) -> dict[str, Any]:  # fmt: skip
    """Our predictor from ``source`` to the new OME-Zarr ``target`` (removed afterwards)."""
    spec = dict(checkpoint=str(ckpt), source=str(source), target=str(target), tile=tile,
                dtype=dtype, threads=threads)  # fmt: skip
    try:
        return _spawn("ours", spec)
    finally:
        shutil.rmtree(target, ignore_errors=True)


def _forward(ckpt: Path, window: tuple[int, ...], threads: int, passes: int) -> dict[str, Any]:
    """The bare forward pass of ``ckpt``'s model on an in-memory tile of ``window``."""
    return _spawn("forward", dict(checkpoint=str(ckpt), window=window, threads=threads,
                                  passes=passes))  # fmt: skip


def _child_main(kind: str, spec: str) -> None:
    result = CHILDREN[kind](json.loads(spec))
    result["rss"] = _peak_rss()
    print(json.dumps(result))


# --- generated inputs ------------------------------------------------------------------------


def pattern(y0: int, y1: int, x0: int, x1: int, seed: int = 0) -> np.ndarray:
    """A deterministic uint8 image block (smooth blobs plus noise) of rows y0:y1, cols x0:x1."""
    rng = np.random.default_rng([seed, y0, x0])
    y = np.arange(y0, y1, dtype=np.float32)[:, None]
    x = np.arange(x0, x1, dtype=np.float32)[None, :]
    smooth = np.sin(y / 23.0 + 1.3) * np.cos(x / 31.0) + 0.5 * np.sin((x + y) / 57.0)
    noise = rng.integers(0, 32, (y1 - y0, x1 - x0), dtype=np.uint8)
    return (np.clip(112 + 64 * smooth, 0, 223).astype(np.uint8) + noise).astype(np.uint8)


def write_tiff(path: Path, size: int) -> Path:
    """A ``size`` x ``size`` uint8 TIFF (uncompressed), built strip by strip."""
    import tifffile

    image = np.empty((size, size), np.uint8)
    for y0 in range(0, size, 1024):
        image[y0 : y0 + 1024] = pattern(y0, min(y0 + 1024, size), 0, size)
    tifffile.imwrite(path, image)
    return path


def write_zarr(path: Path, shape: tuple[int, int]) -> Path:
    """A uint8 zarr v3 array of ``shape``, written one chunk at a time (never whole in
    memory); chunks repeat a few generated blocks (their content does not change the cost)."""
    import zarr

    array = zarr.create_array(str(path), shape=shape, chunks=(ZARR_CHUNK,) * 2, dtype="uint8")
    blocks = [pattern(0, ZARR_CHUNK, 0, ZARR_CHUNK, seed) for seed in range(3)]
    rows, cols = (-(-n // ZARR_CHUNK) for n in shape)
    for k in range(rows * cols):
        i, j = divmod(k, cols)
        region = (slice(i * ZARR_CHUNK, min((i + 1) * ZARR_CHUNK, shape[0])),
                  slice(j * ZARR_CHUNK, min((j + 1) * ZARR_CHUNK, shape[1])))  # fmt: skip
        array[region] = blocks[k % 3][: region[0].stop - region[0].start,
                                      : region[1].stop - region[1].start]  # fmt: skip
    return path


def make_checkpoint(path: Path, **config: Any) -> Path:
    """A checkpoint of a freshly initialised (seeded) U-Net."""
    import torch

    from unet.model import UNet, save_checkpoint

    torch.manual_seed(0)
    save_checkpoint(path, UNet(**config))
    return path


def window_of(config: dict[str, Any], tile: int) -> tuple[int, ...]:
    """The input window the tiler reads for an output tile of edge ``tile``."""
    from unet import tiler

    geometry = tiler.Geometry.of(config["depth"], config.get("padding", "valid"))
    tiling = tiler.make_tiling((tile, tile), 2, geometry, geometry.round_tile(tile))
    return tiling.window(0).shape


def flops(config: dict[str, Any], window: tuple[int, ...]) -> float:
    """FLOPs of one forward pass of a U-Net on a (1, 1, *window) input, from the layer
    shapes (torch's FlopCounterMode on the meta device: nothing is computed)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from unet.model import UNet

    model = UNet(**config).to("meta").eval()
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(torch.empty(1, 1, *window, device="meta"))
    return float(counter.get_total_flops())


def _mib(n: float) -> str:
    return f"{n / 2**20:.0f}"


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _table(head: list[str], rows: list[list[str]]) -> None:
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("-" * (len(h) + 2) for h in head) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(flush=True)


# --- parts -----------------------------------------------------------------------------------


def part_a(args: argparse.Namespace, tmp: Path) -> None:
    """Pipeline throughput over bare forward throughput, per network."""
    print(f"## a. pipeline over bare forward ({args.threads} threads, output tile {args.tile}, "
          f"best of {args.repeats} interleaved runs of each)\n", flush=True)  # fmt: skip
    rows = []
    for (name, config), size in zip(NETWORKS.items(), args.a_size, strict=True):
        ckpt = make_checkpoint(tmp / "a.pt", **config)
        source = write_tiff(tmp / "a.tif", size)
        window = window_of(config, args.tile)
        fwd, ours = [], []
        for _ in range(args.repeats):  # interleaved: a change of load hits both sides
            fwd.append(_forward(ckpt, window, args.threads, args.passes))
            ours.append(_ours(ckpt, source, tmp / "a.ome.zarr", args.tile, "float32",
                              args.threads))  # fmt: skip
        tile, chunks = ours[0]["tile"][-1], ours[0]["chunks"]
        f_wall = min(t for f in fwd for t in f["times"])
        f_cpu = min(t for f in fwd for t in f["cpus"])
        p_wall, p_cpu = min(o["wall"] for o in ours), min(o["cpu"] for o in ours)
        f_rate, p_rate = tile * tile / f_wall / 1e6, size * size / p_wall / 1e6
        ratio, cpu_ratio = p_rate / f_rate, f_cpu * chunks / p_cpu
        rows.append([name, f"{tile}", "x".join(map(str, window)), f"{size}x{size}",
                     f"{chunks}", f"{f_wall:.3f}", f"{f_rate:.3f}", f"{p_wall:.1f}",
                     f"{p_rate:.3f}", f"{max(o['compute_mpx_per_s'] for o in ours):.3f}",
                     _mib(max(o["rss"] for o in ours)), f"{cpu_ratio:.2f}", f"{ratio:.2f}",
                     _met(ratio >= TARGET_A)])  # fmt: skip
    _table(["network", "tile", "window", "image", "chunks", "forward s/tile", "forward Mpx/s",
            "pipeline s", "pipeline Mpx/s", "(tasks only)", "peak RSS MiB",
            "CPU s ratio", "pipeline / forward", f"target >= {TARGET_A}"], rows)  # fmt: skip
    print("forward: the bare `model(x)` on an in-memory tile of the window size (fastest of "
          f"{args.passes} passes after a warm-up, in each of {args.repeats} processes); "
          "pipeline: the whole `unet.predict.run` call in its own process (TIFF -> float32 "
          "OME-Zarr, threads scheduler; imports not timed), output pixels / seconds, fastest "
          "run; (tasks only): run's own Mpx/s, from the first task to the finished store; "
          "CPU s ratio: CPU seconds of chunks x bare forward over those of the pipeline run "
          "(less sensitive to other load on the machine).\n")  # fmt: skip


def _best(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The fastest of ``runs`` by ``key``, with the largest peak RSS of all of them."""
    best = dict(min(runs, key=lambda r: r[key]))
    best["rss"] = max(r["rss"] for r in runs)
    return best


def part_tiles(args: argparse.Namespace, tmp: Path) -> None:
    """Bare forward throughput by output tile: where a CPU is fastest (not a target)."""
    print(f"## tiles: bare forward Mpx/s of output by tile ({args.threads} threads, fastest "
          f"of {args.passes} passes)\n", flush=True)  # fmt: skip
    from unet.model import UNet
    from unet.tiler import forward_bytes

    networks = {**NETWORKS, "tiny (width 4, depth 3)": TINY}
    rows = []
    for name, config in networks.items():
        ckpt = make_checkpoint(tmp / "t.pt", **config)
        row = [name]
        for tile in args.scan:
            window = window_of(config, tile)
            full = dict(UNet(**config).config)
            if forward_bytes(window, full) > SCAN_BYTES:
                row.append("-")  # a forward pass of several GiB: not on a shared machine
                continue
            fwd = _forward(ckpt, window, args.threads, args.passes)
            row.append(f"{tile * tile / min(fwd['times']) / 1e6:.3f}")  # fmt: skip
        rows.append(row)
    _table(["network", *(f"tile {t}" for t in args.scan)], rows)
    print(
        f"-: a forward pass of more than {SCAN_BYTES / 2**30:g} GiB (unet.tiler.forward_bytes), "
        "left out.\n"
    )


def monai_path(args: argparse.Namespace) -> Path:
    """The folder MONAI is imported from, installed there if it is missing."""
    path = Path(args.monai_path) if args.monai_path else MONAI_DIR
    if not (path / "monai" / "__init__.py").is_file():
        print(f"installing MONAI into {path} (pip --no-deps --target)", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                        "--target", str(path), "monai"], check=True)  # fmt: skip
    return path


def part_b(args: argparse.Namespace, tmp: Path) -> None:
    """Ours (valid U-Net, unet.predict) against MONAI (same-padded U-Net, sliding window)."""
    size, roi, overlap = args.b_size, args.roi, 0.25
    mpath = monai_path(args)
    valid, same = dict(base_channels=16, depth=5), dict(base_channels=16, depth=5, padding="same")
    source = write_tiff(tmp / "b.tif", size)
    ckpt_valid = make_checkpoint(tmp / "b-valid.pt", **valid)
    ckpt_same = make_checkpoint(tmp / "b-same.pt", **same)
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "monai": []}
    for _ in range(args.repeats):  # interleaved: a change of load hits both sides
        runs["ours"].append(_ours(ckpt_valid, source, tmp / "b.ome.zarr", args.tile,
                                  "float32", args.threads))  # fmt: skip
        monai = dict(checkpoint=str(ckpt_same), source=str(source), roi=[roi, roi],
                     target=str(tmp / "b-monai.tif"), overlap=overlap, threads=args.threads,
                     monai_path=str(mpath))  # fmt: skip
        runs["monai"].append(_spawn("monai", monai))
        (tmp / "b-monai.tif").unlink()
    ours = _best(runs["ours"], "wall")
    theirs = _best(runs["monai"], "compute_s")
    tile, window = ours["tile"][-1], window_of(valid, args.tile)
    pixels = size * size / 1e6
    f_ours = flops(valid, window) / tile**2
    f_pass = flops(same, (roi, roi)) / roi**2
    f_monai = f_pass * roi * roi * theirs["windows"] / (size * size)
    print(f"## b. ours against MONAI {theirs['monai']} sliding_window_inference "
          f"({size}x{size} uint8 TIFF, {args.threads} threads, best of {args.repeats} "
          "interleaved runs of each, the largest peak RSS)\n")  # fmt: skip
    rows = [
        ["ours: valid U-Net, `unet.predict.run`", f"tile {tile} (window {window[-1]})",
         f"{ours['chunks']}", f"{f_ours / 1e3:.0f}", f"{ours['compute_s']:.1f}",
         f"{ours['wall']:.1f}", f"{pixels / ours['wall']:.3f}", _mib(ours["rss"])],
        [f"MONAI: same-padded U-Net, overlap {overlap}, sw_batch_size 1, constant",
         f"roi {roi}", f"{theirs['windows']}", f"{f_monai / 1e3:.0f}",
         f"{theirs['compute_s']:.1f}", f"{theirs['wall']:.1f}",
         f"{pixels / theirs['compute_s']:.3f}", _mib(theirs["rss"])],
    ]  # fmt: skip
    _table(["run", "tile / roi", "forward passes", "kFLOP per output px", "compute s",
            "total s", "Mpx/s", "peak RSS MiB"], rows)  # fmt: skip
    speed = (pixels / ours["wall"]) / (pixels / theirs["compute_s"])
    memory = ours["rss"] / theirs["rss"]
    print(f"FLOPs per output pixel, from the layer shapes (width 16, depth 5): valid U-Net "
          f"{f_ours / 1e3:.0f} k (window {window[-1]} -> tile {tile}); same-padded U-Net one "
          f"pass {f_pass / 1e3:.0f} k, {f_monai / 1e3:.0f} k with MONAI's overlapping "
          f"windows ({theirs['windows']} windows of {roi}^2 over {size}^2).")  # fmt: skip
    buffers = (2 + 2) * 4 * size * size  # float32 input, 2-class output, count map
    print(
        f"MONAI's full-size float32 buffers (input, 2-class output, count map; 16 B/px): "
        f"{_mib(buffers)} MiB at {size}^2, then the softmax of the whole output."
    )
    print("Mpx/s: ours over its whole run (TIFF -> OME-Zarr on disk); MONAI over the "
          "sliding_window_inference call only (its total adds the whole-image read, softmax "
          "and TIFF write).\n")  # fmt: skip
    _table(["ratio (ours / MONAI)", "value", "goal", "verdict"], [
        ["throughput", f"{speed:.2f}x", f">= {GOAL_B_SPEED}x", _met(speed >= GOAL_B_SPEED)],
        ["peak RSS", f"{memory:.2f}", f"<= {GOAL_B_RSS}", _met(memory <= GOAL_B_RSS)],
    ])  # fmt: skip


def c_shape(gpx: float) -> tuple[int, int]:
    """A 2-D shape of about ``gpx`` * 2^30 pixels: a power-of-two height, the width a
    multiple of the chunk (0.25 -> 16384^2, 0.5 -> 16384x32768, 1 -> 32768^2)."""
    pixels = gpx * GPX
    height = 2 ** round(math.log2(math.sqrt(pixels)))
    width = max(ZARR_CHUNK, round(pixels / height / ZARR_CHUNK) * ZARR_CHUNK)
    return height, width


def part_c(args: argparse.Namespace, tmp: Path) -> None:
    """Peak memory and time of a tiny model over synthetic gigapixel zarr arrays."""
    ckpt = make_checkpoint(tmp / "c.pt", **TINY)
    tile = "auto" if args.c_tile is None else str(args.c_tile)
    print(f"## c. gigapixels: tiny U-Net (width {TINY['base_channels']}, depth "
          f"{TINY['depth']}), uint8 zarr -> uint8 OME-Zarr, tile {tile}, {args.threads} "
          "threads, threads scheduler\n", flush=True)  # fmt: skip
    rows, first = [], None
    for gpx in args.gpx:
        shape = c_shape(gpx)
        gigapixels, size = math.prod(shape) / GPX, "x".join(map(str, shape))
        need = 2 * math.prod(shape) + 2**30  # input and output uncompressed, and a margin
        free = shutil.disk_usage(tmp).free
        if free < need:
            rows.append([f"{gigapixels:.3g}", size, f"skipped: {free / 1e9:.1f} GB free, "
                         f"{need / 1e9:.1f} GB needed", *["-"] * 6])  # fmt: skip
            continue
        source = write_zarr(tmp / "c.zarr", shape)
        ours = _ours(ckpt, source, tmp / "c.ome.zarr", args.c_tile, "uint8", args.threads)
        shutil.rmtree(source)
        per_gpx = (ours["wall"] / gigapixels, ours["cpu"] / gigapixels)
        first = first or per_gpx
        cells = []
        for now, then in zip(per_gpx, first, strict=True):
            linear = abs(now / then - 1) <= TARGET_C_LINEAR
            cells.append(f"{now:.0f} ({now / then:.2f}, {_met(linear)})")
        rows.append([f"{gigapixels:.3g}", size, f"{ours['tile'][-1]} ({ours['chunks']})",
                     f"{ours['wall']:.0f}", f"{math.prod(shape) / 1e6 / ours['wall']:.2f}",
                     *cells, f"{ours['rss'] / 1e9:.2f} ({_met(ours['rss'] <= TARGET_C_RSS)})",
                     f"{os.getloadavg()[0]:.1f}"])  # fmt: skip
        print(f"  {gpx:g} Gpx done ({ours['wall']:.0f} s)", file=sys.stderr, flush=True)
    within = f"{TARGET_C_LINEAR:.0%}"
    _table(["Gpx (2^30 px)", "shape", "tile (chunks)", "predict s", "Mpx/s",
            f"wall s/Gpx (/ first, within {within})", f"CPU s/Gpx (/ first, within {within})",
            f"peak RSS GB (<= {TARGET_C_RSS / 1e9:g})", "load"], rows)  # fmt: skip
    print("predict s: the whole `unet.predict.run` call in its own process (the source is "
          "generated chunk by chunk before it, not timed); CPU s: its user + system CPU "
          "seconds, which other load on the machine changes less than wall time; peak RSS: "
          "its VmHWM; load: the 1-minute load average when it ended.\n")  # fmt: skip


# --- command line ----------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument(
        "--parts",
        nargs="+",
        choices=["a", "b", "c", "tiles"],
        default=["a", "b", "c"],
        help="parts to run (default: a b c; tiles: bare forward Mpx/s by tile)",
    )
    p.add_argument("--scan", type=int, nargs="+", default=[256, 512, 1024, 2048],
                   help="output tiles of the tiles part (256 512 1024 2048)")  # fmt: skip
    p.add_argument("--threads", type=int, default=2, help="torch threads of every side (2)")
    p.add_argument("--tile", type=int, default=512,
                   help="output tile edge of our predictor in a and b (512)")  # fmt: skip
    p.add_argument(
        "--repeats",
        type=int,
        default=2,
        help="interleaved runs of each side in a and b, the fastest counts (2)",
    )
    p.add_argument("--passes", type=int, default=3, help="timed bare forward passes (a)")
    p.add_argument(
        "--a-size",
        type=int,
        nargs=2,
        default=[2048, 4096],
        metavar=("PAPER", "W16"),
        help="image edge per network in a (2048 4096)",
    )
    p.add_argument(
        "--b-size",
        type=int,
        default=16384,
        help="image edge in b (16384: MONAI's full-size buffers, 4 GiB, dominate)",
    )
    p.add_argument("--roi", type=int, default=512, help="MONAI's roi edge in b (512)")
    p.add_argument("--monai-path", help=f"folder with the monai package (default {MONAI_DIR}, "
                   "installed there when missing)")  # fmt: skip
    p.add_argument(
        "--gpx",
        type=float,
        nargs="+",
        default=[0.25, 0.5, 1.0],
        help="sizes in c, in 2^30 px (0.25 0.5 1; add 10 for the 10 Gpx case)",
    )
    p.add_argument("--c-tile", type=int, help="output tile in c (default: the predictor's)")
    p.add_argument(
        "--omp-wait-policy",
        choices=["PASSIVE", "ACTIVE", "default"],
        default="PASSIVE",
        help="OMP_WAIT_POLICY of every measured process (PASSIVE; see above)",
    )
    p.add_argument("--tmp", type=Path, default=Path(tempfile.gettempdir()),
                   help="folder for the generated data (%(default)s)")  # fmt: skip
    return p.parse_args(argv)


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        _child_main(sys.argv[2], sys.argv[3])
        return
    args = parse_args()
    import torch

    load = os.getloadavg()
    print(f"unet predict benchmarks: torch {torch.__version__}, {os.cpu_count()} CPUs, "
          f"{args.threads} threads per side, OMP_WAIT_POLICY {args.omp_wait_policy}; load "
          f"average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the start\n",
          flush=True)  # fmt: skip
    if args.omp_wait_policy != "default":  # the measured processes inherit it
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy
    tmp = Path(tempfile.mkdtemp(prefix="unet-bench-predict-", dir=args.tmp))
    try:
        parts = {"tiles": part_tiles, "a": part_a, "b": part_b, "c": part_c}
        for name, part in parts.items():
            if name in args.parts:
                part(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end")


if __name__ == "__main__":
    main()
