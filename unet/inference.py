"""The model over tiles, as dask tasks: the compute half of :mod:`unet.predict`.

A task takes a range of batches (fixed groups of ``batch`` consecutive tiles of a
:class:`unet.tiler.Tiling`); for each batch it reads every tile's window straight from the
source (mirrored at the border), normalises it (:mod:`unet.normalize`), runs the model
(eval, no gradients, one forward pass per batch, one at a time per process), keeps the
softmax foreground probability of the write tile (the mean over the 8 rotations/flips with
TTA), writes the tile's chunk of the target's level ``0`` and then the chunk's completion
record (an empty file in ``0/.unet-chunks``). Tiles that have a record are skipped; a batch
with any missing tile is computed whole, so a tile is always computed in the same batch.
The graph has at most :data:`MAX_TASKS` tasks whatever the chunk count.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from unet import tiler
from unet.errors import InputError
from unet.normalize import Scaling

RECORDS = ".unet-chunks"  # per-chunk completion records, in the folder of level 0
MAX_TASKS = 1000

_CACHE: dict[str, Any] = {}
_CACHE_LOCK = threading.Lock()
_FORWARD_LOCK = threading.Lock()  # one forward pass at a time per process: bounded memory


@dataclass(frozen=True)
class Job:
    """What every task needs; picklable, so it can go to distributed workers."""

    checkpoint: str
    sha256: str
    source: str
    array: str | None
    target: str
    tiling: tiler.Tiling
    scaling: Scaling
    tta: bool
    dtype: str
    device: str
    amp: str
    batch: int
    threads: int = 0

    @property
    def records(self) -> Path:
        """The folder of completion records."""
        return Path(self.target) / "0" / RECORDS

    @property
    def groups(self) -> int:
        """Number of batches (fixed groups of ``batch`` consecutive tiles)."""
        return -(-len(self.tiling) // self.batch)


# --- the model on tiles ------------------------------------------------------------------


def read_window(image: Any, window: tiler.Window, shape: tuple[int, ...]) -> np.ndarray:
    """The pixels of ``window`` (image coordinates, may reach outside), mirrored at the
    border as :func:`unet.tiler.mirror_indices` defines; reads only the hull needed."""
    index = [
        tiler.mirror_indices(s, s + n, size)
        for s, n, size in zip(window.start, window.shape, shape, strict=True)
    ]
    hull = tuple(slice(int(i.min()), int(i.max()) + 1) for i in index)
    block = np.asarray(image[hull])
    inside = all(
        s >= 0 and s + n <= size
        for s, n, size in zip(window.start, window.shape, shape, strict=True)
    )
    if inside:
        return block
    return block[np.ix_(*(i - h.start for i, h in zip(index, hull, strict=True)))]


def _forward(
    model: Any, x: np.ndarray, crop: tuple[slice, ...], device: str, amp: str
) -> np.ndarray:
    """Foreground probability (softmax, classes >= 1) of a batch, cropped (float32, or
    float64 for a float64 model)."""
    import torch

    dev, dtype = torch.device(device), next(model.parameters()).dtype
    t = torch.from_numpy(np.ascontiguousarray(x)).to(dtype)
    with _FORWARD_LOCK, torch.inference_mode():
        if dev.type == "cuda":
            fmt = torch.channels_last if t.ndim == 4 else torch.channels_last_3d
            t = t.pin_memory().to(dev, non_blocking=True).contiguous(memory_format=fmt)
        kind = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
        with torch.autocast(dev.type, dtype=kind, enabled=kind is not None):
            logits = model(t)
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        prob = torch.softmax(logits, dim=1)[:, 1:].sum(dim=1)
        return prob[(slice(None), *crop)].cpu().numpy()


def predict_tiles(
    model: Any, image: Any, tiling: tiler.Tiling, indices: list[int], scaling: Scaling,
    tta: bool = False, device: str = "cpu", amp: str = "none",
) -> np.ndarray:  # fmt: skip
    """Probabilities of the unclipped write tiles ``indices`` in one batch, shape
    ``(len(indices), *tiling.tile)``; with ``tta`` the mean over the 8 rotations/flips."""
    transforms = tiler.TRANSFORMS if tta else (tiler.IDENTITY,)
    total = None
    for transform in transforms:
        windows = [tiling.window(i, transform) for i in indices]
        x = np.stack([transform.apply(read_window(image, w, tiling.shape)) for w in windows])
        x = scaling.apply(x).reshape(len(indices), 1, *x.shape[-tiling.model_axes :])
        prob = transform.invert(_forward(model, x, windows[0].crop, device, amp))
        total = prob if total is None else total + prob
    assert total is not None
    return (total / len(transforms)).reshape(len(indices), *tiling.tile)


def predict_array(
    model: Any, image: Any, tile: int, scaling: Scaling | None = None, tta: bool = False,
    batch: int = 1,
) -> np.ndarray:  # fmt: skip
    """The whole probability map of a small in-memory image (tests, benchmarks): the
    same tiles and arithmetic as the stage, without the store. ``tile`` is rounded."""
    config = model.config
    geometry = tiler.Geometry.of(config["depth"], config["padding"])
    shape, tile = tuple(image.shape), geometry.round_tile(tile)
    tiling = tiler.make_tiling(shape, config["dims"], geometry, tile)
    scaling, out = scaling or Scaling(0.0, 1.0), None
    for start in range(0, len(tiling), batch):
        indices = list(range(start, min(start + batch, len(tiling))))
        probs = predict_tiles(model, image, tiling, indices, scaling, tta)
        out = np.zeros(shape, probs.dtype) if out is None else out
        for i, prob in zip(indices, probs, strict=True):
            region = tiling.region(i)
            out[region] = prob[tuple(slice(0, r.stop - r.start) for r in region)]
    return out


def convert(prob: np.ndarray, dtype: str) -> np.ndarray:
    """Probabilities in the target dtype (uint8: ``round(p * 255)``)."""
    if dtype == "uint8":
        return np.rint(np.clip(prob, 0, 1) * 255).astype(np.uint8)
    return prob.astype(dtype)


# --- tasks -------------------------------------------------------------------------------


def resolve_device(name: str) -> str:
    """The torch device for ``name``: auto is cuda where available, else cpu; InputError
    for a device this machine does not have."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"--device {name}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {name}: CUDA is not available on this machine")
    if device.type not in ("cpu", "cuda"):
        raise InputError(f"--device {name}: expected auto, cpu, cuda or cuda:N")
    return str(device)


