"""Third-party plugins: found through the `timbrel.plugins` entry-point group.

A package offers plugins by naming `timbrel.engine.plugin_api.Plugin` subclasses (effects or
instruments) in its `pyproject.toml`:

    [project.entry-points."timbrel.plugins"]
    wavefolder = "timbrel_wavefolder:WaveFolder"

`discover()` imports each one, off the audio thread, and checks it. A plugin that fails
to import, names something that is not a Plugin subclass, or declares unusable
parameters comes back with `error` set to one line naming it and the fault; the others
still load. `create(name, **params)` makes an instance of a working one.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import sys
from dataclasses import dataclass, field
from importlib.metadata import Distribution, EntryPoint, entry_points
from urllib.parse import urlparse
from urllib.request import url2pathname

from timbrel.engine.errors import TimbrelError
from timbrel.engine.plugin_api import Effect, Parameter, ParameterBank, Plugin

GROUP = "timbrel.plugins"
KINDS = ("effect", "instrument")

_found: dict[str, list[PluginInfo]] = {}


@dataclass
class PluginInfo:
    """One entry point of the group: what it names, where it comes from, and whether it works.

    `source` is the distribution's name; `location` is where its code lives (the project
    folder of an editable install, else the folder it is installed in). `error` is "" for
    a working plugin, else one line naming the plugin and the fault; `fault` is that line
    without the name. `cls` is the Plugin subclass, or None when it could not be loaded.
    """

    name: str
    kind: str = "?"
    version: str = "?"
    source: str = "?"
    location: str = ""
    editable: bool = False
    cls: type[Plugin] | None = None
    error: str = ""
    fault: str = field(default="", repr=False)

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def status(self) -> str:
        """"ok", or the fault in one line."""
        return self.fault or "ok"

    @property
    def origin(self) -> str:
        """The distribution and where it lives, in words: `timbrel-wavefolder (editable, /src/wavefolder)`."""
        where = f"editable, {self.location}" if self.editable else self.location
        return f"{self.source} ({where})" if where else self.source

    def fail(self, fault: str) -> PluginInfo:
        """Mark this plugin broken by `fault` (one line) and return it."""
        self.fault = " ".join(fault.split())
        self.error = f"plugin '{self.name}' ({self.source} {self.version}): {self.fault}"
        return self

    def describe(self) -> dict:
        """A JSON-ready description, with the parameters of a working plugin."""
        parameters = [p.describe() for p in self.cls.parameters] if self.ok and self.cls else []
        return {"name": self.name, "kind": self.kind, "version": self.version, "source": self.source,
                "location": self.location, "editable": self.editable, "status": self.status, "error": self.error,
                "parameters": parameters}


def discover(group: str = GROUP, *, refresh: bool = False) -> list[PluginInfo]:
    """Every plugin registered in the entry-point `group`, sorted by name; broken ones included.

    Imports each plugin's module the first time; later calls return the cached result
    unless `refresh` (after installing or removing a package). When two distributions
    register the same name, the one earlier on `sys.path` wins and the other is reported.
    """
    if refresh or group not in _found:
        if refresh:
            importlib.invalidate_caches()
        found: list[PluginInfo] = []
        taken: dict[str, PluginInfo] = {}
        for ep in entry_points(group=group):
            info = _load(ep)
            first = taken.setdefault(info.name, info)
            if first is not info:
                info.cls = None
                info.fail(f"the name is already taken by {first.source} {first.version}")
            found.append(info)
        found.sort(key=lambda info: info.name)
        _found[group] = found
    return list(_found[group])


def create(name: str, **params: float) -> Plugin:
    """A new instance of the discovered plugin `name`, with parameters set from `params` (by id).

    Raises TimbrelError (one line) for an unknown or broken plugin, a plugin that fails to
    construct, or an unknown parameter.
    """
    info = _find(name) or _find(name, refresh=True)
    if info is None:
        known = ", ".join(sorted({i.name for i in discover() if i.ok}))
        hint = f"installed: {known}" if known else f"none is installed; packages add them to the '{GROUP}' group"
        raise TimbrelError(f"no plugin '{name}' ({hint}; `timbrel plugins list` shows them all)")
    if not info.ok:
        raise TimbrelError(info.error)
    try:
        plugin = info.cls()
    except Exception as err:
        fault = f"failed to start: {_one_line(err)}"
        raise TimbrelError(f"plugin '{name}' ({info.source} {info.version}): {fault}") from None
    for key, value in params.items():
        plugin.params.set(key, value)
    return plugin


def _find(name: str, refresh: bool = False) -> PluginInfo | None:
    return next((info for info in discover(refresh=refresh) if info.name == name), None)


def _load(ep: EntryPoint) -> PluginInfo:
    """Import and check one entry point; never raises."""
    info = PluginInfo(ep.name)
    dist = getattr(ep, "dist", None)
    if dist is not None:
        info.source, info.version = dist.metadata["Name"] or "?", dist.version or "?"
        info.location, info.editable = _location(dist)
    try:
        # A plugin that prints while importing must not garble `timbrel plugins list --json`.
        with contextlib.redirect_stdout(sys.stderr):
            obj = ep.load()
    except (Exception, SystemExit) as err:
        return info.fail(f"failed to import: {_one_line(err)}")
    if not (isinstance(obj, type) and issubclass(obj, Plugin)):
        what = f"a {type(obj).__name__} instance" if isinstance(obj, Plugin) else f"a {type(obj).__name__}"
        return info.fail(f"{ep.value} is {what}, not a timbrel.engine.plugin_api.Plugin subclass")
    info.cls = obj
    info.kind = "effect" if issubclass(obj, Effect) else str(getattr(obj, "kind", "?"))
    if info.kind not in KINDS:
        return info.fail(f"{ep.value} has kind '{info.kind}'; a plugin is an 'effect' or an 'instrument'")
    try:
        parameters = tuple(obj.parameters)
        strays = [p for p in parameters if not isinstance(p, Parameter)]
        if strays:
            raise ValueError(f"{strays[0]!r} is not a timbrel.engine.plugin_api.Parameter")
        ParameterBank(parameters)
    except Exception as err:
        return info.fail(f"{ep.value} has invalid parameters: {_one_line(err, with_type=False)}")
    return info


def _location(dist: Distribution) -> tuple[str, bool]:
    """Where a distribution's code lives, and whether it is an editable install (PEP 610)."""
    try:
        direct = json.loads(dist.read_text("direct_url.json") or "{}")
    except ValueError:
        direct = {}
    url = direct.get("url", "")
    if direct.get("dir_info", {}).get("editable") and url.startswith("file:"):
        return url2pathname(urlparse(url).path), True
    try:
        return str(dist.locate_file("")), False
    except Exception:
        return "", False


def _one_line(err: BaseException, with_type: bool = True) -> str:
    """`Type: message` on one line, at most 300 characters."""
    message = " ".join(str(err).split()) or repr(err)
    text = f"{type(err).__name__}: {message}" if with_type else message
    return text if len(text) <= 300 else text[:297] + "..."
