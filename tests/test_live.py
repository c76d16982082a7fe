"""The whole live path on a real JACK server: MIDI in through timbrel's virtual port, audio out."""

from __future__ import annotations

import contextlib
import threading
import time

import numpy as np
import pytest

from tests.conftest import machine_allowance, wait_until
from tests.spectra import assert_partial_series
from tests.test_io import MIDI_BACKEND, playback_sources
from tests.transfer_measures import render_wind, sung_tone
from timbrel.engine.io.audio import JACK_CLIENT_NAME, AudioStream
from timbrel.engine.io.midi import MidiInput
from timbrel.engine.io.midi_out import MidiOutput
from timbrel.engine.realtime.features import estimate_pitch
from timbrel.engine.realtime.host import Engine
from timbrel.engine.realtime.outbox import WRITTEN, MidiOutbox, outbox_push
from timbrel.plugin.chain import Chain
from timbrel.plugin.effects import create_effect
from timbrel.plugin.ensemble import Ensemble, Part
from timbrel.plugin.instrument import MidiInstrument
from timbrel.plugin.model import load_model
from timbrel.plugin.transcribe import transcribe
from timbrel.plugin.transfer import TimbreTransfer
from timbrel.presets import default_model
from timbrel.presets.build import load_preset
from timbrel.session import Session

SR, BLOCK, HOP = 48000, 128, 160


@pytest.fixture(scope="module")
def model():
    return load_model(default_model())