def _resources(job: Job) -> tuple[Any, Any, Any, str]:
    """(model, image, level-0 array, device) of ``job``, loaded once per process and job."""
    with _CACHE_LOCK:
        if _CACHE.get("job") != job:
            import torch
            import zarr

            from unet.export_load import load_network
            from unet.readers import open_image

            release()
            if job.threads:
                torch.set_num_threads(job.threads)
            device = resolve_device(job.device)  # "auto" on a remote worker: its own
            model = load_network(job.checkpoint, map_location=device).to(device).eval()
            if device.startswith("cuda"):
                fmt = torch.channels_last if model.config["dims"] == 2 else torch.channels_last_3d
                model = model.to(memory_format=fmt)
            image = open_image(job.source, job.array)
            out = zarr.open_array(str(Path(job.target) / "0"), mode="r+")
            _CACHE.update(job=job, resources=(model, image, out, device))
        return _CACHE["resources"]


def release() -> None:
    """Drop this process's cached model, image and target (closing the image); the caller
    holds the cache lock."""
    if "resources" in _CACHE:
        _CACHE["resources"][1].close()
    _CACHE.clear()


def _release() -> None:
    with _CACHE_LOCK:
        release()


def run_groups(job: Job, groups: np.ndarray) -> int:
    """One task: predict and write the tiles of batch ``groups`` that have no record yet;
    returns the number of chunks written."""
    model, image, out, device = _resources(job)
    records, tiling, written = job.records, job.tiling, 0
    for group in groups.tolist():
        indices = list(range(group * job.batch, min((group + 1) * job.batch, len(tiling))))
        keys = [tiler.chunk_key(tiling.index(i)) for i in indices]
        if all((records / k).exists() for k in keys):
            continue
        probs = predict_tiles(model, image, tiling, indices, job.scaling, job.tta,
                              device, job.amp)  # fmt: skip
        for i, key, prob in zip(indices, keys, probs, strict=True):
            if (records / key).exists():
                continue
            region = tiling.region(i)
            out[region] = convert(
                prob[tuple(slice(0, r.stop - r.start) for r in region)], job.dtype
            )
            (records / key).touch()  # after the chunk's data
            written += 1
    return written


