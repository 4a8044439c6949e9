"""Real ``snakemake`` runs of the workflow in a temporary working directory."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path


def _snakemake(repo: Path, workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = ["snakemake", "--snakefile", str(repo / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(repo / "config.yaml"), "--cores", "2", *args]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, cwd=repo)


def test_default_pipeline_runs_end_to_end(repo: Path, tmp_path: Path) -> None:
    run = _snakemake(repo, tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    info = json.loads((tmp_path / "results" / "environment.json").read_text())
    assert info["model"]["parameters"] == 31_030_658
    again = _snakemake(repo, tmp_path)
    assert again.returncode == 0 and "Nothing to be done" in again.stderr


def test_bad_config_value_is_rejected_by_the_schema(repo: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  depth: 0\n")
    run = _snakemake(repo, tmp_path, "--configfile", str(bad), "-n")
    assert run.returncode != 0
    out = run.stdout + run.stderr
    assert "0 is less than the minimum of 1" in out and "['model']['depth']" in out
