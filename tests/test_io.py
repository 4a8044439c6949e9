"""Atomic outputs: nothing half written at the final path."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

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


DEAD_PID = 999_999_999  # above the kernel's largest pid_max (2**22): never a process
HOST = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())


def _start_ticks(pid: int) -> int:
    """Field 22 of /proc/PID/stat, the reference for a process's start time."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])


def _store(tmp_path: Path, partials: list[str]) -> Path:
    """A zarr store ``s.zarr`` with hidden partial siblings named by ``partials``."""
    store = tmp_path / "s.zarr"
    store.mkdir()
    (store / "zarr.json").write_text("{}")
    for marker in partials:
        (tmp_path / f".s.zarr.partial-{marker}").mkdir()
    return store


def _replace(store: Path) -> None:
    with atomic_output(store) as tmp:
        tmp.mkdir()
        (tmp / "zarr.json").write_text('{"new": 1}')
    assert (store / "zarr.json").read_text() == '{"new": 1}'


def test_the_partial_names_host_pid_and_start_time(tmp_path) -> None:
    with atomic_output(tmp_path / "a.txt") as tmp:
        expected = f".a.txt.partial-{HOST}-{os.getpid()}-{_start_ticks(os.getpid())}"
        assert tmp.name == expected
        tmp.write_text("x")


def test_partials_of_dead_or_replaced_writers_on_this_host_are_removed(tmp_path) -> None:
    me, started = os.getpid(), _start_ticks(os.getpid())
    other = me if me != started else started + 1  # a start time that is not ours
    dead = f"{HOST}-{DEAD_PID}-{started}"  # its pid names no process
    reused = f"{HOST}-{me}-{other}"  # our pid, another start: an earlier process
    store = _store(tmp_path, [dead, reused])
    _replace(store)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr"]


def test_partials_of_other_hosts_and_old_names_are_never_removed(tmp_path) -> None:
    kept = [f"othernode-{DEAD_PID}-12345", f"other_node.cluster-{os.getpid()}-1", str(DEAD_PID)]
    store = _store(tmp_path, kept)
    _replace(store)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["s.zarr", *(f".s.zarr.partial-{m}" for m in kept)])


WRITER = """
import sys
from unet.io import atomic_output
with atomic_output(sys.argv[1]) as tmp:
    tmp.mkdir()
    print(tmp.name, flush=True)
    sys.stdin.readline()
    (tmp / "zarr.json").write_text('{"writer": 1}')
"""


def test_a_live_writers_partial_survives_and_lands(tmp_path) -> None:
    store = _store(tmp_path, [])
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(store)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        name = writer.stdout.readline().strip()
        assert name == f".s.zarr.partial-{HOST}-{writer.pid}-{_start_ticks(writer.pid)}"
        _replace(store)
        assert (tmp_path / name).is_dir()
    finally:
        writer.communicate("go\n", timeout=60)
    assert writer.returncode == 0
    assert (store / "zarr.json").read_text() == '{"writer": 1}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr"]
