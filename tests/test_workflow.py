"""Real ``snakemake`` runs of the workflow in a temporary working directory."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
import zarr
from conftest import TINY, run_snakemake

from unet import ngff
from unet.cli import main

# One nested `--config` override of each type (several entries for one key merge), a
# config file beneath them, and what the dry-run plan's shell commands then show.
NESTED = {
    "integer": (["augment={blocks: 5}", "augment={seed: 3}"], "", ["block-4.zarr", "--seed 3 "]),
    "float": (["augment={elastic_sigma: 7.5}"], "", ["--elastic-sigma 7.5 "]),
    "boolean": (["augment={rotation: false, cache: true}"], "", ["--no-rotation --flip "]),
    "string": (["model={padding: same}"], "", ["--padding same "]),
    "list": (
        ["synthetic={membrane_width: [3, 5]}", "weights={class_weights: [1, 2.5]}"],
        "",
        ["--membrane-width 3 5 ", "--class-weights 1,2.5 "],
    ),
    "null": (["model={norm: null}"], "model:\n  norm: batch\n", ["--norm none "]),
}


def test_default_pipeline_runs_end_to_end(repo: Path, tmp_path: Path) -> None:
    run = run_snakemake(tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    info = json.loads((tmp_path / "results" / "environment.json").read_text())
    assert info["model"]["parameters"] == 29_330  # the smoke preset's network (config.yaml)
    data = tmp_path / "results" / "data"
    store = zarr.open_group(data / "synthetic.zarr", mode="r")
    weights = zarr.open_group(data / "synthetic.weights.zarr", mode="r")["weights"]
    assert weights.shape == store["instances"].shape == (16, 256, 256)
    border = (store["semantic"][0] == 0) & (weights[0] > weights[0].min() + 1.0)
    assert border.sum() > 100  # the border term lights up the gaps between cells
    for block in range(2):
        cache = zarr.open_group(
            tmp_path / f"results/augment/synthetic/block-{block}.zarr", mode="r"
        )
        assert cache["raw"].shape == (16, 124, 124) and cache["target"].shape == (16, 84, 84)
        assert set(np.unique(cache["target"][:])) <= {0, 1}
    assert (tmp_path / "results/train/synthetic/best.pt").is_file()
    assert (tmp_path / "results/synthetic/report/index.html").is_file()  # the chain's end
    again = run_snakemake(tmp_path)
    assert again.returncode == 0 and "Nothing to be done" in again.stderr
    dropout = tmp_path / "dropout.yaml"
    dropout.write_text("model:\n  dropout: 0.3\n")  # not a shape setting: no block reruns
    plan = run_snakemake(tmp_path, "-n", configfiles=(dropout,))
    assert plan.returncode == 0 and "environment" in plan.stdout
    assert "rule augment" not in plan.stdout and "rule weights" not in plan.stdout
    assert "rule train" in plan.stdout  # the network changed


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


@pytest.mark.parametrize("kind", NESTED)
def test_nested_config_override_arrives_typed(repo: Path, tmp_path: Path, kind: str) -> None:
    entries, base, shown = NESTED[kind]
    configfiles = ()
    if base:
        configfiles = (tmp_path / "base.yaml",)
        configfiles[0].write_text(base)
    plan = run_snakemake(tmp_path, "-n", "-p", "--config", *entries, configfiles=configfiles)
    out = plan.stdout + plan.stderr
    assert plan.returncode == 0, out[-3000:]
    assert [text for text in shown if text not in out] == []


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("augment={blocks: 0}", "0 is less than the minimum of 1"),
        ("augment={blocks: five}", "'five' is not of type 'integer'"),
    ],
)
def test_bad_nested_config_override_gets_the_schema_error(
    repo: Path, tmp_path: Path, entry: str, message: str
) -> None:
    run = run_snakemake(tmp_path, "-n", "--config", entry)
    out = run.stdout + run.stderr
    assert run.returncode != 0
    assert message in out and "['augment']['blocks']" in out


@pytest.mark.parametrize(
    ("entries", "flag"),
    [
        (["dataset=Fluo-N2DL-HeLa"], "--normalize percentile:1:99.8:clip"),  # auto: ctc
        ([], "--normalize dtype"),  # auto: synthetic
        (["dataset=Fluo-N2DL-HeLa", "normalize={kind: dtype}"], "--normalize dtype"),
        (
            ["dataset=Fluo-N2DL-HeLa", "normalize={low: 0.5, clip: false}"],
            "--normalize percentile:0.5:99.8",
        ),
        (
            ["normalize={kind: fixed, low: 0, high: 255.5, clip: false}"],
            "--normalize fixed:0:255.5",
        ),
    ],
)
def test_normalize_section_reaches_augment_and_train(tmp_path: Path, entries, flag) -> None:
    args = ("--config", *entries) if entries else ()
    plan = run_snakemake(tmp_path, "-n", "-p", *args)
    out = plan.stdout + plan.stderr
    assert plan.returncode == 0, out[-3000:]
    commands = re.findall(r"unet (augment|train) .*", out)
    lines = [line for line in out.splitlines() if re.search(r"unet (augment|train) ", line)]
    assert sorted(set(commands)) == ["augment", "train"]
    assert all(re.search(re.escape(flag) + r"( |$)", line) for line in lines), lines


def _rule_defaults(repo: Path) -> dict[str, dict[str, int]]:
    """Each rule's own threads and mem_mb, from workflow/rules/*.smk."""
    rules = {}
    for path in sorted((repo / "workflow" / "rules").glob("*.smk")):
        parts = re.split(r"^rule (\w+):\n", path.read_text(), flags=re.M)
        for name, text in zip(parts[1::2], parts[2::2], strict=True):
            threads = re.search(r"^    threads: (\d+)$", text, flags=re.M)
            mem_mb = re.search(r"^        mem_mb=(\d+),$", text, flags=re.M)
            rules[name] = {
                "threads": threads and int(threads[1]),
                "mem_mb": mem_mb and int(mem_mb[1]),
            }
    return rules


