"""Scattered prediction: one TARGET computed by N jobs, each a range of its chunks.

``unet predict ... TARGET --part K/N`` computes part K (1-based) of N: the K-th of N
contiguous ranges of the tiling's batches, written into the staging store
``TARGET.parts/store.zarr`` that every part shares (created whole by the first part to get
there, race-free across hosts: :func:`unet.io.create_exclusive`; the others check that it
was started with their parameters). A part skips chunks that already have a completion
record, so a killed part resumes; when its range is written it leaves its record
``TARGET.parts/K-of-N.json`` (its seconds, chunks, device and peak memory).
``unet predict ... TARGET --gather`` computes nothing: it checks that every chunk has a
record, builds the pyramid levels, marks the store complete with the parts' combined run
record and renames it onto TARGET, which therefore appears whole or not at all.

Parts write disjoint chunks (a chunk is one write tile), which is what zarr allows
concurrent writers to do.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from unet import inference, ngff
from unet.errors import InputError
from unet.io import write_text_atomic

_RECORD = re.compile(r"(\d+)-of-(\d+)\.json")


def parse(text: str) -> tuple[int, int]:
    """``K/N`` -> (K, N) with 1 <= K <= N; InputError otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise InputError(f"--part {text}: expected K/N with 1 <= K <= N, such as 2/3")
    return int(match[1]), int(match[2])


def staging(target: Path) -> Path:
    """The folder the parts of ``target`` share: the store and the parts' records."""
    return target.with_name(f"{target.name}.parts")


def store(target: Path) -> Path:
    """The staging store that the parts fill and ``--gather`` renames onto ``target``."""
    return staging(target) / "store.zarr"


def record_path(target: Path, part: tuple[int, int]) -> Path:
    """Where part ``K/N`` records that its range is written."""
    return staging(target) / f"{part[0]}-of-{part[1]}.json"


def groups_of(part: tuple[int, int], groups: int) -> np.ndarray:
    """The batches of part ``K/N`` among ``groups`` batches: the K-th of N contiguous ranges
    (sizes differ by at most one; a part may be empty when N exceeds the batches)."""
    k, n = part
    return np.array_split(np.arange(groups, dtype=np.int64), n)[k - 1]


def write_record(target: Path, part: tuple[int, int], record: dict[str, Any]) -> None:
    """Part ``K/N``'s record (atomic), after its range is written."""
    write_text_atomic(record_path(target, part), json.dumps(record, indent=1) + "\n")


def records(target: Path) -> dict[tuple[int, int], dict[str, Any]]:
    """The records of the parts that finished, by (K, N)."""
    found = {}
    folder = staging(target)
    for path in sorted(folder.glob("*-of-*.json")) if folder.is_dir() else ():
        match = _RECORD.fullmatch(path.name)
        if match:
            found[int(match[1]), int(match[2])] = json.loads(path.read_text())
    return found


def missing_parts(target: Path) -> str:
    """Which parts have no record, for an error message ("" when none can be named)."""
    found = records(target)
    counts = {n for _, n in found}
    if len(counts) != 1:
        return "no part has finished" if not found else f"parts of {sorted(counts)} jobs"
    (n,) = counts
    left = [f"{k}/{n}" for k in range(1, n + 1) if (k, n) not in found]
    return f"parts without a record: {', '.join(left)}" if left else ""


def combined(found: dict[tuple[int, int], dict[str, Any]], chunks: int) -> dict[str, Any]:
    """The run record of a gathered store: seconds summed over the parts (device time),
    the throughput of that time, the parts' devices and the largest peak memory."""
    parts = list(found.values())
    seconds = sum(p["seconds"] for p in parts)
    pixels = sum(p["mpx_per_s"] * p["seconds"] for p in parts)

    def peak(key: str) -> int | None:
        values = [p[key] for p in parts if p.get(key) is not None]
        return max(values) if values else None

    return dict(
        seconds=seconds, mpx_per_s=pixels / seconds if seconds > 0 else 0.0, chunks=chunks,
        computed=sum(p["computed"] for p in parts), parts=len(parts),
        device=", ".join(sorted({str(p["device"]) for p in parts})),
        peak_rss_bytes=peak("peak_rss_bytes"), peak_gpu_bytes=peak("peak_gpu_bytes"),
    )  # fmt: skip


def publish(target: Path, overwrite: bool) -> None:
    """Rename the gathered staging store onto ``target`` and remove the staging folder."""
    if target.exists():
        if not overwrite and (not target.is_dir() or any(target.iterdir())):
            raise InputError(
                f"TARGET {target}: exists; expected a new path (or --overwrite to replace it)"
            )
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    store(target).rename(target)
    shutil.rmtree(staging(target), ignore_errors=True)


# --- the store's lifecycle: finish, complete, gather -------------------------------------


def finish(target: Path, job: inference.Job, levels: int) -> None:
    """Check that every chunk is written, then build the pyramid levels."""
    left, _ = inference.todo(job)
    if len(left):
        raise RuntimeError(f"{target}: {len(left)} batches of chunks were not written")
    ngff.add_levels(target, levels)


def complete(target: Path, job: inference.Job, record: dict[str, Any]) -> None:
    """The complete flag and the run's record in one attribute write, then away with the
    completion records."""
    ngff.update_attrs(target, {"run": record, "complete": True})
    shutil.rmtree(job.records, ignore_errors=True)


def is_done(target: Path, params: dict[str, Any]) -> bool:
    """Whether ``target`` is a complete prediction with ``params``."""
    attrs = ngff.read_attrs(target) if (target / "zarr.json").is_file() else {}
    return bool(attrs.get("complete")) and attrs.get("predict") == params


def gather(final: Path, job: inference.Job, levels: int, overwrite: bool, count: int,
           log: Callable[[str], Any] = print) -> dict[str, Any]:  # fmt: skip
    """Check that the parts wrote every chunk, finish the staging store, rename it onto
    ``final`` ."""
    store, chunks = Path(job.target), len(job.tiling)
    if count:
        raise InputError(
            f"--gather: {store}: {count} of {chunks} chunks are not written "
            f"({missing_parts(final)}); expected every part to have finished"
        )
    start = time.perf_counter()
    if not ngff.read_attrs(store).get("complete"):
        for partial in store.rglob("*.partial"):  # zarr's temporary files of killed parts
            partial.unlink(missing_ok=True)
        finish(store, job, levels)
        complete(store, job, combined(records(final), chunks))
    publish(final, overwrite)
    seconds = time.perf_counter() - start
    log(f"unet predict: gathered {chunks} chunks into {final} in {seconds:.1f} s")
    return dict(tile=job.tiling.tile, chunks=chunks, computed=0, seconds=seconds,
                mpx_per_s=0.0)  # fmt: skip
