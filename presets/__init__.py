"""Presets: the file format and its validation, the library of factory and user presets, search,
and building a playable chain from a preset.

The factory presets and the models they play lie in `factory/` (read-only); user presets live
in the user's data folder (`library.default_user_dir()`).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

DEFAULT_MODEL = "violin.onnx"


def factory_dir() -> Path:
    """The folder of the factory presets shipped with timbrel."""
    return Path(str(files(__name__))) / "factory"


def default_model() -> Path:
    """The model played when no preset is given: a small violin trained on FluidR3_GM renders."""
    return factory_dir() / "models" / DEFAULT_MODEL