def chunks_of(job: Job, groups: np.ndarray) -> list[int]:
    """The tiles (chunk indices) of the batches ``groups``."""
    last = len(job.tiling)
    return [
        i for g in groups.tolist() for i in range(g * job.batch, min((g + 1) * job.batch, last))
    ]


def todo(job: Job, within: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """(batches with at least one chunk without a completion record, chunks without one),
    among the batches ``within`` (default: all)."""
    records = job.records
    done = {p.name for p in os.scandir(records)} if records.is_dir() else set()
    tiling = job.tiling
    chunks = range(len(tiling)) if within is None else chunks_of(job, within)
    missing = [i for i in chunks if tiler.chunk_key(tiling.index(i)) not in done]
    return np.unique(np.asarray(missing, dtype=np.int64) // job.batch), len(missing)


def tasks(job: Job, groups: np.ndarray) -> list[Any]:
    """The dask graph: at most :data:`MAX_TASKS` delayed tasks over ranges of batches."""
    import dask

    count = min(len(groups), MAX_TASKS)
    parts = np.array_split(groups, count) if count else []
    call = dask.delayed(run_groups, pure=False)
    return [call(job, part, dask_key_name=f"predict-{k}") for k, part in enumerate(parts)]


def check_scheduler(name: str) -> None:
    """InputError unless ``name`` is threads, sync, local:N or an address (scheme://...)."""
    local = name.startswith("local:") and name[6:].isdigit() and int(name[6:]) > 0
    if name not in ("threads", "sync") and not local and "://" not in name:
        raise InputError(
            f"--scheduler {name}: expected threads, sync, local:N or a dask.distributed "
            "scheduler address such as tcp://host:8786"
        )


def compute(job: Job, groups: np.ndarray, scheduler: str, total: int, progress: bool) -> None:
    """Run the tasks on ``scheduler`` with a progress bar counting chunks (rate, ETA).

    threads/sync: this process, 2 worker threads (3 on CUDA) so that reads and writes
    overlap the forward passes, which take turns; local:N: a LocalCluster of N processes
    (torch threads split between them); an address: that dask.distributed scheduler.
    """
    import torch
    from tqdm import tqdm

    threads = torch.get_num_threads()
    every = 0.1 if sys.stderr.isatty() else 30.0  # seconds between updates (a log file)
    with tqdm(total=total, unit="chunk", desc="predict", disable=not progress,
              mininterval=every) as bar:  # fmt: skip
        if scheduler not in ("threads", "sync"):
            _distributed(job, groups, scheduler, bar)
            return
        try:
            _local(tasks(job, groups), scheduler, bar, workers(job.device))
        finally:
            _release()
            torch.set_num_threads(threads)


def workers(device: str) -> int:
    """Worker threads of the local schedulers: one computes while the others read, write."""
    return 3 if device.startswith("cuda") else 2


def _local(work: list[Any], scheduler: str, bar: Any, workers: int) -> None:
    import dask
    from dask.callbacks import Callback

    class _Progress(Callback):
        def _posttask(self, key, result, dsk, state, worker_id) -> None:
            if isinstance(key, str) and key.startswith("predict-"):
                bar.update(result)

    with _Progress():
        dask.compute(*work, scheduler=scheduler, num_workers=workers)


def _distributed(job: Job, groups: np.ndarray, scheduler: str, bar: Any) -> None:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise InputError(
            f"--scheduler {scheduler}: needs dask.distributed (pip install distributed)"
        ) from None
    cluster = None
    if scheduler.startswith("local:"):
        workers = int(scheduler[6:])
        threads = job.threads or os.cpu_count() or 1
        job = dataclasses.replace(job, threads=max(1, threads // workers))
        cluster = LocalCluster(n_workers=workers, threads_per_worker=2, processes=True,
                               dashboard_address=None)  # fmt: skip
    try:
        with Client(cluster or scheduler) as client:
            for future in as_completed(client.compute(tasks(job, groups))):
                bar.update(future.result())
            client.run(_release)
    finally:
        if cluster is not None:
            cluster.close()
