"""The LV2 plugins installed on this machine, by URI and by short name, and the effect class
of each.

    effect_class("lv2:http://gareus.org/oss/lv2/fil4#stereo")   # by URI
    effect_class("x42-eq-parametric-equalizer-stereo")        # by short name

lilv reads every installed bundle once, the first time a plugin is asked for (about a
second with a few hundred plugins); a plugin's ports are read the first time its class is
made. Call `refresh()` after installing plugins. Nothing here runs on the audio thread.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from timbrel.engine.errors import TimbrelError
from timbrel.plugin.lv2.description import Description, LV2Unavailable, describe
from timbrel.plugin.lv2.host import LV2Effect
from timbrel.plugin.lv2.lilv import World, available

PREFIX = "lv2:"
"""Effect types that start with this name an LV2 plugin by URI."""


class LV2NotFound(TimbrelError, LV2Unavailable):
    """The plugin a name or URI asks for is not installed (or LV2 hosting is not available)."""


class LV2Refused(TimbrelError, LV2Unavailable):
    """The plugin is installed, but timbrel cannot host it (a missing feature, no audio input…)."""


@dataclass(frozen=True)
class Entry:
    """One installed plugin as listed: its URI, short name, name and class ("Reverb Plugin")."""

    uri: str
    short_name: str
    name: str
    class_label: str


_lock = threading.RLock()
_world: World | None = None
_entries: list[Entry] | None = None
_classes: dict[str, type[LV2Effect]] = {}


def world() -> World:
    """The lilv world, read on first use; LV2NotFound when liblilv is not installed."""
    global _world
    with _lock:
        if _world is None:
            if not available():
                raise LV2NotFound("LV2 hosting needs liblilv-0.so.0; install it with `apt install liblilv-0-0`")
            _world = World()
        return _world


def refresh() -> None:
    """Forget what was read, so plugins installed or removed since are seen. Effects already
    made keep working; new ones come from the new reading."""
    global _world, _entries
    with _lock:
        _world, _entries = None, None
        _classes.clear()


def short_name(name: str) -> str:
    """A plugin's name as an effect type: lower case, words joined by '-' ("x42-comp - Dynamic
    Compressor Stereo" -> "x42-comp-dynamic-compressor-stereo")."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "lv2"


def installed() -> list[Entry]:
    """Every installed LV2 plugin, sorted by short name (unique: '-2', '-3'… on a clash)."""
    global _entries
    with _lock:
        if _entries is None:
            if not available():
                return []
            with world().lock:
                plugins = sorted((short_name(p.name), p.uri, p.name, p.class_label) for p in world().plugins())
            taken: dict[str, int] = {}
            entries = []
            for short, uri, name, label in plugins:
                taken[short] = taken.get(short, 0) + 1
                entries.append(Entry(uri, short if taken[short] == 1 else f"{short}-{taken[short]}", name, label))
            _entries = entries
        return list(_entries)


def is_lv2(name: str) -> bool:
    """Whether an effect type names an LV2 plugin by URI ("lv2:…")."""
    return name.startswith(PREFIX)


def find(name: str) -> Entry | None:
    """The installed plugin an effect type names: "lv2:URI", or a short name; None if none."""
    if is_lv2(name):
        uri = name[len(PREFIX):]
        return next((e for e in installed() if e.uri == uri), None)
    return next((e for e in installed() if e.short_name == name), None)


def description(name: str, provided: tuple[str, ...] | None = None) -> Description:
    """How timbrel would host the plugin `name` ("lv2:URI" or a short name) given the features
    `provided` (default: all it has), fault included; LV2NotFound when it is not installed."""
    entry = find(name)
    if entry is None:
        shown = name[len(PREFIX):] if is_lv2(name) else name
        raise LV2NotFound(f"LV2 plugin '{shown}' is not installed (`timbrel plugins list` shows those that are)")
    with _lock, world().lock:
        return describe(world().plugin(entry.uri), provided)


def effect_class(name: str) -> type[LV2Effect]:
    """The effect class of the LV2 plugin `name` ("lv2:URI" or a short name), made once per
    plugin. LV2NotFound when it is not installed, LV2Refused (naming why) when timbrel cannot
    host it; both one line."""
    entry = find(name)
    if entry is not None and entry.uri in _classes:
        return _classes[entry.uri]
    d = description(name)
    if d.fault:
        raise LV2Refused(f"LV2 plugin '{d.uri}' {d.fault}")
    cls = type(_class_name(d.name), (LV2Effect,), {
        "name": entry.short_name, "parameters": d.parameters, "description": d,
        "__doc__": f"{d.name} ({d.class_label}), the LV2 plugin {d.uri}.",
    })
    with _lock:
        return _classes.setdefault(d.uri, cls)


def _class_name(name: str) -> str:
    words = re.findall(r"[A-Za-z0-9]+", name)
    text = "".join(w[:1].upper() + w[1:] for w in words) or "Plugin"
    return "LV2" + text if not text[0].isdigit() else "LV2_" + text
