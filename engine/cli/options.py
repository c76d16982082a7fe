"""Option parsing shared by the commands: models, parameter settings, block sizes."""

from __future__ import annotations

import argparse

from engine.errors import TimbrelError


def resolve_model(spec: str | None):
    """A loaded model from `-p`: a model file path, or None for the shipped default."""
    from pathlib import Path

    from plugin.model import load_model
    from presets import default_model

    path = Path(spec) if spec else default_model()
    if spec and not path.exists() and not spec.endswith(".onnx"):
        raise TimbrelError(f"{spec}: no such preset or model file (give a path to a .onnx model)")
    return load_model(path)


def apply_settings(plugin, assignments: list[str] | None) -> None:
    """Apply `--set PARAM=VALUE` assignments; a bad one is a one-line TimbrelError."""
    for assignment in assignments or []:
        key, sep, value = assignment.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = None
        if not sep or number is None:
            raise TimbrelError(f"--set {assignment}: expected PARAM=NUMBER, e.g. --set gain_db=-6")
        plugin.params.set(key.strip(), number)


def block_size(text: str) -> int:
    """argparse type: a block size of 16 to 2048 samples."""
    value = int(text)
    if not 16 <= value <= 2048:
        raise argparse.ArgumentTypeError(f"block size must be 16 to 2048 samples, got {value}")
    return value
