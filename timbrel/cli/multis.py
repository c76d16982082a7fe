"""Multis (ensembles of presets): list, show, save and remove."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from timbrel.presets.library import Library
from timbrel.presets.multi import get_multi, list_multis, multi_to_toml, read_multi, remove_multi, save_multi
from timbrel.presets.names import check_name
from timbrel.presets.song import song_multi


def _cmd_list(args: argparse.Namespace) -> int:
    library = Library()
    multis, problems = list_multis(library)
    for multi in multis:
        parts = ", ".join(part.title for part in multi.parts)
        print(f"{multi.name}: {len(multi.parts)} parts ({parts})")
    for line in problems:
        print(f"skipped: {line}")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    print(multi_to_toml(get_multi(Library(), args.name)), end="")
    return 0


def _cmd_save(args: argparse.Namespace) -> int:
    library = Library()
    if args.song:
        multi, lines = song_multi(args.song)
        for line in lines:
            print(line)
    else:
        multi = read_multi(args.source)
        beside = Path(args.source).resolve().parent
        for part in multi.parts:  # a preset file named relative to the source stays found from the library
            if part.preset.endswith(".toml") and not Path(part.preset).is_absolute():
                part.preset = str(beside / part.preset)
    multi = replace(multi, name=check_name(args.name))
    path = save_multi(library, multi, force=args.force)
    print(f"saved {multi.name} to {path}")
    return 0


def _cmd_rm(args: argparse.Namespace) -> int:
    print(f"removed {remove_multi(Library(), args.name)}")
    return 0


def add_commands(commands) -> None:
    """Register `timbrel multis`."""
    mu = commands.add_parser("multis", help="ensembles of presets: list, show, save, rm")
    sub = mu.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = sub.add_parser("list", help="the factory and user multis")
    ls.set_defaults(run=_cmd_list)
    sh = sub.add_parser("show", help="a multi's file")
    sh.add_argument("name", help="a multi name or .toml file")
    sh.set_defaults(run=_cmd_show)
    sv = sub.add_parser("save", help="save a multi file, or a MIDI song's General MIDI ensemble, as a user multi")
    sv.add_argument("name", help="the new multi's name")
    source = sv.add_mutually_exclusive_group(required=True)
    source.add_argument("--from", dest="source", metavar="FILE", help="a multi .toml file to check and save")
    source.add_argument("--song", metavar="MIDI", help="a MIDI file: one part per channel, by the General MIDI map")
    sv.add_argument("--force", action="store_true", help="replace a multi of that name")
    sv.set_defaults(run=_cmd_save)
    rm = sub.add_parser("rm", help="remove a user multi")
    rm.add_argument("name")
    rm.set_defaults(run=_cmd_rm)
