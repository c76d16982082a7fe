"""The MIDI instrument and the engine, offline through the live path (Engine.process)."""

import tracemalloc

import numpy as np
import pytest

from tests.spectra import assert_partial_series
from timbrel.engine.plugin_api import Plugin
from timbrel.engine.realtime.events import CHANNEL_PRESSURE, CONTROL_CHANGE, NOTE_OFF, NOTE_ON, PITCH_BEND
from timbrel.engine.realtime.features import estimate_pitch
from timbrel.engine.realtime.host import LIMIT_CEILING, Engine
from timbrel.engine.realtime.kernels.convolution import Convolver
from timbrel.engine.render import render_events
from timbrel.plugin import voice_allocation as va
from timbrel.plugin import voices as vk
from timbrel.plugin.instrument import MidiInstrument
from timbrel.plugin.model import load_model
from timbrel.plugin.model_synth import RUNNERS, SYNTHS, ReverbStage
from timbrel.presets import default_model

SR, BLOCK, HOP = 48000, 128, 160


@pytest.fixture(scope="module")
def model():
    return load_model(default_model())


def on(note, velocity=100, channel=0):
    return NOTE_ON | channel | note << 8 | velocity << 16


def off(note, channel=0):
    return NOTE_OFF | channel | note << 8


def cc(number, value, channel=0):
    return CONTROL_CHANGE | channel | number << 8 | value << 16


def bend(value):
    value += 8192
    return PITCH_BEND | (value & 0x7F) << 8 | (value >> 7) << 16


def play(model, events, seconds, voices=16, block=BLOCK, **params):
    instrument = MidiInstrument(model, voices=voices)
    for key, value in params.items():
        instrument.params.set(key, value)
    engine = Engine(SR, max(block, 128))
    out = render_events(engine, instrument, sorted(events, key=lambda e: e[0]), seconds, block)
    return out[:, 0].astype(np.float64), instrument, engine


def median_pitch(audio, start_s, stop_s):
    f0, confidence = estimate_pitch(audio[int(start_s * SR) : int(stop_s * SR)].astype(np.float32), SR, HOP)
    voiced = f0[confidence > 0]
    assert voiced.size > 10, "no pitched frames"
    return float(np.median(voiced))


def cents(a, b):
    return 1200 * np.log2(a / b)


def rms_db(audio, start_s, stop_s):
    x = audio[int(start_s * SR) : int(stop_s * SR)]
    return 10 * np.log10(np.mean(x**2) + 1e-20)


@pytest.mark.parametrize("note", [45, 57, 69, 76])
def test_a_note_sounds_at_its_pitch(model, note):
    audio, *_ = play(model, [(0.0, on(note)), (1.0, off(note))], 1.5)
    expected = 440 * 2 ** ((note - 69) / 12)
    assert abs(cents(median_pitch(audio, 0.2, 0.9), expected)) < 20


def test_a_three_note_chord_gives_three_partial_series(model):
    notes = (60, 64, 67)
    audio, *_ = play(model, [(0.0, on(n)) for n in notes], 1.2, reverb_mix=0.0)
    assert_partial_series(audio[int(0.3 * SR) : int(1.2 * SR)], SR, notes)


def test_note_off_decays_to_silence_within_the_release(model):
    audio, *_ = play(model, [(0.0, on(64)), (0.5, off(64))], 1.2, release_s=0.2, reverb_mix=0.0)
    assert rms_db(audio, 0.2, 0.45) > -55
    assert np.abs(audio[int((0.5 + 0.2) * SR) + 3 * BLOCK + 2 * HOP :]).max() == 0.0


def test_velocity_expression_and_aftertouch_shape_loudness(model):
    soft, *_ = play(model, [(0.0, on(62, 30))], 0.8)
    loud, *_ = play(model, [(0.0, on(62, 127))], 0.8)
    assert rms_db(loud, 0.3, 0.8) > rms_db(soft, 0.3, 0.8) + 3
    quieter, *_ = play(model, [(0.0, cc(11, 40)), (0.0, on(62, 127))], 0.8)
    assert rms_db(quieter, 0.3, 0.8) < rms_db(loud, 0.3, 0.8) - 3
    pressed, *_ = play(model, [(0.0, on(62, 30)), (0.0, CHANNEL_PRESSURE | 127 << 8)], 0.8, pressure_db=12.0)
    assert rms_db(pressed, 0.3, 0.8) > rms_db(soft, 0.3, 0.8) + 2


