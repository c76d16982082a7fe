"""The ensemble's per-block kernels (numba): MIDI routed to parts, batches gathered across
parts, and the parts mixed to the master bus and the send buses.

A part's settings are one row of `table` `[parts, PART_FIELDS]` float64, in the order of
`PART_FIELDS` (`timbrel.plugin.ensemble.PART_PARAMETERS` holds their ranges and units).
"""

from __future__ import annotations

import math

import numba

from timbrel.engine.realtime.events import CHANNEL_PRESSURE, CONTROL_CHANGE, NOTE_OFF, NOTE_ON, PITCH_BEND, unpack

PART_FIELDS = ("midi_channel", "key_low", "key_high", "velocity_low", "velocity_high", "transpose", "volume_db", "pan",
               "mute", "solo", "reverb_send", "delay_send")
(T_CHANNEL, T_KEY_LOW, T_KEY_HIGH, T_VELOCITY_LOW, T_VELOCITY_HIGH, T_TRANSPOSE, T_VOLUME_DB, T_PAN, T_MUTE, T_SOLO,
 T_REVERB_SEND, T_DELAY_SEND) = range(len(PART_FIELDS))
GAINS = 4
"""Per part: left and right gains to the master bus, then the reverb and delay send gains."""
SILENT_DB = -60.0
"""A part's volume at or below this is silence."""


@numba.njit(nogil=True, cache=True, _nrt=False)
def route_events(events, table, live, routed, counts, sounding):
    """Give each part the messages `events` `[n]` (packed, `timbrel.engine.realtime.events`)
    it hears into its row of `routed` `[parts, capacity]` int32, their number into `counts`
    `[parts]`. Only parts with `live[p]` hear anything.

    A note-on reaches the parts whose channel (0: every channel), key range and velocity range
    take it, transposed by the part's `transpose` (semitones; a note pushed outside 0 to 127 is
    dropped); `sounding` `[parts, 16, 128]` remembers the note each part started, so the
    note-off reaches exactly those parts, as the note they started, whatever the velocity or
    a transpose changed since. Controllers, bend and pressure reach every part on the channel;
    CC 120 and 123 (panic) reach every part. Program changes are left to the control thread.
    """
    parts = table.shape[0]
    capacity = routed.shape[1]
    for p in range(parts):
        counts[p] = 0
    for i in range(events.shape[0]):
        packed = events[i]
        kind, ch, d1, d2 = unpack(packed)
        on = kind == NOTE_ON and d2 > 0
        off = kind == NOTE_OFF or (kind == NOTE_ON and d2 == 0)
        panic = kind == CONTROL_CHANGE and (d1 == 120 or d1 == 123)
        for p in range(parts):
            if not live[p] or counts[p] >= capacity:
                continue
            wanted = table[p, T_CHANNEL]
            on_channel = wanted == 0.0 or int(wanted) == ch + 1
            out = packed
            if on:
                if not on_channel or d1 < table[p, T_KEY_LOW] or d1 > table[p, T_KEY_HIGH]:
                    continue
                if d2 < table[p, T_VELOCITY_LOW] or d2 > table[p, T_VELOCITY_HIGH]:
                    continue
                note = d1 + int(table[p, T_TRANSPOSE])
                if note < 0 or note > 127:
                    continue
                started = sounding[p, ch, d1]
                if started != 0 and started != note + 1 and counts[p] < capacity - 1:
                    # the key struck again under another transpose: end the note it started first
                    routed[p, counts[p]] = NOTE_OFF | ch | (started - 1) << 8
                    counts[p] += 1
                sounding[p, ch, d1] = note + 1
                out = (packed & 0xFF) | note << 8 | d2 << 16
            elif off:
                started = sounding[p, ch, d1]
                if started == 0:
                    continue
                sounding[p, ch, d1] = 0
                out = (packed & 0xFF00FF) | (started - 1) << 8
            elif panic:
                for c in range(16):
                    for k in range(128):
                        sounding[p, c, k] = 0
            elif kind == CONTROL_CHANGE or kind == PITCH_BEND or kind == CHANNEL_PRESSURE:
                if not on_channel:
                    continue
            else:
                continue
            routed[p, counts[p]] = out
            counts[p] += 1


@numba.njit(nogil=True, cache=True, _nrt=False)
def append_voices(batch, at, order, count, offset):
    """Append a part's voices `order[:count]` (its own numbering) to `batch` from `at`, as
    ensemble voices (`+ offset`); returns the new length."""
    for i in range(count):
        batch[at + i] = order[i] + offset
    return at + count


@numba.njit(nogil=True, cache=True, _nrt=False)
def part_gains(table, live, gains):
    """Each part's target gains `[parts, GAINS]` from its volume (dB), equal-power pan
    (-1 left … 1 right), mute, solo (any soloed part silences the others) and sends (0 … 1)."""
    parts = table.shape[0]
    soloed = False
    for p in range(parts):
        if live[p] and table[p, T_SOLO] > 0.5:
            soloed = True
    for p in range(parts):
        audible = live[p] and table[p, T_MUTE] < 0.5 and (not soloed or table[p, T_SOLO] > 0.5)
        volume = table[p, T_VOLUME_DB]
        level = 10.0 ** (volume / 20.0) if audible and volume > SILENT_DB else 0.0
        angle = (min(max(table[p, T_PAN], -1.0), 1.0) + 1.0) * math.pi / 4.0
        gains[p, 0] = level * math.cos(angle) * math.sqrt(2.0)
        gains[p, 1] = level * math.sin(angle) * math.sqrt(2.0)
        gains[p, 2] = level * table[p, T_REVERB_SEND]
        gains[p, 3] = level * table[p, T_DELAY_SEND]


@numba.njit(nogil=True, cache=True, _nrt=False)
def mix_parts(buses, n, previous, gains, master, reverb_bus, delay_bus, peaks, stems):
    """Mix `n` samples of the parts' stereo buses `buses` `[parts, 2, max_block]` into `master`,
    `reverb_bus` and `delay_bus` (each `[2, n]`, overwritten), the gains ramping linearly
    from `previous` to `gains` (`[parts, GAINS]`; `previous` then takes `gains`). `stems`
    `[parts, 2, max_block]` gets each part's share of `master`. `peaks` `[parts]` decays by
    0.95 per block and takes each part's peak after its gain."""
    for c in range(2):
        for j in range(n):
            master[c, j] = 0.0
            reverb_bus[c, j] = 0.0
            delay_bus[c, j] = 0.0
    for p in range(buses.shape[0]):
        peak = 0.0
        silent = True
        for g in range(GAINS):
            if previous[p, g] != 0.0 or gains[p, g] != 0.0:
                silent = False
        if silent:
            for c in range(2):
                for j in range(n):
                    stems[p, c, j] = 0.0
        else:
            for c in range(2):
                a0, a1 = previous[p, c], gains[p, c]
                r0, r1 = previous[p, 2], gains[p, 2]
                d0, d1 = previous[p, 3], gains[p, 3]
                for j in range(n):
                    t = (j + 1) / n
                    x = buses[p, c, j]
                    y = x * (a0 + (a1 - a0) * t)
                    stems[p, c, j] = y
                    master[c, j] += y
                    reverb_bus[c, j] += x * (r0 + (r1 - r0) * t)
                    delay_bus[c, j] += x * (d0 + (d1 - d0) * t)
                    peak = max(peak, abs(y))
        for g in range(GAINS):
            previous[p, g] = gains[p, g]
        peaks[p] = max(peaks[p] * 0.95, peak)
