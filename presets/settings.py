"""The `--set KEY=VALUE` grammar, one for every command (`play`, `render`, `transfer`,
`presets save`): each setting is checked as a preset file's value would be."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import replace

from timbrel.engine.errors import TimbrelError
from timbrel.plugin.chain import slot_key
from timbrel.plugin.effects import chain_name
from timbrel.presets.faults import PresetFault, kind_of, one_line
from timbrel.presets.preset import (
    MODES,
    RENAMED_PARAMETERS,
    EffectSettings,
    Preset,
    check_category,
    clean_tags,
    effect_parameters,
    instrument_parameters,
    learned,
    parameter_values,
)

_SETTINGS = ("mode", "category", "tags", "description", "author", "licence", "learn.CC",
             "midi.PARAM", "transfer.PARAM", "KEY.PARAM", "KEY.bypass", "effects.N.PARAM", "effects.N.bypass", "PARAM")


def apply_settings(preset: Preset, settings: Mapping[str, object]) -> Preset:
    """A copy of `preset` with `settings` applied, each checked as a preset file's value would be.

    Keys: `mode`, `category`, `description`, `author`, `licence`, `tags` (a comma list),
    `midi.PARAM`, `transfer.PARAM`, `KEY.PARAM` as a chain names an effect's parameter (KEY is
    the effect type, `type-2` for its second one), `effects.N.PARAM` (N counts from 0) or
    `effects.KEY.PARAM`, `KEY.bypass` or `effects.N.bypass` (true/false, on/off, yes/no, 1/0),
    `learn.CC` (a MIDI instrument parameter id for controller number CC to set; `none` forgets
    it), and a bare `PARAM` for the instrument of the preset's mode (after any `mode` setting).
    Values are numbers in the parameter's unit, or a switch's choice name (`voice_mode=legato`),
    and may be strings as typed on a command line. This is the one `--set` grammar: `play`,
    `render`, `transfer` and `presets save` all read it.
    """
    new = copy.deepcopy(replace(preset, path=None, factory=False, implicit=False))
    for key, raw in sorted(settings.items(), key=lambda item: item[0].strip() != "mode"):
        try:
            _apply(new, key.strip(), raw)
        except PresetFault as fault:
            raise TimbrelError(one_line(f"setting {key}={_text(raw)}: {fault}")) from None
    return new


def _apply(preset: Preset, key: str, raw: object) -> None:
    if key in ("description", "author", "licence", "mode", "category"):
        if not isinstance(raw, str):
            raise PresetFault(f"expected text, not {kind_of(raw)}")
        value = raw.strip()
        if key == "mode" and value not in MODES:
            raise PresetFault(f"mode must be one of {', '.join(MODES)}")
        if key == "category":
            check_category(value, "category")
        setattr(preset, key, value)
        return
    if key == "tags":
        tags = raw.split(",") if isinstance(raw, str) else raw
        if not isinstance(tags, (list, tuple)) or not all(isinstance(t, str) for t in tags):
            raise PresetFault("tags must be a comma-separated list, as in tags=bowed,solo")
        preset.tags = clean_tags(tags)
        return
    parts = key.split(".")
    if len(parts) == 2 and parts[0] == "learn":
        if isinstance(raw, str) and raw.strip().casefold() == "none":
            preset.learn.pop(learned(parts[1], "gain_db", "learn")[0], None)
        else:
            cc, parameter_id = learned(parts[1], raw.strip() if isinstance(raw, str) else raw, "learn")
            preset.learn[cc] = parameter_id
        return
    if len(parts) == 2 and parts[0] not in MODES:
        parts = ["effects", *parts]
    if len(parts) == 1 and RENAMED_PARAMETERS.get(key, key) not in (p.id for p in instrument_parameters(preset.mode)):
        known = ", ".join(p.id for p in instrument_parameters(preset.mode))
        raise PresetFault(f"unknown setting {key!r} (settings: {', '.join(_SETTINGS)}; "
                     f"PARAM of the {preset.mode} instrument: {known})")
    if len(parts) == 1 or (len(parts) == 2 and parts[0] in MODES):
        mode, parameter_id = (preset.mode, parts[0]) if len(parts) == 1 else parts
        values = preset.transfer if mode == "transfer" else preset.midi
        values.update(parameter_values({parameter_id: raw}, instrument_parameters(mode), f"[instrument.{mode}]", text=True))
        return
    if len(parts) == 3 and parts[0] == "effects":
        effect = _effect_at(preset, parts[1])
        if parts[2] == "bypass":
            effect.bypass = _boolean(raw)
        else:
            where = f"effects.{parts[1]} ({effect.type})"
            parameters = effect_parameters(effect.type, where)
            effect.parameters.update(parameter_values({parts[2]: raw}, parameters, where, text=True))
        return
    raise PresetFault(f"unknown setting {key!r} (settings: {', '.join(_SETTINGS)})")


def _effect_at(preset: Preset, which: str) -> EffectSettings:
    keys = effect_keys(preset)
    if which.isdigit():
        if int(which) < len(preset.effects):
            return preset.effects[int(which)]
        raise PresetFault(f"no effect {which}: the preset has {len(preset.effects)} (numbered from 0)")
    if which in keys:
        return preset.effects[keys.index(which)]
    raise PresetFault(f"the preset has no effect {which!r} (effects: {', '.join(keys) or 'none'})")


def effect_keys(preset: Preset) -> list[str]:
    """Each effect's key as a chain names it: its type, then `type-2`, `type-3` for repeats."""
    keys: list[str] = []
    for effect in preset.effects:
        keys.append(slot_key(chain_name(effect.type), keys))
    return keys


def _boolean(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    words = {"true": True, "on": True, "yes": True, "1": True, "false": False, "off": False, "no": False, "0": False}
    if isinstance(raw, str) and raw.strip().casefold() in words:
        return words[raw.strip().casefold()]
    raise PresetFault("expected true or false")


def _text(raw: object) -> str:
    return raw if isinstance(raw, str) else repr(raw)
