"""Offline rendering through exactly the live engine path, block by block.

`render_midi` feeds a MIDI file's messages into the engine's event queue at the block in
which they fall and calls `Engine.process` as the audio callback would; `render_audio`
feeds a recording in as the microphone. Both are deterministic.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from timbrel.engine.errors import TimbrelError
from timbrel.engine.plugin_api import Plugin
from timbrel.engine.realtime.events import parse_message
from timbrel.engine.realtime.host import Engine

TAIL_S = 1.5


def midi_events(path: str | os.PathLike) -> list[tuple[float, int]]:
    """(time in s, packed message) for every channel message of a MIDI file, in order."""
    import mido

    path = Path(path)
    if not path.is_file():
        raise TimbrelError(f"{path}: no such MIDI file")
    try:
        song = mido.MidiFile(str(path))
    except (OSError, EOFError, ValueError, KeyError, IndexError) as err:
        raise TimbrelError(f"{path}: not a readable MIDI file ({err})") from None
    events, now = [], 0.0
    for message in song:
        now += message.time
        if message.is_meta or message.type == "sysex":
            continue
        packed = parse_message(message.bytes())
        if packed >= 0:
            events.append((now, packed))
    if not events:
        raise TimbrelError(f"{path}: the MIDI file has no notes or controls")
    return events


def render_events(engine: Engine, plugin: Plugin, events: list[tuple[float, int]], seconds: float,
                  block: int, after_block: Callable[[int, int], None] | None = None,
                  on_event: Callable[[int], None] | None = None) -> np.ndarray:
    """Play timed packed messages through `engine` with `plugin`; returns stereo float32 `[samples, 2]`.
    `after_block(start, stop)` runs after each block (samples `start` to `stop`), to read meters or
    stems; `on_event(packed)` sees each message as it is queued, as a control thread would."""
    engine.load(plugin)
    total = int(np.ceil(seconds * engine.sample_rate))
    out = np.zeros((total, 2), dtype=np.float32)
    i = 0
    for start in range(0, total, block):
        stop = min(total, start + block)
        while i < len(events) and events[i][0] * engine.sample_rate < stop:
            engine.events.push(events[i][1])
            if on_event is not None:
                on_event(events[i][1])
            i += 1
        engine.process(None, out[start:stop])
        if after_block is not None:
            after_block(start, stop)
    return out


def render_midi(path: str | os.PathLike, plugin: Plugin, sample_rate: int = 48000, block: int = 128) -> np.ndarray:
    """Render a MIDI file (plus a release tail) with `plugin`; stereo float32 `[samples, 2]`."""
    events = midi_events(path)
    engine = Engine(sample_rate, block)
    return render_events(engine, plugin, events, events[-1][0] + TAIL_S, block)


def render_audio(audio: np.ndarray, plugin: Plugin, sample_rate: int = 48000, block: int = 128) -> np.ndarray:
    """Play mono `audio` `[samples]` at `sample_rate` into `plugin` as live input; stereo `[samples, 2]`."""
    engine = Engine(sample_rate, block)
    engine.load(plugin)
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    out = np.zeros((audio.size, 2), dtype=np.float32)
    for start in range(0, audio.size, block):
        stop = min(audio.size, start + block)
        engine.process(audio[start:stop], out[start:stop])
    return out
