"""Provenance: git state of a real repository, Snakemake benchmark files, dataset sources."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from unet.errors import InputError
from unet.provenance import dataset_sources, git_state, hardware, packages, read_benchmarks

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t",
                           *args], capture_output=True, text=True, check=True).stdout  # fmt: skip


def test_git_state_of_a_clean_a_dirty_and_no_checkout(tmp_path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.txt").write_text("a")
    (repo / "b.txt").write_text("b")
    _git(repo, "add", "a.txt", "b.txt")
    _git(repo, "commit", "-q", "-m", "first")
    commit = _git(repo, "rev-parse", "HEAD").strip()
    assert git_state(repo) == {"commit": commit, "dirty": False, "changed": []}
    (repo / "a.txt").write_text("changed")
    (repo / "new.txt").write_text("untracked files do not make the tree dirty")
    assert git_state(repo) == {"commit": commit, "dirty": True, "changed": ["a.txt"]}
    plain = tmp_path / "plain"
    plain.mkdir()
    assert git_state(plain) == {"error": f"{plain}: not a git checkout"}
    assert git_state(None) == {"error": "not given (--repo)"}
    with pytest.raises(InputError, match="no such folder"):
        git_state(tmp_path / "absent")


def test_benchmarks_give_stage_wall_time_and_peak_memory(tmp_path) -> None:
    train = tmp_path / "benchmarks" / "train" / "isbi2012.tsv"
    report = tmp_path / "benchmarks" / "report" / "isbi2012.tsv"
    for path in (train, report):
        path.parent.mkdir(parents=True)
    train.write_text(HEADER + "10.0\t0:00:10\t100.5\t1\t1\t1\t0\t0\t50\t9\n"
                     "20.0\t0:00:20\t200.5\t1\t1\t1\t0\t0\t50\t19\n")  # fmt: skip
    report.write_text(HEADER + "1.5\t0:00:01\tNA\tNA\tNA\tNA\tNA\tNA\tNA\tNA\n")
    assert read_benchmarks([train, report]) == [
        {"stage": "train/isbi2012", "seconds": 15.0, "max_rss_mb": 150.5},
        {"stage": "report/isbi2012", "seconds": 1.5, "max_rss_mb": None},
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "not a Snakemake benchmark file"), ("a\tb\n1\t2\n", "not a Snakemake benchmark file"),
     (HEADER + "x\t0\t1\t1\t1\t1\t0\t0\t1\t1\n", "column s holds 'x'; expected a number")],
)  # fmt: skip
def test_a_bad_benchmark_file_is_an_input_error_naming_it(tmp_path, text, message) -> None:
    path = tmp_path / "b.tsv"
    path.write_text(text)
    with pytest.raises(InputError, match=f"^{path}: {message}"):
        read_benchmarks([path])
    with pytest.raises(InputError, match="no such file"):
        read_benchmarks([tmp_path / "absent.tsv"])


def test_dataset_sources_of_a_download_and_of_a_generated_dataset() -> None:
    source = {"train-volume.tif": {"location": "mirror /data/isbi2012", "sha256": "ab" * 32}}
    assert dataset_sources(json.dumps(source)) == [
        ("train-volume.tif", "mirror /data/isbi2012", "ab" * 32)
    ]
    assert dataset_sources("unet.synthetic seed=0 ...") == "unet.synthetic seed=0 ..."
    assert dataset_sources(None) == "None"


def test_hardware_and_packages_of_an_environment_report() -> None:
    env = {"unet": "0.1.0", "python": "3.11.7", "packages": {"torch": "2.13.0", "zarr": "3.1"},
           "device": "cuda", "device_name": "NVIDIA H200", "device_memory_gib": 139.8,
           "device_count": 1, "torch_cuda_build": "12.8"}  # fmt: skip
    rows = dict(hardware(env))
    assert rows["compute device"] == "cuda: NVIDIA H200, 139.8 GiB (x1)"
    assert rows["torch CUDA build"] == "12.8" and int(rows["CPU cores"]) >= 1
    assert packages(env) == [("unet", "0.1.0"), ("python", "3.11.7"), ("torch", "2.13.0"),
                             ("zarr", "3.1")]  # fmt: skip
    mine = dict(packages(None))
    assert mine["numpy"][0].isdigit() and "torch" in mine
    assert dict(hardware(None))["compute device"].startswith("not recorded")
