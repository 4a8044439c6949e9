"""Safe zip extraction: no absolute paths, no ``..`` entries, no links, a bound on the size."""

from __future__ import annotations

import re
import stat
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from unet.errors import InputError

CHUNK = 1 << 20


def _member_problem(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    path = PurePosixPath(name.replace("\\", "/"))
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "an absolute path"
    if ".." in path.parts:
        return "a '..' component"
    kind = stat.S_IFMT(info.external_attr >> 16)  # 0 when the archiver stored no Unix type
    if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
        return "a link or special file"
    return None


def zip_names(archive: Path) -> list[str]:
    """The entry names of a zip, refusing it whole if any entry is an absolute path, has a
    ``..`` component or is a link."""
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError) as err:
        raise InputError(f"{archive}: not a readable zip archive ({err})") from err
    for info in infos:
        if problem := _member_problem(info):
            raise InputError(f"{archive}: refusing entry {info.filename!r} with {problem}")
    return [info.filename for info in infos]


def safe_extract(
    archive: Path, dest: Path, *, max_bytes: int, select: Callable[[str], bool] | None = None
) -> list[Path]:
    """Extract the regular files of a zip (those ``select`` accepts) below ``dest``.

    The whole archive is refused, before anything is written, if any entry is hostile (see
    :func:`zip_names`) or the selected files would expand past ``max_bytes``; bytes are also
    counted while writing, so a lying header cannot pass.
    """
    zip_names(archive)
    with zipfile.ZipFile(archive) as zf:
        members = [
            i for i in zf.infolist() if not i.is_dir() and (select is None or select(i.filename))
        ]
        declared = sum(i.file_size for i in members)
        if declared > max_bytes:
            raise InputError(
                f"{archive}: would expand to {declared} bytes, past the bound of {max_bytes} bytes"
            )
        written, out = 0, []
        for info in members:
            target = dest / info.filename
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(info) as fin, open(target, "wb") as fout:
                    while block := fin.read(CHUNK):
                        written += len(block)
                        if written > max_bytes:
                            raise InputError(f"{archive}: expands past {max_bytes} bytes")
                        fout.write(block)
            except (zipfile.BadZipFile, EOFError, zlib.error) as err:
                raise InputError(f"{archive}: corrupt entry {info.filename!r} ({err})") from err
            out.append(target)
    return out
