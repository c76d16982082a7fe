"""MPE on the MIDI instrument, offline through the live path (Engine.process): zones, per-note
bend, pressure and CC 74, the master channel, RPN settings, and a preset switch."""

import numpy as np
import pytest

from tests.test_instrument import SR, cc, off, on, play
from timbrel.engine.realtime.events import CHANNEL_PRESSURE, PITCH_BEND
from timbrel.engine.realtime.host import Engine
from timbrel.plugin import mpe
from timbrel.plugin import voice_allocation as va
from timbrel.plugin.instrument import MidiInstrument
from timbrel.plugin.model import load_model
from timbrel.presets import default_model

CHORD = ((1, 60), (2, 64), (3, 67))
"""(member channel index, note): a C major chord, one note per channel of the lower zone."""


@pytest.fixture(scope="module")
def model():
    return load_model(default_model())


def configure(channel, members):
    """The MPE Configuration Message: RPN 6 on a zone's master channel (0: lower, 15: upper)."""
    return [cc(101, 0, channel), cc(100, 6, channel), cc(6, members, channel)]


def bend(channel, semitones, range_st=48.0):
    value = 8192 + round(semitones / range_st * 8192)
    value = min(max(value, 0), 16383)
    return PITCH_BEND | channel | (value & 0x7F) << 8 | (value >> 7) << 16


def pressure(channel, value):
    return CHANNEL_PRESSURE | channel | value << 8


def at(t, *messages):
    return [(t, m) for m in messages]


def chord_on(t=0.0):
    return [(t, on(note, 100, ch)) for ch, note in CHORD]


def plain_play(model, events, seconds, **params):
    """`play` with the model's own playing style off, so that pitches are exactly the notes' and the bends'."""
    return play(model, events, seconds, style_amount=0.0, **params)


def voice_of(instrument, note):
    """The voice slot sounding `note` (held)."""
    ints = instrument._ints
    slots = np.flatnonzero((ints[va.NOTE] == note) & (ints[va.STATE] != 0))
    assert slots.size == 1, f"note {note} is in {slots.size} voices"
    return int(slots[0])


def spectrum_at(audio, start_s, stop_s, hz):
    """Largest magnitude (dB) within 3 Hz of `hz` in the windowed spectrum of the span."""
    x = audio[int(start_s * SR) : int(stop_s * SR)]
    window = np.hanning(x.size)
    spectrum = np.abs(np.fft.rfft(x * window)) / window.sum()
    freqs = np.fft.rfftfreq(x.size, 1 / SR)
    return 20 * np.log10(spectrum[np.abs(freqs - hz) < 3].max() + 1e-12)


def hz(note):
    return 440 * 2 ** ((note - 69) / 12)


def test_bending_one_note_of_a_held_chord_moves_that_note_alone(model):
    events = at(0.0, *configure(0, 15)) + chord_on() + at(0.6, bend(2, 1.0))
    before, _, _ = plain_play(model, events[:-1], 1.2, reverb_mix=0.0)
    audio, instrument, engine = plain_play(model, events, 1.2, reverb_mix=0.0)
    v = voice_of(instrument, 64)
    assert abs(instrument._f0[v] - hz(65)) < 0.1
    for note in (60, 67):
        assert abs(instrument._f0[voice_of(instrument, note)] - hz(note)) < 0.01
    # the capture: 64's partial has moved to 65's; 60's and 67's stay where they were
    assert spectrum_at(audio, 0.8, 1.2, hz(65)) > spectrum_at(audio, 0.8, 1.2, hz(64)) + 20
    assert spectrum_at(before, 0.8, 1.2, hz(64)) > spectrum_at(before, 0.8, 1.2, hz(65)) + 20
    for note in (60, 67):
        assert abs(spectrum_at(audio, 0.8, 1.2, hz(note)) - spectrum_at(before, 0.8, 1.2, hz(note))) < 1.5
    assert engine.errors == 0


def test_pressure_on_one_note_changes_that_notes_level_alone(model):
    events = at(0.0, *configure(0, 15)) + chord_on()
    plain, still, _ = plain_play(model, events, 1.2, reverb_mix=0.0)
    pressed, instrument, _ = plain_play(model, events + at(0.5, pressure(2, 127)), 1.2, reverb_mix=0.0)
    rise = {note: instrument._loudness[voice_of(instrument, note)] - still._loudness[voice_of(still, note)]
            for _, note in CHORD}
    assert rise[64] == pytest.approx(instrument.params.get("pressure_db"))
    assert rise[60] == 0.0 and rise[67] == 0.0
    level = {note: spectrum_at(pressed, 0.8, 1.2, hz(note)) - spectrum_at(plain, 0.8, 1.2, hz(note)) for _, note in CHORD}
    assert level[64] > 3.0 and abs(level[60]) < 1.0 and abs(level[67]) < 1.0, level


