"""A short phrase that shows off a preset in its instrument's own range.

MIDI presets play a rising and falling line over the middle of the pitch range the model
was trained on, then a held chord (polyphonic presets) or a long swelling note (mono and
legato ones). Transfer presets hear a sung-like glide, with vibrato, through the same range.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from timbrel.engine.realtime.events import CONTROL_CHANGE, NOTE_OFF, NOTE_ON
from timbrel.engine.realtime.host import Engine
from timbrel.engine.render import render_audio, render_events
from timbrel.plugin.model import load_model
from timbrel.presets.build import build_chain

SECONDS = 6.0


def playing_range(f0_stats: dict) -> tuple[int, int]:
    """Lowest and highest MIDI notes of the middle 90 % of the training pitches (`f0_hz` stats, Hz)."""
    def note(hz: float) -> int:
        return int(round(69 + 12 * math.log2(max(hz, 20.0) / 440.0)))

    low, high = note(f0_stats.get("p05", 220.0)), note(f0_stats.get("p95", 880.0))
    return low, max(high, low + 7)


def phrase_events(low: int, high: int, polyphonic: bool) -> list[tuple[float, int]]:
    """(time in s, packed MIDI) of the audition phrase between notes `low` and `high`."""
    steps = (0, 2, 4, 5, 7, 9, 7, 4)
    root = low + max(0, (high - low - 12) // 2)
    events: list[tuple[float, int]] = [(0.0, CONTROL_CHANGE | 11 << 8 | 100 << 16)]
    t = 0.1
    for i, step in enumerate(steps):
        note = min(high, root + step)
        events.append((t, NOTE_ON | note << 8 | (80 + 4 * i) << 16))
        events.append((t + 0.38, NOTE_OFF | note << 8))
        t += 0.4
    chord = (root, root + 4, root + 7) if polyphonic else (root + 7,)
    for note in chord:
        events.append((t, NOTE_ON | min(high, note) << 8 | 96 << 16))
    for i, level in enumerate(np.linspace(70, 127, 8).astype(int)):
        events.append((t + 0.1 * i, CONTROL_CHANGE | 1 << 8 | int(level) << 16))
    for note in chord:
        events.append((t + 1.8, NOTE_OFF | min(high, note) << 8))
    return sorted(events, key=lambda e: e[0])


def sung_glide(low: int, high: int, sample_rate: int, seconds: float = SECONDS - 1.5) -> np.ndarray:
    """A voice-like tone `[samples]` gliding up and down between two notes, with vibrato."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    midi = low + (high - low) * 0.5 * (1 - np.cos(2 * np.pi * t / seconds)) + 0.3 * np.sin(2 * np.pi * 5.5 * t)
    phase = 2 * np.pi * np.cumsum(440.0 * 2 ** ((midi - 69) / 12)) / sample_rate
    tone = sum(np.sin(k * phase) / k**1.5 for k in range(1, 12))
    envelope = np.clip(np.minimum(t / 0.15, (seconds - t) / 0.3), 0, 1)
    return (0.25 * tone * envelope / np.abs(tone).max()).astype(np.float32)


def polyphonic(preset) -> bool:
    """Whether `preset` plays chords from MIDI (voice mode "poly")."""
    return preset.values("midi").get("voice_mode", 0.0) == 0.0


def play_audition(push: Callable[[int], None], f0_stats: dict, polyphonic: bool) -> None:
    """Play the audition phrase live, in real time: each packed MIDI message goes to `push` at
    its time. `f0_stats` are the model's training pitch statistics (Hz). Blocks for the phrase."""
    low, high = playing_range(f0_stats)
    began = time.monotonic()
    for at, packed in phrase_events(low, high, polyphonic):
        delay = began + at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        push(packed)


def render_audition(preset, sample_rate: int = 48000, block: int = 128, voices: int = 16) -> np.ndarray:
    """Render `preset`'s audition through the live path; stereo float32 `[samples, 2]`."""
    model = load_model(preset.model_path)
    low, high = playing_range(model.info.f0_hz)
    chain = build_chain(preset, voices=voices, model=model)
    if preset.mode == "transfer":
        voice = sung_glide(low, high, sample_rate)
        return render_audio(np.pad(voice, (0, int(SECONDS * sample_rate) - voice.size)), chain, sample_rate, block)
    return render_events(Engine(sample_rate, block), chain, phrase_events(low, high, polyphonic(preset)), SECONDS, block)
