"""Safe zip extraction: crafted hostile archives are refused whole, nothing is written."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest

from unet.archive import safe_extract, zip_names


def _zip(path: Path, entries: dict[str, bytes], link: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        if link:
            info = zipfile.ZipInfo(link)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return path


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_extracts_selected_regular_files(tmp_path) -> None:
    archive = _zip(tmp_path / "a.zip", {"DS/01/t000.tif": b"a", "DS/02/t000.tif": b"bb"})
    out = tmp_path / "out"
    written = safe_extract(archive, out, max_bytes=10, select=lambda n: n.startswith("DS/01/"))
    assert written == [out / "DS/01/t000.tif"] and written[0].read_bytes() == b"a"


@pytest.mark.parametrize(
    ("entries", "link", "problem"),
    [
        (
            {"DS/ok.tif": b"x", "DS/../../evil.txt": b"x"},
            None,
            r"'DS/../../evil.txt' with a '\.\.' component",
        ),
        ({"../evil.txt": b"x"}, None, r"'\.\./evil.txt' with a '\.\.' component"),
        ({"/tmp/evil.txt": b"x"}, None, r"'/tmp/evil.txt' with an absolute path"),
        ({"C:/evil.txt": b"x"}, None, r"'C:/evil.txt' with an absolute path"),
        ({"DS/ok.tif": b"x"}, "DS/link", r"'DS/link' with a link or special file"),
    ],
)
def test_hostile_entries_refuse_the_whole_archive(tmp_path, entries, link, problem) -> None:
    archive = _zip(tmp_path / "bad.zip", entries, link)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=rf"bad.zip: refusing entry {problem}"):
        safe_extract(archive, out, max_bytes=1 << 20)
    with pytest.raises(ValueError, match="refusing entry"):
        zip_names(archive)
    assert not out.exists() and _tree(tmp_path) == ["bad.zip"]


def test_zip_bomb_is_refused_before_writing(tmp_path) -> None:
    archive = _zip(tmp_path / "bomb.zip", {f"z{i}.bin": bytes(4 << 20) for i in range(4)})
    assert archive.stat().st_size < 100_000  # 16 MiB of zeros compress ~1000:1
    with pytest.raises(
        ValueError, match=r"bomb.zip: would expand to 16777216 bytes, past the bound of 1048576"
    ):
        safe_extract(archive, tmp_path / "out", max_bytes=1 << 20)
    assert not (tmp_path / "out").exists()


def test_corrupt_archive_is_one_line_error(tmp_path) -> None:
    (tmp_path / "junk.zip").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match=r"junk.zip: not a readable zip archive"):
        safe_extract(tmp_path / "junk.zip", tmp_path / "out", max_bytes=1 << 20)
