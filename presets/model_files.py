"""Model files: hashing (cached by path, mtime, size and inode) and finding a preset's model."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from timbrel.engine.errors import TimbrelError

if TYPE_CHECKING:
    from timbrel.presets.preset import Preset

_hashes: dict[tuple[str, int, int, int], str] = {}


def file_key(path: str | os.PathLike) -> tuple[str, int, int, int]:
    """(resolved path, mtime in ns, size in bytes, inode): changes whenever the file does."""
    path = Path(path).resolve()
    stat = path.stat()
    return str(path), stat.st_mtime_ns, stat.st_size, stat.st_ino


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 of a file as 64 lower-case hex digits, cached by `file_key`. Raises OSError."""
    key = file_key(path)
    if key not in _hashes:
        digest = hashlib.sha256()
        with open(path, "rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                digest.update(chunk)
        _hashes[key] = digest.hexdigest()
    return _hashes[key]


def model_dirs_for(path: str | os.PathLike, model_dirs: Iterable[str | os.PathLike]) -> list[Path]:
    """Folders searched for a preset file's model, in order: its folder/models, then `model_dirs`."""
    found: list[Path] = []
    for folder in (Path(path).parent / "models", *map(Path, model_dirs)):
        if folder not in found:
            found.append(folder)
    return found


def find_model(file: str, folders: Iterable[Path]) -> Path | None:
    """The first `folder/file` that is a file, or None."""
    for folder in folders:
        if (folder / file).is_file():
            return folder / file
    return None


def model_path(preset: Preset) -> Path:
    """The preset's model file; TimbrelError naming the preset when it was not found."""
    if preset.model_path is None:
        raise TimbrelError(f"{preset.path or preset.name}: model file {preset.model_file!r} was not found")
    return preset.model_path
