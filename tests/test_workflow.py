"""Real ``snakemake`` runs of the workflow in a temporary working directory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import zarr
from conftest import run_snakemake


def test_default_pipeline_runs_end_to_end(repo: Path, tmp_path: Path) -> None:
    run = run_snakemake(tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    info = json.loads((tmp_path / "results" / "environment.json").read_text())
    assert info["model"]["parameters"] == 31_030_658
    data = tmp_path / "results" / "data"
    store = zarr.open_group(data / "synthetic.zarr", mode="r")
    weights = zarr.open_group(data / "synthetic.weights.zarr", mode="r")["weights"]
    assert weights.shape == store["instances"].shape == (16, 256, 256)
    border = (store["semantic"][0] == 0) & (weights[0] > weights[0].min() + 1.0)
    assert border.sum() > 100  # the border term lights up the gaps between cells
    for block in range(4):
        cache = zarr.open_group(
            tmp_path / f"results/augment/synthetic/block-{block}.zarr", mode="r"
        )
        assert cache["raw"].shape == (8, 572, 572) and cache["target"].shape == (8, 388, 388)
        assert set(np.unique(cache["target"][:])) <= {0, 1}
    again = run_snakemake(tmp_path)
    assert again.returncode == 0 and "Nothing to be done" in again.stderr
    dropout = tmp_path / "dropout.yaml"
    dropout.write_text("model:\n  dropout: 0.3\n")  # not a shape setting: no block reruns
    plan = run_snakemake(tmp_path, "-n", configfiles=(dropout,))
    assert plan.returncode == 0 and "environment" in plan.stdout
    assert "rule augment" not in plan.stdout and "rule weights" not in plan.stdout


def test_bad_config_value_is_rejected_by_the_schema(repo: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  depth: 0\n")
    run = run_snakemake(tmp_path, "-n", configfiles=(bad,))
    assert run.returncode != 0
    out = run.stdout + run.stderr
    assert "0 is less than the minimum of 1" in out and "['model']['depth']" in out


def test_fetch_rule_writes_the_synthetic_store_offline(repo: Path, tmp_path: Path) -> None:
    small = tmp_path / "small.yaml"
    small.write_text("synthetic:\n  slices: 4\n  size: 64\n  cell_diameter: 12.0\n")
    target = "results/data/synthetic.zarr"
    run = run_snakemake(tmp_path, target, configfiles=(small,))
    assert run.returncode == 0, run.stderr[-3000:]
    root = zarr.open_group(tmp_path / target, mode="r")
    assert root["raw"].shape == (4, 64, 64) and root["raw"].dtype == np.uint8
    assert root["instances"].dtype == np.uint32 and root["semantic"].dtype == np.uint8
    assert root.attrs["dataset"] == "synthetic" and len(root.attrs["split"]["val"]) == 1
    assert (
        "synthetic.zarr: raw (4, 64, 64) uint8"
        in (tmp_path / "results/logs/fetch/synthetic.log").read_text()
    )
    again = run_snakemake(tmp_path, target, configfiles=(small,))
    assert again.returncode == 0 and "Nothing to be done" in again.stderr
    small.write_text(small.read_text() + "  seed: 1\n")  # a changed parameter reruns the rule
    changed = run_snakemake(tmp_path, target, "-n", configfiles=(small,))
    assert changed.returncode == 0 and "fetch" in changed.stdout


def test_fetch_rule_isbi_from_the_config_mirror(
    repo: Path, tmp_path: Path, shared_datasets
) -> None:
    mirror = tmp_path / "mirror.yaml"
    mirror.write_text(f"dataset: isbi2012\ndownload:\n  mirror: {shared_datasets}\n")
    run = run_snakemake(tmp_path, "results/data/isbi2012-test.zarr", configfiles=(mirror,))
    assert run.returncode == 0, run.stderr[-3000:]
    data = tmp_path / "results" / "data"
    assert zarr.open_group(data / "isbi2012.zarr", mode="r")["raw"].shape == (25, 512, 512)
    assert zarr.open_group(data / "isbi2012-test.zarr", mode="r")["raw"].shape == (30, 512, 512)
