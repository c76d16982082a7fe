"""Rendering MIDI with the FluidSynth CLI, and example datasets of rendered phrases.

`render_with_fluidsynth` runs `fluidsynth` offline (fast render, reverb and chorus off, 32-bit float
output so nothing is dithered or clipped), mixes to mono, trims trailing silence, normalises
the peak to `PEAK_DBFS` and writes a 24-bit WAV atomically.

Determinism (FluidSynth 2.3.1, FluidR3_GM): fast render is sample-clocked and
single-threaded, so the same MIDI gives identical samples on every run (with reverb and
chorus on as well, and in s16 output, whose dither table is fixed). FluidSynth's float WAVs
differ between runs only in the timestamp of libsndfile's PEAK header chunk; the WAVs
written here carry no timestamp and are byte-identical.

FluidR3's "Ahh Choir" (choir_aah) is tuned 10-40 cents flat depending on the key, and its
ensemble blurs f0; for the others the median error per key is within 25 cents (mostly
within 10).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import mido
import numpy as np
import soundfile

from timbrel.engine.atomic import write_text
from timbrel.engine.errors import TimbrelError
from timbrel.engine.io.audiofile import write_audio
from timbrel.export.phrases import MIN_PHRASE_S, make_phrase, phrase_to_midi

__all__ = ["DEFAULT_SOUNDFONT", "PEAK_DBFS", "generate_dataset", "phrase_seed", "render_with_fluidsynth"]

DEFAULT_SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
PEAK_DBFS = -3.0
GAIN = 0.5
TAIL_S = 2.0
SILENCE_DBFS = -80.0
_TIMEOUT_S = 600


def _fluidsynth() -> str:
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise TimbrelError("fluidsynth: not found on PATH (install the fluidsynth package)")
    return exe


def _check_soundfont(path: Path) -> None:
    if not path.is_file():
        raise TimbrelError(f"{path}: soundfont not found")
    with open(path, "rb") as handle:
        header = handle.read(12)
    if header[:4] != b"RIFF" or header[8:12] != b"sfbk":
        raise TimbrelError(f"{path}: not a SoundFont 2 file")


def _with_tail(midi: mido.MidiFile, tail_s: float) -> mido.MidiFile:
    """A copy of `midi` whose tracks end `tail_s` (s) later, so release tails are rendered
    (FluidSynth stops rendering when the file ends)."""
    out = mido.MidiFile(type=midi.type, ticks_per_beat=midi.ticks_per_beat)
    tempo = 500_000
    for msg in midi.tracks[0] if midi.tracks else []:
        if msg.type == "set_tempo":
            tempo = msg.tempo
    extra = int(math.ceil(mido.second2tick(tail_s, midi.ticks_per_beat, tempo)))
    for track in midi.tracks:
        copy = mido.MidiTrack(msg for msg in track if msg.type != "end_of_track")
        copy.append(mido.MetaMessage("end_of_track", time=extra))
        out.tracks.append(copy)
    return out


def render_with_fluidsynth(
    midi: mido.MidiFile | str | os.PathLike,
    out_wav: str | os.PathLike,
    sample_rate: int = 48000,
    soundfont: str | os.PathLike = DEFAULT_SOUNDFONT,
) -> Path:
    """Render `midi` (a MidiFile or a .mid path) to a mono 24-bit WAV at `sample_rate` (Hz).

    Sample 0 is MIDI time 0 (leading silence is kept); trailing silence below
    `SILENCE_DBFS` is trimmed; the peak is normalised to `PEAK_DBFS`. Raises TimbrelError
    naming the file when fluidsynth, the soundfont or the MIDI file is missing or faulty,
    or when the render is silent.
    """
    exe = _fluidsynth()
    _check_soundfont(Path(soundfont))
    if not isinstance(midi, mido.MidiFile):
        path = Path(midi)
        if not path.is_file():
            raise TimbrelError(f"{path}: no such MIDI file")
        try:
            midi = mido.MidiFile(path)
        except (OSError, ValueError, EOFError) as err:
            raise TimbrelError(f"{path}: not a readable MIDI file ({err})") from None
    out_wav = Path(out_wav)
    with tempfile.TemporaryDirectory(prefix="timbrel-fluidsynth-") as tmp:
        mid_path, raw_path = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        _with_tail(midi, TAIL_S).save(mid_path)
        cmd = [
            exe, "-n", "-i", "-q", "-R", "0", "-C", "0", "-g", str(GAIN), "-r", str(int(sample_rate)),
            "-O", "float", "-T", "wav", "-F", str(raw_path), str(Path(soundfont)), str(mid_path),
        ]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise TimbrelError(f"{out_wav}: fluidsynth did not finish within {_TIMEOUT_S} s") from None
        if done.returncode != 0 or not raw_path.is_file():
            lines = (done.stderr or done.stdout).strip().splitlines()
            raise TimbrelError(f"{out_wav}: fluidsynth failed ({lines[-1] if lines else f'exit {done.returncode}'})")
        audio, rate = soundfile.read(str(raw_path), dtype="float64", always_2d=True)
    mono = audio.mean(axis=1)
    peak = float(np.max(np.abs(mono))) if mono.size else 0.0
    if peak == 0.0:
        raise TimbrelError(f"{out_wav}: fluidsynth rendered silence (check the MIDI file and soundfont)")
    loud = np.flatnonzero(np.abs(mono) > peak * 10.0 ** (SILENCE_DBFS / 20.0))
    mono = mono[: loud[-1] + 1] * (10.0 ** (PEAK_DBFS / 20.0) / peak)
    return write_audio(out_wav, mono, rate)


def phrase_seed(seed: int, index: int) -> int:
    """The seed of phrase `index` of the dataset drawn from `seed` (a 63-bit integer)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def generate_dataset(
    instrument: str,
    seconds: float,
    seed: int,
    out_dir: str | os.PathLike,
    phrase_seconds: float = 20.0,
    sample_rate: int = 48000,
    soundfont: str | os.PathLike = DEFAULT_SOUNDFONT,
    vibrato: tuple[float, float] | None = None,
) -> list[Path]:
    """Render about `seconds` (s) of `instrument` as `ceil(seconds / phrase_seconds)` phrases
    of equal length (at least `MIN_PHRASE_S`), phrase `i` drawn from `phrase_seed(seed, i)`, to
    `out_dir/{instrument}-{seed}-{i:03d}.wav`, each with a `.json` sidecar holding
    `Phrase.to_dict()` plus the dataset seed and index. `vibrato` (Hz, cents) replaces the
    instrument's typical vibrato (`make_phrase`). Returns the WAV paths."""
    if not seconds > 0 or not phrase_seconds >= MIN_PHRASE_S:
        raise TimbrelError(
            f"{instrument}: need seconds > 0 and phrase_seconds >= {MIN_PHRASE_S} (got {seconds}, {phrase_seconds})"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    count = max(1, math.ceil(seconds / phrase_seconds - 1e-9))
    length = max(seconds / count, MIN_PHRASE_S)
    paths = []
    for i in range(count):
        phrase = make_phrase(instrument, length, phrase_seed(seed, i), vibrato)
        wav = out_dir / f"{instrument}-{seed}-{i:03d}.wav"
        render_with_fluidsynth(phrase_to_midi(phrase), wav, sample_rate=sample_rate, soundfont=soundfont)
        sidecar = phrase.to_dict() | {
            "dataset_seed": int(seed), "index": i, "sample_rate": int(sample_rate), "audio": wav.name,
        }
        write_text(wav.with_suffix(".json"), json.dumps(sidecar, separators=(",", ":")))
        paths.append(wav)
    return paths
