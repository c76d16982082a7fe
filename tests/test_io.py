"""Live audio and MIDI I/O against a real JACK server (dummy backend): no mocks."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import wait_until
from timbrel.engine.errors import TimbrelError
from timbrel.engine.io.audio import JACK_CLIENT_NAME, JACK_HOST_API, AudioStream, CycleSchedule, list_audio_devices
from timbrel.engine.io.midi import MidiInput, list_midi_inputs
from timbrel.engine.realtime.events import EventQueue

# Without an ALSA sequencer (as on CI), "auto" must fall back to JACK; with one it would pick ALSA.
MIDI_BACKEND = "jack" if os.path.exists("/dev/snd/seq") else "auto"


class Sine:
    """A preallocated sine source, phase kept across blocks."""

    def __init__(self, frequency: float, sample_rate: int, max_block: int = 4096, amplitude: float = 0.5):
        self.step = 2 * np.pi * frequency / sample_rate
        self.phase = 0.0
        self.amplitude = amplitude
        self.ramp = np.arange(max_block) * self.step
        self.work = np.empty(max_block)

    def __call__(self, _in_block, out_block: np.ndarray) -> None:
        n = out_block.shape[0]
        work = self.work[:n]
        np.add(self.ramp[:n], self.phase, out=work)
        np.sin(work, out=work)
        work *= self.amplitude
        for channel in range(out_block.shape[1]):
            out_block[:, channel] = work
        self.phase = (self.phase + n * self.step) % (2 * np.pi)


def playback_sources(peer) -> list[str]:
    """The stream's output ports: PortAudio connects them to the system playback ports."""
    playback = ["system:playback_1", "system:playback_2"]
    assert wait_until(lambda: all(peer.connections(p) for p in playback), timeout=5.0)
    return [peer.connections(p)[0] for p in playback]


def record_stream(stream: AudioStream, peer, seconds: float) -> np.ndarray:
    """Start `stream`, record `seconds` of its output (of audio, however long that takes), return `[2, n]`."""
    stream.start()
    peer.connect_audio_from(playback_sources(peer))
    time.sleep(0.05)
    samples = int(seconds * peer.sample_rate)
    peer.start_recording(seconds)
    assert wait_until(lambda: peer.recorded() >= samples, timeout=10 * seconds + 5, interval=0.05)
    audio = peer.stop_recording()
    first = np.flatnonzero(audio[0])
    return audio[:, first[0] if first.size else 0 :]


def test_audio_stream_plays_a_gapless_440_hz_sine_into_jack(jack_server, jack_peer):
    xruns_before = jack_server.xruns()
    stream = AudioStream(Sine(440.0, jack_server.sample_rate), sample_rate=48000, block_size=128, channels=2)
    try:
        assert stream.host_api == JACK_HOST_API
        assert stream.sample_rate == 48000 and stream.block_size == 128
        assert 0 <= stream.latency < 0.05
        audio = record_stream(stream, jack_peer, 2.0)
        assert all(p.startswith(f"{JACK_CLIENT_NAME}:") for p in playback_sources(jack_peer))
        assert stream.active
        time.sleep(0.05)
        stats = stream.stats()
    finally:
        stream.close()
    rate = jack_server.sample_rate
    assert audio.shape[1] > 1.9 * rate
    assert np.array_equal(audio[0], audio[1])
    y = audio[0].astype(np.float64)
    assert 0.49 < np.abs(y).max() <= 0.5
    i = np.flatnonzero((y[:-1] < 0) & (y[1:] >= 0))
    crossings = i + y[i] / (y[i] - y[i + 1])
    pitch = (len(crossings) - 1) * rate / (crossings[-1] - crossings[0])
    assert abs(pitch - 440.0) < 1.0, pitch
    # A sine obeys y[n+1] + y[n-1] = 2 cos(w) y[n]; a missing or repeated block breaks it.
    residual = y[2:] + y[:-2] - 2 * np.cos(2 * np.pi * 440.0 / rate) * y[1:-1]
    breaks = np.flatnonzero(np.abs(residual) > 1e-3)
    assert breaks.size == 0, f"discontinuities at samples {breaks[:10]}"
    assert stats.blocks * 128 >= audio.shape[1]
    assert stats.callback_errors == 0
    # The dummy driver, not real-time on a shared machine, may itself oversleep and report an
    # xrun to every client; the wrapper must report no xrun the server did not.
    server_xruns = jack_server.xruns() - xruns_before
    assert stats.xruns <= server_xruns, (stats, server_xruns)
    assert 0 < stats.max_callback_ns and 0 <= stats.late_callbacks_wall_clock <= stats.blocks