def test_cc74_on_one_note_brightens_that_note_alone(model):
    events = at(0.0, *configure(0, 15)) + chord_on()
    _, plain, _ = plain_play(model, events, 0.8, reverb_mix=0.0)
    _, bright, _ = plain_play(model, events + at(0.3, cc(74, 127, 2)), 0.8, reverb_mix=0.0)

    def upper_share(instrument, note):
        distribution = instrument.synth.frame[2][voice_of(instrument, note)]
        return distribution[8:].sum() / distribution.sum()

    assert upper_share(bright, 64) > 1.5 * upper_share(plain, 64)
    for note in (60, 67):
        assert upper_share(bright, note) == pytest.approx(upper_share(plain, note), rel=1e-3)


def test_the_master_channel_bends_the_whole_zone_by_the_instrument_bend_range(model):
    events = at(0.0, *configure(0, 15)) + chord_on() + at(0.3, bend(0, 1.0, range_st=2.0))
    _, instrument, _ = plain_play(model, events, 0.6, bend_range_st=2.0)
    for _, note in CHORD:
        assert abs(instrument._f0[voice_of(instrument, note)] - hz(note + 1)) < 0.1


def test_rpn0_on_a_member_channel_sets_the_zone_note_bend_range(model):
    rpn0 = [cc(101, 0, 3), cc(100, 0, 3), cc(6, 12, 3)]
    events = at(0.0, *configure(0, 15), *rpn0) + chord_on() + at(0.3, bend(1, 12.0, range_st=12.0))
    _, instrument, _ = plain_play(model, events, 0.6)
    assert abs(instrument._f0[voice_of(instrument, 60)] - hz(72)) < 0.2
    assert instrument._zones[mpe.LOWER_RANGE_ST] == 12.0


def test_the_same_note_on_two_member_channels_is_two_voices_and_each_note_off_ends_its_own(model):
    events = at(0.0, *configure(0, 15), on(60, 100, 1), on(60, 100, 2)) + at(0.3, off(60, 1))
    _, instrument, _ = plain_play(model, events, 0.5)
    ints = instrument._ints
    voices = {int(ints[va.KEY, v]): int(ints[va.STATE, v]) for v in np.flatnonzero(ints[va.NOTE] == 60)}
    assert voices == {1: va.RELEASED, 2: va.HELD}


def test_channels_outside_the_zones_follow_the_ordinary_rules(model):
    # a lower zone of 3 members (channels 2 to 4); the instrument listens to channel 10 otherwise
    events = at(0.0, *configure(0, 3), on(60, 100, 1), on(62, 100, 8), on(64, 100, 9)) + at(0.3, bend(9, 1.0, 2.0))
    _, instrument, _ = plain_play(model, events, 0.6, channel=10)
    sounding = set(instrument._ints[va.NOTE][instrument._ints[va.STATE] != 0].tolist())
    assert sounding == {60, 64}
    assert instrument._ints[va.KEY][voice_of(instrument, 64)] == -1
    # channel 10's bend is the instrument-wide one: it moves its own note and the zone's too
    assert abs(instrument._f0[voice_of(instrument, 64)] - hz(65)) < 0.1
    assert abs(instrument._f0[voice_of(instrument, 60)] - hz(61)) < 0.1


def test_zone_parameters_and_configuration_messages_resolve_overlaps_as_the_specification_says():
    zones, channels = mpe.new_zones()
    mpe.adopt_parameters(zones, 5.0, 12.0, 48.0)
    assert (zones[mpe.LOWER], zones[mpe.UPPER]) == (5, 9)
    roles = [mpe.role(zones, ch) for ch in range(16)]
    assert roles == [mpe.LOWER_MASTER] + [mpe.LOWER_MEMBER] * 5 + [mpe.UPPER_MEMBER] * 9 + [mpe.UPPER_MASTER]
    for number, value in ((101, 0), (100, 6), (6, 12)):
        mpe.control(zones, channels, 15, number, value)
    assert (zones[mpe.LOWER], zones[mpe.UPPER]) == (2, 12)
    for number, value in ((101, 0), (100, 6), (6, 15)):
        mpe.control(zones, channels, 0, number, value)
    assert (zones[mpe.LOWER], zones[mpe.UPPER]) == (15, 0)
    assert mpe.role(zones, 15) == mpe.LOWER_MEMBER
    mpe.adopt_parameters(zones, 5.0, 12.0, 48.0)  # unchanged parameters do not undo the message
    assert zones[mpe.LOWER] == 15
    mpe.adopt_parameters(zones, 0.0, 0.0, 48.0)
    assert [mpe.role(zones, ch) for ch in range(16)] == [mpe.NONE] * 16


