"""Training data: a folder of recordings turned into aligned audio, pitch and loudness.

Each file is mixed to mono, resampled with soxr to the model rate, and analysed with the
same feature extractors the live engine runs (`timbrel.engine.realtime.features`), so training and
playback can never disagree. Features are cached by content hash. The live features lag
the audio by half their analysis window; offline, that lag is removed so the model learns
from aligned frames.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from timbrel.engine.atomic import write_bytes
from timbrel.engine.errors import TimbrelError
from timbrel.engine.realtime.features import LoudnessMeter, PitchTracker, estimate_pitch, loudness_db
from timbrel.engine.realtime.features.loudness import FLOOR_DB

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff"}
MIN_VOICED_SECONDS = 5.0
FEATURE_VERSION = "1"


@dataclass
class Recording:
    """One analysed file: `audio [frames * hop]` float32, `f0_hz`, `loudness_db`, `voiced` `[frames]`."""

    name: str
    sha256: str
    audio: np.ndarray
    f0_hz: np.ndarray
    loudness_db: np.ndarray
    voiced: np.ndarray


@dataclass
class Dataset:
    """Recordings split by time into training and validation segments."""

    sample_rate: int
    hop: int
    train: list[Recording]
    validation: list[Recording]
    files: list[str]

    @property
    def seconds(self) -> float:
        return sum(r.audio.size for r in self.train + self.validation) / self.sample_rate

    def statistics(self) -> tuple[dict, dict]:
        """Pitch (Hz) and loudness (dB) statistics over voiced training frames."""
        f0 = np.concatenate([r.f0_hz[r.voiced] for r in self.train])
        ld = np.concatenate([r.loudness_db[r.voiced] for r in self.train])

        def stats(x: np.ndarray) -> dict:
            return {"mean": float(x.mean()), "std": float(x.std()), "min": float(x.min()), "max": float(x.max()),
                    "p05": float(np.percentile(x, 5)), "p95": float(np.percentile(x, 95))}

        return stats(f0), stats(ld)


def find_audio(folder: str | os.PathLike) -> list[Path]:
    """Audio files under `folder`, recursively, in a stable order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise TimbrelError(f"{folder}: no such folder of recordings")
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def load_mono(path: Path, sample_rate: int) -> np.ndarray:
    """A file mixed to mono and resampled to `sample_rate` Hz with soxr, float32 `[samples]`."""
    import soundfile
    import soxr

    try:
        audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # libsndfile reports corrupt files through several exception types
        raise TimbrelError(f"{path}: unreadable audio ({str(err).splitlines()[0][:120]})") from None
    if audio.shape[0] == 0:
        raise TimbrelError(f"{path}: the file holds no audio")
    mono = audio.mean(axis=1)
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def analyse(audio: np.ndarray, sample_rate: int, hop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Aligned features of mono audio: f0 (Hz), loudness (dB), voiced flags, each `[len // hop]`."""
    frames = audio.size // hop
    f0, confidence = estimate_pitch(audio, sample_rate, hop, smooth=True)
    ld = loudness_db(audio, sample_rate, hop)
    pitch_lag = PitchTracker(sample_rate, hop).latency_samples / 2 / hop
    f0 = _advance(f0, pitch_lag)
    confidence = _advance(confidence, pitch_lag)
    ld = _advance(ld, LoudnessMeter(sample_rate, hop).latency_samples / 2 / hop)
    return f0[:frames], ld[:frames], confidence[:frames] > 0


def _advance(x: np.ndarray, frames: float) -> np.ndarray:
    """Shift a frame series earlier by a whole number of frames, holding the last value."""
    shift = int(round(frames))
    if shift <= 0:
        return x
    return np.concatenate([x[shift:], np.repeat(x[-1:], shift)])


def _cache_path(cache_dir: Path, digest: str, sample_rate: int, hop: int) -> Path:
    return cache_dir / f"{digest[:32]}-{sample_rate}-{hop}-v{FEATURE_VERSION}.npz"


def analyse_file(path: Path, sample_rate: int, hop: int, cache_dir: Path | None) -> Recording:
    """Load and analyse one file, reusing cached features when its content is unchanged."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    cached = _cache_path(cache_dir, digest, sample_rate, hop) if cache_dir else None
    if cached and cached.is_file():
        try:
            with np.load(cached) as z:
                return Recording(path.name, digest, z["audio"], z["f0_hz"], z["loudness_db"], z["voiced"])
        except (OSError, ValueError, KeyError):
            cached.unlink(missing_ok=True)
    audio = load_mono(path, sample_rate)
    audio = audio[: audio.size // hop * hop]
    f0, ld, voiced = analyse(audio, sample_rate, hop)
    record = Recording(path.name, digest, audio, f0, ld, voiced)
    if cached:
        cached.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez(buffer, audio=audio, f0_hz=f0, loudness_db=ld, voiced=voiced)
        write_bytes(cached, buffer.getvalue())
    return record


def prepare_dataset(folder: str | os.PathLike, sample_rate: int, hop: int, cache_dir: Path | None = None,
                    validation_share: float = 0.1, segment_seconds: float = 4.0, seed: int = 0,
                    warn=lambda message: print(message, file=sys.stderr)) -> Dataset:
    """Analyse every recording in `folder` and split it, by segments of time, for validation.

    Unreadable files are skipped with one warning line each. Raises TimbrelError when no
    file is usable, or when less than `MIN_VOICED_SECONDS` of pitched sound remains.
    """
    paths = find_audio(folder)
    if not paths:
        raise TimbrelError(f"{folder}: no audio files (looked for {', '.join(sorted(AUDIO_SUFFIXES))})")
    recordings = []
    for path in paths:
        try:
            recordings.append(analyse_file(path, sample_rate, hop, cache_dir))
        except TimbrelError as err:
            warn(f"timbrel: skipping {err}")
    if not recordings:
        raise TimbrelError(f"{folder}: none of the {len(paths)} audio files could be read")
    voiced_seconds = sum(int(r.voiced.sum()) for r in recordings) * hop / sample_rate
    if voiced_seconds < MIN_VOICED_SECONDS:
        what = "only silence or unpitched sound" if voiced_seconds == 0 else f"only {voiced_seconds:.1f} s of pitched sound"
        raise TimbrelError(f"{folder}: {what}; training needs at least {MIN_VOICED_SECONDS:.0f} s (10-20 min is ideal)")
    rng = np.random.default_rng(seed)
    seg = int(segment_seconds * sample_rate / hop)
    train, validation = [], []
    for r in recordings:
        pieces = [(s, min(s + seg, r.f0_hz.size)) for s in range(0, r.f0_hz.size, seg)]
        held = rng.random(len(pieces)) < validation_share
        for (a, b), is_validation in zip(pieces, held):
            part = Recording(r.name, r.sha256, r.audio[a * hop : b * hop], r.f0_hz[a:b], r.loudness_db[a:b], r.voiced[a:b])
            (validation if is_validation else train).append(part)
    if not validation:
        validation.append(train.pop(int(rng.integers(len(train)))) if len(train) > 1 else train[0])
    return Dataset(sample_rate, hop, train, validation, [p.name for p in paths])


def sample_batch(recordings: list[Recording], batch: int, frames: int, hop: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random crops: f0 `[batch, frames]`, loudness `[batch, frames]`, audio `[batch, frames * hop]`.

    Crops are drawn in proportion to each segment's length; segments shorter than `frames`
    are padded with silence (the loudness floor, holding the last f0).
    """
    lengths = np.array([r.f0_hz.size for r in recordings], dtype=np.float64)
    choice = rng.choice(len(recordings), size=batch, p=lengths / lengths.sum())
    f0 = np.zeros((batch, frames), np.float32)
    ld = np.full((batch, frames), FLOOR_DB, np.float32)
    audio = np.zeros((batch, frames * hop), np.float32)
    for i, k in enumerate(choice):
        r = recordings[k]
        start = int(rng.integers(0, max(1, r.f0_hz.size - frames + 1)))
        n = min(frames, r.f0_hz.size - start)
        f0[i, :n] = r.f0_hz[start : start + n]
        f0[i, n:] = r.f0_hz[start + n - 1]
        ld[i, :n] = r.loudness_db[start : start + n]
        audio[i, : n * hop] = r.audio[start * hop : (start + n) * hop]
    return f0, ld, audio
