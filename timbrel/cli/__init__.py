"""The `timbrel` command line: one module per group of sub-commands. Run through `timbrel.__main__`."""

from __future__ import annotations

import argparse
import os
import sys

from timbrel.cli import multis, play, plugins, presets, training
from timbrel.cli.version import installed_version
from timbrel.engine.errors import TimbrelError


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with one sub-command per job."""
    parser = argparse.ArgumentParser(prog="timbrel", description="A real-time host for neural (DDSP) instruments.")
    parser.add_argument("--version", action="version", version=f"timbrel {installed_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (play, presets, multis, training, plugins):
        group.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; user faults print one line and exit with status 2."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except TimbrelError as err:
        print(f"timbrel: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`timbrel presets list | head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