class Logged:
    """The engine's callback, noting (in preallocated memory) the block at which MIDI arrived."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.arrivals = np.full((64, 2), -1, dtype=np.int64)
        self.count = 0

    def __call__(self, inp, out) -> None:
        pending = len(self.engine.events)
        if pending and self.count < self.arrivals.shape[0]:
            self.arrivals[self.count] = self.engine.blocks, pending
            self.count += 1
        self.engine.process(inp, out)


def quiet_instrument(model) -> MidiInstrument:
    instrument = MidiInstrument(model)
    instrument.params.set("reverb_mix", 0.0)
    instrument.params.set("release_s", 0.1)
    return instrument


@pytest.fixture
def live(jack_server, jack_peer, model):
    """timbrel playing the shipped model: engine, MIDI on `timbrel`, audio to JACK, peer wired up."""
    engine = Engine(SR, 2048)
    engine.load(quiet_instrument(model))
    engine.callback = Logged(engine)
    with playing(engine, jack_peer, engine.callback) as stream:
        yield engine, stream, jack_peer


@contextlib.contextmanager
def playing(engine: Engine, peer, callback=None):
    """`engine` playing on JACK (through `callback`, default `engine.process`), its MIDI input on
    `timbrel` and its output wired to `peer`; yields the audio stream."""
    midi = MidiInput(engine.events, ports=[], backend=MIDI_BACKEND)
    stream = AudioStream(callback or engine.process, SR, BLOCK)
    try:
        stream.start()
        peer.connect_midi_to(midi.virtual_port)
        peer.connect_audio_from(playback_sources(peer))
        assert wait_until(lambda: peer.connections(midi.virtual_port), timeout=5.0)
        yield stream
    finally:
        stream.stop()
        stream.close()
        midi.stop()


def until_recorded(peer, samples: int) -> None:
    """Wait until the peer has recorded `samples`: spacing messages in audio time, not in the
    wall-clock time a loaded machine stretches."""
    assert wait_until(lambda: peer.recorded() >= samples, timeout=30.0, interval=0.01)


def record(peer, seconds: float, script) -> tuple[np.ndarray, list[int]]:
    """Record `seconds` while `script(peer)` sends MIDI; returns mono audio and the send positions."""
    peer.start_recording(seconds)
    positions = script(peer)
    assert wait_until(lambda: peer.recorded() >= int(seconds * SR), timeout=10 * seconds + 5, interval=0.05)
    return peer.stop_recording()[0].astype(np.float64), positions


def pitch(audio: np.ndarray) -> float:
    f0, confidence = estimate_pitch(audio.astype(np.float32), SR, HOP)
    assert (confidence > 0).mean() > 0.8
    return float(np.median(f0[confidence > 0]))


def test_a_played_note_sounds_at_its_pitch_within_one_block_plus_one_hop(live):
    engine, stream, peer = live

    def script(p):
        time.sleep(0.2)
        return p.send([0x90, 69, 100])

    audio, at = record(peer, 1.2, script)
    sounding = np.flatnonzero(audio)
    assert at[0] >= 0 and sounding.size
    latency = sounding[0] - at[0]
    assert 0 < latency <= BLOCK + HOP, latency
    assert abs(1200 * np.log2(pitch(audio[at[0] + SR // 5 :]) / 440.0)) < 20
    assert stream.callback_errors == 0 and engine.errors == 0


def test_a_chord_gives_three_partial_series_and_note_off_decays_to_silence(live):
    engine, _, peer = live
    notes = (60, 64, 67)

    def script(p):
        on = p.send(*([0x90, n, 100] for n in notes))
        time.sleep(0.8)
        return on + p.send(*([0x80, n, 0] for n in notes))

    audio, at = record(peer, 1.5, script)
    assert_partial_series(audio[at[0] + SR // 5 : at[3]], SR, notes)
    release = 0.1
    assert np.abs(audio[at[3] + int(release * SR) + 2 * BLOCK + 2 * HOP :]).max() == 0.0
    assert engine.plugin.active_voices == 0


def test_live_capture_equals_the_offline_render_of_the_same_events(live, model):
    engine, _, peer = live
    messages = [[0x90, 62, 90], [0x90, 69, 70], [0xE0, 0x00, 0x50], [0xB0, 1, 100], [0x80, 62, 0], [0x80, 69, 0]]

    def script(p):
        for message in messages:
            time.sleep(0.15)
            p.send(message)
        return []

    audio, _ = record(peer, 1.6, script)
    arrivals = engine.callback.arrivals[: engine.callback.count]
    assert arrivals[:, 1].sum() == len(messages)
    # Replay: the same messages at the same block numbers, through a fresh engine.
    replay = Engine(SR, BLOCK)
    replay.load(quiet_instrument(model))
    blocks = int(arrivals[-1, 0]) + int(0.5 * SR / BLOCK)
    offline = np.zeros((blocks * BLOCK, 2), dtype=np.float32)
    queue = iter(_pack(m) for m in messages)
    arrivals_at = dict(arrivals.tolist())
    for b in range(blocks):
        for _ in range(arrivals_at.get(b, 0)):
            replay.events.push(next(queue))
        replay.process(None, offline[b * BLOCK : (b + 1) * BLOCK])
    live_start = np.flatnonzero(audio)[0]
    offline = offline[:, 0].astype(np.float64)
    offline_start = np.flatnonzero(offline)[0]
    n = min(offline.size - offline_start, audio.size - live_start)
    assert n > SR
    assert np.abs(audio[live_start : live_start + n] - offline[offline_start : offline_start + n]).max() < 1e-6


def _pack(message):
    return message[0] | message[1] << 8 | message[2] << 16


def test_junk_midi_bytes_do_not_stop_the_sound(live):
    engine, _, peer = live
    junk = [[0x45, 0x12], [0xF0, 0x01, 0x02, 0xF7], [0x99], [0x80, 200, 3], [0xFE], [0x3C, 0x40, 0x40]]

    def script(p):
        at = p.send([0x90, 57, 110])
        time.sleep(0.3)
        p.send(*junk)
        time.sleep(0.3)
        return at + p.send([0x90, 64, 110])

    audio, at = record(peer, 1.2, script)
    before = audio[at[0] + SR // 10 : at[0] + SR // 4]
    after = audio[at[1] + SR // 10 :]
    assert np.sqrt(np.mean(after**2)) > 0.5 * np.sqrt(np.mean(before**2)) > 0
    assert engine.events.refused >= 3 and engine.errors == 0
    assert engine.plugin.active_voices == 2


def test_chain_edits_while_playing_on_jack_cause_no_engine_xruns_and_no_dropouts(live, model):
    """Insert, remove, move, bypass and automate effects every 40 ms under a held chord."""
    engine, stream, peer = live
    chain = Chain(quiet_instrument(model), [create_effect(name) for name in ("eq", "compressor", "chorus")])
    engine.load(chain)
    time.sleep(0.1)
    engine.reset_meters()
    rng = np.random.default_rng(7)
    edits = []

    def script(p):
        at = p.send(*([0x90, n, 100] for n in (57, 64, 69)))
        time.sleep(0.4)
        for i in range(60):
            kind = ("insert", "remove", "move", "bypass", "set")[i % 5]
            if kind == "insert" and len(chain) < 6:
                chain.insert(int(rng.integers(0, len(chain) + 1)),
                             create_effect(("delay", "chorus", "gain", "eq")[i % 4]))
            elif kind == "remove" and len(chain) > 2:
                chain.remove(int(rng.integers(0, len(chain))))
            elif kind == "move" and len(chain) > 1:
                chain.move(int(rng.integers(0, len(chain))), int(rng.integers(0, len(chain))))
            elif kind == "bypass" and len(chain):
                slot = chain.slots[int(rng.integers(0, len(chain)))]
                chain.bypass(slot.key, not slot.bypassed)
            elif kind == "set":
                for slot in chain.slots:
                    if slot.effect.name == "eq":
                        chain.set_parameter(f"{slot.key}.peak1_db", rng.uniform(-6.0, 6.0))
                        break
            edits.append(kind)
            chain.collect()
            time.sleep(0.04)
        return at

    audio, at = record(peer, 3.4, script)
    status = engine.status()
    assert status.late_blocks <= machine_allowance(status.blocks) and status.errors == 0 and status.faults == ()
    assert stream.callback_errors == 0
    assert len(edits) == 60
    held = audio[at[0] + SR // 4 : at[0] + 3 * SR]
    window = 5 * SR // 1000
    rms = np.sqrt(np.mean(held[: held.size // window * window].reshape(-1, window) ** 2, axis=1))
    assert rms.min() > 0, "silence during the edits"
    # Effects change the level a little (the compressor, the delay's echoes); a dropout is a
    # dip of more than 10 dB below both its neighbourhoods, 50 ms either side.
    for i in range(10, rms.size - 10):
        around = min(np.median(rms[i - 10 : i]), np.median(rms[i + 1 : i + 11]))
        assert rms[i] > 0.3 * around, f"a dropout at {i * window / SR:.3f} s into the chord"


def test_mpe_on_jack_bends_and_presses_one_note_of_a_held_chord(live):
    """A real MPE stream over JACK MIDI: the configuration message, a chord on three member
    channels, then a semitone bend on one channel and full pressure on another."""
    engine, _, peer = live
    engine.plugin.params.set("style_amount", 0.0)  # no swell or wander: a held note's level is steady
    chord = ((1, 60), (2, 64), (3, 67))
    up_one = 8192 + round(8192 / 48)

    def script(p):
        p.send([0xB0, 101, 0], [0xB0, 100, 6], [0xB0, 6, 15])
        at = p.send(*([0x90 | ch, note, 100] for ch, note in chord))
        until_recorded(p, at[0] + int(0.6 * SR))
        at += p.send([0xE2, up_one & 0x7F, up_one >> 7], [0xD3, 127])
        until_recorded(p, at[3] + int(0.6 * SR))
        return at + p.send(*([0x80 | ch, note, 0] for ch, note in chord))

    audio, at = record(peer, 1.6, script)

    def level(start, stop, note):
        x = audio[start:stop]
        window = np.hanning(x.size)
        spectrum = np.abs(np.fft.rfft(x * window)) / window.sum()  # a sinusoid's amplitude, whatever the span
        freqs = np.fft.rfftfreq(x.size, 1 / SR)
        return 20 * np.log10(spectrum[np.abs(freqs - 440 * 2 ** ((note - 69) / 12)) < 3].max() + 1e-12)

    before = (at[0] + int(0.35 * SR), at[3])  # past the attack and decay
    after = (at[3] + int(0.15 * SR), at[5])
    assert level(*after, 65) > level(*after, 64) + 20 and level(*before, 64) > level(*before, 65) + 20
    assert level(*after, 60) > level(*after, 61) + 20  # channel 2's note: unbent
    assert level(*after, 67) - level(*before, 67) > 3.0  # channel 4's note: pressed
    assert abs(level(*after, 60) - level(*before, 60)) < 1.5  # channel 2's note: level unchanged
    assert engine.errors == 0


def test_an_ensemble_part_switches_preset_on_jack_while_the_other_part_plays_on(jack_server, jack_peer):
    """Violin on channel 1 panned hard left, flute on channel 2 hard right, a note held on each
    over JACK MIDI, played twice: once as it is, once with part 2 switching to the oboe while
    both sound. The left channel (part 1, its playing style off so that a take does not depend on
    where its note falls in a block) has the same harmonic levels in both takes, to within 0.3 dB; the right one (part 2) keeps its note's pitch and changes timbre, with no jump
    larger than the note's own."""

    def take(switch: bool):
        ensemble = Ensemble([Part(load_preset("violin", voices=4), midi_channel=1, pan=-1.0, volume_db=-18.0),
                             Part(load_preset("flute", voices=4), midi_channel=2, pan=1.0, volume_db=-18.0)])
        ensemble.set_parameter("part1.style_amount", 0.0)
        engine = Engine(SR, 2048)
        engine.load(ensemble)
        with playing(engine, jack_peer):
            jack_peer.start_recording(2.0)
            jack_peer.send([0x90, 57, 100], [0x91, 76, 100])
            time.sleep(0.9)
            if switch:
                ensemble.switch_part(1, load_preset("oboe", voices=4), "Oboe")
            switched = jack_peer.recorded()
            assert wait_until(lambda: jack_peer.recorded() >= 2 * SR, timeout=25.0, interval=0.05)
            left, right = jack_peer.stop_recording().astype(np.float64)
        assert engine.errors == 0 and ensemble.faults == []
        assert max(np.abs(left).max(), np.abs(right).max()) < 0.5, "the master limiter must not act"
        onset = int(np.flatnonzero(np.abs(left) > 1e-4)[0])
        return ensemble, left[onset:], right[onset:], switched - onset

    def harmonics(x: np.ndarray, note: int, count: int = 5) -> np.ndarray:
        window = np.hanning(x.size)
        spectrum = np.abs(np.fft.rfft(x * window)) / window.sum()
        freqs = np.fft.rfftfreq(x.size, 1 / SR)
        f0 = 440 * 2 ** ((note - 69) / 12)
        return np.array([20 * np.log10(spectrum[np.abs(freqs - k * f0) < 6].max() + 1e-12) for k in range(1, count + 1)])

    _, plain_left, plain_right, _ = take(False)
    ensemble, left, right, switched = take(True)
    before, after = slice(int(0.4 * SR), switched - BLOCK), slice(switched + int(0.2 * SR), int(1.9 * SR))
    assert np.abs(harmonics(left[after], 57) - harmonics(plain_left[after], 57)).max() < 0.3
    assert ensemble.parts[1].name == "Oboe" and ensemble.parts[0].chain.instrument.model.info.name == "violin"
    assert pitch(right[after]) == pytest.approx(440 * 2 ** (7 / 12), rel=0.01)
    change = np.abs(harmonics(right[after], 76, 4) - harmonics(plain_right[after], 76, 4)).max()
    assert change > 3.0, "part 2 plays the oboe now"
    steady = np.abs(np.diff(right[before])).max()
    assert np.abs(np.diff(right[switched - 4 * BLOCK: switched + int(0.2 * SR)])).max() < 2 * steady