def test_rules_carry_threads_and_resources_the_profile_only_the_machine(
    repo: Path, tmp_path: Path
) -> None:
    rules = _rule_defaults(repo)
    assert {"fetch", "weights", "augment", "environment", "evaluate"} <= set(rules)
    assert [name for name, own in rules.items() if None in own.values()] == []
    profile = yaml.safe_load((repo / "profiles" / "local" / "config.yaml").read_text())
    defaults = profile.get("default-resources") or {}
    repeated = [
        f"set-threads {name}: {n}"
        for name, n in (profile.get("set-threads") or {}).items()
        if rules[name]["threads"] == n
    ] + [  # mem_mb: every rule sets it; 0: what an unset resource is anyway
        f"default-resources {key}: {value}"
        for key, value in defaults.items()
        if key == "mem_mb" or value == 0
    ]
    assert repeated == []
    assert profile["resources"]["gpu"] == 1  # one GPU job at a time on a workstation
    plan = run_snakemake(tmp_path, "-n", "--profile", str(repo / "profiles" / "local"))
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert "mem_mb=4000" in plan.stdout + plan.stderr  # the rules' own default


# --- the whole chain on a tiny configuration ------------------------------------------------

STAGES = {"environment", "fetch", "weights", "augment", "train", "predict", "evaluate", "report"}


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory where `snakemake` ran the default target on TINY (shared)."""
    workdir = tmp_path_factory.mktemp("chain")
    (workdir / "tiny.yaml").write_text(TINY)
    run = run_snakemake(workdir, configfiles=(workdir / "tiny.yaml",))
    assert run.returncode == 0, run.stderr[-3000:]
    return workdir


def _plan(workdir: Path, *config: str) -> set[str]:
    """The rules a dry run of the default target would run, with `--config` ``config``."""
    args = ("--config", *config) if config else ()
    plan = run_snakemake(workdir, "-n", *args, configfiles=(workdir / "tiny.yaml",))
    assert plan.returncode == 0, plan.stderr[-3000:]
    if "Nothing to be done" in plan.stdout + plan.stderr:
        return set()
    table = plan.stdout.split("Job stats:")[1].split("\ntotal")[0]
    return {line.split()[0] for line in table.splitlines()[3:] if line.strip()} - {"all"}


def test_chain_ends_with_the_report_and_a_benchmark_of_every_stage(chain: Path) -> None:
    report = chain / "results/synthetic/report"
    assert {p.name for p in report.iterdir()} >= {"index.html", "report.md", "figures"}
    marks = {p.parent.name for p in (chain / "results/benchmarks").glob("*/*.tsv")}
    assert marks == STAGES
    for path in (chain / "results/benchmarks").glob("*/*.tsv"):
        header, values = path.read_text().splitlines()
        assert header.split("\t")[:3] == ["s", "h:m:s", "max_rss"] and float(values.split()[0]) >= 0
    run = ngff.read_attrs(chain / "results/predict/synthetic.zarr")["run"]
    assert (run["chunks"], run["computed"], run["device"]) == (16, 16, "cpu")


def test_report_numbers_are_those_of_unet_evaluate_run_by_hand(chain: Path) -> None:
    results = chain / "results"
    out = chain / "by-hand"
    files = [str(results / "predict/synthetic.zarr"), str(results / "data/synthetic.zarr")]
    flags = ["--metrics", "auto", "--split", "val", "--out-json", str(out / "eval.json")]
    assert main(["evaluate", *files, *flags, "--out-csv", str(out / "eval.csv")]) == 0
    by_hand = json.loads((out / "eval.json").read_text())["metrics"]
    assert set(by_hand) == {"pixel_error", "rand_error", "warping_error"}  # auto: synthetic
    shown = _report_metrics((results / "synthetic/report/report.md").read_text())
    assert {name: value for name, (value, _) in shown.items()} == {  # every digit
        name: result["value"] for name, result in by_hand.items()
    }
    for name, (_, threshold) in shown.items():  # the sweep's 0.1 steps, shown rounded
        assert threshold == pytest.approx(by_hand[name]["threshold"], abs=1e-9), name


def _report_metrics(markdown: str) -> dict[str, tuple[float, float]]:
    """(value, threshold) of each row of report.md's table of every metric as evaluated."""
    table = markdown.split("\n| metric | value | threshold |", 1)[1].split("\n\n", 1)[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[2:]]
    return {name: (float(value), float(at.split()[0])) for name, value, at, *_ in rows}


