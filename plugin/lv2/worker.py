"""The LV2 worker (`worker:schedule`): a plugin's non-real-time jobs, run on a thread of their own.

The plugin asks for a job from `run` (the audio thread); the request is copied into a ring
made in advance and the call returns at once. A worker thread takes requests from the ring
and calls the plugin's `work`, whose answers go into a second ring. The audio thread hands
those answers to the plugin's `work_response` at the next block boundary, then calls its
`end_run`. Neither side waits for the other; a full ring is reported to the plugin as
"no space", as LV2 specifies.

`schedule_work` is a Python callback, so during it the audio thread takes the GIL back for
the few microseconds a copy takes; it allocates nothing on the heap. A job that fails
(`work` returns an error, or the worker cannot run it) sets `fault`, one line, which the
effect reports and the chain turns into a disabled slot.
"""

from __future__ import annotations

import ctypes
import threading
from ctypes import Structure, c_int, c_uint32, c_void_p

import numpy as np

from timbrel.engine.io.thread_names import name_native_thread

INTERFACE = "http://lv2plug.in/ns/ext/worker#interface"
SUCCESS, ERR_UNKNOWN, ERR_NO_SPACE = 0, 1, 2
POLL_S = 0.002
"""How often (s) the worker thread looks for requests."""

SCHEDULE_FUNCTION = ctypes.CFUNCTYPE(c_int, c_void_p, c_uint32, c_void_p)
RESPOND_FUNCTION = ctypes.CFUNCTYPE(c_int, c_void_p, c_uint32, c_void_p)
WORK_FUNCTION = ctypes.CFUNCTYPE(c_int, c_void_p, RESPOND_FUNCTION, c_void_p, c_uint32, c_void_p)
WORK_RESPONSE_FUNCTION = ctypes.CFUNCTYPE(c_int, c_void_p, c_uint32, c_void_p)
END_RUN_FUNCTION = ctypes.CFUNCTYPE(c_int, c_void_p)

_WRAP = 0xFFFFFFFF


class Schedule(Structure):
    """`LV2_Worker_Schedule`, the feature's data."""

    _fields_ = [("handle", c_void_p), ("schedule_work", SCHEDULE_FUNCTION)]


class _Interface(Structure):
    """`LV2_Worker_Interface`, the plugin's extension data."""

    _fields_ = [("work", WORK_FUNCTION), ("work_response", WORK_RESPONSE_FUNCTION), ("end_run", END_RUN_FUNCTION)]


class MessageRing:
    """A single-writer, single-reader ring of byte messages, made once.

    Each message is an 8-byte header (its size) and its bytes, padded to 8. The writer
    publishes a message by moving `_written` after copying it; the reader frees it by moving
    `_read` after using it in place (`peek`, `address`, `pop`), so nothing is copied twice.
    """

    def __init__(self, capacity_bytes: int = 1 << 16):
        self.capacity = (int(capacity_bytes) + 7) & ~7
        self._bytes = np.zeros(self.capacity, dtype=np.uint8)
        self._words = self._bytes.view(np.uint32)
        self._base = self._bytes.ctypes.data
        self._written = 0
        self._read = 0

    def write(self, address: int, size: int) -> bool:
        """Copy `size` bytes from `address` in as one message; False when there is no room."""
        need = 8 + ((size + 7) & ~7)
        pos = self._written % self.capacity
        tail = self.capacity - pos
        skip = tail if tail < need else 0
        if self._written - self._read + skip + need > self.capacity:
            return False
        if skip:
            self._words[pos >> 2] = _WRAP
            pos = 0
        self._words[pos >> 2] = size
        if size:
            ctypes.memmove(self._base + pos + 8, address, size)
        self._written += skip + need
        return True

    def peek(self) -> int:
        """The size of the oldest message, or -1 when the ring is empty."""
        while self._read != self._written:
            pos = self._read % self.capacity
            size = int(self._words[pos >> 2])
            if size != _WRAP:
                return size
            self._read += self.capacity - pos
        return -1

    def address(self) -> int:
        """Where the oldest message's bytes are (valid until `pop`)."""
        return self._base + self._read % self.capacity + 8

    def pop(self, size: int) -> None:
        """Free the oldest message, of `size` bytes."""
        self._read += 8 + ((size + 7) & ~7)


class Worker:
    """Runs one plugin instance's worker jobs on a thread, and returns their answers to the
    audio thread. `schedule` is the feature data to give the plugin at instantiation; call
    `attach` once the instance exists, `deliver` after each `run`, and `stop` before freeing it."""

    def __init__(self, capacity_bytes: int = 1 << 16):
        self.requests = MessageRing(capacity_bytes)
        self.responses = MessageRing(capacity_bytes)
        self._schedule_function = SCHEDULE_FUNCTION(self._schedule)
        self._respond_function = RESPOND_FUNCTION(self._respond)
        self.schedule = Schedule(None, self._schedule_function)
        self.fault = ""
        """One line once a job has failed; "" while the worker is healthy."""
        self.jobs = 0
        """Jobs done since `attach`."""
        self.refused = 0
        """Requests and answers that found their ring full."""
        self._interface: _Interface | None = None
        self._handle: c_void_p | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def attach(self, interface_address: int, handle: c_void_p, name: str) -> None:
        """Start serving the instance `handle`, whose worker interface is at `interface_address`."""
        self._interface = _Interface.from_address(interface_address)
        self._handle = handle
        self.fault = ""
        self.jobs = 0
        self._stopping.clear()
        self._thread = threading.Thread(target=self._serve, name=f"lv2-worker {name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (waits for the job in progress); pending requests are dropped."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.requests = MessageRing(self.requests.capacity)
        self.responses = MessageRing(self.responses.capacity)

    def deliver(self) -> None:
        """Audio thread, after `run`: hand every waiting answer to the plugin, then end its run."""
        interface = self._interface
        if interface is None:
            return
        ring = self.responses
        size = ring.peek()
        while size >= 0:
            interface.work_response(self._handle, size, ring.address())
            ring.pop(size)
            size = ring.peek()
        if interface.end_run:
            interface.end_run(self._handle)

    def _schedule(self, handle: int | None, size: int, data: int | None) -> int:
        if self.requests.write(data or 0, size):
            return SUCCESS
        self.refused += 1
        return ERR_NO_SPACE

    def _respond(self, handle: int | None, size: int, data: int | None) -> int:
        if self.responses.write(data or 0, size):
            return SUCCESS
        self.refused += 1
        return ERR_NO_SPACE

    def _serve(self) -> None:
        name_native_thread()
        interface, handle = self._interface, self._handle
        while not self._stopping.is_set():
            ring = self.requests
            size = ring.peek()
            if size < 0:
                self._stopping.wait(POLL_S)
                continue
            try:
                status = interface.work(handle, self._respond_function, None, size, ring.address())
            except Exception as err:  # the worker must end in a fault line, never a traceback
                status, self.fault = ERR_UNKNOWN, f"its worker failed ({type(err).__name__}: {err})"
            ring.pop(size)
            self.jobs += 1
            if status != SUCCESS and not self.fault:
                self.fault = f"its worker failed (work returned status {status})"