class Raising:
    """Writes 0.25 into every block, then raises on every second one."""

    def __init__(self):
        self.calls = 0

    def __call__(self, _in_block, out_block: np.ndarray) -> None:
        self.calls += 1
        out_block.fill(0.25)
        if self.calls % 2 == 0:
            raise ValueError("engine fault")


def test_audio_stream_survives_a_raising_callback_with_silence(jack_server, jack_peer):
    callback = Raising()
    stream = AudioStream(callback, channels=2)
    try:
        audio = record_stream(stream, jack_peer, 0.5)
        blocks = stream.blocks
        assert wait_until(lambda: stream.blocks > blocks + 10)
        assert stream.active
    finally:
        stream.close()
    assert stream.callback_errors == callback.calls // 2 and stream.blocks == callback.calls
    assert isinstance(stream.last_error, ValueError)
    values = np.unique(audio)
    assert set(values.tolist()) == {0.0, 0.25}
    assert np.count_nonzero(audio[0] == 0.0) > 0.3 * audio.shape[1]


def test_missing_devices_and_bad_settings_are_one_line_errors(jack_server):
    def one_line(make) -> str:
        with pytest.raises(TimbrelError) as caught:
            make()
        message = str(caught.value)
        assert message and "\n" not in message
        return message

    def silent(_in_block, out_block):
        out_block.fill(0)

    assert "no-such-card" in one_line(lambda: AudioStream(silent, output_device="no-such-card"))
    assert "no-such-mic" in one_line(lambda: AudioStream(silent, use_input=True, input_device="no-such-mic"))
    assert "999" in one_line(lambda: AudioStream(silent, output_device=999))
    assert "jackd -r" in one_line(lambda: AudioStream(silent, sample_rate=44100))
    assert "bogus" in one_line(lambda: MidiInput(EventQueue(), backend="bogus"))
    assert "17" in one_line(lambda: MidiInput(EventQueue(), channel=17))
    if not os.path.exists("/dev/snd/seq"):
        assert "snd-seq" in one_line(lambda: MidiInput(EventQueue(), backend="alsa"))
    assert any(d.host_api == JACK_HOST_API and d.outputs >= 2 for d in list_audio_devices())


def test_no_audio_output_and_no_midi_system_explain_what_to_do(jack_server):
    script = (
        "from timbrel.engine.io.audio import AudioStream\n"
        "from timbrel.engine.io.midi import MidiInput\n"
        "from timbrel.engine.realtime.events import EventQueue\n"
        "from timbrel.engine.errors import TimbrelError\n"
        "for make in (lambda: AudioStream(lambda i, o: None), lambda: MidiInput(EventQueue())):\n"
        "    try:\n"
        "        make()\n"
        "        print('opened')\n"
        "    except TimbrelError as err:\n"
        "        print(err)\n"
    )
    env = dict(os.environ, JACK_DEFAULT_SERVER="timbrel-test-nobody-home", JACK_NO_START_SERVER="1")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    lines = result.stdout.splitlines()
    assert len(lines) == 2, result.stdout + result.stderr
    if not os.path.exists("/dev/snd"):
        assert "no audio output found" in lines[0] and "jackd" in lines[0]
    if not os.path.exists("/dev/snd/seq"):
        assert "JACK" in lines[1] and "snd-seq" in lines[1]


def pop_all(queue: EventQueue) -> list[int]:
    out = np.zeros(queue.capacity, dtype=np.int32)
    return out[: queue.pop_into(out)].tolist()


