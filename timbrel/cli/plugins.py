"""Plugins: the built-in effects, and what the 'timbrel.plugins' entry-point group holds."""

from __future__ import annotations

import argparse
import json

from timbrel.cli.table import print_table
from timbrel.cli.version import installed_version
from timbrel.plugin.discovery import GROUP, discover
from timbrel.plugin.effects import BUILTIN, effect_class


def _cmd_plugins_list(args: argparse.Namespace) -> int:
    found = discover()
    builtin = [{"name": name, "kind": "effect", "version": installed_version(), "source": "timbrel (built-in)", "status": "ok",
                "parameters": [p.describe() for p in effect_class(name).parameters]} for name in BUILTIN]
    if args.json:
        print(json.dumps(builtin + [info.describe() for info in found], indent=2))
        return 0
    rows = [("name", "kind", "version", "source", "status")]
    rows += [(b["name"], b["kind"], b["version"], b["source"], b["status"]) for b in builtin]
    rows += [(i.name, i.kind, i.version, i.origin, i.status) for i in found]
    print_table(rows)
    if not found:
        print(f"no third-party plugins installed (a package adds them to the '{GROUP}' entry-point group)")
    return 0


def add_commands(commands) -> None:
    """Register this module's sub-commands."""
    pg = commands.add_parser("plugins", help="built-in effects and third-party plugins ('timbrel.plugins' entry points)")
    pg_commands = pg.add_subparsers(dest="plugins_command", required=True, metavar="ACTION")
    pg_list = pg_commands.add_parser("list", help="list effects and plugins; broken ones show their fault")
    pg_list.add_argument("--json", action="store_true", help="print JSON, with each plugin's parameters")
    pg_list.set_defaults(run=_cmd_plugins_list)
