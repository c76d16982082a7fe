"""How live transfer is measured, shared by tests/test_transfer.py and bench/bench_transfer.py.

- **First response**: a sung-like tone starts; the first 1 ms window of the output within
  40 dB of its held level. Later than that, the model's own attack is the instrument.
- **Pitch-following lag**: input and output tracked by the same offline tracker (its own
  delay cancels); the lag (ms) that minimises their median distance in cents.
- **Raw pitch accuracy of the output**: the pitch the instrument is driven with, per control
  frame, against the reference note sounding when that frame's window was centred; a frame
  counts as right only when the instrument sounds and is within 50 cents. Over notes (50 ms
  clear of their edges), or over notes and their release tails down to `tail_db` under the
  phrase's loudest frame.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from tests.test_features import render_fluidsynth
from timbrel.engine.realtime.features import estimate_pitch, loudness_db
from timbrel.engine.render import render_audio
from timbrel.plugin import follower as fw
from timbrel.plugin.transfer import TimbreTransfer

SR, HOP = 48000, 160
WIND = {73: "flute", 68: "oboe", 71: "clarinet", 65: "alto sax", 56: "trumpet", 57: "trombone"}
"""The suite's FluidR3 wind instruments (GM program: name)."""
WIND_NOTES = {73: range(62, 94, 5), 68: range(60, 90, 5), 71: range(52, 90, 5), 65: range(50, 80, 5),
              56: range(56, 84, 5), 57: range(42, 70, 5)}


class TracedTransfer(TimbreTransfer):
    """`TimbreTransfer` that keeps what drives the synth at each hop: f0 (Hz), the voice's gain
    and the gate's own gain (the follower's, before loudness under the input floor attenuates),
    and the sample where that segment starts (`starts`: the grid restarts at onsets); and,
    drained at each hop as a sender thread would, the MIDI out (`midi`: packed, frame)."""

    def reset(self) -> None:
        super().reset()
        self.trace: list[tuple[float, float, float]] = []
        self.starts: list[int] = []
        self.midi: list[tuple[int, int]] = []
        self._block_start = self._next_block = 0

    def process(self, inp, out, events) -> None:
        self._block_start = self._next_block
        self._next_block += out.shape[1]
        super().process(inp, out, events)

    def _on_boundary(self, offset: int) -> None:
        super()._on_boundary(offset)
        gate = getattr(self, "_controls", None)
        self.trace.append((float(self._f0[0]), float(self._scale[0]), float(self._scale[0] if gate is None else gate[fw.GAIN])))
        self.starts.append(self._block_start + getattr(self, "_base", 0) + offset)
        if hasattr(self, "outbox"):
            self.midi += self.outbox.drain()

    def controls(self, samples: int) -> np.ndarray:
        """`[rows, 3]`: row `i` is what drives the synth at sample `i * HOP` (the segment playing
        there), for the `ceil(samples / HOP)` rows of the input."""
        trace, starts = np.array(self.trace), np.array(self.starts)
        at = np.searchsorted(starts, np.arange(0, samples, HOP), side="right") - 1
        return trace[np.maximum(at, 0)]


def transfer(model, audio: np.ndarray, block: int = 128, **params) -> tuple[np.ndarray, np.ndarray, TracedTransfer]:
    """Output `[samples]` (float64), controls `[frames, 3]` (f0 Hz, gain, gate) per hop, and the plugin.

    Control row `i` is the frame that drives the synth at sample `i * HOP` (row 0: the start):
    the one that completed there, or, after an onset moved the grid, at the last boundary before."""
    plugin = TracedTransfer(model)
    plugin.params.set("reverb_mix", 0.0)
    for key, value in params.items():
        plugin.params.set(key, value)
    out = render_audio(audio.astype(np.float32), plugin, SR, block)[:, 0].astype(np.float64)
    if hasattr(plugin, "outbox"):
        plugin.midi += plugin.outbox.drain()
    return out, plugin.controls(audio.shape[0]), plugin


def sung_tone(f0_hz: float, seconds: float, onset_s: float, level: float = 0.3) -> np.ndarray:
    """A bright harmonic tone (8 partials at 1/k) that starts abruptly at `onset_s`, like a sung vowel."""
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * f0_hz * t
    x = sum(np.sin(k * phase) / k for k in range(1, 9))
    return (level * x / np.abs(x).max() * (t >= onset_s)).astype(np.float32)


