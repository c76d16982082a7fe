"""A playing style, learned from recordings: how the player shapes each note.

The training recordings' pitch and loudness curves (`export.dataset`) are cut into notes,
and each note is measured: its vibrato (depth in cents, rate in Hz, and how late it comes
in), its attack scoop (how far below the note the pitch starts, cents, and how fast it
settles, s), its swell (how the loudness moves after the attack, dB, over what time) and the
fluctuation of its loudness (dB). Each measure is then fitted across the notes as
`c0 + c1 * pitch + c2 * loudness` (pitch in octaves from middle C, loudness 0 … 1 across the
model's usual range), so that a high, loud note may get another vibrato than a low, soft
one. The result goes into the model file's metadata (`style`), where the MIDI instrument's
expression layer (`timbrel.plugin.expression`) reads it.

Notes are found without a score: voiced stretches of the pitch curve, split where the
pitch, smoothed over 0.3 s so that a vibrato does not count, settles more than 0.6
semitones away from the note's. Vibrato is the sinusoid that best fits a note's pitch once
its slow drift is removed, searched between 3 and 9 Hz.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from platformdirs import user_cache_dir

from timbrel.engine.atomic import write_bytes
from timbrel.engine.errors import TimbrelError
from timbrel.export.dataset import analyse_file, find_audio
from timbrel.plugin.expression import STYLE_FIELDS, STYLE_LIMITS
from timbrel.plugin.model import METADATA_KEY, load_model

STYLE_VERSION = 1
MIN_NOTE_S = 0.35
"""Shorter notes are left out: too short to show a swell."""
MIN_VIBRATO_NOTE_S = 0.7
"""Notes shorter than this show too few cycles to measure a vibrato by."""
SCOOP_WINDOW_S = (0.02, 0.04)
"""Where a note's starting pitch is read (s after its onset): the pitch tracker's first frames
straddle the onset itself and would show a scoop in every note."""
_SPLIT_ST = 0.6
_SMOOTH_S = 0.3
_RATES_HZ = np.arange(3.0, 9.01, 0.05)
_RIDGE = 0.5
"""Pull of the pitch and loudness slopes towards 0: with few notes, a style stays close to its mean."""


@dataclass(frozen=True)
class NoteShape:
    """What one note measured: its pitch (MIDI), loudness (dB) and each of `STYLE_FIELDS`."""

    pitch: float
    loudness_db: float
    values: dict


def find_notes(f0_hz: np.ndarray, voiced: np.ndarray, frame_rate: int) -> list[tuple[int, int]]:
    """(first, stop) frame spans of the notes in a pitch curve `[frames]` (Hz) with its voiced flags."""
    semitones = np.where(voiced & (f0_hz > 0), 12.0 * np.log2(np.maximum(f0_hz, 1.0) / 440.0) + 69.0, np.nan)
    width = max(1, int(_SMOOTH_S * frame_rate))
    spans: list[tuple[int, int]] = []
    frames = f0_hz.size
    i = 0
    while i < frames:
        if np.isnan(semitones[i]):
            i += 1
            continue
        stop = i
        while stop < frames and not np.isnan(semitones[stop]):
            stop += 1
        spans += _split(semitones[i:stop], width, i)
        i = stop
    least = int(MIN_NOTE_S * frame_rate)
    return [(a, b) for a, b in spans if b - a >= least]


def _split(run: np.ndarray, width: int, offset: int) -> list[tuple[int, int]]:
    """Split one voiced run where its smoothed pitch leaves the current note."""
    padded = np.pad(run, width // 2, mode="edge")
    smooth = np.array([np.median(padded[k : k + width]) for k in range(run.size)])
    spans, start = [], 0
    note = smooth[min(width // 2, run.size - 1)]
    k = 0
    while k < run.size:
        if abs(smooth[k] - note) > _SPLIT_ST:
            settle = k
            while settle < run.size and abs(smooth[settle] - note) > _SPLIT_ST and abs(smooth[settle] - smooth[k]) < _SPLIT_ST:
                settle += 1
            cut = max(start + 1, k)
            spans.append((offset + start, offset + cut))
            start = cut
            note = smooth[min(k + width // 2, run.size - 1)]
            k = settle
        else:
            k += 1
    spans.append((offset + start, offset + run.size))
    return spans


def measure_note(f0_hz: np.ndarray, loudness_db: np.ndarray, frame_rate: int) -> NoteShape:
    """The shape of one note from its pitch (Hz) and loudness (dB) curves `[frames]`; a field
    the note is too short to show is NaN (vibrato needs `MIN_VIBRATO_NOTE_S`)."""
    cents_abs = 1200.0 * np.log2(np.maximum(f0_hz, 1.0) / 440.0)
    t = np.arange(f0_hz.size) / frame_rate
    duration = float(t[-1])
    body = t >= 0.1
    centre = float(np.median(cents_abs[body]))
    cents = cents_abs - centre
    values = dict.fromkeys(STYLE_FIELDS, math.nan)

    opening = (t >= SCOOP_WINDOW_S[0]) & (t < SCOOP_WINDOW_S[1])
    start = float(np.median(cents[opening])) if opening.any() else 0.0
    values["scoop_cents"] = max(-start, 0.0)
    settled = np.flatnonzero((cents > start / math.e) & (t >= SCOOP_WINDOW_S[0]))
    if start < -5.0 and settled.size:
        values["scoop_s"] = max(float(t[settled[0]]), 0.01)

    if duration >= MIN_VIBRATO_NOTE_S:
        values["vibrato_cents"], values["vibrato_hz"], values["vibrato_delay_s"] = _vibrato(cents, t, frame_rate)

    attack = loudness_db[(t >= 0.08) & (t < 0.2)]
    settled_loudness = loudness_db[(t >= 0.5 * duration) & (t <= 0.8 * duration)]
    if attack.size and settled_loudness.size:
        values["swell_db"] = float(np.median(settled_loudness) - np.median(attack))
        values["swell_s"] = max(0.5 * duration, 0.05)
    middle = (t >= 0.2 * duration) & (t <= 0.8 * duration)
    if middle.sum() > 2:
        trend = np.polyval(np.polyfit(t[middle], loudness_db[middle], 1), t[middle])
        values["fluctuation_db"] = float(np.std(loudness_db[middle] - trend))
    return NoteShape(pitch=centre / 100.0 + 69.0, loudness_db=float(np.median(loudness_db[body])), values=values)


def _vibrato(cents: np.ndarray, t: np.ndarray, frame_rate: int) -> tuple[float, float, float]:
    """Depth (cents, peak), rate (Hz) and onset delay (s) of the vibrato in a note's pitch
    `cents` `[frames]` around its centre: the sinusoid that best fits its last 60 % once a
    straight drift is removed; and its delay, from the time its envelope (over one cycle) first
    reaches 70 % of that depth after its quietest point in the note's first half (the
    expression layer's fade-in reaches 70 % at 0.84 of its delay)."""
    late = t >= 0.4 * t[-1]
    residual = cents - np.polyval(np.polyfit(t[late], cents[late], 1), t)
    power = np.abs(np.exp(-2j * np.pi * _RATES_HZ[:, None] * t[late][None, :]) @ residual[late])
    best = int(np.argmax(power))
    rate = float(_RATES_HZ[best])
    depth = 2.0 * float(power[best]) / late.sum()
    cycle = max(2, round(frame_rate / rate))
    basis = np.exp(-2j * np.pi * rate * t)
    envelope = np.array([2.0 * abs(np.dot(residual[k : k + cycle], basis[k : k + cycle])) / cycle
                         for k in range(t.size - cycle + 1)])
    centres = t[: envelope.size] + 0.5 * cycle / frame_rate
    early = np.flatnonzero((centres >= 0.1) & (centres <= 0.5 * t[-1]))
    quietest = early[np.argmin(envelope[early])] if early.size else 0
    reached = quietest + np.flatnonzero(envelope[quietest:] >= 0.7 * depth)
    delay = float(centres[reached[0]]) / 0.84 if reached.size else 0.0
    return depth, rate, delay


