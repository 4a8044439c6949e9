# Helpers shared by the workflow steps: the config as the rules see it, paths and
# command-line fragments from config. Rules carry sane default threads and resources;
# profiles (profiles/local) override what a machine changes.
import importlib.util
import json
import os
import shlex
from pathlib import Path

import yaml
from snakemake.utils import update_config


def complete_config(config, entries):
    """Type the nested `--config` values and fill unset model/augment keys, in place.

    Called before the schema validates `config`; `entries` are the raw `KEY=VALUE`
    arguments (workflow.config_settings.config_args)."""
    update_config(config, typed_overrides(entries))
    defaults = _unet_defaults()
    for section, values in (("model", defaults.MODEL), ("augment", defaults.AUGMENT)):
        given = config.get(section)
        if given is None or isinstance(given, dict):  # else the schema names the value
            config[section] = {**values, **(given or {})}


def typed_overrides(entries):
    """The nested `--config KEY=VALUE` values read as YAML, as a config file reads them.

    snakemake 9 types top-level values itself but reads nested ones with YAML's
    BaseLoader, which leaves every scalar a string (`augment={blocks: 5}` gives
    {"blocks": "5"}, `model={norm: null}` gives {"norm": "null"}); these re-read them.
    """
    overrides = {}
    for entry in entries or ():
        key, _, text = entry.partition("=")
        for candidate in (text, text.strip("'\"")):  # snakemake strips outer quotes
            try:
                value = yaml.safe_load(candidate)
            except yaml.YAMLError:
                continue  # left as snakemake read it: the schema names the bad value
            if isinstance(value, (dict, list)):
                update_config(overrides, {key: value})
                break
    return overrides


def _unet_defaults():
    """unet/defaults.py of this checkout (MODEL, AUGMENT), read without the package or torch."""
    path = Path(workflow.basedir) / "unet" / "defaults.py"
    spec = importlib.util.spec_from_file_location("unet_defaults", path)
    defaults = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(defaults)
    return defaults


# Dataset names carry no dots or slashes, so {dataset}.zarr never matches
# {dataset}.weights.zarr.
wildcard_constraints:
    dataset=r"[^./]+",


def model_args(keys=None):
    """The model section of the config (or only `keys` of it) as `unet` command-line flags."""
    cfg = config["model"]
    if keys is not None:
        return " ".join(f"--{key} {cfg[key]}" for key in keys)
    flags = [
        f"--{key.replace('_', '-')} {value}"
        for key, value in cfg.items()
        if key != "norm"
    ]
    flags.append(f"--norm {cfg.get('norm') or 'none'}")
    return " ".join(flags)


def class_weights_arg(cfg=None):
    """The weights section's class_weights as a `unet weights --class-weights` value."""
    value = (config["weights"] if cfg is None else cfg)["class_weights"]
    return value if isinstance(value, str) else ",".join(str(v) for v in value)


def augment_args(cfg=None):
    """The augmentation section of the config as `unet augment` command-line flags."""
    cfg = config["augment"] if cfg is None else cfg
    values = ["tile", "elastic_sigma", "grid", "brightness", "contrast", "gamma"]
    flags = [f"--{key.replace('_', '-')} {cfg[key]}" for key in [*values, "raw_mode"]]
    switches = ("rotation", "flip", "shift")
    flags += [f"--{'' if cfg[key] else 'no-'}{key}" for key in switches]
    return " ".join(flags)


def augment_blocks(dataset):
    """The cache blocks that training reads: none when `augment.cache` is off (on the fly)."""
    cfg = config["augment"]
    if not cfg["cache"]:
        return []
    return [f"{RESULTS}/augment/{dataset}/block-{b}.zarr" for b in range(cfg["blocks"])]


def fetch_args(wildcards):
    """`unet fetch` flags for a dataset: its config entry, the split, synthetic settings, the
    ctc section (ignore mask of unannotated cells, min_annotated), mirror."""
    entry = (config.get("datasets") or {}).get(wildcards.dataset)
    split = config["split"]
    flags = [
        f"--val-fraction {split['val_fraction']}",
        f"--test-fraction {split['test_fraction']}",
        f"--split-seed {split['seed']}",
    ]
    if entry:
        flags.append(f"--entry {shlex.quote(json.dumps(entry))}")
    if dataset_format(wildcards.dataset) == "synthetic":
        syn = config["synthetic"]
        flags += [
            f"--{key.replace('_', '-')} {value}"
            for key, value in syn.items()
            if key != "membrane_width"
        ]
        flags.append("--membrane-width {} {}".format(*syn["membrane_width"]))
    for key, value in (config.get("ctc") or {}).items():  # used by CTC datasets only
        flags.append(f"--{key.replace('_', '-')} {shlex.quote(str(value))}")
    mirror = config["download"].get("mirror")
    if mirror:
        flags.append(f"--mirror {shlex.quote(str(mirror))}")
    return " ".join(flags)


def store_folder(wildcards, output):
    """The folder holding a rule's output store (the `--out` of `unet fetch`)."""
    return os.path.dirname(output.store)


