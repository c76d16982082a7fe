"""A virtual MIDI output port fed by the audio thread's `MidiOutbox`, through a sender thread.

`MidiOutput` opens one rtmidi virtual output port (`timbrel-pitch` by default) that other
software connects to, through JACK (python-rtmidi's JACK API) or the ALSA sequencer. The
audio thread never sends: it queues packed messages in a `MidiOutbox`
(`timbrel.engine.realtime.outbox`), and the sender thread started here sleeps on the
outbox's wake eventfd until a block has queued messages, then sends each one with
python-rtmidi (which allocates and, with JACK, hands the bytes to JACK's process thread for
the next cycle). So a message leaves one JACK period after the block that made it, and the
sender costs nothing while nothing is sent. (It polled every 2 ms before: 500 wake-ups a
second, 3 % of a core in the live process.)

`source()` names the outbox to drain; it is asked on every wake-up and at least every
`idle_s` seconds, so a preset switch that brings a new instrument (with its own outbox) is
followed within `idle_s`. When the outbox changes, or the output stops, every note this port
left sounding gets its note off.
"""

from __future__ import annotations

import os
import re
import select
import threading
from collections.abc import Callable

import rtmidi

from timbrel.engine.errors import TimbrelError
from timbrel.engine.io.midi import JACK_PORT_IS_OUTPUT, JackPatchbay, open_api
from timbrel.engine.io.thread_names import name_native_thread
from timbrel.engine.realtime.events import NOTE_OFF, NOTE_ON
from timbrel.engine.realtime.outbox import MidiOutbox, message_bytes, wake_fd


class MidiOutput:
    """Sends what `source()`'s outbox holds on a virtual output port named `name`.

    Construction opens the port and starts the sender; `stop()` sends the pending note offs
    and closes everything. `port` is the port's full name (JACK: `client:port`), `sent` the
    messages sent so far, `wakeups` how often the sender woke.
    """

    def __init__(self, source: Callable[[], MidiOutbox | None], backend: str = "auto", name: str = "timbrel-pitch",
                 idle_s: float = 0.02):
        self._source = source
        self.idle_s = float(idle_s)
        self.sent = 0
        self.wakeups = 0
        self._wake = wake_fd()
        self._sounding: set[tuple[int, int]] = set()
        self._outbox: MidiOutbox | None = None
        self.backend, self._out = open_api(backend, name, rtmidi.MidiOut)
        self.port = f"{name}:{name}"
        try:
            if self.backend == "jack":
                patchbay = JackPatchbay(f"{name}-ports")
                try:
                    before = set(patchbay.midi_ports(JACK_PORT_IS_OUTPUT))
                    self._out.open_virtual_port(name)
                    own = re.compile(rf"{re.escape(name)}(-\d+)?:{re.escape(name)}")
                    new = [p for p in patchbay.midi_ports(JACK_PORT_IS_OUTPUT) if p not in before and own.fullmatch(p)]
                finally:
                    patchbay.close()
                if len(new) != 1:
                    raise RuntimeError(f"cannot find the virtual port among {new}")
                self.port = new[0]
            else:
                self._out.open_virtual_port(name)
        except (rtmidi.RtMidiError, RuntimeError) as err:
            self._out.delete()
            raise TimbrelError(f"cannot open the MIDI output {name} through {self.backend.upper()}: {err}") from None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="timbrel-midi-out", daemon=True)
        self._thread.start()

    def _send(self, packed: int) -> None:
        message = message_bytes(packed)
        kind, channel = message[0] & 0xF0, message[0] & 0x0F
        if kind == NOTE_ON and message[2] > 0:
            self._sounding.add((channel, message[1]))
        elif kind in (NOTE_ON, NOTE_OFF):
            self._sounding.discard((channel, message[1]))
        self._out.send_message(message)
        self.sent += 1

    def _release_notes(self) -> None:
        for channel, note in sorted(self._sounding):
            self._out.send_message([NOTE_OFF | channel, note, 0])
            self.sent += 1
        self._sounding.clear()

    def _pump(self) -> None:
        outbox = self._source()
        if outbox is not self._outbox:
            self._release_notes()
            if self._outbox is not None:
                self._outbox.wake = -1
            self._outbox = outbox
            if outbox is not None:
                outbox.wake = self._wake
        if outbox is not None:
            for packed, _ in outbox.drain():
                self._send(packed)

    def _run(self) -> None:
        name_native_thread()
        while True:
            try:
                self._pump()
            except (rtmidi.RtMidiError, OSError):
                pass
            ready, _, _ = select.select([self._wake], [], [], self.idle_s)
            if self._stop.is_set():
                return
            self.wakeups += 1
            if ready:
                self._clear_wake()

    def _clear_wake(self) -> None:
        try:
            os.eventfd_read(self._wake)
        except BlockingIOError:
            pass

    def stop(self) -> None:
        """Stop the sender, send what is pending and the note offs owed, close the port. Idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        os.eventfd_write(self._wake, 1)
        self._thread.join()
        self._clear_wake()
        if self._outbox is not None:
            self._outbox.wake = -1
        try:
            self._pump()
            self._release_notes()
        finally:
            self._out.close_port()
            self._out.delete()

    def __enter__(self) -> MidiOutput:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
