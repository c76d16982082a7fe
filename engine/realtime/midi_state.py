"""What the keyboard is doing: held keys, the sustain pedal and the controllers, per channel.

The engine follows every MIDI event through `MidiState.track` on the audio thread. When a
new preset takes over, `MidiState.replay` writes the messages that put the new instrument
in the same state: the MPE zones and per-note bend ranges set by RPN, then a note-on for every
key held or still sounding under the pedal, the pedal, the bend and the controllers. Notes held across a switch keep sounding in the new
sound, and releasing a key or the pedal afterwards releases them there.
"""

from __future__ import annotations

import numba
import numpy as np

from timbrel.engine.realtime.events import (
    CHANNEL_PRESSURE,
    CONTROL_CHANGE,
    NOTE_OFF,
    NOTE_ON,
    PITCH_BEND,
    PROGRAM_CHANGE,
    unpack,
)

REPLAY_CAPACITY = 16 * (2 * 128 + 6) + 16 * 6 + 2 * 5
"""The most messages a replay can need: every note on (and off, if pedalled) on every channel, 6 controllers
each, an RPN 0 (bend range) setting on every channel and two MPE Configuration Messages, each with its RPN reset."""
NO_VALUE = -1


@numba.njit(nogil=True, cache=True, _nrt=False)
def _track(events, count, velocity, pedalled, pedal, bend, modulation, expression, pressure, timbre, rpn, bend_range,
           zones, programs):
    for i in range(count):
        packed = events[i]
        kind, ch, d1, d2 = unpack(packed)
        if kind == NOTE_ON and d2 > 0:
            velocity[ch, d1] = d2
            pedalled[ch, d1] = False
        elif kind == NOTE_OFF or kind == NOTE_ON:
            if velocity[ch, d1] > 0 and pedal[ch]:
                pedalled[ch, d1] = True
            else:
                velocity[ch, d1] = 0
        elif kind == CONTROL_CHANGE:
            if d1 == 64:
                pedal[ch] = d2 >= 64
                if not pedal[ch]:
                    for note in range(128):
                        if pedalled[ch, note]:
                            pedalled[ch, note] = False
                            velocity[ch, note] = 0
            elif d1 == 1:
                modulation[ch] = d2
            elif d1 == 74:
                timbre[ch] = d2
            elif d1 == 101:
                rpn[ch, 0] = d2
            elif d1 == 100:
                rpn[ch, 1] = d2
            elif d1 == 98 or d1 == 99:
                rpn[ch, 0] = rpn[ch, 1] = 127
            elif d1 == 6 and rpn[ch, 0] == 0 and rpn[ch, 1] == 0:
                bend_range[ch] = d2
            elif d1 == 6 and rpn[ch, 0] == 0 and rpn[ch, 1] == 6 and (ch == 0 or ch == 15):
                zone = 0 if ch == 0 else 1
                zones[zone] = d2
                zones[2] = zone
            elif d1 == 11:
                expression[ch] = d2
            elif d1 == 120 or d1 == 123:
                # all sound off and all notes off clear every channel, as the instrument does
                velocity[:, :] = 0
                pedalled[:, :] = False
            elif d1 == 121:
                modulation[ch] = 0
                expression[ch] = 127
                pressure[ch] = 0
                timbre[ch] = 64
                bend[ch] = 8192
        elif kind == PITCH_BEND:
            bend[ch] = d1 | d2 << 7
        elif kind == CHANNEL_PRESSURE:
            pressure[ch] = d1
        elif kind == PROGRAM_CHANGE:
            programs[0, ch] = d1
            programs[1, ch] += 1


@numba.njit(nogil=True, cache=True, _nrt=False)
def _rpn(out, n, ch, number, value):
    """Write RPN `number` = `value` on `ch`, then the null RPN, at `out[n]`; returns the next index."""
    out[n] = CONTROL_CHANGE | ch | 101 << 8
    out[n + 1] = CONTROL_CHANGE | ch | 100 << 8 | number << 16
    out[n + 2] = CONTROL_CHANGE | ch | 6 << 8 | value << 16
    out[n + 3] = CONTROL_CHANGE | ch | 101 << 8 | 127 << 16
    out[n + 4] = CONTROL_CHANGE | ch | 100 << 8 | 127 << 16
    return n + 5