def trained_checkpoint(dataset):
    """The checkpoint prediction uses: config predict.checkpoint, else training's best."""
    return config["predict"]["checkpoint"] or f"{RESULTS}/train/{dataset}/best.pt"


def archive_images(wildcards):
    """The images of the sample sheet that exist (missing ones are reported in its rows)."""
    sheet = Path(config["archive"]["sheet"])
    if not sheet.is_file():
        return []
    text = sheet.read_text(encoding="utf-8-sig")
    lines = [
        l for l in text.splitlines() if l.strip() and not l.lstrip().startswith("#")
    ]
    rows = [[value.strip() for value in line.split("\t")] for line in lines]
    if not rows or "path" not in rows[0]:
        return []  # unet predict-archive names what is wrong with the sheet
    at = rows[0].index("path")
    paths = [sheet.parent / row[at] for row in rows[1:] if len(row) > at and row[at]]
    return sorted({str(path) for path in paths if path.exists()})


def dataset_format(dataset):
    """A dataset's format (isbi2012 | ctc | synthetic): its config entry's, else the
    registry's (isbi2012 and synthetic by name; other names are CTC training sets)."""
    entry = (config.get("datasets") or {}).get(dataset) or {}
    named = {"isbi2012": "isbi2012", "synthetic": "synthetic"}
    return entry.get("format") or named.get(dataset, "ctc")


def normalize_arg(dataset):
    """The normalize section as `unet augment/train --normalize SPEC`. auto: percentile
    for CTC datasets, dtype otherwise; percentile's unset low / high: 1 / 99.8."""
    cfg = config.get("normalize") or {}
    kind = cfg.get("kind", "auto")
    if kind == "auto":
        kind = "percentile" if dataset_format(dataset) == "ctc" else "dtype"
    if kind == "dtype":
        return "--normalize dtype"
    low, high = cfg.get("low"), cfg.get("high")
    if kind == "percentile":
        low, high = 1 if low is None else low, 99.8 if high is None else high
    if low is None or high is None:
        raise ValueError(f"normalize: {kind} needs low and high, got {low!r}, {high!r}")
    clip = ":clip" if cfg.get("clip", True) else ""
    return f"--normalize {kind}:{_number(low)}:{_number(high)}{clip}"


def _number(value):
    """`value` as the shortest exact text (1, 99.8, 33000)."""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def metrics_arg():
    """The evaluate section's metrics as `unet evaluate --metrics` values (auto: by format)."""
    metrics = config["evaluate"]["metrics"]
    return metrics if isinstance(metrics, str) else " ".join(metrics)


def benchmark_file(step, stem="{dataset}"):
    """The benchmark file of a job of `step` (a rule's name): benchmarks/{step}/{stem}.tsv
    under results, the stem the job's wildcards joined by - (else the rule's name)."""
    return f"{RESULTS}/benchmarks/{step}/{stem}.tsv"


def report_inputs(wildcards):
    """Everything `unet report` reads for a dataset, by name: the stores, evaluation, the
    environment, the benchmarks of each stage in pipeline order; the training outputs, weight
    map and first augmentation block unless config predict.checkpoint replaces training; the
    test volume and its prediction for datasets that have one (isbi2012)."""
    d = wildcards.dataset
    trains = not config["predict"]["checkpoint"]
    test = dataset_format(d) == "isbi2012"
    blocks = augment_blocks(d) if trains else []
    inputs = dict(
        store=f"{RESULTS}/data/{d}.zarr",
        prediction=f"{RESULTS}/predict/{d}.zarr",
        eval_json=f"{RESULTS}/eval/{d}.json",
        environment=f"{RESULTS}/environment.json",
    )
    if trains:
        train = f"{RESULTS}/train/{d}"
        inputs.update(
            weights=f"{RESULTS}/data/{d}.weights.zarr",
            train_csv=f"{train}/validation.csv",
            train_curve=f"{train}/curve.png",
            train_best=f"{train}/best.pt",
        )
    if blocks:
        inputs["augment_block"] = blocks[0]
    if test:
        inputs.update(
            test_store=f"{RESULTS}/data/{d}-test.zarr",
            test_prediction=f"{RESULTS}/predict/{d}-test.zarr",
        )
    stages = [("environment", "environment"), ("fetch", d)]
    stages += [("fetch_test", d)] if test else []
    if trains:
        augment = [("augment", f"{d}-{b}") for b in range(len(blocks))]
        stages += [("weights", d), *augment, ("train", d)]
    stages += [("predict", d), ("predict_test", d)] if test else [("predict", d)]
    stages.append(("evaluate", d))
    inputs["benchmarks"] = [benchmark_file(step, stem) for step, stem in stages]
    return inputs


def report_args(wildcards, input):
    """The optional `unet report` flags of the inputs that report_inputs gave."""
    present = set(input.keys())
    flags = []
    if "train_best" in present:
        flags.append(f"--train-dir {shlex.quote(os.path.dirname(input.train_best))}")
    for name in ("weights", "augment_block", "test_prediction", "test_store"):
        if name in present:
            flags.append(f"--{name.replace('_', '-')} {shlex.quote(input[name])}")
    return " ".join(flags)
