"""Shared fixtures: repository paths, the shared data mirror, small seeded torch settings."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def repo() -> Path:
    """The repository root."""
    return REPO


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """The offline dataset mirror beside the repository (skip if absent)."""
    path = SHARED / "datasets"
    if not path.is_dir():
        pytest.skip(f"offline mirror {path} not present")
    return path


def run_snakemake(
    workdir: Path,
    *args: str,
    configfiles: tuple[Path | str, ...] = (),
    allowed_rules: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """Run the repository's workflow for real in ``workdir`` (targets and flags in ``args``).

    ``configfiles`` are layered over config.yaml; ``allowed_rules`` limits what may run.
    """
    cmd = ["snakemake", *args, "--snakefile", str(REPO / "Snakefile"), "--directory",
           str(workdir), "--cores", "2", "--configfile", str(REPO / "config.yaml"),
           *map(str, configfiles)]  # fmt: skip
    if allowed_rules:
        cmd += ["--allowed-rules", *allowed_rules]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
