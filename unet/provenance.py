"""Where a result came from: git state, hardware, packages, checksums, stage timings.

- :func:`git_state`: the commit of a checkout and whether its tree was dirty.
- :func:`hardware`: CPU model and cores, memory, and the compute device of an environment
  report (``unet info --json``, rule ``environment``).
- :func:`packages`: package versions of that report (or of this process).
- :func:`dataset_sources`: each file a dataset store was converted from, where it came from
  and its sha256 (the store's ``source`` attribute).
- :func:`read_benchmarks`: wall time and peak memory per stage from Snakemake ``benchmark:``
  files (``results/benchmarks/{rule}/{wildcards}.tsv``).
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from unet.errors import InputError


def _git(repo: Path, *args: str) -> str | None:
    try:
        run = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return run.stdout if run.returncode == 0 else None


def git_state(repo: str | Path | None) -> dict[str, Any]:
    """``{"commit", "dirty", "changed"}`` of the checkout at ``repo`` (changed: the files
    ``git status`` lists), or ``{"error": why}`` if there is none."""
    if repo is None:
        return {"error": "not given (--repo)"}
    repo = Path(repo)
    if not repo.is_dir():
        raise InputError(f"--repo {repo}: no such folder; expected the workflow's folder")
    commit = (_git(repo, "rev-parse", "HEAD") or "").strip()
    if not commit:
        return {"error": f"{repo}: not a git checkout"}
    status = _git(repo, "status", "--porcelain", "--untracked-files=no") or ""
    changed = [line[3:] for line in status.splitlines() if len(line) > 3]  # "XY path"
    return {"commit": commit, "dirty": bool(changed), "changed": changed}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory() -> str:
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return "unknown"
    return f"{pages / 2**30:.1f} GiB"


def hardware(environment: dict[str, Any] | None) -> list[tuple[str, str]]:
    """(what, value) rows: CPU and memory of this machine, the device of ``environment``."""
    rows = [
        ("CPU (machine writing the report)", _cpu_model()),
        ("CPU cores", str(os.cpu_count())),
        ("memory", _memory()),
        ("platform", platform.platform()),
    ]
    if environment:
        device = environment.get("device", "unknown")
        name = environment.get("device_name", "")
        if device == "cuda":
            memory = environment.get("device_memory_gib")
            name += f", {memory} GiB" if memory else ""
            name += f" (x{environment['device_count']})" if environment.get("device_count") else ""
        rows += [
            ("compute device", f"{device}: {name}" if name else device),
            ("torch CUDA build", str(environment.get("torch_cuda_build"))),
        ]
    else:
        rows.append(("compute device", "not recorded (no environment report, --environment)"))
    return rows


def packages(environment: dict[str, Any] | None) -> list[tuple[str, str]]:
    """(package, version) rows: ``environment``'s, else this process's."""
    from unet import __version__
    from unet.info import PACKAGES, package_version

    if environment:
        found = dict(environment.get("packages", {}))
        head = [("unet", str(environment.get("unet"))), ("python", str(environment.get("python")))]
    else:
        found = {name: package_version(name) for name in PACKAGES}
        head = [("unet", __version__), ("python", sys.version.split()[0])]
    return head + sorted(found.items())


def dataset_sources(source: Any) -> list[tuple[str, str, str]] | str:
    """(file, location, sha256) rows of a store's ``source`` attribute (JSON ``{file:
    {location, sha256}}``), or the attribute as text when it is not such JSON (a generated
    dataset's recipe)."""
    try:
        files = json.loads(source) if isinstance(source, str) else source
    except json.JSONDecodeError:
        return str(source)
    if not isinstance(files, dict) or not all(isinstance(v, dict) for v in files.values()):
        return str(source)
    return [(name, str(v.get("location")), str(v.get("sha256"))) for name, v in files.items()]


def read_benchmarks(paths: list[str | Path]) -> list[dict[str, Any]]:
    """One row per Snakemake benchmark file: ``{"stage", "seconds", "max_rss_mb"}`` (the
    stage is the rule folder and the file stem; the mean over repeated rows; None: NA)."""
    rows = []
    for path in map(Path, paths):
        if not path.is_file():
            raise InputError(f"--benchmarks {path}: no such file")
        with open(path, newline="") as fh:
            table = list(csv.DictReader(fh, delimiter="\t"))
        if not table or not {"s", "max_rss"} <= set(table[0]):
            raise InputError(
                f"{path}: not a Snakemake benchmark file; expected a TSV with columns s, "
                "max_rss, ... and at least one row"
            )
        rows.append(
            {
                "stage": f"{path.parent.name}/{path.stem}",
                "seconds": _mean(path, table, "s"),
                "max_rss_mb": _mean(path, table, "max_rss"),
            }
        )
    return rows


def _mean(path: Path, table: list[dict[str, str]], column: str) -> float | None:
    values = []
    for row in table:
        text = (row.get(column) or "").strip()
        if text in ("", "NA", "-"):
            continue
        try:
            values.append(float(text))
        except ValueError:
            raise InputError(f"{path}: column {column} holds {text!r}; expected a number") from None
    return math.fsum(values) / len(values) if values else None