def test_transfer_midi_out_on_jack_sends_the_phrase_notes_that_transcribe_writes(jack_server, jack_peer, model):
    """A FluidR3 flute phrase sung into timbrel over JACK; another client hears `timbrel-pitch`.

    It receives the phrase's notes in order, the same notes `timbrel transcribe` writes for the
    recording, each within 40 ms of the note's start in the phrase (the note's attack, the
    tracker's window, a hop and a JACK period)."""
    notes = [72, 76, 74, 69, 71]
    phrase, spans = render_wind(73, notes, gap_s=0.25)
    engine = Engine(SR, 2048)
    plugin = TimbreTransfer(model)
    engine.load(plugin)
    sender = MidiOutput(lambda: plugin.outbox, backend=MIDI_BACKEND)
    stream = AudioStream(engine.process, SR, BLOCK, use_input=True)
    try:
        stream.start()
        inputs = jack_peer.ports(is_input=True, is_audio=True, name_pattern=JACK_CLIENT_NAME)
        assert inputs, "timbrel's audio input is not on the JACK server"
        jack_peer.connect(f"{jack_peer.name}:sing", inputs[0])
        jack_peer.connect(sender.port, f"{jack_peer.name}:in")
        time.sleep(0.2)
        began = jack_peer.sing(phrase)
        assert wait_until(lambda: not jack_peer.singing(), timeout=10 * phrase.size / SR + 5, interval=0.05)
        time.sleep(0.3)
        heard = jack_peer.received()
    finally:
        stream.stop()
        stream.close()
        sender.stop()
    ons = [(at - began, data[1]) for at, data in heard if data[0] & 0xF0 == 0x90 and data[2] > 0]
    assert [note for _, note in ons] == notes, f"(samples from the phrase's start, note): {ons}; spans {spans}"
    offline = [m.note for m in transcribe(phrase, SR).tracks[0] if m.type == "note_on" and m.velocity > 0]
    assert offline == notes
    lateness_ms = [1000 * (at / SR - start) for (at, _), (start, _, _) in zip(ons, spans)]
    assert all(0 < late <= 40 for late in lateness_ms), lateness_ms
    assert stream.callback_errors == 0 and engine.errors == 0