def test_a_preset_switch_keeps_zones_bends_and_held_member_notes(model):
    engine = Engine(SR, 128)
    first = MidiInstrument(model)
    first.params.set("style_amount", 0.0)
    engine.load(first)
    out = np.zeros((128, 2), np.float32)
    for message in configure(0, 15) + [on(60, 100, 1), on(64, 100, 2), cc(101, 0, 2), cc(100, 0, 2), cc(6, 24, 2)]:
        engine.events.push(message)
    engine.events.push(bend(2, 2.0, range_st=24.0))
    for _ in range(20):
        engine.process(None, out)
    replacement = MidiInstrument(model)
    replacement.params.set("style_amount", 0.0)
    engine.load(replacement)
    for _ in range(40):
        engine.process(None, out)
    assert engine.plugin is replacement and replacement._zones[mpe.LOWER] == 15
    assert replacement._zones[mpe.LOWER_RANGE_ST] == 24.0
    assert abs(replacement._f0[voice_of(replacement, 64)] - hz(66)) < 0.1
    assert abs(replacement._f0[voice_of(replacement, 60)] - hz(60)) < 0.01
    engine.events.push(off(64, 2))
    for _ in range(4):
        engine.process(None, out)
    assert replacement._ints[va.STATE][voice_of(replacement, 64)] == va.RELEASED


def test_timbrel_render_plays_an_mpe_midi_file(tmp_path):
    import mido
    import soundfile

    from tests.test_cli import timbrel

    track = mido.MidiTrack()
    for number, value in ((101, 0), (100, 6), (6, 15)):
        track.append(mido.Message("control_change", channel=0, control=number, value=value, time=0))
    for ch, note in CHORD:
        track.append(mido.Message("note_on", channel=ch, note=note, velocity=100, time=0))
    track.append(mido.Message("pitchwheel", channel=2, pitch=round(8192 / 48), time=576))  # 0.6 s at 120 bpm
    for ch, note in CHORD:
        track.append(mido.Message("note_off", channel=ch, note=note, velocity=0, time=576 if ch == 1 else 0))
    song = mido.MidiFile(ticks_per_beat=480, tracks=[track])
    song.save(tmp_path / "mpe.mid")
    result = timbrel("render", str(tmp_path / "mpe.mid"), "-o", str(tmp_path / "mpe.wav"), "--set", "reverb_mix=0")
    assert result.returncode == 0, result.stderr
    audio, rate = soundfile.read(tmp_path / "mpe.wav")
    audio = audio[:, 0]
    assert rate == SR
    assert spectrum_at(audio, 0.2, 0.55, hz(64)) > spectrum_at(audio, 0.2, 0.55, hz(65)) + 20
    assert spectrum_at(audio, 0.7, 1.15, hz(65)) > spectrum_at(audio, 0.7, 1.15, hz(64)) + 20
    for note in (60, 67):  # the other notes did not move
        assert spectrum_at(audio, 0.7, 1.15, hz(note)) > spectrum_at(audio, 0.7, 1.15, hz(note + 1)) + 20


def test_stealing_and_the_pedal_keep_each_notes_member_channel(model):
    # 4 voices, 6 notes on 6 member channels: the last two steal, and start on their own channels
    events = at(0.0, *configure(0, 15), cc(64, 127, 0))
    events += [(0.05 * i, on(48 + 2 * i, 100, 1 + i)) for i in range(6)]
    events += at(0.5, bend(6, 1.0), *[off(48 + 2 * i, 1 + i) for i in range(6)])
    _, instrument, _ = plain_play(model, events, 0.8, voices=4)
    ints = instrument._ints
    sounding = {int(ints[va.NOTE, v]): int(ints[va.KEY, v]) for v in range(4) if ints[va.STATE, v] != 0}
    assert sounding == {52: 3, 54: 4, 56: 5, 58: 6}
    assert all(ints[va.STATE, v] == va.SUSTAINED for v in range(4))  # released under the pedal
    assert abs(instrument._f0[voice_of(instrument, 58)] - hz(59)) < 0.1  # channel 7's bend reached the stolen voice
    assert abs(instrument._f0[voice_of(instrument, 56)] - hz(56)) < 0.01