def sung_glide(low: float, high: float, seconds: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """A voice-like tone `[samples]` gliding low -> high -> low (MIDI notes) with 5.5 Hz vibrato
    of +-0.3 semitone, 11 partials at 1/k^1.5, and its f0 (Hz) per sample."""
    t = np.arange(int(seconds * SR)) / SR
    midi = low + (high - low) * 0.5 * (1 - np.cos(2 * np.pi * t / seconds)) + 0.3 * np.sin(2 * np.pi * 5.5 * t)
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    tone = sum(np.sin(k * phase) / k**1.5 for k in range(1, 12))
    envelope = np.clip(np.minimum(t / 0.15, (seconds - t) / 0.3), 0, 1)
    return (0.25 * tone * envelope / np.abs(tone).max()).astype(np.float32), f0


def glide_reference(f0: np.ndarray, frames: int, delay_samples: int, margin_s: float = 0.2) -> np.ndarray:
    """Reference pitch (Hz) per control row for a tone whose f0 per sample is `f0`, 0 within
    `margin_s` of either end (its fade in and out)."""
    at = np.arange(frames) * HOP - delay_samples
    inside = (at >= margin_s * SR) & (at < f0.size - margin_s * SR)
    return np.where(inside, f0[np.clip(at, 0, f0.size - 1)], 0.0)


def first_response_ms(model, f0_hz: float, onset_s: float = 0.5, block: int = 128, **params) -> float:
    """Milliseconds from a tone's onset to the output's first 1 ms within 40 dB of its held level."""
    out, _, _ = transfer(model, sung_tone(f0_hz, 1.2, onset_s), block, **params)
    envelope = np.sqrt(np.convolve(out**2, np.ones(48) / 48, mode="same"))
    steady = np.median(envelope[int(0.9 * SR) : int(1.1 * SR)])
    return float((np.argmax(envelope > 0.01 * steady) / SR - onset_s) * 1000)


def pitch_lag_ms(inp: np.ndarray, out: np.ndarray, longest_ms: int = 40) -> float:
    """The lag (ms, 1 ms steps) at which the output's pitch best matches the input's."""
    hop = SR // 1000
    f_in, c_in = estimate_pitch(inp.astype(np.float32), SR, hop)
    f_out, c_out = estimate_pitch(out.astype(np.float32), SR, hop)
    best, best_lag = np.inf, 0
    for lag in range(longest_ms + 1):
        a, ca = f_in[: len(f_in) - lag], c_in[: len(c_in) - lag]
        b, cb = f_out[lag:], c_out[lag:]
        both = (ca > 0) & (cb > 0)
        if both.sum() < 100:
            continue
        distance = np.median(np.abs(1200 * np.log2(b[both] / a[both])))
        if distance < best:
            best, best_lag = distance, lag
    return float(best_lag)


def render_wind(program: int, notes, gap_s: float, note_s: float = 0.5) -> tuple[np.ndarray, list]:
    """A FluidR3 phrase of `notes` (MIDI) on GM `program`, peak 0.7, with 1 s of silence after.

    Returns the audio `[samples]` float32 and `[(start s, stop s, note)]`."""
    with tempfile.TemporaryDirectory() as tmp:
        audio, spans = render_fluidsynth(Path(tmp), [(program, list(notes))], note_s=note_s, gap_s=gap_s)
    audio = np.concatenate([audio, np.zeros(SR, np.float32)])
    return (0.7 * audio / np.abs(audio).max()).astype(np.float32), spans


def reference(audio: np.ndarray, spans, frames: int, delay_samples: int, tail_db: float | None) -> np.ndarray:
    """Reference pitch (Hz, 0: none) per control row, for rows `frames`.

    Row `i` (the frame completed at `i * HOP`) describes the input `delay_samples` earlier.
    Each note counts from 50 ms after its start to 50 ms before its end (`tail_db` None), or
    on past its end until the input's loudness falls `tail_db` under the loudest frame.
    """
    ends = np.arange(frames) * HOP
    times = (ends - delay_samples) / SR
    loud = loudness_db(audio, SR, HOP)
    at = np.clip((ends - delay_samples) // HOP - 1, 0, len(loud) - 1)
    row_db = loud[at]
    peak = loud.max()
    ref = np.zeros(frames)
    starts = [s[0] for s in spans[1:]] + [np.inf]
    for (start, stop, note), following in zip(spans, starts):
        hz = 440 * 2 ** ((note - 69) / 12)
        if tail_db is None:
            ref[(times >= start + 0.05) & (times <= stop - 0.05)] = hz
            continue
        rows = np.flatnonzero((times >= start + 0.05) & (times < following - 0.05))
        quiet = rows[(times[rows] > stop) & (row_db[rows] < peak - tail_db)]
        last = quiet[0] if quiet.size else rows[-1] + 1
        ref[rows[0] : last] = hz
    return ref


def output_rpa(controls: np.ndarray, ref: np.ndarray) -> float:
    """Share of rows with a reference where the instrument sounds within 50 cents of it."""
    n = min(len(controls), len(ref))
    f0, gain, ref = controls[:n, 0], controls[:n, 1], ref[:n]
    voiced = ref > 0
    cents = 1200 * np.abs(np.log2(np.maximum(f0[voiced], 1e-9) / ref[voiced]))
    return float(np.mean((gain[voiced] > 0) & (cents < 50)))


__all__ = ["HOP", "SR", "WIND", "WIND_NOTES", "TracedTransfer", "first_response_ms", "fw", "glide_reference",
           "output_rpa", "pitch_lag_ms", "reference", "render_wind", "sung_glide", "sung_tone", "transfer"]