def fit_style(notes: list[NoteShape], loudness_range_db: tuple[float, float], source: str = "") -> dict:
    """The style record of measured notes: each field as `[c0, c_pitch, c_loudness]`.

    A robust fit (Huber weights, refitted 8 times): a few notes mis-cut at a slide or a
    breath do not move the style. Vibrato rate and delay are fitted on the notes that have a
    vibrato (deeper than 5 cents) when at least 3 do. A field with fewer than 8 usable notes
    is its median, without slopes."""
    if not notes:
        raise ValueError("no notes long enough to measure (each needs 0.35 s of steady pitch)")
    lo, hi = loudness_range_db
    pitch = np.array([(n.pitch - 60.0) / 12.0 for n in notes])
    loudness = np.clip(np.array([(n.loudness_db - lo) / max(hi - lo, 1e-6) for n in notes]), 0.0, 1.0)
    depth = np.array([n.values["vibrato_cents"] for n in notes])
    vibrating = np.nan_to_num(depth) > 5.0
    fields = {}
    for i, name in enumerate(STYLE_FIELDS):
        y = np.array([n.values[name] for n in notes])
        usable = np.isfinite(y)
        if name in ("vibrato_hz", "vibrato_delay_s") and (usable & vibrating).sum() >= 3:
            usable &= vibrating
        low, high = STYLE_LIMITS[i]
        if usable.sum() == 0:
            fields[name] = [float(min(high, max(low, 0.0))), 0.0, 0.0]
        elif usable.sum() < 8:
            fields[name] = [round(float(min(high, max(low, np.median(y[usable])))), 6), 0.0, 0.0]
        else:
            fields[name] = [round(float(c), 6) for c in _robust_fit(pitch[usable], loudness[usable], y[usable])]
    return {"version": STYLE_VERSION, "fields": fields, "notes": len(notes), "source": source}


