"""``unet info``: package versions, torch build, the device found, the model's shapes."""

from __future__ import annotations

import argparse
import json
import sys

from unet.cli.args import add_model_args, model_config
from unet.info import collect
from unet.io import write_text_atomic


def _run(args: argparse.Namespace) -> int:
    info = collect(model_config(args) if args.model else None)
    if args.json or args.out:
        text = json.dumps(info, indent=2) + "\n"
        if args.out:
            write_text_atomic(args.out, text)
        else:
            sys.stdout.write(text)
        return 0
    for key, value in info.items():
        if isinstance(value, dict):
            for name, version in value.items():
                print(f"{name:>18}: {version}")
        else:
            print(f"{key:>18}: {value}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``unet info``."""
    p = sub.add_parser("info", help="package versions, torch build, device found, threads")
    p.add_argument("--json", action="store_true", help="print (or write) JSON")
    p.add_argument("--out", help="write the JSON to this file atomically")
    p.add_argument("--model", action="store_true", help="also summarise the model configured")
    add_model_args(p)
    p.set_defaults(func=_run)
