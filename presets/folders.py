"""Where presets and models live on disk: the shipped factory folder and the user's data folder."""

from __future__ import annotations

from pathlib import Path

import platformdirs

from timbrel.presets import factory_dir


def default_user_dir() -> Path:
    """The user's timbrel data folder (`platformdirs.user_data_dir("timbrel")`)."""
    return Path(platformdirs.user_data_dir("timbrel", appauthor=False))


def user_models_dir(user_dir: Path | None = None) -> Path:
    """The user's models folder: `models/` in `user_dir` (default: `default_user_dir()`)."""
    return (user_dir or default_user_dir()) / "models"


def factory_models_dir(factory: Path | None = None) -> Path:
    """The factory models folder: `models/` in `factory` (default: the shipped factory folder)."""
    return (factory or factory_dir()) / "models"


def default_model_dirs() -> tuple[Path, Path]:
    """Folders a preset's model is looked for in after its own folder: the user's, then the factory's."""
    return user_models_dir(), factory_models_dir()
