"""MIDI messages leaving the audio thread: a preallocated ring that a sender thread drains.

Sending MIDI (python-rtmidi's `send_message`) allocates, so the audio thread never sends.
It writes packed messages (`status | data1 << 8 | data2 << 16`, as in
`timbrel.engine.realtime.events`) with the frame index they belong to into `MidiOutbox`'s
arrays through the numba function `outbox_push`, and publishes them by advancing the write
count after the slots are filled. A non-real-time thread (`timbrel.engine.io.midi_out`, or
an offline writer) reads up to that count and advances the read count. Each count has one
writer, so neither side waits. When the ring is full a message is dropped and counted.
"""

from __future__ import annotations

import numpy as np
from numba import njit

WRITTEN, READ, DROPPED = 0, 1, 2


@njit(nogil=True, cache=True, _nrt=False)
def outbox_push(ring: np.ndarray, frames: np.ndarray, counts: np.ndarray, packed: int, frame: int) -> bool:
    """Producer side (the audio thread): queue one packed message of control frame `frame`.

    `ring [capacity]` int32, `frames [capacity]` int64, `counts [3]` int64 (written, read,
    dropped). False, and the drop counted, when the ring is full.
    """
    written = counts[WRITTEN]
    if written - counts[READ] >= ring.shape[0]:
        counts[DROPPED] += 1
        return False
    slot = written % ring.shape[0]
    ring[slot] = packed
    frames[slot] = frame
    counts[WRITTEN] = written + 1
    return True


class MidiOutbox:
    """A single-producer, single-consumer ring of packed MIDI messages with their frame indices."""

    def __init__(self, capacity: int = 1024):
        if capacity < 1:
            raise ValueError(f"capacity ({capacity}) must be positive")
        self.ring = np.zeros(capacity, dtype=np.int32)
        self.frames = np.zeros(capacity, dtype=np.int64)
        self.counts = np.zeros(3, dtype=np.int64)

    @property
    def dropped(self) -> int:
        """Messages lost because the ring was full."""
        return int(self.counts[DROPPED])

    def __len__(self) -> int:
        return int(self.counts[WRITTEN] - self.counts[READ])

    def drain(self) -> list[tuple[int, int]]:
        """Consumer side (never the audio thread): the pending `(packed message, frame)` pairs, oldest first."""
        written = int(self.counts[WRITTEN])
        read = int(self.counts[READ])
        capacity = self.ring.shape[0]
        pending = [(int(self.ring[i % capacity]), int(self.frames[i % capacity])) for i in range(read, written)]
        self.counts[READ] = written
        return pending


def message_bytes(packed: int) -> list[int]:
    """The raw bytes of a packed channel voice message (two for program change and channel pressure)."""
    status = packed & 0xFF
    data = [status, (packed >> 8) & 0x7F, (packed >> 16) & 0x7F]
    return data[:2] if status & 0xF0 in (0xC0, 0xD0) else data
