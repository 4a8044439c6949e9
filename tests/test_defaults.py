"""One place for the model and augmentation defaults (:mod:`unet.defaults`).

The UNet signature, the command line, ``AugmentConfig``, the schema (which sets no
defaults of its own) and the config a real ``snakemake -n`` resolves all agree with it.
"""

from __future__ import annotations

import dataclasses
import inspect
import shlex
from pathlib import Path

import jsonschema
import yaml
from conftest import run_snakemake

from unet.augment import AugmentConfig
from unet.cli import build_parser
from unet.cli.args import model_config
from unet.defaults import AUGMENT, MODEL
from unet.model import UNet

SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"
TRANSFORM = [field.name for field in dataclasses.fields(AugmentConfig)]


def _augment_flags(args) -> dict:
    """What ``unet augment`` parsed, under the config's augment keys."""
    flags = {"per_block": args.n, "seed": args.seed, "tile": args.tile}
    return flags | {name: getattr(args, name) for name in TRANSFORM}


def test_unet_signature_takes_the_model_defaults() -> None:
    parameters = inspect.signature(UNet).parameters
    assert {name: p.default for name, p in parameters.items()} == dict(MODEL)


def test_augment_config_takes_the_augment_defaults() -> None:
    assert AugmentConfig().as_dict() == {name: AUGMENT[name] for name in TRANSFORM}
    assert set(TRANSFORM) < set(AUGMENT)


def test_command_line_defaults_are_the_model_and_augment_defaults() -> None:
    parser = build_parser()
    assert model_config(parser.parse_args(["info", "--model"])) == dict(MODEL)
    args = parser.parse_args(["augment", "s.zarr", "w.zarr", "--out", "b.zarr", "--block", "0"])
    assert model_config(args) == dict(MODEL)
    flags = _augment_flags(args)
    assert flags == {name: AUGMENT[name] for name in flags}


def test_schema_describes_every_default_and_sets_none_itself() -> None:
    schema = yaml.safe_load(SCHEMA.read_text())
    for section, defaults in (("model", MODEL), ("augment", AUGMENT)):
        properties = schema["properties"][section]["properties"]
        assert set(properties) == set(defaults)
        assert [key for key, prop in properties.items() if "default" in prop] == []
        jsonschema.validate(dict(defaults), schema["properties"][section])


def test_the_workflow_resolves_the_same_defaults(repo: Path, tmp_path: Path) -> None:
    plan = run_snakemake(tmp_path, "-n", "-p")
    assert plan.returncode == 0, plan.stderr[-3000:]
    commands = [
        shlex.split(line.removeprefix("Shell command: ").split(" > ")[0])[1:]
        for line in (plan.stdout + plan.stderr).splitlines()
        if line.startswith("Shell command: unet ")
    ]
    config = yaml.safe_load((repo / "config.yaml").read_text())  # its values over the defaults
    model = {**MODEL, **(config.get("model") or {})}
    augment = {**AUGMENT, **(config.get("augment") or {})}
    parser = build_parser()
    parsed = {}
    for argv in commands:  # the rules' flags read by the real `unet` parser
        parsed.setdefault(argv[0], []).append(parser.parse_args(argv))
    assert model_config(parsed["info"][0]) == model
    assert len(parsed["augment"]) == augment["blocks"]
    for args in parsed["augment"]:
        flags = _augment_flags(args)
        assert flags == {name: augment[name] for name in flags}
        shape = {name: getattr(args, name) for name in ("depth", "padding", "dims")}
        assert shape == {name: model[name] for name in shape}