def test_pitch_bend_follows_the_bend_range(model):
    audio, *_ = play(model, [(0.0, on(69)), (0.0, bend(8191))], 0.8, bend_range_st=2.0)
    assert abs(cents(median_pitch(audio, 0.2, 0.8), 440 * 2 ** (2 / 12 * 8191 / 8192))) < 20
    audio, *_ = play(model, [(0.0, on(69)), (0.0, bend(-8192))], 0.8, bend_range_st=7.0)
    assert abs(cents(median_pitch(audio, 0.2, 0.8), 440 * 2 ** (-7 / 12))) < 20


def test_mod_wheel_adds_vibrato_at_the_set_rate(model):
    plain, *_ = play(model, [(0.0, on(69))], 1.5, style_amount=0.0)  # the model's own style plays a vibrato too
    wobbly, *_ = play(model, [(0.0, on(69)), (0.0, cc(1, 127))], 1.5, vibrato_cents=100.0, vibrato_hz=5.0,
                      style_amount=0.0)
    f0_plain, voiced_plain = estimate_pitch(plain[SR // 2 :].astype(np.float32), SR, HOP)
    f0_wobbly, voiced_wobbly = estimate_pitch(wobbly[SR // 2 :].astype(np.float32), SR, HOP)
    assert voiced_plain.mean() > 0.9 and voiced_wobbly.mean() > 0.9
    f0_plain, f0_wobbly = f0_plain[voiced_plain > 0], f0_wobbly[voiced_wobbly > 0]
    assert np.std(cents(f0_wobbly, 440)) > 40 > np.std(cents(f0_plain, 440)) * 4
    spectrum = np.abs(np.fft.rfft(f0_wobbly - f0_wobbly.mean()))
    rate = np.fft.rfftfreq(f0_wobbly.size, HOP / SR)[np.argmax(spectrum)]
    assert abs(rate - 5.0) < 0.5


def test_sustain_pedal_holds_released_notes(model):
    events = [(0.0, cc(64, 127)), (0.0, on(60)), (0.3, off(60)), (1.0, cc(64, 0))]
    audio, *_ = play(model, events, 1.6, release_s=0.1, reverb_mix=0.0)
    assert rms_db(audio, 0.6, 0.95) > -55
    assert np.abs(audio[int(1.25 * SR) :]).max() == 0.0


def test_voice_stealing_takes_the_oldest_voice(model):
    events = [(0.0, on(60)), (0.2, on(64)), (0.4, on(67))]
    audio, instrument, _ = play(model, events, 1.0, voices=2, reverb_mix=0.0)
    assert sorted(instrument._note[instrument._state > 0]) == [64, 67]
    x = audio[int(0.6 * SR) :]
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    freqs = np.fft.rfftfreq(x.size, 1 / SR)
    level = {n: spectrum[np.abs(freqs - 440 * 2 ** ((n - 69) / 12)) < 3].max() for n in (60, 64, 67)}
    assert level[64] > 30 * level[60] and level[67] > 30 * level[60]


def test_legato_mode_glides_without_a_new_attack(model):
    events = [(0.0, on(60)), (0.5, on(67))]
    audio, legato, _ = play(model, events, 0.52, voice_mode=2, glide_s=0.05)
    assert legato._stage[0] == vk.SUSTAIN and legato._note[0] == 67 and legato.active_voices == 1
    assert 60 < legato._glide_from[0] < 67
    audio, *_ = play(model, events, 1.0, voice_mode=2, glide_s=0.05)
    assert abs(cents(median_pitch(audio, 0.7, 1.0), 440 * 2 ** ((67 - 69) / 12))) < 20
    _, mono, _ = play(model, events, 0.51, voice_mode=1)
    assert mono._stage[0] in (vk.ATTACK, vk.DECAY) and mono.active_voices == 1


def test_all_notes_off_and_all_sound_off(model):
    audio, *_ = play(model, [(0.0, on(60)), (0.0, on(64)), (0.5, cc(123, 0))], 1.3, release_s=0.1, reverb_mix=0.0)
    assert np.abs(audio[int(0.85 * SR) :]).max() == 0.0
    audio, *_ = play(model, [(0.0, on(60)), (0.5, cc(120, 0))], 1.0, release_s=3.0, reverb_mix=0.0)
    assert np.abs(audio[int(0.5 * SR) + 2 * BLOCK + 3 * HOP :]).max() == 0.0


def test_channel_filter(model):
    audio, *_ = play(model, [(0.0, on(60, channel=0))], 0.5, channel=2)
    assert np.abs(audio).max() == 0.0
    audio, *_ = play(model, [(0.0, on(60, channel=1))], 0.5, channel=2)
    assert rms_db(audio, 0.2, 0.5) > -40


class Blaring(Plugin):
    """Writes a sine far above full scale, with a NaN and an inf in every block."""

    name = "blaring"

    def process(self, inp, out, events):
        n = out.shape[1]
        out[:] = 8.0 * np.sin(np.arange(n) * 0.05)
        out[0, n // 2] = np.nan
        out[1, n // 3] = np.inf


def test_the_limiter_holds_every_sample_within_the_ceiling_and_drops_nan():
    engine = Engine(SR, BLOCK)
    engine.load(Blaring())
    out = np.zeros((BLOCK, 2), dtype=np.float32)
    for _ in range(20):
        engine.process(None, out)
        assert np.all(np.isfinite(out)) and np.abs(out).max() <= LIMIT_CEILING
    assert np.abs(out).max() > 0.9 * LIMIT_CEILING and engine.output_peak > 7


def test_renders_are_deterministic(model):
    events = [(0.0, on(60)), (0.1, on(67)), (0.4, off(60))]
    first, *_ = play(model, events, 0.8)
    second, *_ = play(model, events, 0.8)
    np.testing.assert_array_equal(first, second)


def test_a_model_producing_nan_is_muted_and_the_engine_keeps_playing(model, tmp_path):
    import onnx

    proto = onnx.load(str(model.path))
    for init in proto.graph.initializer:
        values = onnx.numpy_helper.to_array(init)
        if values.dtype == np.float32 and values.ndim == 2:
            init.CopyFrom(onnx.numpy_helper.from_array(np.full_like(values, np.nan), init.name))
    onnx.save(proto, str(tmp_path / "nan.onnx"))
    audio, instrument, engine = play(load_model(tmp_path / "nan.onnx"), [(0.0, on(60))], 0.5)
    assert np.all(np.isfinite(audio)) and np.abs(audio).max() == 0.0
    assert instrument.muted_frames > 0 and engine.errors == 0


class Exploding(Plugin):
    name = "exploding"

    def process(self, inp, out, events):
        raise RuntimeError("boom")


def test_a_plugin_that_raises_gives_silence_and_a_count():
    engine = Engine(SR, BLOCK)
    engine.load(Exploding())
    out = np.ones((BLOCK, 2), dtype=np.float32)
    for _ in range(3):
        engine.process(None, out)
    assert np.all(out == 0) and engine.errors == 3 and "boom" in engine.last_error


def test_switching_instruments_crossfades_without_a_jump(model):
    engine = Engine(SR, BLOCK)
    engine.load(MidiInstrument(model))
    engine.events.push(on(60))
    out = np.zeros((SR, 2), dtype=np.float32)
    for i, start in enumerate(range(0, SR, BLOCK)):
        if i == 150:
            replacement = MidiInstrument(model)
            replacement.params.set("transpose_st", 7)
            engine.load(replacement)
            engine.events.push(on(60))
        engine.process(None, out[start : start + BLOCK])
    x = out[:, 0]
    steps = np.abs(np.diff(x))
    switch = 150 * BLOCK
    assert steps[switch - 10 : switch + 2000].max() < 3 * steps[: switch - 10].max()
    assert engine.retired[0] is not None
    engine.collect()
    assert all(slot is None for slot in engine.retired)


def test_an_instrument_crossfaded_out_holds_its_last_frame_and_runs_no_model(model):
    """During a switch's crossfade the outgoing instrument keeps sounding its last control frame
    (the fade silences it) without calling onnxruntime; the incoming one runs its model, and an
    instrument swapped back in plays afresh."""
    engine = Engine(SR, BLOCK)
    first, second = MidiInstrument(model), MidiInstrument(model)
    engine.load(first)
    for key in (60, 64, 67):
        engine.events.push(on(key))
    out = np.zeros((BLOCK, 2), dtype=np.float32)
    for _ in range(40):
        engine.process(None, out)
    engine.load(second)
    runs = first.synth.runner.runs, second.synth.runner.runs
    fade_blocks = engine._fade_len // BLOCK
    for _ in range(fade_blocks):
        engine.process(None, out)
        assert np.abs(out).max() > 0.01
    assert first.fading_out and not second.fading_out
    assert first.synth.runner.runs == runs[0]
    assert second.synth.runner.runs >= runs[1] + fade_blocks * BLOCK // first.synth.host_hop_samples
    engine.load(first)
    for _ in range(fade_blocks + 2):
        engine.process(None, out)
    assert not first.fading_out and second.fading_out
    assert first.synth.runner.runs > 0, "loaded again (and prepared afresh), it runs its model"


def play_chord(engine: Engine, blocks: int) -> np.ndarray:
    out = np.zeros((blocks * BLOCK, 2), dtype=np.float32)
    for key in (60, 64, 67):
        engine.events.push(on(key))
    for i in range(blocks):
        engine.process(None, out[i * BLOCK : (i + 1) * BLOCK])
    return out


def test_a_switch_back_to_a_model_reuses_its_synth_and_session_and_sounds_as_a_fresh_one(model):
    """A player the engine has let go of hands its synth (with its onnxruntime session) back;
    the next player of the same model takes it instead of opening a session and building a
    synth, and sounds exactly as a fresh one. Two players sounding at once never share one."""
    fresh = Engine(SR, BLOCK)
    fresh.load(MidiInstrument(model))
    expected = play_chord(fresh, 60)

    engine = Engine(SR, BLOCK)
    first, second = MidiInstrument(model), MidiInstrument(model)
    engine.load(first)
    play_chord(engine, 40)
    engine.load(second)
    assert second.synth is not first.synth and second.synth.runner is not first.synth.runner
    kept = first.synth
    play_chord(engine, 40)  # the crossfade ends; the engine retires the first player
    engine.collect()  # as the loader does before its next load: the first player hands its synth back
    assert first.synth is None
    made = SYNTHS.made, RUNNERS.made
    again = Engine(SR, BLOCK)
    third = MidiInstrument(model)
    again.load(third)
    assert third.synth is kept
    assert (SYNTHS.made, RUNNERS.made) == made, "no synth built, no onnxruntime session opened"
    assert np.array_equal(play_chord(again, 60), expected)


def test_the_audio_path_allocates_no_arrays_and_nothing_that_grows(model):
    block = 512
    engine = Engine(SR, block)
    engine.load(MidiInstrument(model))
    for n in (60, 64, 67, 71):
        engine.events.push(on(n))
    out = np.zeros((block, 2), dtype=np.float32)
    for _ in range(100):
        engine.process(None, out)
    tracemalloc.start()
    try:
        rounds = []
        for _ in range(3):
            for _ in range(300):
                engine.process(None, out)
            rounds.append(tracemalloc.get_traced_memory())
    finally:
        tracemalloc.stop()
    # Scalars held in attributes (meters, counters) are replaced every block, so the live
    # total jitters by a few objects; anything kept per block would add >= 300 objects.
    assert abs(rounds[2][0] - rounds[1][0]) < 512
    # onnxruntime's Python wrapper and numba's argument unboxing make about 1.2 KB of
    # short-lived small objects per block; any array of one block (>= 2 KB here) would
    # lift the peak past 2 KB.
    assert rounds[2][1] - rounds[2][0] < 2048


def test_no_subnormal_numbers_linger_after_the_music_stops(model):
    audio, instrument, engine = play(model, [(0.0, on(60)), (0.3, off(60))], 4.0, release_s=0.05)
    tiny = np.finfo(np.float32).tiny
    for state in (instrument.synth.bank._taps, instrument.synth.bank._pending, instrument.synth.reverb._spectra, engine._limiter,
                  instrument.synth.gru, instrument.params.values):
        values = np.abs(np.asarray(state, dtype=np.float64))
        assert not np.any((values > 0) & (values < tiny))
    assert np.abs(audio[-SR:]).max() == 0.0


@pytest.mark.parametrize("rate, block", [(44100, 16), (96000, 2048), (48000, 333)])
def test_any_host_rate_and_block_size_plays_in_tune(model, rate, block):
    instrument = MidiInstrument(model)
    engine = Engine(rate, block)
    audio = render_events(engine, instrument, [(0.0, on(64))], 1.0, block)[:, 0]
    f0, confidence = estimate_pitch(audio[rate // 5 :].astype(np.float32), rate, instrument.synth.host_hop_samples)
    assert instrument.synth.host_hop_samples == rate // 300 and (confidence > 0).mean() > 0.8
    assert abs(cents(np.median(f0[confidence > 0]), 440 * 2 ** (-5 / 12))) < 20


def test_a_plugin_is_a_plain_callable_on_a_buffer(model):
    out = MidiInstrument(model)(np.zeros(SR // 2, np.float32), SR, events=np.array([on(69)], np.int32))
    assert out.shape == (2, SR // 2) and out.dtype == np.float32
    assert abs(cents(median_pitch(out[0].astype(np.float64), 0.15, 0.5), 440.0)) < 20


@pytest.mark.parametrize(("number", "silent_after_s"), [(120, 2 * BLOCK / SR + 3 * HOP / SR), (123, 0.25 + 0.05)])
def test_all_sound_off_and_all_notes_off_silence_every_channel(model, number, silent_after_s):
    """CC 120 and 123 act whatever channel the instrument listens to and whatever channel they
    come on, also with the pedal down; CC 120 also drops a note waiting for a stolen voice."""
    events = [(0.0, cc(64, 127)), *((0.0, on(n)) for n in (60, 64, 67)), (0.05, on(72)),
              (0.5, cc(number, 0, channel=9))]
    audio, instrument, _ = play(model, events, 1.5, voices=3, channel=1, release_s=0.25, reverb_mix=0.0)
    assert rms_db(audio, 0.3, 0.5) > -40
    assert np.abs(audio[int((0.5 + silent_after_s) * SR) :]).max() == 0.0
    assert instrument.active_voices == 0 and (instrument._ints[va.WAITING_NOTE] == -1).all()


def test_a_channel_filter_still_ignores_notes_from_other_channels(model):
    audio, instrument, _ = play(model, [(0.0, on(60, channel=3))], 0.5, channel=1)
    assert np.abs(audio).max() == 0.0 and instrument.active_voices == 0


def test_skipping_the_reverb_on_silence_changes_no_sample(model, monkeypatch):
    """After the voices and the reverb's tail fall silent, the convolver is skipped until a
    note sounds again. What it would have added meanwhile is rounding dust (about 1e-21,
    -400 dB): the output stays within 1e-12 of never skipping, the next note's included."""
    events = [(0.0, on(60)), (0.3, off(60)), (4.0, on(67)), (4.4, off(67))]
    calls = []
    process = Convolver.process
    monkeypatch.setattr(Convolver, "process", lambda self, x, out: (calls.append(1), process(self, x, out))[1])
    skipping, _, _ = play(model, events, 5.5, release_s=0.1)
    skipped = len(calls)
    monkeypatch.setattr(ReverbStage, "skip_silent_reverb", False)
    calls.clear()
    always, _, _ = play(model, events, 5.5, release_s=0.1)
    assert np.abs(skipping).max() > 0.01
    np.testing.assert_allclose(skipping, always, rtol=0, atol=1e-12)
    assert len(calls) - skipped > SR // BLOCK
