"""`snakemake --profile slurm` against a real single-node SLURM cluster.

The cluster is .ci/slurm-local.sh's (munge, slurmctld, slurmd and slurmdbd + MariaDB from
Debian's packages; partitions cpu and gpu; two fake GPUs; account unetci), which `.ci/run`
brings up. Where it is not running these tests skip with the reason; with
UNET_REQUIRE_SLURM=1 (set by .ci/run once the cluster is up) they fail instead.
What they show, from `sacct`: every train and predict job requested a GPU in the gpu
partition, no CPU job did; the outputs equal a local run's; a prediction scattered over
three GPU jobs equals one job's; a training job cancelled by `scancel` is resubmitted and
resumes from its last checkpoint.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
import zarr
from conftest import REPO, TINY, run_snakemake

ACCOUNT = "unetci"
ENV = {"UNET_SLURM_ACCOUNT": ACCOUNT, "UNET_SLURM_PARTITION": "cpu",
       "UNET_SLURM_GPU_PARTITION": "gpu"}  # fmt: skip
GPU_RULES = {"train", "predict", "predict_part", "predict_test", "predict_archive"}
SACCT = ["JobID", "Comment", "Partition", "Account", "AllocTRES", "State", "WorkDir"]


def _rules() -> dict[str, bool]:
    """Every rule of workflow/rules/*.smk and whether it requests a GPU (gpu=1)."""
    rules = {}
    for path in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        parts = re.split(r"^ *rule (\w+):\n", path.read_text(), flags=re.M)
        for name, text in zip(parts[1::2], parts[2::2], strict=True):
            rules[name] = bool(re.search(r"^ +gpu=1,$", text.split("\n\n")[0], flags=re.M))
    return rules


def test_profile_sizes_every_rule_and_sends_only_gpu_rules_to_the_gpu_partition() -> None:
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    assert (REPO / "slurm").resolve() == REPO / "profiles" / "slurm"  # `--profile slurm`
    assert profile["executor"] == "slurm"
    rules = _rules()
    assert {name for name, gpu in rules.items() if gpu} == GPU_RULES
    assert set(rules) <= set(profile["set-threads"])
    resources = profile["set-resources"]
    assert set(resources) <= set(rules) and "gpu" not in profile["default-resources"]
    to_gpu = {name for name, values in resources.items() if "GPU_PARTITION" in
              str(values.get("slurm_partition"))}  # fmt: skip
    assert to_gpu == GPU_RULES
    assert profile["default-resources"]["runtime"] > 0  # minutes, unless a rule sets its own
    assert all(resources[name]["runtime"] >= 120 for name in GPU_RULES)


def _cluster_problem() -> str | None:
    """Why the local cluster cannot run these tests (None when it can)."""
    missing = [tool for tool in ("sbatch", "sacct", "sinfo", "scancel") if not shutil.which(tool)]
    if missing:
        return f"no SLURM client tools ({', '.join(missing)}): run `.ci/slurm-local.sh up` as root"
    info = subprocess.run(["sinfo", "-h", "-o", "%P %G %T"], capture_output=True, text=True)
    text = info.stdout.replace("*", "")
    if info.returncode or not {"cpu", "gpu"} <= {line.split()[0] for line in text.splitlines()}:
        return (
            f"no cpu and gpu partitions ({(info.stderr or text).strip()!r}): .ci/slurm-local.sh up"
        )
    if "gpu:" not in text:
        return f"the node has no GPU generic resource ({text.strip()!r})"
    acct = subprocess.run(["sacctmgr", "-n", "-P", "list", "assoc", "format=account"],
                          capture_output=True, text=True)  # fmt: skip
    if acct.returncode or ACCOUNT not in acct.stdout.split():
        return f"no accounting database with account {ACCOUNT} ({acct.stderr.strip()!r})"
    return None


@pytest.fixture(scope="module")
def cluster() -> None:
    problem = _cluster_problem()
    if problem and os.environ.get("UNET_REQUIRE_SLURM"):
        pytest.fail(f"SLURM cluster required (UNET_REQUIRE_SLURM): {problem}")
    if problem:
        pytest.skip(problem)


def _snakemake_slurm(workdir: Path, *args: str, wait: bool = True):
    """`snakemake --profile slurm` (the profile as users type it) in ``workdir``: one CPU
    per job (the node has two), the plugin's first status query after 2 s, not 40."""
    cmd = ["snakemake", "--profile", "slurm", "--directory", str(workdir), "--configfile",
           str(REPO / "config.yaml"), str(workdir / "tiny.yaml"), "--max-threads", "1",
           "--slurm-init-seconds-before-status-checks", "2", *args]  # fmt: skip
    kwargs = dict(cwd=REPO, env={**os.environ, **ENV}, text=True)
    if not wait:
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)
    return subprocess.run(cmd, capture_output=True, **kwargs)


def _jobs(workdir: Path, count: int) -> list[dict[str, str]]:
    """The sacct records of the jobs run in ``workdir`` (polled until ``count`` appear:
    a finished job reaches the database a second or two later)."""
    deadline, rows = time.monotonic() + 30, []
    while time.monotonic() < deadline:
        out = subprocess.run(["sacct", "-X", "-n", "-P", "-S", "now-2hours", "-o", ",".join(SACCT)],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
        rows = [dict(zip(SACCT, line.split("|"), strict=True)) for line in out.splitlines()]
        rows = [r for r in rows if r["WorkDir"] == str(workdir)]
        if len(rows) >= count:
            break
        time.sleep(1)
    for row in rows:  # the plugin's comment: rule_{name}_wildcards_{values}
        row["rule"] = row["Comment"].removeprefix("rule_").split("_wildcards_")[0]
    return rows


@pytest.fixture(scope="module")
def runs(cluster, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny chain run twice: locally (prediction in one job) and on SLURM with the
    prediction scattered over three GPU jobs."""
    local, slurm = tmp_path_factory.mktemp("local"), tmp_path_factory.mktemp("slurm")
    (local / "tiny.yaml").write_text(TINY)
    (slurm / "tiny.yaml").write_text(TINY.replace("{tile: 32}", "{tile: 32, parts: 3}"))
    start = time.monotonic()
    run = _snakemake_slurm(slurm)
    print(f"\nsnakemake --profile slurm, tiny chain: {time.monotonic() - start:.0f} s")
    assert run.returncode == 0, run.stderr[-4000:]
    here = run_snakemake(local, "--max-threads", "1", configfiles=(local / "tiny.yaml",))
    assert here.returncode == 0, here.stderr[-4000:]
    return {"local": local, "slurm": slurm}


def test_gpu_jobs_request_a_gpu_and_cpu_jobs_none(runs) -> None:
    jobs = _jobs(runs["slurm"], 11)
    for job in jobs:
        print("sacct:", "|".join(job[key] for key in SACCT))
    rules = sorted(job["rule"] for job in jobs)
    cpu = ["environment", "fetch", "weights", "augment", "predict_gather", "evaluate", "report"]
    assert rules == sorted([*cpu, "train", *["predict_part"] * 3])
    for job in jobs:
        assert job["State"] == "COMPLETED" and job["Account"] == ACCOUNT, job
        gpu = job["rule"] in GPU_RULES
        assert ("gres/gpu=1" in job["AllocTRES"]) == gpu, job
        assert job["Partition"] == ("gpu" if gpu else "cpu"), job
        assert "cpu=1" in job["AllocTRES"], job  # threads -> --cpus-per-task (capped at 1)


def _arrays(store: Path) -> dict[str, np.ndarray]:
    group = zarr.open_group(str(store), mode="r")
    return {path: np.asarray(array[...]) for path, array in group.arrays()}


def _same_arrays(a: Path, b: Path) -> None:
    left, right = _arrays(a), _arrays(b)
    assert sorted(left) == sorted(right) and left, (a, b)
    for name in left:
        assert np.array_equal(left[name], right[name]), f"{a.name}/{name}"


def test_outputs_equal_those_of_a_local_run(runs) -> None:
    local, slurm = (runs[k] / "results" for k in ("local", "slurm"))
    for store in ("data/synthetic.zarr", "data/synthetic.weights.zarr",
                  "augment/synthetic/block-0.zarr"):  # fmt: skip
        _same_arrays(local / store, slurm / store)
    for name in ("best.pt", "last.pt"):
        a, b = (torch.load(r / "train/synthetic" / name, weights_only=True) for r in (local, slurm))
        assert a["state_dict"].keys() == b["state_dict"].keys()
        assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    metrics = [
        json.loads((r / "eval/synthetic.json").read_text())["metrics"] for r in (local, slurm)
    ]
    assert metrics[0] == metrics[1]
    assert (slurm / "synthetic/report/index.html").is_file()


PATHS = ("checkpoint_sha256", "source")


def test_three_part_prediction_equals_the_single_job_run(runs) -> None:
    local, slurm = (runs[k] / "results/predict/synthetic.zarr" for k in ("local", "slurm"))
    _same_arrays(local, slurm)
    attrs = [json.loads((s / "zarr.json").read_text())["attributes"] for s in (local, slurm)]
    assert attrs[0]["ome"] == attrs[1]["ome"]
    params = [{k: v for k, v in a["unet"]["predict"].items() if k not in PATHS} for a in attrs]
    assert params[0] == params[1]  # the checkpoint files differ in their recorded paths
    run = attrs[1]["unet"]["run"]
    assert (run["parts"], run["chunks"], run["computed"]) == (3, 16, 16)
    assert not (slurm.parent / "synthetic.zarr.parts").exists()  # the staging store moved


# Training long enough to be cancelled after a checkpoint (1500 steps of the tiny network).
LONG = TINY.replace(
    "iterations: 4, warmup: 0, validate_every: 2, checkpoint_every: 0",
    "iterations: 1500, warmup: 0, validate_every: 500, checkpoint_every: 100",
)


def test_scancelled_training_is_resubmitted_and_resumes(cluster, tmp_path: Path) -> None:
    (tmp_path / "tiny.yaml").write_text(LONG)
    target = "results/train/synthetic/best.pt"
    proc = _snakemake_slurm(tmp_path, target, wait=False)
    state, deadline = tmp_path / "results/train/synthetic/resume/state.pt", time.monotonic() + 300
    try:
        while not state.is_file():
            assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint"
            time.sleep(0.05)
        running = []
        while not running:  # squeue: sacct lists a running job's WorkDir only at its end
            queue = subprocess.run(["squeue", "-h", "-o", "%i|%k|%Z"], capture_output=True,
                                   text=True, check=True).stdout  # fmt: skip
            train = ["rule_train_wildcards_synthetic", str(tmp_path)]
            running = [line.split("|")[0] for line in queue.splitlines()
                       if line.split("|")[1:] == train]  # fmt: skip
            assert time.monotonic() < deadline, "the train job is not in squeue"
        subprocess.run(["scancel", running[0]], check=True)
        assert proc.wait(timeout=600) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    trains = [j for j in _jobs(tmp_path, 6) if j["rule"] == "train"]
    assert [j["State"].split()[0] for j in trains] == ["CANCELLED", "COMPLETED"]
    log = (tmp_path / "results/logs/train/synthetic.log").read_text()
    assert "resuming from results/train/synthetic/resume/state.pt at iteration" in log
    resumed_at = int(log.split("resuming from")[1].split("at iteration")[1].split()[0])
    assert 100 <= resumed_at < 1500
    # the resumed run ends where an uninterrupted one does
    local = tmp_path / "local"
    local.mkdir()
    (local / "tiny.yaml").write_text(LONG)
    here = run_snakemake(local, target, "--max-threads", "1", configfiles=(local / "tiny.yaml",))
    assert here.returncode == 0, here.stderr[-3000:]
    a, b = (torch.load(d / "results/train/synthetic/last.pt", weights_only=True)["state_dict"]
            for d in (local, tmp_path))  # fmt: skip
    assert all(torch.equal(a[k], b[k]) for k in a)
