"""Audio output (and optional input) through PortAudio, preferring JACK when a server runs.

Threads:

* PortAudio calls the stream callback on its audio thread (for JACK: the process thread of
  this program's JACK client). `AudioStream`'s wrapper there calls the engine's callback
  with views of PortAudio's buffers, and otherwise only reads the clock and updates int
  and float counters: it allocates no arrays, takes no locks, does no I/O or logging, and
  never lets an exception out (one would stop the stream for good). When the engine's
  callback raises, the block is silenced and the error counted.
* The counters are written by the audio thread only and read by anyone: each is a single
  attribute, and CPython reads and writes an attribute atomically. `stats()` copies them.
* Everything else (device queries, opening, starting, closing, `refresh_devices`) runs on
  the caller's thread. sounddevice releases the GIL inside PortAudio, so none of it can
  stall the audio thread; python-rtmidi does not, hence `timbrel.engine.io.midi`'s rule: open the
  `MidiInput` before starting the stream, stop it after stopping the stream.

PortAudio enumerates its host APIs when it initialises, so a JACK server started after
that is invisible until `refresh_devices()` re-initialises it; `AudioStream` and
`list_audio_devices` do that themselves when JACK is missing and none of their streams is
open. The JACK client is named `JACK_CLIENT_NAME`.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter_ns

import numpy as np

from timbrel.engine.errors import TimbrelError
from timbrel.engine.realtime.stages import TIMES

try:
    import sounddevice as sd
except OSError as _err:
    sd = None
    _IMPORT_ERROR = str(_err)

JACK_HOST_API = "JACK Audio Connection Kit"
JACK_CLIENT_NAME = "timbrel-audio"
NO_OUTPUT = ("no audio output found; start JACK (e.g. `jackd -d alsa`) "
             "or render to a file with `timbrel render` instead")

Callback = Callable[[np.ndarray | None, np.ndarray], None]

_state_lock = threading.Lock()
_open_streams = 0
_named = False
_client_name_buffer = ctypes.create_string_buffer(JACK_CLIENT_NAME.encode())


def _require_portaudio():
    if sd is None:
        raise TimbrelError(f"PortAudio is missing ({_IMPORT_ERROR}); install libportaudio2")
    return sd


def _jack_index() -> int | None:
    for i, api in enumerate(sd.query_hostapis()):
        if api["name"] == JACK_HOST_API:
            return i
    return None


def refresh_devices() -> None:
    """Re-initialise PortAudio so devices and host APIs (e.g. a JACK server started since) are seen anew.

    Names PortAudio's JACK client `JACK_CLIENT_NAME`. Refused while an `AudioStream` is open,
    since re-initialising closes every stream.
    """
    global _named
    _require_portaudio()
    with _state_lock:
        if _open_streams:
            raise RuntimeError("refresh_devices() would close the open audio stream; close it first")
        try:
            ctypes.CDLL(sd._libname).PaJack_SetClientName(_client_name_buffer)
        except (OSError, AttributeError):
            pass
        sd._terminate()
        sd._initialize()
        _named = True


def _ensure_current() -> None:
    """Refresh once per process (to name the JACK client), and again whenever JACK is missing."""
    if _open_streams:
        return
    if not _named or _jack_index() is None:
        refresh_devices()


@dataclass(frozen=True)
class AudioDevice:
    """One PortAudio device; `index` is what `AudioStream` accepts besides a name."""

    index: int
    name: str
    host_api: str
    inputs: int
    outputs: int
    default_sample_rate: float
    default_output: bool
    default_input: bool


def list_audio_devices() -> list[AudioDevice]:
    """Every device PortAudio sees, JACK's included when a server runs."""
    _require_portaudio()
    _ensure_current()
    apis = sd.query_hostapis()
    devices = []
    for d in sd.query_devices():
        api = apis[d["hostapi"]]
        devices.append(AudioDevice(d["index"], d["name"], api["name"], d["max_input_channels"],
                                   d["max_output_channels"], d["default_samplerate"],
                                   api["default_output_device"] == d["index"],
                                   api["default_input_device"] == d["index"]))
    return devices


