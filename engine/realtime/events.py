"""Short MIDI messages crossing from input threads to the audio thread, which never waits.

`EventQueue` is a ring of preallocated integers. A producer (a MIDI input callback, the
control surface's keyboard, an audition) writes the message and only then publishes it
by advancing the write count; the consumer (the audio callback) reads up to that count
and then advances the read count. Producers take turns on a lock that the audio thread
never touches; each count has one writer at a time, and a Python int assignment is
atomic, so the audio thread never waits and nothing allocates arrays. When the ring is
full new messages are dropped and counted, never blocked on.

Only channel voice messages travel here. `parse_message` is the one gatekeeper: SysEx,
system messages, stray data bytes and truncated messages are refused, so junk from a
device can never reach the engine.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numba
import numpy as np

NOTE_OFF, NOTE_ON, POLY_PRESSURE, CONTROL_CHANGE, PROGRAM_CHANGE, CHANNEL_PRESSURE, PITCH_BEND = (
    0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0, 0xE0,
)
_LENGTH = {NOTE_OFF: 3, NOTE_ON: 3, POLY_PRESSURE: 3, CONTROL_CHANGE: 3, PROGRAM_CHANGE: 2, CHANNEL_PRESSURE: 2, PITCH_BEND: 3}


@numba.njit(nogil=True, cache=True, _nrt=False, inline="always")
def unpack(packed):
    """A packed message's kind (its status without the channel), channel (0 to 15) and two
    data bytes, for the kernels that read the event queue's integers."""
    status = packed & 0xFF
    return status & 0xF0, status & 0x0F, (packed >> 8) & 0x7F, (packed >> 16) & 0x7F


def parse_message(message: Sequence[int]) -> int:
    """Pack a channel voice message as `status | data1 << 8 | data2 << 16`, or return -1.

    Refused (-1): an empty message, a first byte that is not a channel status, SysEx and
    other system messages, a length that does not match the status, and data bytes >= 128.
    """
    n = len(message)
    if n == 0:
        return -1
    status = int(message[0])
    kind = status & 0xF0
    if status < 0x80 or kind == 0xF0 or _LENGTH.get(kind) != n:
        return -1
    d1 = int(message[1])
    d2 = int(message[2]) if n == 3 else 0
    if d1 > 127 or d2 > 127 or d1 < 0 or d2 < 0:
        return -1
    return status | d1 << 8 | d2 << 16


class EventQueue:
    """A ring of packed MIDI messages (see `parse_message`): many producers, one consumer.

    Producers (MIDI input threads, the control surface, auditions) serialise on a lock
    among themselves; the consumer, the audio thread, never takes it: it reads `_written`
    (advanced only after the slot is filled) and advances `_read`, each index having a
    single writer.
    """

    def __init__(self, capacity: int = 4096):
        self._producers = threading.Lock()
        self.capacity = int(capacity)
        self._ring = np.zeros(self.capacity, dtype=np.int32)
        self._written = 0
        self._read = 0
        self.dropped = 0
        """Messages lost because the ring was full (written by the producer only)."""
        self.refused = 0
        """Messages refused as junk by `push_message` (written by the producer only)."""

    def push(self, packed: int) -> bool:
        """Producer side (any thread but the audio one): enqueue one packed message; False when
        the ring is full."""
        with self._producers:
            if self._written - self._read >= self.capacity:
                self.dropped += 1
                return False
            self._ring[self._written % self.capacity] = packed
            self._written += 1
            return True

    def push_message(self, message: Sequence[int]) -> bool:
        """Producer side: validate raw bytes and enqueue them; junk is counted and dropped."""
        packed = parse_message(message)
        if packed < 0:
            with self._producers:
                self.refused += 1
            return False
        return self.push(packed)

    def pop_into(self, out: np.ndarray) -> int:
        """Consumer side: move up to `len(out)` pending messages into `out` (int32); return the count."""
        available = self._written - self._read
        if available == 0:
            return 0
        n = min(available, out.shape[0])
        start = self._read % self.capacity
        first = min(n, self.capacity - start)
        out[:first] = self._ring[start : start + first]
        if n > first:
            out[first:n] = self._ring[: n - first]
        self._read += n
        return n

    def __len__(self) -> int:
        return self._written - self._read
