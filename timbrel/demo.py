"""Something to play at once: a phrase rendered through the synthesis kernels with no model,
and the same melody as a small MIDI file for any preset."""

from __future__ import annotations

import io
import os
from pathlib import Path

import mido
import numpy as np

from timbrel.engine.atomic import write_bytes
from timbrel.engine.dsp import FilteredNoise, HarmonicOscillator, reverb

TICKS_PER_BEAT = 480

_PHRASE = [(67, 0.5), (71, 0.5), (74, 0.75), (72, 0.25), (71, 0.5), (69, 0.5), (67, 1.5)]


def demo_phrase(sample_rate: int = 48000, frame_rate: int = 300, harmonics: int = 48, bands: int = 65) -> np.ndarray:
    """Render a seven-note legato phrase: a breathy, vibrato-laden reed-like tone.

    Controls are designed by hand at `frame_rate` frames/s and streamed through the same
    kernels the live engine uses. Returns float32 mono audio `[samples]` at `sample_rate`.
    """
    hop = sample_rate // frame_rate
    f0, loud = [], []
    for note, beats in _PHRASE:
        frames = int(beats * 0.6 * frame_rate)
        f0 += [440.0 * 2 ** ((note - 69) / 12)] * frames
        loud += list(np.minimum(1.0, np.arange(frames) / 15) * np.minimum(1.0, (frames - np.arange(frames)) / 30))
    frames = len(f0)
    t = np.arange(frames) / frame_rate
    f0 = np.convolve(np.asarray(f0), np.ones(9) / 9, mode="same")
    f0[:4], f0[-4:] = f0[4], f0[-5]
    f0 *= 2 ** (0.3 * np.minimum(1.0, t / 1.5) * np.sin(2 * np.pi * 5.5 * t) / 12)
    amp = 0.25 * np.asarray(loud) ** 1.5
    k = np.arange(1, harmonics + 1)
    brightness = 1.2 + 1.5 * np.asarray(loud)
    dist = k[None, :] ** -brightness[:, None] * (1 + 0.6 * (k % 2 == 1))[None, :]
    centres = np.linspace(0, sample_rate / 2, bands)
    mags = 0.02 * np.asarray(loud)[:, None] * np.exp(-centres / 3000)[None, :]

    osc = HarmonicOscillator(1, harmonics, sample_rate, hop)
    noise = FilteredNoise(1, bands, sample_rate, hop, seed=1)
    out = np.zeros((1, frames * hop))
    for i in range(frames):
        osc.push(f0[i : i + 1], amp[i : i + 1], dist[i : i + 1])
        noise.push(mags[i : i + 1])
        segment = out[:, i * hop : (i + 1) * hop]
        osc.render(segment)
        noise.render(segment)
    tail = int(1.5 * sample_rate)
    dry = np.concatenate([out[0], np.zeros(tail)])
    rng = np.random.default_rng(0)
    ir = rng.standard_normal(tail) * np.exp(-np.arange(tail) / (0.35 * sample_rate))
    ir *= 0.5 / np.sqrt(np.sum(ir**2))
    ir[0] = 1.0
    return reverb(dry, ir, 0.35)


def write_demo_midi(path: str | os.PathLike, bass: bool = True) -> Path:
    """Write the demo melody (and, with `bass`, a held lower line) as a type-1 MIDI file at
    120 beats a minute, atomically; returns the path. Each beat is half a second."""
    melody = mido.MidiTrack()
    for note, beats in _PHRASE:
        melody.append(mido.Message("note_on", note=note, velocity=90, time=0))
        melody.append(mido.Message("note_off", note=note, velocity=0, time=int(beats * TICKS_PER_BEAT)))
    song = mido.MidiFile(ticks_per_beat=TICKS_PER_BEAT, tracks=[melody])
    if bass:
        total = int(sum(beats for _, beats in _PHRASE) * TICKS_PER_BEAT)
        song.tracks.append(mido.MidiTrack([mido.Message("note_on", channel=1, note=43, velocity=70, time=0),
                                           mido.Message("note_off", channel=1, note=43, velocity=0, time=total)]))
    data = io.BytesIO()
    song.save(file=data)
    return write_bytes(path, data.getvalue())