def test_the_midi_out_sender_sleeps_until_a_block_queues_a_message(jack_server, jack_peer):
    """With nothing to send the sender never wakes; a block that queues a note wakes it through
    the eventfd at once (here its idle wake-up is 60 s away), and the note reaches the peer."""
    outbox = MidiOutbox()
    sender = MidiOutput(lambda: outbox, backend=MIDI_BACKEND, idle_s=60.0)
    try:
        jack_peer.connect(sender.port, f"{jack_peer.name}:in")
        assert wait_until(lambda: outbox.wake >= 0, timeout=10.0, interval=0.02), "the sender takes its outbox"
        outbox.publish()
        time.sleep(0.5)
        assert sender.wakeups == 0
        outbox_push(outbox.ring, outbox.frames, outbox.counts, 0x90 | 64 << 8 | 100 << 16, 0)
        outbox.publish()
        assert wait_until(lambda: len(jack_peer.received()) == 1, timeout=10.0, interval=0.02)
        assert sender.wakeups == 1 and outbox.wake >= 0
        outbox.publish()
        time.sleep(0.3)
        assert sender.wakeups == 1, "a block that queued nothing wakes nobody"
    finally:
        sender.stop()
    assert [data for _, data in jack_peer.received()] == [[0x90, 64, 100], [0x80, 64, 0]]
    assert outbox.wake < 0


