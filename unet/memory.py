"""Memory of a prediction: the default budget for its tiles and the peaks it reached."""

from __future__ import annotations

import os
from pathlib import Path

CPU_FRACTION = 0.5  # of the available memory: the default budget on a CPU
GPU_FRACTION = 0.8  # of the free GPU memory


def default_budget(device: str) -> int:
    """Memory for the tiles: a fraction of the free GPU memory, or of the available RAM."""
    if device.startswith("cuda"):
        import torch

        return int(GPU_FRACTION * torch.cuda.mem_get_info(torch.device(device))[0])
    available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(CPU_FRACTION * available)


def peak_memory(device: str) -> dict[str, int | None]:
    """Peak resident memory of this process (bytes; the workers of a ``local:N`` or remote
    scheduler are not counted) and peak GPU memory allocated by torch on a CUDA ``device``
    (None elsewhere, or when this process never used CUDA)."""
    import resource
    import sys

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    gpu = None
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_initialized():
            gpu = int(torch.cuda.max_memory_allocated(torch.device(device)))
    return {"peak_rss_bytes": int(rss if sys.platform == "darwin" else rss * 1024),
            "peak_gpu_bytes": gpu}  # fmt: skip
