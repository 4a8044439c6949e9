# Helpers shared by the workflow steps: paths and command-line fragments from config.
import json
import os
import shlex

RESULTS = config["results"]
LOGS = f"{RESULTS}/logs"


def model_args(cfg=None):
    """The model section of the config as `unet` command-line flags."""
    cfg = config["model"] if cfg is None else cfg
    flags = [
        f"--{key.replace('_', '-')} {value}"
        for key, value in cfg.items()
        if key != "norm"
    ]
    flags.append(f"--norm {cfg.get('norm') or 'none'}")
    return " ".join(flags)


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