def open_route(peer, queue: EventQueue, port: str = "out", probe: list[int] | None = None) -> None:
    """Wait until MIDI from the peer's output `port` reaches `queue`, then empty it.

    A JACK connection takes effect at a later process cycle than the call that makes it.
    """
    deadline = time.monotonic() + 3.0
    while not len(queue):
        assert time.monotonic() < deadline, "MIDI from the peer never arrived"
        peer.send(probe or [0x8F, 0, 0], port=port)
        time.sleep(0.02)
    time.sleep(0.05)
    pop_all(queue)


def virtual_port(peer) -> str:
    ports = [p for p in peer.ports(is_midi=True, is_input=True) if p.split(":", 1)[1] == "timbrel"]
    assert len(ports) == 1, ports
    return ports[0]


def test_midi_input_falls_back_to_jack_and_delivers_messages_in_order(jack_server, jack_peer):
    queue = EventQueue(256)
    midi = MidiInput(queue, ports=[], backend=MIDI_BACKEND)
    try:
        assert midi.backend == "jack"
        port = virtual_port(jack_peer)
        assert "timbrel" in port
        jack_peer.connect_midi_to(port)
        open_route(jack_peer, queue)
        jack_peer.send(
            [0x90, 60, 100],    # note on, channel 1
            [0xB0, 1, 64],      # mod wheel
            [0xE0, 0x00, 0x40],  # pitch bend, centre
            [0xE3, 0x7F, 0x7F],  # pitch bend, top, channel 4
            [0xB0, 64, 127],    # sustain
            [0x80, 60, 0],      # note off
            [0xA0, 62, 33],     # poly pressure
            [0xC5, 7],          # program change, channel 6
            [0xD0, 90],         # channel pressure
            [0x90, 62, 0],      # note on with velocity 0
        )
        expected = [
            0x90 | 60 << 8 | 100 << 16,
            0xB0 | 1 << 8 | 64 << 16,
            0xE0 | 0x00 << 8 | 0x40 << 16,
            0xE3 | 0x7F << 8 | 0x7F << 16,
            0xB0 | 64 << 8 | 127 << 16,
            0x80 | 60 << 8,
            0xA0 | 62 << 8 | 33 << 16,
            0xC5 | 7 << 8,
            0xD0 | 90 << 8,
            0x90 | 62 << 8,
        ]
        assert wait_until(lambda: len(queue) >= len(expected))
        time.sleep(0.05)
        assert pop_all(queue) == expected
        assert queue.refused == 0 and queue.dropped == 0
    finally:
        midi.stop()
    assert not [p for p in jack_peer.ports(is_midi=True) if p.startswith("timbrel")]


def test_midi_junk_is_refused_and_counted_while_valid_messages_pass(jack_server, jack_peer):
    queue = EventQueue(256)
    midi = MidiInput(queue, ports=[], backend=MIDI_BACKEND)
    try:
        jack_peer.connect_midi_to(virtual_port(jack_peer))
        open_route(jack_peer, queue)
        junk = [
            b"\xde\xad\xbe\xef\x00\x01\x02",  # garbage
            b"\x12\x34",                  # lone data bytes
            b"\x40",
            b"\x90",                      # truncated note on
            b"\x90\x40",
            b"\xc0",                      # truncated program change
            b"\x90\x40\x64\x22",          # one byte too many
            b"\x90\xff\x01",              # data byte >= 128
            b"\xf2\x01\x02",              # system common
            b"\xf7",                      # stray end of SysEx
        ]
        sysex = bytes([0xF0, 0x7E, 0x7F, 0x06, 0x01, 0xF7])  # dropped by rtmidi itself, never counted
        timing = [b"\xf8", b"\xfe"]  # clock and active sensing, likewise
        sent, expected = [], []
        for k, bad in enumerate([*junk, sysex, *timing]):
            note = 40 + k
            sent += [bytes([0x90, note, 100]), bad]
            expected.append(0x90 | note << 8 | 100 << 16)
        sent.append(bytes([0x80, 99, 0]))
        expected.append(0x80 | 99 << 8)
        jack_peer.send(*sent)
        assert wait_until(lambda: len(queue) >= len(expected) and queue.refused >= len(junk))
        time.sleep(0.05)
        assert pop_all(queue) == expected
        assert queue.refused == len(junk)
        assert queue.dropped == 0
    finally:
        midi.stop()


