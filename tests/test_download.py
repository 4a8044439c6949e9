"""Downloads against a real HTTP server on 127.0.0.1: resume, retries, checksums, lock, mirror."""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile
from _http_server import Behaviour, serve

from unet.download import LOCK_NAME, Source, fetch_file, mirror_sources, sha256_file
from unet.errors import InputError
from unet.io import read_tiff

DATA = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
SHA = hashlib.sha256(DATA).hexdigest()
FAST = {"timeout": 2.0, "retries": 2, "backoff": 0.01, "progress": False}


@pytest.fixture
def server() -> Iterator[tuple[str, Behaviour]]:
    how = Behaviour(files={"/files/data.bin": DATA})
    with serve(how) as url:
        yield url, how


def _official(url: str) -> list[Source]:
    return [Source("official", f"{url}/files/data.bin")]


def _leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if p.name != LOCK_NAME) if cache.exists() else []


def test_full_download_verified_and_recorded(server, tmp_path) -> None:
    url, how = server
    path = fetch_file("data.bin", tmp_path, _official(url), {"official": SHA}, **FAST)
    assert path.read_bytes() == DATA and _leftovers(tmp_path) == ["data.bin"]
    lock = json.loads((tmp_path / LOCK_NAME).read_text())["files"]["data.bin"]
    assert lock == {
        "sha256": SHA,
        "source": "official",
        "location": f"{url}/files/data.bin",
        "size": len(DATA),
    }
    fetch_file("data.bin", tmp_path, _official(url), {"official": SHA}, **FAST)
    assert len(how.requests) == 1  # a verified cached file is not fetched again


def test_resume_after_a_cut_with_range(server, tmp_path) -> None:
    url, how = server
    how.cuts = [120_000]
    path = fetch_file("data.bin", tmp_path, _official(url), {"official": SHA}, **FAST)
    assert path.read_bytes() == DATA
    assert [r for _, r in how.requests] == [None, "bytes=120000-"]
    assert _leftovers(tmp_path) == ["data.bin"]


def test_partial_file_is_resumed_by_a_later_run(server, tmp_path) -> None:
    url, how = server
    how.cuts = [100_000]
    with pytest.raises(InputError, match=r"/files/data.bin: download failed after 1 tries"):
        fetch_file("data.bin", tmp_path, _official(url), {}, **{**FAST, "retries": 0})
    assert not (tmp_path / "data.bin").exists()
    (part,) = tmp_path.glob(".data.bin.*.part")
    assert part.stat().st_size == 100_000
    path = fetch_file("data.bin", tmp_path, _official(url), {}, **FAST)
    assert path.read_bytes() == DATA and how.requests[-1][1] == "bytes=100000-"
    assert _leftovers(tmp_path) == ["data.bin"]


def test_server_ignoring_range_restarts_cleanly(server, tmp_path) -> None:
    url, how = server
    how.cuts, how.ranges = [50_000], False
    path = fetch_file("data.bin", tmp_path, _official(url), {"official": SHA}, **FAST)
    assert path.read_bytes() == DATA


def test_checksum_mismatch_leaves_nothing(server, tmp_path) -> None:
    url, _ = server
    wrong = "0" * 64
    with pytest.raises(
        ValueError, match=rf"/files/data.bin: sha256 {SHA} does not match .*{wrong}"
    ):
        fetch_file("data.bin", tmp_path, _official(url), {"official": wrong}, **FAST)
    assert _leftovers(tmp_path) == []


def test_http_404_is_not_retried(server, tmp_path) -> None:
    url, how = server
    missing = [Source("official", f"{url}/files/nope.bin")]
    with pytest.raises(
        FileNotFoundError, match=r"nope.bin: not found; tried .*/files/nope.bin: HTTP 404"
    ):
        fetch_file("nope.bin", tmp_path, missing, {}, **FAST)
    assert len(how.requests) == 1 and _leftovers(tmp_path) == []


def test_timeout_is_retried_then_reported(server, tmp_path) -> None:
    url, how = server
    how.delay = 1.0
    with pytest.raises(
        InputError, match=r"/files/data.bin: download failed after 2 tries: timed out"
    ):
        fetch_file(
            "data.bin", tmp_path, _official(url), {}, **{**FAST, "timeout": 0.2, "retries": 1}
        )
    assert len(how.requests) == 2 and not (tmp_path / "data.bin").exists()


def test_lock_file_guards_later_uses(server, tmp_path) -> None:
    url, how = server
    fetch_file("data.bin", tmp_path, _official(url), {}, **FAST)  # no known hash: recorded
    assert json.loads((tmp_path / LOCK_NAME).read_text())["files"]["data.bin"]["sha256"] == SHA
    (tmp_path / "data.bin").write_bytes(DATA[:-1] + b"x")  # the cached copy goes bad
    with pytest.raises(ValueError, match=rf"data.bin: sha256 .* does not match {SHA} recorded"):
        fetch_file("data.bin", tmp_path, _official(url), {}, **FAST)
    (tmp_path / "data.bin").unlink()
    how.files["/files/data.bin"] = DATA[::-1]  # the server now sends other bytes
    with pytest.raises(ValueError, match=r"recorded for data\.bin"):
        fetch_file("data.bin", tmp_path, _official(url), {}, **FAST)
    assert _leftovers(tmp_path) == []