def _find_device(spec: int | str | None, kind: str, channels: int) -> dict:
    """Resolve a device by index, name (exact, else case-insensitive substring) or default; JACK first."""
    key = f"max_{kind}_channels"
    devices = [d for d in sd.query_devices() if d[key] > 0]
    jack = _jack_index()
    by_jack = sorted(devices, key=lambda d: d["hostapi"] != jack)
    if spec is None:
        if not devices:
            if kind == "output":
                raise TimbrelError(NO_OUTPUT)
            raise TimbrelError("no audio input found; start JACK (e.g. `jackd -d alsa`) or play from MIDI")
        if jack is not None:
            default = sd.query_hostapis(jack)[f"default_{kind}_device"]
        else:
            try:
                default = sd.query_devices(kind=kind)["index"]
            except (sd.PortAudioError, ValueError):
                default = -1
        found = next((d for d in devices if d["index"] == default), by_jack[0])
    elif isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        index = int(spec)
        found = next((d for d in devices if d["index"] == index), None)
        if found is None:
            raise TimbrelError(f"no audio {kind} device number {index}; run `timbrel devices` to list them")
    else:
        wanted = spec.lower()
        exact = [d for d in by_jack if d["name"].lower() == wanted]
        partial = [d for d in by_jack if wanted in d["name"].lower()]
        if not (exact or partial):
            raise TimbrelError(f"no audio {kind} device matches {spec!r}; run `timbrel devices` to list them")
        found = (exact or partial)[0]
    if found[key] < channels:
        raise TimbrelError(f"audio {kind} {found['name']!r} has {found[key]} channel(s), {channels} needed")
    return found


@dataclass(frozen=True)
class AudioStats:
    """A snapshot of `AudioStream`'s counters."""

    blocks: int
    xruns: int
    input_overflows: int
    input_underflows: int
    output_underflows: int
    output_overflows: int
    late_callbacks_wall_clock: int
    callback_errors: int
    max_callback_ns: int
    last_callback_ns: int
    max_start_late_ns: int
    """The latest any callback began against the server's cycle, ns (`CycleSchedule`)."""


class CycleSchedule:
    """When each audio callback is due, from the callbacks themselves: how late each one began.

    A server's cycles come one block period apart. The schedule starts at the first callback
    and advances a period per callback. A callback earlier than due moves the schedule to it,
    so the schedule follows the earliest the server and the scheduler ever deliver, and
    lateness is what a callback waited beyond that: to be scheduled, or for the GIL.

    A server restarts its cycles at another phase after an xrun (JACK's timed drivers do), so
    a callback that reports one (`restart`) starts the schedule again, as does one more than
    `RESCHEDULE_BLOCKS` late (cycles were skipped; it is counted first). Each late callback
    also pulls the schedule 1/`FOLLOW` of the way towards itself, so a server whose clock runs
    a little slower than its nominal period is followed too.
    """

    FOLLOW = 256
    RESCHEDULE_BLOCKS = 4

    def __init__(self) -> None:
        self.due_ns: int | None = None

    def late(self, start_ns: int, period_ns: int, restart: bool = False) -> int:
        """How late a callback that began at `start_ns` (`time.perf_counter_ns`) is, ns, for a
        block of `period_ns`; advances the schedule to the next cycle. `restart`: the callback
        reported an xrun, so the cycles before it say nothing of when it was due (0 returned)."""
        due = start_ns if self.due_ns is None or restart else self.due_ns
        late = start_ns - due
        if late < 0:
            due, late = start_ns, 0
        elif late > self.RESCHEDULE_BLOCKS * period_ns:
            due = start_ns
        else:
            due += late // self.FOLLOW
        self.due_ns = due + period_ns
        return late


