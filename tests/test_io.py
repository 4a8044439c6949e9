"""Atomic outputs: nothing half written at the final path."""

from __future__ import annotations

import pytest

from unet.io import atomic_output, write_text_atomic


def test_atomic_file_and_directory(tmp_path) -> None:
    write_text_atomic(tmp_path / "a.txt", "one")
    with atomic_output(tmp_path / "store.zarr") as tmp:
        tmp.mkdir()
        (tmp / "chunk").write_text("x")
    assert (tmp_path / "a.txt").read_text() == "one"
    assert (tmp_path / "store.zarr" / "chunk").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "store.zarr"]


def test_failure_leaves_previous_output_untouched(tmp_path) -> None:
    write_text_atomic(tmp_path / "a.txt", "old")
    with pytest.raises(RuntimeError), atomic_output(tmp_path / "a.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert (tmp_path / "a.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
