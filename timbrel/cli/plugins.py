"""Plugins: the built-in effects, what the 'timbrel.plugins' entry-point group holds, and the
installed LV2 plugins."""

from __future__ import annotations

import argparse
import json

from timbrel.cli.table import print_table
from timbrel.cli.version import installed_version
from timbrel.plugin.discovery import GROUP, discover
from timbrel.plugin.effects import BUILTIN, effect_class
from timbrel.plugin.lv2 import catalog as lv2_catalog
from timbrel.plugin.lv2.lilv import available as lv2_available


def _cmd_plugins_list(args: argparse.Namespace) -> int:
    found = discover()
    builtin = [{"name": name, "kind": "effect", "version": installed_version(), "source": "timbrel (built-in)", "status": "ok",
                "parameters": [p.describe() for p in effect_class(name).parameters]} for name in BUILTIN]
    lv2 = _lv2_plugins()
    if args.json:
        print(json.dumps(builtin + [info.describe() for info in found] + lv2, indent=2))
        return 0
    rows = [("name", "kind", "version", "source", "status")]
    rows += [(b["name"], b["kind"], b["version"], b["source"], b["status"]) for b in builtin]
    rows += [(i.name, i.kind, i.version, i.origin, i.status) for i in found]
    print_table(rows)
    if not found:
        print(f"no third-party plugins installed (a package adds them to the '{GROUP}' entry-point group)")
    if lv2:
        print(f"\nLV2 plugins ({len(lv2)} installed; an effect type is the name, or lv2: and the URI):")
        print_table([("name", "class", "uri", "status")] + [(p["name"], p["class"], p["uri"], p["status"]) for p in lv2])
    elif not lv2_available():
        print("\nLV2 plugins: none can be hosted without liblilv (`apt install liblilv-0-0`)")
    else:
        print("\nLV2 plugins: none installed (Debian packages many, e.g. `apt install x42-plugins`)")
    return 0


def _lv2_plugins() -> list[dict]:
    """Every installed LV2 plugin, JSON-ready: short name, URI, class, status and parameters."""
    plugins = []
    for entry in lv2_catalog.installed():
        d = lv2_catalog.description(lv2_catalog.PREFIX + entry.uri)
        plugins.append({"name": entry.short_name, "kind": "effect", "version": "", "source": "LV2", "uri": entry.uri,
                        "class": entry.class_label, "status": d.fault or "ok", "error": d.fault,
                        "parameters": [p.describe() for p in d.parameters] if d.ok else []})
    return plugins


def add_commands(commands) -> None:
    """Register this module's sub-commands."""
    pg = commands.add_parser("plugins", help="built-in effects, third-party plugins ('timbrel.plugins' entry points) and LV2 plugins")
    pg_commands = pg.add_subparsers(dest="plugins_command", required=True, metavar="ACTION")
    pg_list = pg_commands.add_parser("list", help="list effects and plugins; broken ones show their fault")
    pg_list.add_argument("--json", action="store_true", help="print JSON, with each plugin's parameters")
    pg_list.set_defaults(run=_cmd_plugins_list)
