"""timbrel: a real-time host for neural (DDSP) instruments.

The public API, in the spirit of pedalboard: a chain is a list of plugin objects, and a
plugin is a callable on a buffer.

    import timbrel

    cello = timbrel.load_preset("Cello")           # a ready Chain: instrument and effects
    audio = timbrel.render_midi("tune.mid", cello)  # stereo float32 [samples, 2] at 48 kHz

    chain = timbrel.Chain(timbrel.MidiInstrument(timbrel.default_model()),
                          [timbrel.ParametricEQ(), timbrel.Chorus(), timbrel.Delay()])

The house has floors that import only downward: `timbrel` (this package: CLI, session,
control surface) -> `timbrel.presets` -> `timbrel.plugin` -> `timbrel.engine`, with
`timbrel.export` (training; needs the `train` extra) beside them. See docs/ARCHITECTURE.md.

The names below are loaded on first use, so `import timbrel` stays cheap and importing a
floor (`timbrel.engine`, say) never loads the floors above it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

_EXPORTS = {
    "Chain": "timbrel.plugin.chain",
    "MidiInstrument": "timbrel.plugin.instrument",
    "TimbreTransfer": "timbrel.plugin.transfer",
    "TimbreModel": "timbrel.plugin.model",
    "load_model": "timbrel.plugin.model",
    "create_effect": "timbrel.plugin.effects",
    "GainPan": "timbrel.plugin.effects.gain",
    "ParametricEQ": "timbrel.plugin.effects.eq",
    "Compressor": "timbrel.plugin.effects.dynamics",
    "Limiter": "timbrel.plugin.effects.dynamics",
    "Delay": "timbrel.plugin.effects.delay",
    "Chorus": "timbrel.plugin.effects.chorus",
    "LearnedReverb": "timbrel.plugin.effects.reverb",
    "Effect": "timbrel.engine.plugin_api",
    "Parameter": "timbrel.engine.plugin_api",
    "Plugin": "timbrel.engine.plugin_api",
    "TimbrelError": "timbrel.engine.errors",
    "render_midi": "timbrel.engine.render",
    "render_audio": "timbrel.engine.render",
    "Preset": "timbrel.presets.preset",
    "Library": "timbrel.presets.library",
    "default_model": "timbrel.presets",
    "load_preset": "timbrel.presets.build",
    "write_demo_midi": "timbrel.demo",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # noqa: F401 (names for type checkers; loaded lazily below)
    from timbrel.demo import write_demo_midi
    from timbrel.engine.errors import TimbrelError
    from timbrel.engine.plugin_api import Effect, Parameter, Plugin
    from timbrel.engine.render import render_audio, render_midi
    from timbrel.plugin.chain import Chain
    from timbrel.plugin.effects import create_effect
    from timbrel.plugin.effects.chorus import Chorus
    from timbrel.plugin.effects.delay import Delay
    from timbrel.plugin.effects.dynamics import Compressor, Limiter
    from timbrel.plugin.effects.eq import ParametricEQ
    from timbrel.plugin.effects.gain import GainPan
    from timbrel.plugin.effects.reverb import LearnedReverb
    from timbrel.plugin.instrument import MidiInstrument
    from timbrel.plugin.model import TimbreModel, load_model
    from timbrel.plugin.transfer import TimbreTransfer
    from timbrel.presets import default_model
    from timbrel.presets.build import load_preset
    from timbrel.presets.library import Library
    from timbrel.presets.preset import Preset


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'timbrel' has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