@numba.njit(nogil=True, cache=True, _nrt=False)
def _replay(out, velocity, pedalled, pedal, bend, modulation, expression, pressure, timbre, rpn, bend_range, zones):
    n = 0
    last = int(zones[2])
    if last >= 0:
        for i in range(2):
            zone = 1 - last if i == 0 else last
            if zones[zone] != NO_VALUE:
                n = _rpn(out, n, 0 if zone == 0 else 15, 6, zones[zone])
    for ch in range(16):
        if bend_range[ch] != NO_VALUE:
            n = _rpn(out, n, ch, 0, bend_range[ch])
    for ch in range(16):
        if bend[ch] != 8192:
            out[n] = PITCH_BEND | ch | (bend[ch] & 0x7F) << 8 | (bend[ch] >> 7) << 16
            n += 1
        if modulation[ch]:
            out[n] = CONTROL_CHANGE | ch | 1 << 8 | modulation[ch] << 16
            n += 1
        if expression[ch] != 127:
            out[n] = CONTROL_CHANGE | ch | 11 << 8 | expression[ch] << 16
            n += 1
        if pressure[ch]:
            out[n] = CHANNEL_PRESSURE | ch | pressure[ch] << 8
            n += 1
        if timbre[ch] != 64:
            out[n] = CONTROL_CHANGE | ch | 74 << 8 | timbre[ch] << 16
            n += 1
        for note in range(128):
            if velocity[ch, note]:
                out[n] = NOTE_ON | ch | note << 8 | velocity[ch, note] << 16
                n += 1
        if pedal[ch]:
            out[n] = CONTROL_CHANGE | ch | 64 << 8 | 127 << 16
            n += 1
            for note in range(128):
                if pedalled[ch, note]:
                    out[n] = NOTE_OFF | ch | note << 8
                    n += 1
    return n


class MidiState:
    """Per-channel key, pedal and controller state, updated on the audio thread without allocating."""

    def __init__(self) -> None:
        self.velocity = np.zeros((16, 128), dtype=np.int32)
        """Velocity of each sounding key `[channel, note]` (0: silent)."""
        self.pedalled = np.zeros((16, 128), dtype=np.bool_)
        """Keys released while the pedal was down, still sounding `[channel, note]`."""
        self.pedal = np.zeros(16, dtype=np.bool_)
        self.bend = np.full(16, 8192, dtype=np.int32)
        self.modulation = np.zeros(16, dtype=np.int32)
        self.expression = np.full(16, 127, dtype=np.int32)
        self.pressure = np.zeros(16, dtype=np.int32)
        self.timbre = np.full(16, 64, dtype=np.int32)
        """CC 74 per channel (MPE's per-note timbre on member channels)."""
        self.rpn = np.full((16, 2), 127, dtype=np.int32)
        """The RPN each channel has selected (MSB, LSB; 127, 127: none)."""
        self.bend_range = np.full(16, NO_VALUE, dtype=np.int32)
        """Semitones last set by RPN 0 per channel (-1: never)."""
        self.zones = np.full(3, NO_VALUE, dtype=np.int32)
        """Member channels set by the latest MPE Configuration Message for the lower and upper
        zones (-1: none received), and which of the two came last."""
        self.programs = np.zeros((2, 16), dtype=np.int64)
        """Per channel `[2, 16]`: the last program change's number, and how many have arrived (a
        control thread polls these)."""
        self.replayed = np.zeros(REPLAY_CAPACITY, dtype=np.int32)
        self.track(self.replayed, 0)
        self.replay()

    def _arrays(self) -> tuple:
        return (self.velocity, self.pedalled, self.pedal, self.bend, self.modulation, self.expression, self.pressure,
                self.timbre, self.rpn, self.bend_range, self.zones)

    def track(self, events: np.ndarray, count: int) -> None:
        """Follow the first `count` packed messages of `events` (`timbrel.engine.realtime.events.parse_message`)."""
        _track(events, count, *self._arrays(), self.programs)

    def replay(self) -> np.ndarray:
        """The messages that recreate this state in a fresh instrument: a view of `replayed`."""
        return self.replayed[: _replay(self.replayed, *self._arrays())]

    def held_notes(self) -> list[tuple[int, int]]:
        """(channel, note) of every sounding key, held or pedalled (any thread; for UIs and tests)."""
        return [(int(c), int(n)) for c, n in zip(*np.nonzero(self.velocity))]
