"""The ``unet`` command line: one subcommand per pipeline stage.

The command-line layer sits on top of the library: each module in :data:`STAGES`
(``unet/cli/<verb>.py``) defines ``add_parser(subparsers)``, which registers its subcommand
and sets ``func`` (taking the parsed arguments) as the parser default, and calls the stage
module of the same name; nothing in the library imports this package. Heavy imports stay
inside ``func`` so that ``unet --help`` stays fast and light stages never import torch.
:class:`unet.errors.InputError` and missing files (the user's errors) exit with status 2 and
one line on stderr naming the file or value; any other exception is a bug and keeps its
traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from unet import __version__
from unet.errors import InputError

# What the user can fix: one line on stderr, exit status 2; anything else is a bug and keeps
# its traceback.
USER_ERRORS = (InputError, FileNotFoundError, IsADirectoryError, NotADirectoryError,
               PermissionError, FileExistsError)  # fmt: skip

# "module" entries, in pipeline order; each stage's issue appends its module here.
STAGES: tuple[str, ...] = (
    "unet.cli.info",
    "unet.cli.fetch",
    "unet.cli.weights",
    "unet.cli.augment",
    "unet.cli.train",
    "unet.cli.predict",
    "unet.cli.predict_archive",
    "unet.cli.evaluate",
    "unet.cli.report",
    "unet.cli.export",
)


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
    except USER_ERRORS as err:
        print(f"unet {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"unet {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
