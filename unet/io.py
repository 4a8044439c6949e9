"""Reading and writing helpers shared by the stages: atomic outputs, image files.

Every stage writes its final output through :func:`atomic_output`: the work goes to a
hidden temporary sibling that is renamed onto the final path only when it is complete, so
an interrupted or failed run never leaves a half-written file or store at the output path.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    Works for files and for directories (zarr stores). On any exception the temporary
    path is removed and ``path`` is left as it was.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.partial-{os.getpid()}")
    _remove(tmp)
    try:
        yield tmp
        if final.exists() and final.is_dir():
            _remove(final)
        os.replace(tmp, final)
    finally:
        _remove(tmp)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write a text file atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(text)
