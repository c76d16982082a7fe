"""MIDI input from JACK or ALSA into the engine's `EventQueue`.

Every `MidiInput` opens one rtmidi virtual input port, named `timbrel`, that other
software can connect to. Other sources reach the queue in a way that suits each backend:

* JACK: sources are *connected* to that virtual port, through libjack (ctypes) from a
  portless, never-activated JACK client. One rtmidi client, one JACK process thread: the
  queue has a single producer, as it requires.
* ALSA: one rtmidi input per source, each with its own thread.

Threads:

* rtmidi calls `_on_message` on the backend's thread (JACK's process thread of the
  virtual port's client; an ALSA input thread per port). It only compares integers (the
  channel filter) and calls `EventQueue.push_message`, which validates the bytes, counts
  junk and never waits for the audio thread. With ALSA, several threads produce, so the
  push is serialised on a `threading.Lock` that only these MIDI callbacks take; the audio
  thread (the consumer) never touches it.
* A watcher thread polls the sources every `poll_interval` seconds: it connects or opens
  sources that appeared and forgets or closes those that vanished. It never touches the
  queue. The libjack calls release the GIL, so they cannot stall a Python audio callback.
* python-rtmidi holds the GIL while it talks to the JACK server, and the server may wait
  for a process cycle that a running Python audio callback cannot finish without the GIL.
  Construct `MidiInput` before starting the `AudioStream`, and stop it after the stream.

`channel` filters in the callback (integer compares only), before the queue. The MIDI
instrument has its own `channel` parameter, which also applies to rendered MIDI files;
use one of the two (the CLI leaves this one at None, every channel). rtmidi itself drops
SysEx, clock, time code and active sensing (`ignore_types`), so those never reach the
queue and are not counted as refused.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import threading
import time
from collections.abc import Sequence

import rtmidi

from timbrel.engine.errors import TimbrelError
from timbrel.engine.io.thread_names import name_native_thread
from timbrel.engine.realtime.events import EventQueue

_BACKENDS = {"jack": rtmidi.API_UNIX_JACK, "alsa": rtmidi.API_LINUX_ALSA}
_HINTS = {
    "alsa": "load the ALSA sequencer (`sudo modprobe snd-seq`) or use the JACK backend",
    "jack": "start a JACK server (e.g. `jackd -d alsa`) or use the ALSA backend",
}
_NO_MIDI = ("no MIDI system available: start a JACK server (e.g. `jackd -d alsa`) "
            "or load the ALSA sequencer (`sudo modprobe snd-seq`)")
_JACK_NO_START_SERVER = 0x01
_JACK_PORT_IS_INPUT = 0x1
JACK_PORT_IS_OUTPUT = 0x2
_MIDI_TYPE = b"8 bit raw midi"
_DRAIN_S = 0.05


def _has_alsa_sequencer() -> bool:
    return os.path.exists("/dev/snd/seq")


class JackPatchbay:
    """A portless JACK client that lists and connects ports; every call releases the GIL."""

    def __init__(self, name: str):
        path = ctypes.util.find_library("jack") or "libjack.so.0"
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            raise RuntimeError("libjack is missing") from None
        c_void_p, c_char_p, c_int = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
        lib.jack_client_open.restype = c_void_p
        lib.jack_client_open.argtypes = [c_char_p, c_int, ctypes.POINTER(c_int)]
        lib.jack_client_close.argtypes = [c_void_p]
        lib.jack_get_ports.restype = ctypes.POINTER(c_char_p)
        lib.jack_get_ports.argtypes = [c_void_p, c_char_p, c_char_p, ctypes.c_ulong]
        lib.jack_port_by_name.restype = c_void_p
        lib.jack_port_by_name.argtypes = [c_void_p, c_char_p]
        lib.jack_port_get_all_connections.restype = ctypes.POINTER(c_char_p)
        lib.jack_port_get_all_connections.argtypes = [c_void_p, c_void_p]
        lib.jack_connect.argtypes = [c_void_p, c_char_p, c_char_p]
        lib.jack_disconnect.argtypes = [c_void_p, c_char_p, c_char_p]
        lib.jack_free.argtypes = [c_void_p]
        self._lib = lib
        status = c_int(0)
        self._client = lib.jack_client_open(name.encode(), _JACK_NO_START_SERVER, ctypes.byref(status))
        if not self._client:
            raise RuntimeError("no JACK server")

    def _names(self, array) -> list[str]:
        names = []
        if array:
            i = 0
            while array[i]:
                names.append(array[i].decode(errors="replace"))
                i += 1
            self._lib.jack_free(array)
        return names

    def midi_ports(self, flags: int) -> list[str]:
        return self._names(self._lib.jack_get_ports(self._client, None, _MIDI_TYPE, flags))

    def connections(self, port: str) -> list[str]:
        handle = self._lib.jack_port_by_name(self._client, port.encode())
        if not handle:
            return []
        return self._names(self._lib.jack_port_get_all_connections(self._client, handle))

    def connect(self, source: str, destination: str) -> bool:
        """True when connected now or already (EEXIST)."""
        return self._lib.jack_connect(self._client, source.encode(), destination.encode()) in (0, 17)

    def disconnect(self, source: str, destination: str) -> None:
        self._lib.jack_disconnect(self._client, source.encode(), destination.encode())

    def close(self) -> None:
        if self._client:
            self._lib.jack_client_close(self._client)
            self._client = None


def open_api(backend: str, name: str, kind: type = rtmidi.MidiIn):
    """Return `(backend, port)`, `port` a `kind` (python-rtmidi's MidiIn or MidiOut), for "auto"
    (ALSA, else JACK), "alsa" or "jack"; else a one-line TimbrelError."""
    if backend not in ("auto", *_BACKENDS):
        raise TimbrelError(f"unknown MIDI backend {backend!r}; use auto, alsa or jack")
    compiled = rtmidi.get_compiled_api()
    if backend == "auto":
        for candidate in ("alsa", "jack"):
            if _BACKENDS[candidate] not in compiled or (candidate == "alsa" and not _has_alsa_sequencer()):
                continue
            try:
                return candidate, kind(_BACKENDS[candidate], name=name)
            except rtmidi.RtMidiError:
                continue
        raise TimbrelError(_NO_MIDI)
    if _BACKENDS[backend] not in compiled:
        raise TimbrelError(f"python-rtmidi was built without {backend.upper()} support; use another MIDI backend")
    if backend == "alsa" and not _has_alsa_sequencer():
        raise TimbrelError(f"no ALSA sequencer (/dev/snd/seq): {_HINTS['alsa']}")
    try:
        return backend, kind(_BACKENDS[backend], name=name)
    except rtmidi.RtMidiError:
        raise TimbrelError(f"cannot open MIDI through {backend.upper()}: {_HINTS[backend]}") from None


def list_midi_inputs(backend: str = "auto") -> list[str]:
    """Names of the MIDI sources `MidiInput` can take (for JACK: other clients' MIDI output ports)."""
    if backend == "jack" or (backend == "auto" and not _has_alsa_sequencer()):
        try:
            patchbay = JackPatchbay("timbrel-list")
        except RuntimeError:
            message = _NO_MIDI if backend == "auto" else f"cannot open MIDI through JACK: {_HINTS['jack']}"
            raise TimbrelError(message) from None
        try:
            return patchbay.midi_ports(JACK_PORT_IS_OUTPUT)
        finally:
            patchbay.close()
    _, probe = open_api(backend, "timbrel-list")
    try:
        return list(probe.get_ports())
    finally:
        probe.delete()


class MidiInput:
    """Feeds channel voice messages from a virtual port and from other MIDI sources into `queue`.

    `ports`: None takes every source, `[]` only the virtual port, otherwise the sources whose
    names contain one of the strings (case-insensitive). Sources that appear later are taken
    within `poll_interval` seconds. Ports of clients whose names start with `virtual_name`
    (this one's included) are never taken. `channel`: 1–16 keeps only that channel.

    Construction opens everything and raises `TimbrelError` when no MIDI system can be
    reached; `stop()` closes it. `virtual_port` is the virtual port's full name (JACK),
    `open_ports` the sources taken now.
    """

    def __init__(
        self,
        queue: EventQueue,
        ports: Sequence[str] | None = None,
        backend: str = "auto",
        virtual_name: str = "timbrel",
        channel: int | None = None,
        poll_interval: float = 0.5,
    ):
        if channel is not None and not (isinstance(channel, int) and 1 <= channel <= 16):
            raise TimbrelError(f"MIDI channel must be 1 to 16, not {channel!r}")
        if isinstance(ports, str):
            ports = [ports]
        self.queue = queue
        self.virtual_name = virtual_name
        self.poll_interval = float(poll_interval)
        self._patterns = None if ports is None else [p.lower() for p in ports]
        self._channel = -1 if channel is None else channel - 1
        self._push_lock = threading.Lock()
        self._closing = False
        self._stopped = False
        self._patchbay: JackPatchbay | None = None
        self._lister: rtmidi.MidiIn | None = None
        self._opened: dict[str, rtmidi.MidiIn | None] = {}
        self.open_ports: tuple[str, ...] = ()
        """Sources taken now (replaced whole by the watcher; safe to read from any thread)."""
        self.scan_errors = 0
        """Source scans that failed (e.g. the JACK server went away)."""
        self.last_scan_error: Exception | None = None
        self.backend, self._virtual = open_api(backend, virtual_name)
        self.virtual_port = f"{virtual_name}:{virtual_name}"
        self._port_found = False
        try:
            self._virtual.ignore_types(sysex=True, timing=True, active_sense=True)
            self._virtual.set_callback(self._on_message)
            if self.backend == "jack":
                self._patchbay = JackPatchbay(f"{virtual_name}-ports")
                before = set(self._patchbay.midi_ports(_JACK_PORT_IS_INPUT))
            self._virtual.open_virtual_port(virtual_name)
            if self._patchbay is not None:
                self.virtual_port = self._find_virtual_port(before)
                self._port_found = True
            else:
                self._lister = rtmidi.MidiIn(self._api, name=f"{virtual_name}-scan")
            self._scan()
        except (rtmidi.RtMidiError, RuntimeError) as err:
            self._release()
            raise TimbrelError(f"cannot open MIDI ports through {self.backend.upper()}: {err}") from None
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="timbrel-midi-ports", daemon=True)
        self._watcher.start()

    @property
    def _api(self) -> int:
        return _BACKENDS[self.backend]

    def _on_message(self, event, _data=None) -> None:
        """rtmidi callback, on the backend's thread: filter the channel, then push."""
        if self._closing:
            return
        message = event[0]
        if self._channel >= 0 and message and 0x80 <= message[0] < 0xF0 and message[0] & 0x0F != self._channel:
            return
        with self._push_lock:
            self.queue.push_message(message)

    def _find_virtual_port(self, before: set[str]) -> str:
        own = re.compile(rf"{re.escape(self.virtual_name)}(-\d+)?:{re.escape(self.virtual_name)}")
        new = [p for p in self._patchbay.midi_ports(_JACK_PORT_IS_INPUT) if p not in before and own.fullmatch(p)]
        if len(new) != 1:
            raise RuntimeError(f"cannot find the virtual port among {new}")
        return new[0]

    def _wanted(self, name: str) -> bool:
        if name.split(":", 1)[0].lower().startswith(self.virtual_name.lower()):
            return False
        if self._patterns is None:
            return True
        lowered = name.lower()
        return any(p in lowered for p in self._patterns)

    def _scan(self) -> None:
        """Take sources that appeared, drop those that vanished (watcher thread, or before it starts)."""
        if self._patchbay is not None:
            present = {n for n in self._patchbay.midi_ports(JACK_PORT_IS_OUTPUT) if self._wanted(n)}
            for name in [n for n in self._opened if n not in present]:
                del self._opened[name]
            for name in sorted(present - self._opened.keys()):
                if self._patchbay.connect(name, self.virtual_port):
                    self._opened[name] = None
        else:
            present = {n for n in self._lister.get_ports() if self._wanted(n)}
            for name in [n for n in self._opened if n not in present]:
                self._close_midi_in(self._opened.pop(name))
            for name in sorted(present - self._opened.keys()):
                self._open_alsa(name)
        self.open_ports = tuple(sorted(self._opened))

    def _open_alsa(self, name: str) -> None:
        midi_in = rtmidi.MidiIn(self._api, name=f"{self.virtual_name}-in")
        try:
            names = midi_in.get_ports()
            if name not in names:
                midi_in.delete()
                return
            midi_in.ignore_types(sysex=True, timing=True, active_sense=True)
            midi_in.set_callback(self._on_message)
            midi_in.open_port(names.index(name), name="in")
        except BaseException:
            midi_in.delete()
            raise
        self._opened[name] = midi_in

    @staticmethod
    def _close_midi_in(midi_in: rtmidi.MidiIn) -> None:
        try:
            midi_in.close_port()
        finally:
            midi_in.delete()

    def _watch(self) -> None:
        name_native_thread()
        while not self._stop.wait(self.poll_interval):
            try:
                self._scan()
            except Exception as err:
                self.scan_errors += 1
                self.last_scan_error = err

    def _release(self) -> None:
        """Cut every source off, let in-flight callbacks finish, then free the ports and clients."""
        if self._patchbay is not None and self._port_found:
            for source in self._patchbay.connections(self.virtual_port):
                self._patchbay.disconnect(source, self.virtual_port)
        time.sleep(_DRAIN_S)
        self._closing = True
        time.sleep(_DRAIN_S)
        for midi_in in [*self._opened.values(), self._virtual]:
            if midi_in is not None:
                self._close_midi_in(midi_in)
        if self._lister is not None:
            self._lister.delete()
        if self._patchbay is not None:
            self._patchbay.close()
        self._opened.clear()
        self.open_ports = ()

    def stop(self) -> None:
        """Stop the watcher, close every port and free the backend clients. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        self._watcher.join()
        self._release()

    def __enter__(self) -> MidiInput:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