class AudioStream:
    """A PortAudio stream that calls `callback(in_block, out_block)` once per block.

    `in_block`: float32 `[n]` (first input channel) when `use_input`, else None.
    `out_block`: float32 `[n, channels]` to fill; n is `block_size` samples unless the host
    forces another size. Devices: index, name (case-insensitive substring; JACK's preferred)
    or None for the default (JACK's when a server runs). `latency`: "low", "high" or seconds.

    Counters (audio thread writes, any thread reads): `blocks`, `xruns` (blocks flagged by
    PortAudio with an input/output under- or overflow; JACK reports every server xrun this
    way), the per-flag counts, `late_callbacks_wall_clock` (callbacks that took longer than the block lasts),
    `callback_errors` and `last_error` (the engine's callback raised; that block is silent),
    `max_callback_ns`, `last_callback_ns`, and `max_start_late_ns`: the latest a callback began
    against the server's cycle (each callback's lateness also goes to the stage ring,
    `timbrel.engine.realtime.stages`, column `start`). A callback that begins late waited to be
    scheduled or for the GIL.
    """

    def __init__(
        self,
        callback: Callback,
        sample_rate: int = 48000,
        block_size: int = 128,
        output_device: int | str | None = None,
        input_device: int | str | None = None,
        channels: int = 2,
        latency: str | float = "low",
        use_input: bool = False,
    ):
        global _open_streams
        _require_portaudio()
        if channels not in (1, 2):
            raise TimbrelError(f"audio output needs 1 or 2 channels, not {channels}")
        self._callback = callback
        self.blocks = 0
        self.xruns = 0
        self.input_overflows = 0
        self.input_underflows = 0
        self.output_underflows = 0
        self.output_overflows = 0
        self.late_callbacks_wall_clock = 0
        self.callback_errors = 0
        self.last_error: BaseException | None = None
        self.max_callback_ns = 0
        self.last_callback_ns = 0
        self.max_start_late_ns = 0
        self._schedule = CycleSchedule()
        if isinstance(latency, str) and latency not in ("low", "high"):
            try:
                latency = float(latency)
            except ValueError:
                raise TimbrelError(f"latency must be 'low', 'high' or seconds, not {latency!r}") from None
        self._ns_per_sample = 1e9 / sample_rate
        _ensure_current()
        out_dev = _find_device(output_device, "output", channels)
        in_dev = _find_device(input_device, "input", 1) if use_input else None
        self.output_device: str = out_dev["name"]
        self.input_device: str | None = in_dev["name"] if in_dev else None
        self.host_api: str = sd.query_hostapis(out_dev["hostapi"])["name"]
        common = {"samplerate": sample_rate, "blocksize": block_size, "dtype": "float32", "latency": latency}
        try:
            if use_input:
                self._stream = sd.Stream(device=(in_dev["index"], out_dev["index"]), channels=(1, channels),
                                         callback=self._duplex, **common)
            else:
                self._stream = sd.OutputStream(device=out_dev["index"], channels=channels,
                                               callback=self._output, **common)
        except sd.PortAudioError as err:
            hint = " (a JACK server sets the rate: match jackd -r)" if self.host_api == JACK_HOST_API else ""
            raise TimbrelError(f"cannot open audio {self.output_device!r} at {sample_rate} Hz, "
                               f"{block_size} samples: {err}{hint}") from None
        with _state_lock:
            _open_streams += 1
        self._closed = False
        self._fresh = True
        self.sample_rate: float = self._stream.samplerate
        self.block_size: int = self._stream.blocksize
        self.latency: float | tuple[float, float] = self._stream.latency
        """Reported by PortAudio, in seconds: output latency, or (input, output) when duplex."""
        self._ns_per_sample = 1e9 / self.sample_rate

    def _flags(self, status) -> None:
        if self._fresh:
            self._fresh = False
            return
        xrun = False
        if status.input_overflow:
            self.input_overflows += 1
            xrun = True
        if status.input_underflow:
            self.input_underflows += 1
            xrun = True
        if status.output_underflow:
            self.output_underflows += 1
            xrun = True
        if status.output_overflow:
            self.output_overflows += 1
            xrun = True
        if xrun:
            self.xruns += 1

    def _run(self, indata, outdata, frames: int, status, start: int) -> None:
        try:
            late = self._schedule.late(start, int(frames * self._ns_per_sample), restart=bool(status))
            self.max_start_late_ns = max(self.max_start_late_ns, late)
            TIMES.start_late_ns = late
            if status:
                self._flags(status)
            else:
                self._fresh = False
            try:
                self._callback(None if indata is None else indata[:, 0], outdata)
            except BaseException as err:
                outdata.fill(0.0)
                self.callback_errors += 1
                self.last_error = err
            self.blocks += 1
            elapsed = perf_counter_ns() - start
            self.last_callback_ns = elapsed
            if elapsed > self.max_callback_ns:
                self.max_callback_ns = elapsed
            if elapsed > frames * self._ns_per_sample:
                self.late_callbacks_wall_clock += 1
        except BaseException:
            pass

    def _output(self, outdata, frames, _time, status) -> None:
        self._run(None, outdata, frames, status, perf_counter_ns())

    def _duplex(self, indata, outdata, frames, _time, status) -> None:
        self._run(indata, outdata, frames, status, perf_counter_ns())

    @property
    def active(self) -> bool:
        """True while PortAudio runs the callback."""
        return not self._closed and self._stream.active

    def stats(self) -> AudioStats:
        """The counters, copied (from any thread)."""
        return AudioStats(self.blocks, self.xruns, self.input_overflows, self.input_underflows,
                          self.output_underflows, self.output_overflows, self.late_callbacks_wall_clock, self.callback_errors,
                          self.max_callback_ns, self.last_callback_ns, self.max_start_late_ns)

    def start(self) -> None:
        """Start calling the callback. The first block's xrun flags are ignored: they predate the stream."""
        self._fresh = True
        self._schedule = CycleSchedule()
        self._stream.start()

    def stop(self) -> None:
        """Stop after the current block."""
        if not self._closed:
            self._stream.stop()

    def close(self) -> None:
        """Stop and release the device. Idempotent."""
        global _open_streams
        if self._closed:
            return
        self._closed = True
        try:
            self._stream.close()
        finally:
            with _state_lock:
                _open_streams -= 1

    def __enter__(self) -> AudioStream:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()
