"""Getting dataset files: mirror first, HTTP with Range resume and retries, sha256 checks.

A file lands in the download cache only complete and verified: it is streamed into a hidden
``.part`` file (one per source, so a resume never mixes two sources' bytes), its sha256 is
checked against the hash known for that source, or against the cache's lock file, its content
is validated (the caller's check, e.g. a readable TIFF), and only then is its hash recorded in
the lock file (on first download; every later use is checked against it) and the file renamed
onto its name. A corrupt download is deleted and never recorded, so a fixed source just works.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from unet import __version__
from unet.errors import InputError
from unet.io import sha256_file, write_text_atomic

CHUNK = 1 << 20
LOCK_NAME = "sha256.lock.json"
_log = logging.getLogger(__name__)


class _Retry(Exception):
    """A transient failure (cut connection, short body): try again, resuming."""


class _Missing(Exception):
    """The source does not hold the file (HTTP 404, no such file in a mirror folder)."""


@dataclass(frozen=True)
class Source:
    """One place a file can come from: ``kind`` is "mirror" or "official"."""

    kind: str
    location: str  # a local path or an http(s) URL

    @property
    def is_local(self) -> bool:
        return not re.match(r"^https?://", self.location)


def _bar(total: int | None, initial: int, desc: str, progress: bool):
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        disable=not progress,
        mininterval=1.0,
    )


def _get_once(url: str, part: Path, timeout: float, progress: bool) -> None:
    """One HTTP request, appending to ``part`` from its current size (Range) when it exists."""
    start = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": f"unet/{__version__}"}
    if start:
        headers["Range"] = f"bytes={start}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and start:  # our part is already whole, or stale: check, else restart
            total = re.search(r"/(\d+)", err.headers.get("Content-Range", ""))
            if total and int(total.group(1)) == start:
                return
            part.unlink()
            raise _Retry(f"HTTP 416 for a {start}-byte resume") from err
        raise
    with resp:
        length = resp.headers.get("Content-Length")
        if resp.status == 206:  # a resume: only from exactly where our part ends
            if not resp.headers.get("Content-Range", "").startswith(f"bytes {start}-"):
                part.unlink(missing_ok=True)
                raise _Retry(f"unexpected Content-Range {resp.headers.get('Content-Range')!r}")
            mode, total = "ab", None if length is None else start + int(length)
        else:  # a whole file (the server ignored or was not sent a Range header)
            mode, total, start = "wb", None if length is None else int(length), 0
        with open(part, mode) as fh, _bar(total, start, Path(part.name).stem, progress) as bar:
            while block := resp.read(CHUNK):
                fh.write(block)
                bar.update(len(block))
    size = part.stat().st_size
    if total is not None and size != total:
        raise _Retry(f"connection closed after {size} of {total} bytes")


def http_get(
    url: str,
    part: Path,
    *,
    timeout: float = 30.0,
    retries: int = 4,
    backoff: float = 1.0,
    progress: bool = True,
) -> None:
    """Stream ``url`` into ``part``, resuming a partial file, retrying with exponential backoff.

    Raises ``_Missing`` for HTTP 404/410, a one-line user error for other client errors and
    once the retries are spent.
    """
    last: Exception | None = None
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            _get_once(url, part, timeout, progress)
            return
        except urllib.error.HTTPError as err:
            if err.code in (404, 410):
                raise _Missing(f"{url}: HTTP {err.code} {err.reason}") from err
            if 400 <= err.code < 500 and err.code not in (408, 429):
                raise InputError(f"{url}: HTTP {err.code} {err.reason}") from err
            last = err
        except (
            _Retry,
            urllib.error.URLError,
            TimeoutError,
            ConnectionError,
            http.client.HTTPException,
        ) as err:
            last = err
    reason = getattr(last, "reason", None) or last
    raise InputError(f"{url}: download failed after {retries + 1} tries: {reason}")


def _copy_local(src: Path, part: Path, progress: bool) -> None:
    if not src.is_file():
        raise _Missing(f"{src}: no such file")
    with open(src, "rb") as fin, open(part, "wb") as fout:
        with _bar(src.stat().st_size, 0, src.name, progress) as bar:
            while block := fin.read(CHUNK):
                fout.write(block)
                bar.update(len(block))


def mirror_sources(mirror: str | None, relpaths: Sequence[str]) -> list[Source]:
    """The candidate locations of a file in a mirror folder or base URL (tried in order)."""
    if not mirror:
        return []
    if mirror.startswith("file://"):
        mirror = mirror[len("file://") :]
    if re.match(r"^https?://", mirror):
        return [Source("mirror", f"{mirror.rstrip('/')}/{rel}") for rel in relpaths]
    if not Path(mirror).is_dir():
        raise FileNotFoundError(f"mirror {mirror}: no such folder (expected a folder or base URL)")
    return [Source("mirror", str(Path(mirror) / rel)) for rel in relpaths]


def read_lock(cache: Path) -> dict[str, dict[str, object]]:
    """The lock file of a download cache: {file name: {sha256, source, size}}."""
    path = cache / LOCK_NAME
    if not path.exists():
        return {}
    try:
        return dict(json.loads(path.read_text())["files"])
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(f"{path}: corrupt lock file ({err}); expected JSON with 'files'") from err


def _record(cache: Path, name: str, digest: str, source: Source, size: int) -> None:
    files = read_lock(cache)
    files[name] = {
        "sha256": digest,
        "source": source.kind,
        "location": source.location,
        "size": size,
    }
    write_text_atomic(cache / LOCK_NAME, json.dumps({"files": files}, indent=2, sort_keys=True))


def _check(
    name: str, where: str, digest: str, expected: set[str], cache: Path, strict: bool
) -> None:
    """Compare with the known hashes, else with the lock file; raise on a mismatch.

    Not ``strict`` (the official file's hash is unknown), a file that is not the known mirror
    copy may be the official one: it is checked against the lock file instead.
    """
    if digest in expected:
        return
    if expected and strict:
        want = " or ".join(sorted(expected))
        raise InputError(f"{where}: sha256 {digest} does not match the expected {want} for {name}")
    locked = read_lock(cache).get(name, {}).get("sha256")
    if locked and digest != locked:
        raise InputError(
            f"{where}: sha256 {digest} does not match {locked} recorded for {name} "
            f"in {cache / LOCK_NAME} at its first download"
        )


def _validated(
    path: Path, where: str, validate: Callable[[Path], object] | None, *, delete: bool = True
) -> None:
    """Run the caller's content check on a file before its hash is recorded.

    A bad download is deleted (never resumed, kept or recorded); a bad file put into the
    cache by hand (``delete`` false) is left for its owner.
    """
    if validate is None:
        return
    try:
        validate(path)
    except ValueError as err:
        if delete:
            path.unlink(missing_ok=True)
        detail = str(err).splitlines()[0].removeprefix(f"{path}: ")
        fate = "deleted" if delete else "replace or delete it"
        raise InputError(f"{where}: {detail}; {fate}, nothing recorded") from err


def fetch_file(
    name: str,
    cache: Path,
    sources: Sequence[Source],
    hashes: dict[str, str | None],
    *,
    validate: Callable[[Path], object] | None = None,
    timeout: float = 30.0,
    retries: int = 4,
    backoff: float = 1.0,
    progress: bool = True,
) -> Path:
    """Bring ``name`` into ``cache`` from the first source that has it; return its path.

    ``hashes`` maps a source kind ("official", "mirror") to the sha256 known for it; a mirror
    may also hold the official file. Where no hash is known (nor the official one, for a
    mirror file that is not the known mirror copy), the file is checked against the cache's
    lock file, where its hash is recorded on first download. ``validate`` (raising ValueError)
    checks a download's content before its hash is recorded and it is renamed onto its name.
    A cached file is re-verified on every call. Mirror folders and URLs are only read.
    """
    cache.mkdir(parents=True, exist_ok=True)
    final = cache / name
    strict = bool(hashes.get("official"))
    known = {
        kind: {h for h in (hashes.get(kind), hashes.get("official")) if h}
        for kind in ("mirror", "official")
    }
    if final.exists():
        entry = read_lock(cache).get(name, {})
        digest = sha256_file(final)
        _check(name, str(final), digest, known.get(str(entry.get("source")), set()), cache, strict)
        if not entry:  # a file put into the cache by hand: checked before it is recorded
            _validated(final, str(final), validate, delete=False)
        if entry.get("sha256") != digest:  # new, or now the known copy: the lock says so
            source = Source(str(entry.get("source", "unknown")), str(entry.get("location", final)))
            _record(cache, name, digest, source, final.stat().st_size)
        return final
    tried: list[str] = []
    for source in sources:
        tag = hashlib.sha1(source.location.encode()).hexdigest()[:8]
        part = cache / f".{name}.{tag}.part"
        try:
            if source.is_local:
                _copy_local(Path(source.location), part, progress)
            else:
                http_get(
                    source.location,
                    part,
                    timeout=timeout,
                    retries=retries,
                    backoff=backoff,
                    progress=progress,
                )
        except _Missing as err:
            part.unlink(missing_ok=True)
            tried.append(str(err))
            continue
        except Exception as err:  # a mirror that is down: the next source (keep the part)
            if source.kind != "mirror" or source is sources[-1]:
                raise
            tried.append(str(err))
            continue
        digest = sha256_file(part)
        try:
            _check(name, source.location, digest, known[source.kind], cache, strict)
        except ValueError:
            part.unlink(missing_ok=True)  # a bad file is never resumed or kept
            raise
        _validated(part, source.location, validate)
        if known[source.kind] and digest not in known[source.kind]:
            _log.warning(
                "%s: sha256 %s is not the known mirror copy's; taken as the official %s "
                "(whose sha256 is unknown) and recorded in %s",
                source.location, digest, name, cache / LOCK_NAME,
            )  # fmt: skip
        _record(cache, name, digest, source, part.stat().st_size)
        os.replace(part, final)
        return final
    raise FileNotFoundError(f"{name}: not found; tried " + "; ".join(tried or ["no source"]))
