"""Reading and writing audio files for users: one-line errors, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from timbrel.engine.atomic import atomic_path
from timbrel.engine.errors import TimbrelError


def write_audio(path: str | os.PathLike, audio: np.ndarray, sample_rate: int) -> Path:
    """Write `audio` `[samples]` or `[samples, channels]` to `path` atomically.

    The file is written next to its destination and renamed into place, so an interrupted
    write never leaves a truncated file where a good one was. The format follows the
    suffix (.wav, .flac, .ogg); WAV is 24-bit.
    """
    import soundfile

    path = Path(path)
    fmt = path.suffix.lstrip(".").upper() or "WAV"
    if fmt not in soundfile.available_formats():
        raise TimbrelError(f"{path}: unsupported audio format '{path.suffix}' (use .wav, .flac or .ogg)")
    subtype = "PCM_24" if fmt == "WAV" else None
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        soundfile.write(handle, np.asarray(audio, dtype=np.float32), int(sample_rate), format=fmt, subtype=subtype)
    return path


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read an audio file as float32 `[samples, channels]` and its rate in Hz.

    Raises TimbrelError with the file and the fault when it is missing or unreadable.
    """
    import soundfile

    path = Path(path)
    if not path.is_file():
        raise TimbrelError(f"{path}: no such file")
    try:
        audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError, ValueError) as err:
        reason = str(err).split(":")[-1].strip() or "unreadable audio"
        raise TimbrelError(f"{path}: not a readable audio file ({reason})") from None
    if audio.shape[0] == 0:
        raise TimbrelError(f"{path}: the file holds no audio")
    return audio, int(rate)
