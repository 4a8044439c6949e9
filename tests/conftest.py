"""Shared fixtures: repository paths, the shared data mirror, small seeded torch settings."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


# The smallest synthetic dataset (4 slices of 64 px: 3 train, 1 validates) and network (width
# 2, depth 2) that the stages take, 4 training steps: the real chain in seconds.
TINY = """\
synthetic: {slices: 4, size: 64, cell_diameter: 12.0}
model: {base_channels: 2, depth: 2}
augment: {blocks: 1, per_block: 2, tile: 48}
train: {iterations: 4, warmup: 0, validate_every: 2, checkpoint_every: 0, val_tile: 32}
predict: {tile: 32}
"""


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


def sigkill_when(cmd: list[str], records: Path, count: int, timeout: float = 120) -> int:
    """Run ``cmd``, SIGKILL it once the folder ``records`` holds ``count`` files (failing if
    it exits or ``timeout`` s pass first); the number of files it holds after the kill."""
    import os
    import signal
    import time

    proc = subprocess.Popen(cmd)
    deadline = time.monotonic() + timeout
    while not (records.is_dir() and len(os.listdir(records)) >= count):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return len(os.listdir(records))
