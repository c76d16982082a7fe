"""Option parsing shared by the commands: models, parameter settings, block sizes."""

from __future__ import annotations

import argparse
import sys

from timbrel.engine.errors import TimbrelError
from timbrel.plugin.chain import Chain
from timbrel.presets.build import build_chain
from timbrel.presets.library import Library
from timbrel.presets.preset import Preset
from timbrel.presets.settings import apply_settings

DEFAULT_PRESET = "Violin"


def resolve_preset(spec: str | None) -> Preset:
    """The preset `-p` names: a preset name (forgiving), a `.toml` preset file or a `.onnx`
    model file; without one, the factory violin."""
    return Library().get(spec or DEFAULT_PRESET)


SET_EXAMPLE = "KEY=VALUE, e.g. --set gain_db=-6, --set voice_mode=legato or --set delay.mix=0.2"
"""What `--set` takes (`timbrel.presets.settings`); every example here is one it accepts."""


def chain_for(spec: str | None, mode: str, voices: int = 16, texts: list[str] | None = None) -> Chain:
    """The chain `-p` names, built for `mode` ("midi" or "transfer"), with `--set` applied."""
    preset = resolve_preset(spec)
    if texts:
        preset = apply_settings(preset, {"mode": mode, **assignments(texts)})
    for note in preset.notes:
        print(f"timbrel: {note}", file=sys.stderr)
    return build_chain(preset, mode, voices=voices)


def assignments(texts: list[str] | None) -> dict[str, str]:
    """`--set KEY=VALUE` options as a dict; a malformed one is a one-line TimbrelError."""
    settings = {}
    for text in texts or []:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise TimbrelError(f"--set {text}: expected {SET_EXAMPLE}")
        settings[key.strip()] = value.strip()
    return settings


def block_size(text: str) -> int:
    """argparse type: a block size of 16 to 2048 samples."""
    value = int(text)
    if not 16 <= value <= 2048:
        raise argparse.ArgumentTypeError(f"block size must be 16 to 2048 samples, got {value}")
    return value