def test_rerun_after_success_does_nothing(chain: Path) -> None:
    assert _plan(chain) == set()


def test_export_joins_the_default_target_when_enabled(chain: Path) -> None:
    assert _plan(chain, "export={enabled: true}") == {"export", "report"}  # it shows the config
    entry = "export={enabled: true, authors: [A B], license: CC-BY-4.0, tags: [em]}"
    plan = run_snakemake(chain, "-n", "-p", "--config", entry, configfiles=(chain / "tiny.yaml",))
    assert "--author 'A B' --license CC-BY-4.0 --tag em" in plan.stdout
    assert (
        "--sample results/data/synthetic.zarr --metrics results/eval/synthetic.json" in plan.stdout
    )


@pytest.mark.parametrize(
    ("change", "reruns"),
    [
        ("evaluate={threshold: 0.3}", {"evaluate", "report"}),
        ("predict={dtype: uint8}", {"predict", "evaluate", "report"}),
        ("weights={w0: 5}", {"weights", "augment", "train", "predict", "evaluate", "report"}),
        ("train={lr: 0.001}", {"train", "predict", "evaluate", "report"}),
        ("normalize={kind: percentile}", {"augment", "train", "predict", "evaluate", "report"}),
        ("synthetic={noise: 0.1}", STAGES - {"environment"}),
    ],
)
def test_science_parameter_reruns_only_the_stages_it_affects(
    chain: Path, change: str, reruns: set[str]
) -> None:
    assert _plan(chain, change) == reruns


def test_snakemake_report_holds_the_registered_outputs(chain: Path) -> None:
    archive = chain / "snakemake-report.zip"
    run = run_snakemake(chain, "--report", str(archive), configfiles=(chain / "tiny.yaml",))
    assert run.returncode == 0, run.stderr[-3000:]
    names = {Path(name).name for name in zipfile.ZipFile(archive).namelist()}
    assert {"report.html", "index.html", "validation.csv", "curve.png", "synthetic.csv"} <= names
    figures = {p.name for p in (chain / "results/synthetic/report/figures").glob("*.png")}
    assert figures and figures <= names  # every figure of the report, by the pattern