def test_midi_channel_filter_keeps_one_channel(jack_server, jack_peer):
    queue = EventQueue(64)
    midi = MidiInput(queue, ports=[], backend=MIDI_BACKEND, channel=2)
    try:
        jack_peer.connect_midi_to(virtual_port(jack_peer))
        open_route(jack_peer, queue, probe=[0x81, 0, 0])
        jack_peer.send([0x90, 60, 100], [0x91, 61, 100], [0xB0, 7, 1], [0xB1, 7, 2], [0x12], [0x81, 61, 0])
        assert wait_until(lambda: len(queue) >= 3 and queue.refused >= 1)
        time.sleep(0.05)
        assert pop_all(queue) == [0x91 | 61 << 8 | 100 << 16, 0xB1 | 7 << 8 | 2 << 16, 0x81 | 61 << 8]
        assert queue.refused == 1
    finally:
        midi.stop()


def test_midi_sources_are_opened_when_they_appear_and_closed_when_they_vanish(jack_server, jack_peer):
    queue = EventQueue(64)
    midi = MidiInput(queue, ports=None, backend=MIDI_BACKEND, poll_interval=0.25)
    try:
        first = f"{jack_peer.name}:out"
        assert first in midi.open_ports
        assert first in list_midi_inputs(MIDI_BACKEND)
        late = jack_peer.add_midi_output("late")
        assert wait_until(lambda: late in midi.open_ports, timeout=2.0), midi.open_ports
        assert wait_until(lambda: jack_peer.connections(late) == [midi.virtual_port])
        open_route(jack_peer, queue, port="late")
        open_route(jack_peer, queue, port="out")
        jack_peer.send([0x90, 64, 90], port="late")
        jack_peer.send([0x91, 65, 91], port="out")
        assert wait_until(lambda: len(queue) >= 2)
        assert pop_all(queue) == [0x90 | 64 << 8 | 90 << 16, 0x91 | 65 << 8 | 91 << 16]
        jack_peer.remove_midi_output("late")
        assert wait_until(lambda: late not in midi.open_ports, timeout=2.0), midi.open_ports
        assert first in midi.open_ports
        assert midi.scan_errors == 0
    finally:
        midi.stop()
    assert midi.open_ports == ()
    assert not [p for p in jack_peer.ports(is_midi=True) if p.startswith("timbrel")]


def test_midi_input_only_opens_matching_sources(jack_server, jack_peer):
    queue = EventQueue(64)
    jack_peer.add_midi_output("keys")
    midi = MidiInput(queue, ports=["KEYS"], backend=MIDI_BACKEND)
    try:
        assert midi.open_ports == (f"{jack_peer.name}:keys",)
    finally:
        midi.stop()


def test_the_cycle_schedule_measures_how_late_each_callback_began():
    period = 2_666_667
    schedule = CycleSchedule()
    assert [schedule.late(k * period, period) for k in range(3)] == [0, 0, 0]
    # One callback waits half a millisecond; the next comes on time and is not charged for it.
    assert schedule.late(3 * period + 500_000, period) == 500_000
    assert schedule.late(4 * period, period) == 0
    # An xrun, after which the server runs its cycles a millisecond later: the callback that
    # reports it starts the schedule again, and the ones after it are on time.
    assert schedule.late(5 * period + 1_000_000, period, restart=True) == 0
    assert [schedule.late(k * period + 1_000_000, period) for k in range(6, 9)] == [0, 0, 0]
    # A server whose cycles come 5 µs later than its nominal period each: followed, not charged more and more.
    drifting = [schedule.late(k * (period + 5_000) + 1_000_000, period) for k in range(9, 3009)]
    assert max(drifting[-100:]) < 300 * 5_000
    # Cycles skipped: the long wait is counted once, then the schedule starts again from it.
    resumed = 3008 * (period + 5_000) + 1_000_000 + 10 * period
    assert schedule.late(resumed, period) > 4 * period
    assert schedule.late(resumed + period, period) == 0
    # Earlier than due: the schedule moves to it.
    assert schedule.late(resumed + 2 * period - 100_000, period) == 0
    assert schedule.late(resumed + 3 * period - 100_000, period) == 0
