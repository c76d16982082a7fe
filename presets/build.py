"""Building a playable chain from a preset: its instrument, its values, its effects in order."""

from __future__ import annotations

from timbrel.engine.errors import TimbrelError
from timbrel.plugin.chain import Chain
from timbrel.plugin.effects import create_effect
from timbrel.plugin.instrument import MidiInstrument
from timbrel.plugin.model import TimbreModel, load_model
from timbrel.plugin.transfer import TimbreTransfer
from timbrel.presets.library import Library
from timbrel.presets.model_files import model_path
from timbrel.presets.preset import MODES, Preset


def build_chain(preset: Preset, mode: str | None = None, voices: int = 16, model: TimbreModel | None = None) -> Chain:
    """The preset ready to play: its instrument for `mode` (default: the preset's) with the
    preset's values set and snapped, followed by its effects in order, bypass applied. A
    `reverb` effect plays the room of the preset's own model. Effects the preset names but
    that cannot be made here (`EffectSettings.missing`: an LV2 plugin not installed) are left
    out; `preset.notes` says which, one line each.

    `voices` (1 to 64) applies to the MIDI instrument. `model` reuses a loaded model instead
    of loading `preset.model_path`.
    """

    mode = mode or preset.mode
    if mode not in MODES:
        raise TimbrelError(f"{preset.name}: mode {mode!r} is not one of {', '.join(MODES)}")
    if model is None:
        model = load_model(model_path(preset))
    if mode == "midi":
        instrument = MidiInstrument(model, voices=voices)
    else:
        instrument = TimbreTransfer(model)
    for key, value in preset.values(mode).items():
        instrument.params.set(key, value)
    if mode == "midi":
        for controller, parameter_id in preset.learn.items():
            instrument.learn(controller, parameter_id)
    instrument.params.snap()
    playable = [e for e in preset.effects if not e.missing]
    chain = Chain(instrument, [create_effect(e.type, e.parameters, **({"model": model} if e.type == "reverb" else {}))
                               for e in playable])
    for index, effect in enumerate(playable):
        if effect.bypass:
            chain.bypass(index)
    return chain


def load_preset(name: str, mode: str | None = None, voices: int = 16, library: Library | None = None) -> Chain:
    """The preset `name` as a ready chain: a preset name (forgiving: case, accents, a slug), a
    `.toml` preset file or an `.onnx` model file, from `library` (default: factory and user
    presets). `mode` is "midi" or "transfer" (default: the preset's own); `voices` 1 to 64."""
    return build_chain((library or Library()).get(name), mode, voices=voices)
