"""Built-in effects, and the one place effects are created by name (built-in or third-party).

Each module says why its effect is written here rather than wrapped.
"""

from __future__ import annotations

from importlib import import_module

from timbrel.engine.errors import TimbrelError
from timbrel.engine.plugin_api import Effect
from timbrel.plugin.discovery import discover
from timbrel.plugin.lv2 import catalog as lv2_catalog

BUILTIN = {
    "gain": "timbrel.plugin.effects.gain:GainPan",
    "eq": "timbrel.plugin.effects.eq:ParametricEQ",
    "compressor": "timbrel.plugin.effects.dynamics:Compressor",
    "limiter": "timbrel.plugin.effects.dynamics:Limiter",
    "delay": "timbrel.plugin.effects.delay:Delay",
    "chorus": "timbrel.plugin.effects.chorus:Chorus",
    "reverb": "timbrel.plugin.effects.reverb:LearnedReverb",
}
"""Effect type names, as presets write them, and where each class lives."""


def effect_class(name: str) -> type[Effect]:
    """The class of a built-in effect, of one a plugin package provides (`timbrel.plugins`), or
    of an installed LV2 plugin ("lv2:URI", or its short name from `timbrel plugins list`).

    One-line TimbrelError for an unknown name; for an LV2 plugin that is not installed or
    cannot be hosted, the error is also a `timbrel.plugin.lv2.description.LV2Unavailable`."""
    if lv2_catalog.is_lv2(name):
        return lv2_catalog.effect_class(name)
    if name in BUILTIN:
        module, _, attr = BUILTIN[name].partition(":")
        return getattr(import_module(module), attr)

    for info in discover():
        if info.name == name:
            if info.error:
                raise TimbrelError(info.error)
            if info.kind != "effect":
                raise TimbrelError(f"plugin '{name}' is an instrument, not an effect")
            return info.cls
    if lv2_catalog.find(name) is not None:
        return lv2_catalog.effect_class(name)
    known = sorted(BUILTIN) + sorted(i.name for i in discover() if i.kind == "effect" and not i.error)
    raise TimbrelError(f"no effect '{name}' (known: {', '.join(known)}; or an installed LV2 plugin, "
                       "as lv2:URI or its short name: `timbrel plugins list`)")


def chain_name(effect_type: str) -> str:
    """The name a chain keys an effect of `effect_type` by: the type itself, or an installed LV2
    plugin's short name for "lv2:URI" (the URI when it is not installed)."""
    if lv2_catalog.is_lv2(effect_type):
        entry = lv2_catalog.find(effect_type)
        return entry.short_name if entry is not None else effect_type
    return effect_type


def create_effect(name: str, parameters: dict[str, float] | None = None, **options) -> Effect:
    """A new effect of type `name` with `parameters` set (ids as in its `parameters`);
    `options` go to its constructor (`model=` for the learned reverb)."""
    effect = effect_class(name)(**options)
    for key, value in (parameters or {}).items():
        effect.params.set(key, value)
    effect.params.snap()
    return effect