def _robust_fit(pitch: np.ndarray, loudness: np.ndarray, y: np.ndarray) -> np.ndarray:
    """`[c0, c_pitch, c_loudness]` of `y ≈ c0 + c_pitch * pitch + c_loudness * loudness`, Huber-weighted."""
    x = np.stack([np.ones_like(pitch), pitch - pitch.mean(), loudness - loudness.mean()], axis=1)
    penalty = np.diag([0.0, _RIDGE, _RIDGE]) * y.size * 0.01
    weights = np.ones_like(y)
    c = np.zeros(3)
    for _ in range(8):
        xw = x * weights[:, None]
        c = np.linalg.solve(xw.T @ x + penalty, xw.T @ y)
        residual = y - x @ c
        scale = 1.4826 * np.median(np.abs(residual - np.median(residual))) + 1e-9
        weights = np.minimum(1.0, 1.345 * scale / np.maximum(np.abs(residual), 1e-12))
    return np.array([c[0] - c[1] * pitch.mean() - c[2] * loudness.mean(), c[1], c[2]])


def measure_recordings(recordings, frame_rate: int) -> list[NoteShape]:
    """Every note long enough in analysed recordings (objects with `f0_hz`, `loudness_db` and
    `voiced` `[frames]`, as `export.dataset.Recording`)."""
    notes = []
    for recording in recordings:
        for first, stop in find_notes(recording.f0_hz, recording.voiced, frame_rate):
            notes.append(measure_note(recording.f0_hz[first:stop], recording.loudness_db[first:stop], frame_rate))
    return notes


def loudness_range(loudness_stats: dict) -> tuple[float, float]:
    """The usual loudness span (dB) of a model's statistics: 5th to 95th percentile (min to max without them)."""
    return float(loudness_stats.get("p05", loudness_stats["min"])), float(loudness_stats.get("p95", loudness_stats["max"]))


def write_style(model_path: str | os.PathLike, style: dict, out_path: str | os.PathLike | None = None) -> None:
    """Store `style` in a model file's metadata, atomically, at `out_path` (default: in place).
    Needs the `onnx` package (the training extra)."""
    import onnx

    load_model(model_path)  # one-line error for a file that is not a model
    proto = onnx.load(str(model_path))
    for entry in proto.metadata_props:
        if entry.key == METADATA_KEY:
            record = json.loads(entry.value)
            record["style"] = style
            entry.value = json.dumps(record)
    write_bytes(Path(out_path or model_path), proto.SerializeToString())


def describe_style(style: dict) -> list[str]:
    """Lines for people: each field's value for a middle C at mid loudness, as the instrument plays it."""
    units = {"vibrato_cents": "cents", "vibrato_hz": "Hz", "vibrato_delay_s": "s", "scoop_cents": "cents",
             "scoop_s": "s", "swell_db": "dB", "swell_s": "s", "fluctuation_db": "dB"}
    lines = [f"{style['notes']} notes measured"]
    for (name, (c0, _, c2)), (low, high) in zip(style["fields"].items(), STYLE_LIMITS):
        lines.append(f"  {name:16s} {min(high, max(low, c0 + 0.5 * c2)):8.2f} {units[name]}")
    return lines


def style_of_folder(model_path: str | os.PathLike, folder: str | os.PathLike) -> dict:
    """Measure the recordings in `folder` (as `timbrel train` reads them, features cached) and
    fit a style for the model at `model_path` (its frame rate and loudness range)."""

    info = load_model(model_path).info
    files = find_audio(folder)
    if not files:
        raise TimbrelError(f"{folder}: no recordings (WAV, FLAC, OGG, MP3 or AIFF) in this folder")
    cache = Path(user_cache_dir("timbrel")) / "features"
    recordings = [analyse_file(path, info.sample_rate, info.model_hop_samples, cache) for path in files]
    notes = measure_recordings(recordings, info.frame_rate)
    try:
        return fit_style(notes, loudness_range(info.loudness_db), source=Path(folder).name)
    except ValueError as err:
        raise TimbrelError(f"{folder}: {err}") from None