def test_a_transfer_session_publishes_timbrel_pitch_and_releases_its_note_on_a_preset_switch(jack_server, jack_peer):
    """`timbrel play` in transfer mode: the session opens `timbrel-pitch`, a sung A4 arrives on
    it as note 69, and switching to another transfer preset mid-note sends that note's off."""
    session = Session(voices=4)
    tone = sung_tone(440.0, 2.0, 0.2)
    try:
        session.start("Voice to Flute", mode="transfer", midi_backend=MIDI_BACKEND, midi_out=True)
        assert session.midi_out is not None, session.last_error
        assert session.status()["midi_out_port"] == session.midi_out.port
        inputs = jack_peer.ports(is_input=True, is_audio=True, name_pattern=JACK_CLIENT_NAME)
        jack_peer.connect(f"{jack_peer.name}:sing", inputs[0])
        jack_peer.connect(session.midi_out.port, f"{jack_peer.name}:in")
        time.sleep(0.2)
        jack_peer.sing(tone)
        time.sleep(1.0)
        session.load("Whistle to Trumpet", wait=True)
        assert wait_until(lambda: not jack_peer.singing(), timeout=20.0, interval=0.05)
        time.sleep(0.3)
        heard = [data for _, data in jack_peer.received()]
    finally:
        session.close()
    ons = [m for m in heard if m[0] & 0xF0 == 0x90 and m[2] > 0]
    offs = [m for m in heard if m[0] & 0xF0 == 0x80 or (m[0] & 0xF0 == 0x90 and m[2] == 0)]
    assert ons and ons[0][1] == 69
    assert sorted((m[0] & 0x0F, m[1]) for m in offs) == sorted((m[0] & 0x0F, m[1]) for m in ons)


def test_a_transfer_session_opens_no_midi_out_unless_asked_and_writes_none(jack_server, jack_peer):
    """Without `midi_out` a transfer session has no `timbrel-pitch` port and no sender thread, and
    its instrument, though it plays the sung tone, queues no MIDI for nobody to read."""
    session = Session(voices=4)
    try:
        session.start("Voice to Flute", mode="transfer", midi_backend=MIDI_BACKEND)
        assert session.midi_out is None and session.status()["midi_out_port"] is None
        assert not [t for t in threading.enumerate() if t.name == "timbrel-midi-out"]
        assert not jack_peer.ports(is_output=True, is_midi=True, name_pattern="timbrel-pitch")
        inputs = jack_peer.ports(is_input=True, is_audio=True, name_pattern=JACK_CLIENT_NAME)
        jack_peer.connect(f"{jack_peer.name}:sing", inputs[0])
        outbox = session.engine.plugin.instrument.outbox
        written = int(outbox.counts[WRITTEN])
        jack_peer.sing(sung_tone(440.0, 1.0, 0.2))
        loudest = 0.0
        deadline = time.monotonic() + 20.0
        while jack_peer.singing() and time.monotonic() < deadline:
            loudest = max(loudest, session.engine.output_peak)
            time.sleep(0.02)
        assert loudest > 0.01, "the sung tone played"
        assert outbox.counts[WRITTEN] == written and not outbox.listened
    finally:
        session.close()
