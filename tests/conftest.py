"""Shared fixtures: repository paths, the shared data mirror, small seeded torch settings."""

from __future__ import annotations

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
