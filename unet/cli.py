"""The ``unet`` command line: one subcommand per pipeline stage.

Each stage module in :data:`STAGES` defines ``add_parser(subparsers)``, which registers its
subcommand and sets ``func`` (taking the parsed arguments) as the parser default. Stage
modules are imported lazily so that ``unet --help`` stays fast and light stages never import
torch. Errors that are the user's (bad input, bad value) exit with status 2 and one line on
stderr naming the file or value; nothing is written at the output path.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from unet import __version__

# "module" entries, in pipeline order; each stage's issue appends its module here.
STAGES: tuple[str, ...] = (
    "unet.info",
    "unet.fetch",
    "unet.weights",
    "unet.augment",
    "unet.evaluate",
)


class UserError(Exception):
    """An error in the user's input: reported as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every stage's subcommand."""
    parser = argparse.ArgumentParser(prog="unet", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"unet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in STAGES:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``unet`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (UserError, ValueError, OSError) as err:
        print(f"unet {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"unet {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
