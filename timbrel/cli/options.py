"""Option parsing shared by the commands: models, parameter settings, block sizes."""

from __future__ import annotations

import argparse

from timbrel.engine.errors import TimbrelError
from timbrel.presets.build import build_chain
from timbrel.presets.library import Library

DEFAULT_PRESET = "Violin"


def resolve_preset(spec: str | None):
    """The preset `-p` names: a preset name (forgiving), a `.toml` preset file or a `.onnx`
    model file; without one, the factory violin."""
    return Library().get(spec or DEFAULT_PRESET)


def chain_for(spec: str | None, mode: str, voices: int = 16, assignments: list[str] | None = None):
    """The chain `-p` names, built for `mode` ("midi" or "transfer"), with `--set` applied."""
    chain = build_chain(resolve_preset(spec), mode, voices=voices)
    apply_settings(chain, assignments)
    return chain


def assignments(texts: list[str] | None, expected: str) -> dict[str, str]:
    """`--set KEY=VALUE` options as a dict; a malformed one is a one-line TimbrelError saying `expected`."""
    settings = {}
    for text in texts or []:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise TimbrelError(f"--set {text}: expected {expected}")
        settings[key.strip()] = value.strip()
    return settings


def apply_settings(target, texts: list[str] | None) -> None:
    """Apply `--set PARAM=VALUE` (instrument) or `--set KEY.PARAM=VALUE` (effect) to a chain or
    session; a bad one is a one-line TimbrelError."""
    expected = "PARAM=NUMBER, e.g. --set gain_db=-6"
    for key, value in assignments(texts, expected).items():
        try:
            number = float(value)
        except ValueError:
            raise TimbrelError(f"--set {key}={value}: expected {expected}") from None
        target.set_parameter(key, number)


def block_size(text: str) -> int:
    """argparse type: a block size of 16 to 2048 samples."""
    value = int(text)
    if not 16 <= value <= 2048:
        raise argparse.ArgumentTypeError(f"block size must be 16 to 2048 samples, got {value}")
    return value
