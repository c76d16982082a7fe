"""Presets: list, search, show, audition, save, rename, remove and import."""

from __future__ import annotations

import argparse
import json
import sys

from timbrel.audition import render_audition
from timbrel.cli.options import assignments
from timbrel.cli.play import _play
from timbrel.cli.table import print_table
from timbrel.engine.io.audiofile import write_audio
from timbrel.presets.library import Library
from timbrel.presets.writing import preset_to_toml


def _library():
    return Library()


def _problems(library) -> None:
    for line in library.scan()[1]:
        print(f"timbrel: skipping {line}", file=sys.stderr)


def _row(preset) -> dict:
    return {"name": preset.name, "category": preset.category, "tags": list(preset.tags), "mode": preset.mode,
            "model": preset.model_file, "source": "factory" if preset.factory else "user",
            "description": preset.description, "quality": dict(preset.quality), "path": str(preset.path)}


def _table(presets) -> None:
    rows = [("name", "category", "mode", "source", "tags")]
    rows += [(p.name, p.category, p.mode, "factory" if p.factory else "user", ", ".join(p.tags)) for p in presets]
    print_table(rows)


def _cmd_list(args: argparse.Namespace) -> int:
    library = _library()
    presets = library.list(category=args.category, tag=args.tag)
    _problems(library)
    if args.json:
        print(json.dumps([_row(p) for p in presets], indent=2))
    elif presets:
        _table(presets)
    else:
        print("no presets match" if args.category or args.tag else "no presets found")
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    library = _library()
    found = library.search(" ".join(args.query))
    _problems(library)
    if args.json:
        print(json.dumps([_row(p) for p in found], indent=2))
    elif found:
        _table(found)
    else:
        print(f"nothing matches {' '.join(args.query)!r}")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    preset = _library().get(args.name)
    if args.json:
        print(json.dumps(_row(preset), indent=2))
        return 0
    print(f"# {preset.name} ({'factory' if preset.factory else 'user'} preset, {preset.path})")
    for note in preset.notes:
        print(f"# {note}")
    print(preset_to_toml(preset))
    return 0


def _cmd_audition(args: argparse.Namespace) -> int:
    preset = _library().get(args.name)
    audio = render_audition(preset, args.samplerate)
    if args.output:
        write_audio(args.output, audio, args.samplerate)
        print(f"wrote {args.output} ({audio.shape[0] / args.samplerate:.1f} s of {preset.name})")
        return 0

    print(f"playing {preset.name}…")
    _play(audio, args.samplerate)
    return 0


def _cmd_save(args: argparse.Namespace) -> int:
    path = _library().derive(args.source, args.name,
                              assignments(args.set), force=args.force)
    print(f"saved {args.name!r} to {path}")
    return 0


def _cmd_rename(args: argparse.Namespace) -> int:
    path = _library().rename(args.old, args.new, force=args.force)
    print(f"renamed {args.old!r} to {args.new!r} ({path})")
    return 0


def _cmd_rm(args: argparse.Namespace) -> int:
    path = _library().remove(args.name)
    print(f"removed {args.name!r} ({path})")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    preset = _library().import_model(args.model, name=args.name, force=args.force)
    print(f"imported {args.model} as preset {preset.name!r} ({preset.path})")
    return 0


def add_commands(commands) -> None:
    """Register this module's sub-commands."""
    pr = commands.add_parser("presets", help="browse, audition and manage presets")
    actions = pr.add_subparsers(dest="presets_command", required=True, metavar="ACTION")

    ls = actions.add_parser("list", help="list presets (factory, then yours)")
    ls.add_argument("--category", help="strings, woodwind, brass, reed, voice, synth or user")
    ls.add_argument("--tag")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(run=_cmd_list)

    se = actions.add_parser("search", help="forgiving search over names, tags and descriptions")
    se.add_argument("query", nargs="+")
    se.add_argument("--json", action="store_true")
    se.set_defaults(run=_cmd_search)

    sh = actions.add_parser("show", help="everything a preset holds")
    sh.add_argument("name")
    sh.add_argument("--json", action="store_true")
    sh.set_defaults(run=_cmd_show)

    au = actions.add_parser("audition", help="play (or render with -o) a short phrase in the instrument's range")
    au.add_argument("name")
    au.add_argument("-o", "--output", help="write the phrase to this audio file instead of playing it")
    au.add_argument("--samplerate", type=int, default=48000, choices=(44100, 48000, 96000), help="Hz")
    au.set_defaults(run=_cmd_audition)

    sv = actions.add_parser("save", help="save a user preset derived from another")
    sv.add_argument("name")
    sv.add_argument("--from", dest="source", required=True, metavar="PRESET")
    sv.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="gain_db=-6, midi.attack_s=0.2, transfer.gate_db=-50, effects.delay.mix=0.2, mode=transfer, tags=a,b")
    sv.add_argument("--force", action="store_true", help="replace a user preset of that name")
    sv.set_defaults(run=_cmd_save)

    rn = actions.add_parser("rename", help="rename a user preset")
    rn.add_argument("old")
    rn.add_argument("new")
    rn.add_argument("--force", action="store_true")
    rn.set_defaults(run=_cmd_rename)

    rm = actions.add_parser("rm", help="remove a user preset")
    rm.add_argument("name")
    rm.set_defaults(run=_cmd_rm)

    im = actions.add_parser("import", help="add a .onnx model to your models, with a preset for it")
    im.add_argument("model")
    im.add_argument("--name")
    im.add_argument("--force", action="store_true")
    im.set_defaults(run=_cmd_import)
