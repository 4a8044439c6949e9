"""Reading and writing helpers shared by the stages: atomic outputs, TIFFs, zarr stores.

Every stage writes its final output through :func:`atomic_output`: the work goes to a
hidden temporary sibling that is renamed onto the final path only when it is complete, so
an interrupted or failed run never leaves a half-written file or store at the output path.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import logging
import os
import re
import shutil
import socket
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from unet.errors import InputError


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _check_replaceable(final: Path) -> None:
    """Refuse to replace a folder that is not a zarr store (a mistyped output path)."""
    if final.is_dir() and not final.is_symlink():
        if any(final.iterdir()) and not (final / "zarr.json").is_file():
            raise IsADirectoryError(
                f"{final}: output path is a folder that is not a zarr store; "
                "expected a new path or a store to replace"
            )


def _host() -> str:
    """This machine's name, reduced to characters that are safe in a file name."""
    name = socket.gethostname() or "localhost"
    return re.sub(r"[^A-Za-z0-9.]", "_", name)


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (signal 0 checks without sending)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by another user
    return True


def _start_time(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, /proc/PID/stat field 22).

    None if there is no such process; "0" (unknown) for a live process whose /proc entry
    cannot be read (no /proc on this system, or /proc mounted with ``hidepid``).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "0" if _alive(pid) else None
    return stat.rsplit(")", 1)[1].split()[19]  # the command name in (...) may hold ")"


def _marker() -> str:
    """Who is writing: ``{host}-{pid}-{start}``, unique across hosts and pid reuse."""
    pid = os.getpid()
    return f"{_host()}-{pid}-{_start_time(pid) or 0}"


def _is_stale(marker: str) -> bool:
    """Whether the writer named by ``marker`` is certainly gone.

    Only a writer on this host can be checked: partials of other hosts (a shared file
    system) and of names this module did not write are never judged stale.
    """
    host, _, rest = marker.partition("-")
    pid, _, start = rest.partition("-")
    if host != _host() or not (pid.isdigit() and start.isdigit()):
        return False
    now = _start_time(int(pid))
    return now is None or (start != "0" and now != "0" and now != start)


def _remove_stale_partials(final: Path) -> None:
    """Remove partial outputs left by killed runs on this host (process gone or pid reused)."""
    prefix = f".{final.name}.partial-"
    for partial in final.parent.glob(f"{glob.escape(prefix)}*"):
        if _is_stale(partial.name[len(prefix) :]):
            _remove(partial)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    Works for files and for directories (zarr stores). On any exception the temporary
    path is removed and ``path`` is left as it was. An existing folder at ``path`` is only
    replaced if it is a zarr store. The temporary sibling ``.{name}.partial-{host}-{pid}-
    {start}`` names its writer, so that partial outputs of killed runs on this host are
    cleaned up while those another host may still be writing are left alone.
    """
    final = Path(path)
    _check_replaceable(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(final)
    tmp = final.with_name(f".{final.name}.partial-{_marker()}")
    _remove(tmp)
    try:
        yield tmp
        _check_replaceable(final)
        if final.is_dir() and not final.is_symlink():
            _remove(final)
        os.replace(tmp, final)
    finally:
        _remove(tmp)


def create_exclusive(path: str | os.PathLike[str], build: Callable[[Path], Any]) -> bool:
    """Create ``path`` whole with ``build(tmp)`` unless it exists; True if this call created it.

    Race-free between processes and hosts that share the folder: ``build`` writes a private
    temporary sibling, which is renamed onto ``path`` without replacing anything; when
    another writer got there first, the sibling is removed and ``path`` is left alone.
    """
    final = Path(path)
    if final.exists():
        return False
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.partial-{_marker()}")
    _remove(tmp)
    try:
        build(tmp)
        try:
            os.rename(tmp, final)  # fails on an existing non-empty folder or on a file
        except OSError:
            if final.exists():
                return False
            raise
        return True
    finally:
        _remove(tmp)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write a text file atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(text)


class _Collect(logging.Handler):
    """Collects tifffile's error records (it logs damaged structures and reads on)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def read_tiff(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a (multi-page) TIFF; a corrupt or truncated file raises a one-line ValueError."""
    import tifffile

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    log, collect = logging.getLogger("tifffile"), _Collect()
    log.addHandler(collect)
    try:
        array = tifffile.imread(path)
    except Exception as err:  # tifffile raises many types for damaged files
        raise InputError(f"{path}: not a readable TIFF ({type(err).__name__}: {err})") from err
    finally:
        log.removeHandler(collect)
    if collect.messages or array.size == 0:
        why = collect.messages[0] if collect.messages else "no image data"
        raise InputError(
            f"{path}: not a readable TIFF (corrupt or truncated: {why.splitlines()[0]})"
        )
    return array


def open_store(path: str | os.PathLike[str], arrays: Sequence[str] = ()) -> Any:
    """The zarr group at ``path`` (read-only), checked to hold ``arrays``.

    FileNotFoundError if absent, ValueError naming the path if unreadable or incomplete.
    """
    import zarr

    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: no such store")
    try:
        group = zarr.open_group(str(path), mode="r")
    except Exception as err:
        raise InputError(f"{path}: not a readable zarr group ({err})") from err
    missing = [name for name in arrays if name not in group]
    if missing:
        raise InputError(f"{path}: missing array(s) {missing}, expected {list(arrays)}")
    return group
