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


def test_a_folder_that_is_not_a_store_is_never_replaced(tmp_path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "input.tif").write_text("precious")
    with pytest.raises(IsADirectoryError, match="data: output path is a folder that is not a zarr"):
        write_text_atomic(data, "{}")
    assert (data / "input.tif").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_a_store_is_replaced_and_partials_of_dead_runs_are_removed(tmp_path) -> None:
    store = tmp_path / "s.zarr"
    store.mkdir()
    (store / "zarr.json").write_text("{}")
    stale = tmp_path / ".s.zarr.partial-999999999"  # no such process
    stale.mkdir()
    with atomic_output(store) as tmp:
        tmp.mkdir()
        (tmp / "zarr.json").write_text('{"new": 1}')
    assert (store / "zarr.json").read_text() == '{"new": 1}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr"]