def test_mirror_folder_first_then_official(server, tmp_path) -> None:
    url, how = server
    mirror = tmp_path / "mirror"
    (mirror / "ds").mkdir(parents=True)
    (mirror / "ds" / "data.bin").write_bytes(DATA)
    os.chmod(mirror / "ds" / "data.bin", 0o444)
    stamp = (mirror / "ds" / "data.bin").stat().st_mtime_ns
    sources = [*mirror_sources(str(mirror), ["ds/data.bin", "data.bin"]), *_official(url)]
    fetch_file("data.bin", tmp_path / "a", sources, {"mirror": SHA}, **FAST)
    assert how.requests == [] and (mirror / "ds" / "data.bin").stat().st_mtime_ns == stamp
    assert sha256_file(mirror / "ds" / "data.bin") == SHA
    (tmp_path / "empty").mkdir()  # a mirror that lacks the file: the official URL is next
    sources = [*mirror_sources(str(tmp_path / "empty"), ["data.bin"]), *_official(url)]
    fetch_file("data.bin", tmp_path / "b", sources, {"official": SHA}, **FAST)
    assert len(how.requests) == 1


def test_a_mirror_that_is_down_falls_through_to_the_official_url(server, tmp_path) -> None:
    url, how = server
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    sources = [*mirror_sources(dead, ["data.bin"]), *_official(url)]
    path = fetch_file("data.bin", tmp_path, sources, {"official": SHA}, **FAST)
    assert sha256_file(path) == SHA and len(how.requests) == 1
    with pytest.raises(Exception, match="download failed after 3 tries"):
        fetch_file("data.bin", tmp_path / "b", sources[:1], {}, **FAST)


def test_mirror_base_url(server, tmp_path) -> None:
    url, how = server
    how.files["/mirror/ds/data.bin"] = DATA
    sources = mirror_sources(f"{url}/mirror/", ["ds/data.bin", "data.bin"])
    assert [s.location for s in sources] == [f"{url}/mirror/ds/data.bin", f"{url}/mirror/data.bin"]
    path = fetch_file("data.bin", tmp_path, sources, {"mirror": SHA}, **FAST)
    lock = json.loads((tmp_path / LOCK_NAME).read_text())["files"]["data.bin"]
    assert path.read_bytes() == DATA and lock["source"] == "mirror"


def _tiff_bytes(seed: int) -> bytes:
    buffer = io.BytesIO()
    data = np.random.default_rng(seed).integers(0, 256, (3, 64, 64), np.uint8)
    tifffile.imwrite(buffer, data, photometric="minisblack")
    return buffer.getvalue()


def test_corrupt_download_is_not_locked_in(server, tmp_path) -> None:
    """No known hash: a download that fails its content check is deleted and not recorded,
    so the rerun after the source is fixed succeeds with the lock file untouched by hand."""
    url, how = server
    good = _tiff_bytes(0)
    how.files["/files/a.tif"] = good[: len(good) // 2]  # truncated at the source
    sources = [Source("official", f"{url}/files/a.tif")]
    with pytest.raises(InputError, match=r"/files/a.tif: not a readable TIFF .*; deleted") as err:
        fetch_file("a.tif", tmp_path, sources, {}, validate=read_tiff, **FAST)
    assert len(str(err.value).splitlines()) == 1 and "nothing recorded" in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no part, no file, no lock file
    how.files["/files/a.tif"] = good  # the source is fixed
    path = fetch_file("a.tif", tmp_path, sources, {}, validate=read_tiff, **FAST)
    assert path.read_bytes() == good
    lock = json.loads((tmp_path / LOCK_NAME).read_text())["files"]
    assert lock["a.tif"]["sha256"] == hashlib.sha256(good).hexdigest()
    assert [r for r, _ in how.requests] == ["/files/a.tif"] * 2


def test_a_bad_file_put_into_the_cache_is_neither_recorded_nor_deleted(tmp_path) -> None:
    (tmp_path / "a.tif").write_bytes(b"not a tiff")
    with pytest.raises(InputError, match=r"a.tif: not a readable TIFF .*; replace or delete it"):
        fetch_file("a.tif", tmp_path, [], {}, validate=read_tiff, **FAST)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tif"]


def test_mirror_file_unlike_the_mirror_copy(tmp_path, caplog) -> None:
    """With the official hash unknown, a mirror may hold the official file: it is recorded
    (with a note) and later uses are checked against the lock file; with it known, refused."""
    (tmp_path / "mirror").mkdir()
    (tmp_path / "mirror" / "data.bin").write_bytes(DATA[::-1])
    sources = mirror_sources(str(tmp_path / "mirror"), ["data.bin"])
    with pytest.raises(ValueError, match=rf"does not match the expected {'0' * 64} or {SHA}"):
        fetch_file("data.bin", tmp_path / "a", sources, {"mirror": SHA, "official": "0" * 64})
    assert _leftovers(tmp_path / "a") == []
    with caplog.at_level("WARNING", logger="unet.download"):
        path = fetch_file("data.bin", tmp_path / "b", sources, {"mirror": SHA}, **FAST)
    assert "is not the known mirror copy's; taken as the official data.bin" in caplog.text
    lock = json.loads((tmp_path / "b" / LOCK_NAME).read_text())["files"]["data.bin"]
    assert lock["sha256"] == sha256_file(path) == hashlib.sha256(DATA[::-1]).hexdigest()
    fetch_file("data.bin", tmp_path / "b", sources, {"mirror": SHA}, **FAST)  # cached, locked
    path.write_bytes(DATA[1:])  # the cached copy changes: the lock file catches it
    with pytest.raises(ValueError, match=r"does not match .* recorded for data\.bin"):
        fetch_file("data.bin", tmp_path / "b", sources, {"mirror": SHA}, **FAST)
    path.write_bytes(DATA)  # replaced by the known mirror copy: accepted, the lock follows
    fetch_file("data.bin", tmp_path / "b", sources, {"mirror": SHA}, **FAST)
    lock = json.loads((tmp_path / "b" / LOCK_NAME).read_text())["files"]["data.bin"]
    assert (lock["sha256"], lock["source"], lock["size"]) == (SHA, "mirror", len(DATA))
