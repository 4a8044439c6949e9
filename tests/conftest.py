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


BIOIMAGEIO_EXTRA = "the bioimageio extra is absent: pip install -e '.[bioimageio]'"


def bioimageio(module: str = "bioimageio.core"):
    """``module`` of the optional bioimageio extra; the test skips with the reason where it
    is absent, and fails instead under UNET_REQUIRE_BIOIMAGEIO=1 (set by .ci/run)."""
    import importlib
    import os

    if os.environ.get("UNET_REQUIRE_BIOIMAGEIO"):
        return importlib.import_module(module)
    return pytest.importorskip(module, reason=BIOIMAGEIO_EXTRA)


def foreign_package(folder: Path) -> Path:
    """A bioimage.io model package of another architecture (only its rdf.yaml matters)."""
    import zipfile

    import yaml

    weights = {"source": "weights.pt", "architecture": {"callable": "StarDist2D"}}
    rdf = {"type": "model", "format_version": "0.5.4", "name": "StarDist nuclei",
           "weights": {"pytorch_state_dict": weights}}  # fmt: skip
    path = folder / "stardist.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("rdf.yaml", yaml.safe_dump(rdf))
        zf.writestr("weights.pt", b"")
    return path
