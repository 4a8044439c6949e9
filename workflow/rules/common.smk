# Helpers shared by the workflow steps: paths and command-line fragments from config.
import json
import os
import shlex

RESULTS = config["results"]
LOGS = f"{RESULTS}/logs"


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
    """`unet fetch` flags for a dataset: its config entry, the split, synthetic settings, mirror."""
    entry = (config.get("datasets") or {}).get(wildcards.dataset)
    split = config["split"]
    flags = [
        f"--val-fraction {split['val_fraction']}",
        f"--test-fraction {split['test_fraction']}",
        f"--split-seed {split['seed']}",
    ]
    if entry:
        flags.append(f"--entry {shlex.quote(json.dumps(entry))}")
    if (entry or {}).get("format", wildcards.dataset) == "synthetic":
        syn = config["synthetic"]
        flags += [
            f"--{key.replace('_', '-')} {value}"
            for key, value in syn.items()
            if key != "membrane_width"
        ]
        flags.append("--membrane-width {} {}".format(*syn["membrane_width"]))
    mirror = config["download"].get("mirror")
    if mirror:
        flags.append(f"--mirror {shlex.quote(str(mirror))}")
    return " ".join(flags)


def store_folder(wildcards, output):
    """The folder holding a rule's output store (the `--out` of `unet fetch`)."""
    return os.path.dirname(output.store)
