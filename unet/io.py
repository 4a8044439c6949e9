"""Reading and writing helpers shared by the stages: atomic outputs, TIFFs, zarr stores.

Every stage writes its final output through :func:`atomic_output`: the work goes to a
hidden temporary sibling that is renamed onto the final path only when it is complete, so
an interrupted or failed run never leaves a half-written file or store at the output path.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from unet.errors import InputError


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


def _remove_stale_partials(final: Path) -> None:
    """Remove partial outputs left by killed runs (their process no longer exists)."""
    for partial in final.parent.glob(f".{final.name}.partial-*"):
        pid = partial.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            _remove(partial)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    Works for files and for directories (zarr stores). On any exception the temporary
    path is removed and ``path`` is left as it was. An existing folder at ``path`` is only
    replaced if it is a zarr store; partial outputs of killed runs are cleaned up.
    """
    final = Path(path)
    _check_replaceable(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    if Path("/proc/self").exists():
        _remove_stale_partials(final)
    tmp = final.with_name(f".{final.name}.partial-{os.getpid()}")
    _remove(tmp)
    try:
        yield tmp
        _check_replaceable(final)
        if final.is_dir() and not final.is_symlink():
            _remove(final)
        os.replace(tmp, final)
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
