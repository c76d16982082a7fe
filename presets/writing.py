"""Writing a preset back to TOML, in the order and form of the format reference (`preset.py`)."""

from __future__ import annotations

from collections.abc import Mapping

import tomli_w

from timbrel.engine.errors import TimbrelError
from timbrel.engine.plugin_api import Parameter
from timbrel.presets.faults import PresetFault, one_line
from timbrel.presets.preset import (
    FORMAT,
    MODES,
    Preset,
    effect_parameters,
    instrument_parameters,
)


def preset_to_toml(preset: Preset) -> str:
    """The preset as format-1 TOML text; `parse_preset(preset_to_toml(p)) == p` for a valid `p`."""
    head = {
        "format": FORMAT,
        "preset": {"name": preset.name, "category": preset.category, "tags": list(preset.tags),
                   "description": preset.description, "author": preset.author, "licence": preset.licence},
        "model": {"file": preset.model_file, "sha256": preset.model_sha256},
        "instrument": {"mode": preset.mode},
    }
    for mode in MODES:
        values = preset.values(mode)
        if values:
            head["instrument"][mode] = _written(values, instrument_parameters(mode))
    if preset.learn:
        head["instrument"]["learn"] = {str(cc): parameter_id for cc, parameter_id in sorted(preset.learn.items())}
    chunks = [f"# timbrel preset, format {FORMAT} (see timbrel.presets.preset)\n", tomli_w.dumps(head)]
    for effect in preset.effects:
        chunks.append("\n[[effects]]\n" + tomli_w.dumps({"type": effect.type, "bypass": bool(effect.bypass)}))
        if effect.parameters and effect.missing:
            chunks.append("\n[effects.parameters]\n" + tomli_w.dumps(dict(effect.parameters)))
        elif effect.parameters:
            try:
                parameters = effect_parameters(effect.type)
            except PresetFault as fault:
                raise TimbrelError(one_line(f"{preset.name}: {fault}")) from None
            chunks.append("\n[effects.parameters]\n" + tomli_w.dumps(_written(effect.parameters, parameters)))
    tail = {key: value for key, value in (("recipe", preset.recipe), ("quality", preset.quality)) if value}
    if tail:
        try:
            chunks.append("\n" + tomli_w.dumps(tail))
        except TypeError as err:
            raise TimbrelError(f"{preset.name}: [recipe] or [quality] holds a value TOML cannot store "
                               f"({err})") from None
    return "".join(chunks)


def _written(values: Mapping[str, float], parameters: tuple[Parameter, ...]) -> dict[str, float | str]:
    """Values for a file: switches by choice name, numbers as floats."""
    by_id = {p.id: p for p in parameters}
    out: dict[str, float | str] = {}
    for key, value in values.items():
        parameter = by_id.get(key)
        if parameter is not None and parameter.choices and float(value).is_integer() \
                and 0 <= int(value) < len(parameter.choices):
            out[key] = parameter.choices[int(value)]
        else:
            out[key] = float(value)
    return out
