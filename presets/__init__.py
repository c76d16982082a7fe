"""Factory presets and the models they play. Read-only; user presets live in the user's data folder."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

DEFAULT_MODEL = "violin.onnx"


def factory_dir() -> Path:
    """The folder of the factory presets shipped with timbrel."""
    return Path(str(files(__name__)))


def default_model() -> Path:
    """The model played when no preset is given: a small violin trained on FluidR3_GM renders."""
    return factory_dir() / "models" / DEFAULT_MODEL
