"""MIDI messages leaving the audio thread: a preallocated ring that a sender thread drains.

Sending MIDI (python-rtmidi's `send_message`) allocates, so the audio thread never sends.
It writes packed messages (`status | data1 << 8 | data2 << 16`, as in
`timbrel.engine.realtime.events`) with the frame index they belong to into `MidiOutbox`'s
arrays through the numba function `outbox_push`, and publishes them by advancing the write
count after the slots are filled. A non-real-time thread (`timbrel.engine.io.midi_out`, or
an offline writer) reads up to that count and advances the read count. Each count has one
writer, so neither side waits. When the ring is full a message is dropped and counted.

The sender sleeps until there is something to send: after each block the audio thread calls
`MidiOutbox.publish`, which, when the block queued messages and a sender waits, adds one to
the process's wake eventfd (`wake_fd`), a counter in the kernel that a write never blocks on.
"""

from __future__ import annotations

import os

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


@njit(nogil=True, cache=True, _nrt=False)
def outbox_fresh(counts: np.ndarray, published: np.ndarray) -> bool:
    """True when messages were queued since the last call (`published [1]` holds the write count then)."""
    if counts[WRITTEN] == published[0]:
        return False
    published[0] = counts[WRITTEN]
    return True


_WAKE_FD = -1


def wake_fd() -> int:
    """The process's MIDI-out wake eventfd (non-blocking), made on first use and never closed, so
    the audio thread can never write to a descriptor that was closed and reused meanwhile."""
    global _WAKE_FD
    if _WAKE_FD < 0:
        _WAKE_FD = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
    return _WAKE_FD


class MidiOutbox:
    """A single-producer, single-consumer ring of packed MIDI messages with their frame indices."""

    def __init__(self, capacity: int = 1024):
        if capacity < 1:
            raise ValueError(f"capacity ({capacity}) must be positive")
        self.ring = np.zeros(capacity, dtype=np.int32)
        self.frames = np.zeros(capacity, dtype=np.int64)
        self.counts = np.zeros(3, dtype=np.int64)
        self._published = np.zeros(1, dtype=np.int64)
        self.listened = True
        """Whether anything reads this outbox; a producer that sees False writes nothing to it (a
        live session without its MIDI out port sets it)."""
        self.wake = -1
        """The eventfd a sender waits on for this outbox (`wake_fd()`); -1 while nobody waits
        (an offline reader drains when it likes)."""

    def publish(self) -> None:
        """Audio thread, after a block: wake the waiting sender if the block queued messages.

        Allocates nothing; an eventfd write adds to a kernel counter and never blocks."""
        if outbox_fresh(self.counts, self._published) and self.wake >= 0:
            os.eventfd_write(self.wake, 1)

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
