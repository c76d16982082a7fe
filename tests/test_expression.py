"""Note expression and learned playing styles: the MIDI instrument's performance layer
(`timbrel.plugin.expression`), and styles fitted on recordings (`timbrel.export.style`)."""

import json

import numpy as np
import onnx
import pytest

from tests.test_instrument import SR, off, on, play
from timbrel.engine.errors import TimbrelError
from timbrel.engine.realtime.features import estimate_pitch
from timbrel.export.style import find_notes, fit_style, measure_note, write_style
from timbrel.plugin import expression
from timbrel.plugin.instrument import MidiInstrument
from timbrel.plugin.model import METADATA_KEY, load_model
from timbrel.presets import default_model

HOP = 160


def styled(tmp_path, name="styled", **fields):
    """A copy of the factory model carrying a style whose fields are constants (`fields`, others 0)."""
    values = dict.fromkeys(expression.STYLE_FIELDS, 0.0) | {"vibrato_hz": 5.5, "scoop_s": 0.06, "swell_s": 1.0}
    values |= fields
    style = {"version": 1, "fields": {k: [float(v), 0.0, 0.0] for k, v in values.items()}, "notes": 10, "source": "test"}
    path = tmp_path / f"{name}.onnx"
    write_style(default_model(), style, path)
    return load_model(path)


def plain(tmp_path):
    """A copy of the factory model with its style taken out."""
    proto = onnx.load(str(default_model()))
    for entry in proto.metadata_props:
        if entry.key == METADATA_KEY:
            record = json.loads(entry.value)
            record.pop("style", None)
            entry.value = json.dumps(record)
    onnx.save(proto, str(tmp_path / "plain.onnx"))
    return load_model(tmp_path / "plain.onnx")


def cents_curve(audio, start_s, stop_s, note):
    """Pitch in cents from `note`, frame by frame, from the tracker's first voiced frame on (all voiced)."""
    f0, confidence = estimate_pitch(audio[int(start_s * SR) : int(stop_s * SR)].astype(np.float32), SR, HOP)
    voiced = np.flatnonzero(confidence > 0)
    assert voiced.size and voiced[0] < 10 and np.all(confidence[voiced[0] :] > 0)
    return 1200 * np.log2(f0[voiced[0] :] / (440 * 2 ** ((note - 69) / 12)))


def vibrato_of(cents):
    """Rate (Hz) and depth (cents, peak) of the sinusoid that best fits a pitch curve at 300 frames/s."""
    t = np.arange(cents.size) / (SR / HOP)
    residual = cents - np.polyval(np.polyfit(t, cents, 1), t)
    rates = np.arange(3.0, 9.0, 0.02)
    power = np.abs(np.exp(-2j * np.pi * rates[:, None] * t[None, :]) @ residual)
    return float(rates[np.argmax(power)]), 2 * float(power.max()) / t.size


def test_without_a_style_and_at_the_defaults_a_note_is_as_plain_as_before(tmp_path):
    model = plain(tmp_path)
    audio, instrument, _ = play(model, [(0.0, on(69)), (1.4, off(69))], 1.5, reverb_mix=0.0)
    cents = cents_curve(audio, 0.2, 1.3, 69)
    assert np.abs(cents - np.median(cents)).max() < 2.0
    assert not instrument._style.any() and np.all(instrument._notes[expression.N_LEVEL_DB] == 0.0)


def test_a_style_vibrato_plays_at_its_rate_and_depth_after_its_delay(tmp_path):
    model = styled(tmp_path, vibrato_cents=40.0, vibrato_hz=6.0, vibrato_delay_s=0.3)
    audio, *_ = play(model, [(0.0, on(69)), (2.0, off(69))], 2.1, reverb_mix=0.0)
    rate, depth = vibrato_of(cents_curve(audio, 0.6, 1.9, 69))
    assert abs(rate - 6.0) < 0.2 and abs(depth - 40.0) < 6.0, (rate, depth)
    early = cents_curve(audio, 0.05, 0.15, 69)
    assert np.abs(early - np.median(early)).max() < 10.0  # the vibrato has barely begun


def test_style_amount_scales_the_style_and_zero_plays_plainly(tmp_path):
    model = styled(tmp_path, vibrato_cents=40.0, vibrato_hz=6.0, vibrato_delay_s=0.0)
    depths = {}
    for amount in (0.0, 0.5, 1.0):
        audio, *_ = play(model, [(0.0, on(69))], 1.5, reverb_mix=0.0, style_amount=amount)
        depths[amount] = vibrato_of(cents_curve(audio, 0.4, 1.4, 69))[1]
    assert depths[0.0] < 2.0 and abs(depths[0.5] - 20.0) < 4.0 and abs(depths[1.0] - 40.0) < 6.0, depths


def test_a_scoop_starts_the_pitch_below_the_note_and_settles(tmp_path):
    _, instrument, _ = play(plain(tmp_path), [(0.0, on(60))], 0.002, scoop_cents=100.0, scoop_s=0.05)
    first = 1200 * np.log2(instrument._f0[0] / (440 * 2 ** ((60 - 69) / 12)))
    _, settled, _ = play(plain(tmp_path), [(0.0, on(60))], 0.5, scoop_cents=100.0, scoop_s=0.05)
    assert first == pytest.approx(-100.0, abs=0.01)
    assert abs(1200 * np.log2(settled._f0[0] / (440 * 2 ** ((60 - 69) / 12)))) < 0.1


def test_swell_fluctuation_and_attack_noise_shape_the_note(tmp_path):
    model = plain(tmp_path)
    events = [(0.0, on(64))]
    _, flat, _ = play(model, events, 1.5)
    _, swelled, _ = play(model, events, 1.5, swell_db=6.0, swell_s=0.3)
    assert swelled._loudness[0] - flat._loudness[0] == pytest.approx(6.0 * (1 - np.exp(-1.5 / 0.3)), abs=0.1)
    levels = []
    instrument = MidiInstrument(model)
    instrument.params.set("fluctuation_db", 3.0)
    for seconds in np.arange(0.5, 3.0, 0.1):
        _, wandering, _ = play(model, events, seconds, fluctuation_db=3.0)
        levels.append(wandering._notes[expression.N_LEVEL_DB, 0])
    assert 1.0 < np.std(levels) < 6.0
    _, onset, _ = play(model, events, 0.01, attack_noise_db=12.0, scoop_s=0.05)
    _, later, _ = play(model, events, 0.6, attack_noise_db=12.0, scoop_s=0.05)
    assert onset._notes[expression.N_NOISE_GAIN, 0] > 3.0 and later._notes[expression.N_NOISE_GAIN, 0] < 1.01


def test_renders_with_expression_are_deterministic(tmp_path):
    model = styled(tmp_path, vibrato_cents=30.0, fluctuation_db=2.0, scoop_cents=50.0)
    events = [(0.0, on(60)), (0.3, on(64)), (1.0, off(60)), (1.2, off(64))]
    first, *_ = play(model, events, 1.5)
    second, *_ = play(model, events, 1.5)
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("style, fault", [
    ({"version": 1}, "no 'fields' object"),
    ({"version": 1, "fields": {"vibrato_cents": [1, 2]}}, "'vibrato_cents' must be three finite numbers"),
    ({"version": 1, "fields": {name: ["a", 0, 0] for name in expression.STYLE_FIELDS}}, "must be three finite numbers"),
])
def test_malformed_style_metadata_is_one_line_naming_the_file(tmp_path, style, fault):
    proto = onnx.load(str(default_model()))
    for entry in proto.metadata_props:
        if entry.key == METADATA_KEY:
            entry.value = json.dumps(json.loads(entry.value) | {"style": style})
    onnx.save(proto, str(tmp_path / "odd-style.onnx"))
    with pytest.raises(TimbrelError, match=fault) as err:
        load_model(tmp_path / "odd-style.onnx")
    assert "odd-style.onnx" in str(err.value) and "\n" not in str(err.value)


def synthetic_note(seconds, rate_hz, depth_cents, delay_s, scoop_cents=0.0, note=67):
    """Pitch (Hz) and loudness (dB) curves at 300 frames/s of a note with a known vibrato and scoop."""
    t = np.arange(int(seconds * 300)) / 300
    fade = np.clip((t - delay_s) / 0.2, 0, 1)
    cents = depth_cents * fade * np.sin(2 * np.pi * rate_hz * t) - scoop_cents * np.exp(-t / 0.05)
    return 440 * 2 ** ((note - 69) / 12 + cents / 1200), np.full(t.size, -25.0)


def test_a_note_measures_the_vibrato_and_scoop_it_was_made_with():
    f0, loudness = synthetic_note(1.5, 5.0, 30.0, 0.3, scoop_cents=80.0)
    shape = measure_note(f0, loudness, 300).values
    assert abs(shape["vibrato_hz"] - 5.0) < 0.1 and abs(shape["vibrato_cents"] - 30.0) < 3.0
    assert 0.3 < shape["vibrato_delay_s"] < 0.7
    assert 30.0 < shape["scoop_cents"] < 80.0


def test_notes_are_found_without_a_score_and_a_vibrato_does_not_split_them():
    parts = [synthetic_note(1.0, 6.0, 60.0, 0.1, note=n)[0] for n in (60, 62, 67)]
    f0 = np.concatenate([parts[0], parts[1], np.zeros(60), parts[2]])
    spans = find_notes(f0, f0 > 0, 300)
    assert len(spans) == 3
    assert abs(spans[1][0] - 300) < 20 and spans[2][0] == 660


def test_a_fitted_style_follows_pitch_and_shrugs_off_outliers():
    notes = []
    rng = np.random.default_rng(0)
    for i in range(40):
        note = 55 + i % 24
        depth = 10.0 + 20.0 * (note - 60) / 12  # deeper vibrato higher up
        f0, loudness = synthetic_note(1.2, 5.5, max(depth, 2.0), 0.2, note=note)
        if i % 10 == 3:
            f0 = f0 * 2 ** (np.linspace(0, 7, f0.size) / 12)  # a slide that no vibrato explains
        notes.append(measure_note(f0 * 2 ** (rng.normal(0, 1, f0.size) / 1200), loudness, 300))
    style = fit_style(notes, (-40.0, -10.0))
    c0, c_pitch, _ = style["fields"]["vibrato_cents"]
    assert abs(c0 - 10.0) < 3.0 and abs(c_pitch - 20.0) < 4.0, (c0, c_pitch)
    assert abs(style["fields"]["vibrato_hz"][0] - 5.5) < 0.2


def test_a_session_says_once_that_a_model_without_a_style_plays_plainly(tmp_path):
    from timbrel.presets.library import Library
    from timbrel.session import Session

    plain(tmp_path)
    user = tmp_path / "user"
    library = Library(user_dir=user)
    library.import_model(tmp_path / "plain.onnx", name="Plain One")
    session = Session(library=library, voices=4)
    try:
        for _ in range(2):
            session.load("Plain One", wait=True)
        session.load("Violin", wait=True)  # the factory Violin has its style
        assert len(session.notices) == 1 and "no playing style" in session.notices[0]
        assert "plain-one.onnx" in session.notices[0]  # the copy in the user's models folder
    finally:
        session.close()


def test_a_learned_controller_sets_its_parameter_across_the_range_and_its_usual_role_stops():
    from tests.test_instrument import cc

    model = load_model(default_model())
    instrument = MidiInstrument(model)
    instrument.learn(2, "auto_vibrato_cents")
    instrument.learn(1, "scoop_s")  # the mod wheel, learned: no longer vibrato depth
    instrument.prepare(SR, 128)
    instrument.handle(np.array([cc(2, 127), cc(1, 64)], dtype=np.int32))
    assert instrument.params.get("auto_vibrato_cents") == 100.0
    assert instrument.params.get("scoop_s") == pytest.approx(0.01 * 50 ** (64 / 127))  # its log scale
    assert instrument._controls[1] == 0.0  # the mod wheel's own value did not move
    instrument.handle(np.array([cc(2, 0)], dtype=np.int32))
    assert instrument.params.get("auto_vibrato_cents") == 0.0
    assert instrument.learned() == {1: "scoop_s", 2: "auto_vibrato_cents"}
    instrument.learn(1, None)
    instrument.handle(np.array([cc(1, 127)], dtype=np.int32))
    assert instrument._controls[1] == 1.0
    for reserved in (64, 6, 123):
        with pytest.raises(TimbrelError, match=f"CC {reserved} cannot be learned"):
            instrument.learn(reserved, "gain_db")


def test_a_learned_knob_brings_in_vibrato_while_a_note_holds(tmp_path):
    from tests.test_instrument import cc
    from timbrel.engine.realtime.host import Engine
    from timbrel.engine.render import render_events

    instrument = MidiInstrument(plain(tmp_path))
    instrument.learn(21, "auto_vibrato_cents")
    instrument.params.set("vibrato_delay_s", 0.0)
    instrument.params.set("reverb_mix", 0.0)
    events = [(0.0, on(69)), (1.0, cc(21, 64))]
    audio = render_events(Engine(SR, 128), instrument, events, 2.0, 128)[:, 0].astype(np.float64)
    before = cents_curve(audio, 0.3, 0.95, 69)
    rate, depth = vibrato_of(cents_curve(audio, 1.2, 1.95, 69))
    assert np.abs(before - np.median(before)).max() < 2.0
    assert abs(depth - 100 * 64 / 127) < 8.0 and abs(rate - 5.5) < 0.3, (rate, depth)


def test_presets_keep_their_midi_learn_and_refuse_a_bad_entry_in_one_line(tmp_path):
    from timbrel.presets.library import Library
    from timbrel.presets.preset import parse_preset
    from timbrel.presets.settings import apply_settings
    from timbrel.presets.writing import preset_to_toml

    violin = Library().get("Violin")
    mine = apply_settings(violin, {"learn.2": "auto_vibrato_cents", "learn.21": "swell_db"})
    assert mine.learn == {2: "auto_vibrato_cents", 21: "swell_db"}
    again = parse_preset(preset_to_toml(mine))
    assert again.learn == mine.learn
    assert apply_settings(again, {"learn.21": "none"}).learn == {2: "auto_vibrato_cents"}
    text = preset_to_toml(mine)
    for bad, fault in ((text.replace('2 = "auto_vibrato_cents"', '64 = "gain_db"'), "64.*controller number 0 to 127"),
                       (text.replace('"auto_vibrato_cents"', '"nope"'), "'nope'.*not a MIDI instrument parameter")):
        with pytest.raises(TimbrelError, match=fault) as err:
            parse_preset(bad, where="mine.toml")
        assert "\n" not in str(err.value)
    with pytest.raises(TimbrelError, match="learn.200"):
        apply_settings(violin, {"learn.200": "gain_db"})


def test_a_note_slurred_from_one_still_held_gets_no_scoop_and_no_attack_noise(tmp_path):
    model = plain(tmp_path)
    params = {"scoop_cents": 100.0, "scoop_s": 0.05, "attack_noise_db": 12.0}
    _, detached, _ = play(model, [(0.0, on(60)), (0.3, off(60)), (0.5, on(64))], 0.502, **params)
    _, slurred, _ = play(model, [(0.0, on(60)), (0.5, on(64))], 0.502, **params)
    for instrument, scooped in ((detached, True), (slurred, False)):
        v = int(np.flatnonzero(instrument._ints[1] == 64)[0])
        cents = 1200 * np.log2(instrument._f0[v] / (440 * 2 ** ((64 - 69) / 12)))
        noise = instrument._notes[expression.N_NOISE_GAIN, v]
        if scooped:
            assert cents < -80.0 and noise > 3.0
        else:
            assert abs(cents) < 0.01 and noise == 1.0


def test_timbrel_style_writes_a_styled_copy_and_refuses_a_folder_without_notes(tmp_path):
    from tests.test_cli import timbrel
    from timbrel.export.fluidsynth import generate_dataset

    generate_dataset("flute", 20, 4, tmp_path / "takes", phrase_seconds=10, vibrato=(6.0, 40.0))
    result = timbrel("style", str(default_model()), str(tmp_path / "takes"), "-o", str(tmp_path / "styled.onnx"))
    assert result.returncode == 0, result.stderr
    assert "notes measured" in result.stdout and "vibrato_hz" in result.stdout
    style = load_model(tmp_path / "styled.onnx").info.style
    assert style["source"] == "takes" and abs(style["fields"]["vibrato_hz"][0] - 6.0) < 1.0
    (tmp_path / "empty").mkdir()
    result = timbrel("style", str(default_model()), str(tmp_path / "empty"))
    assert result.returncode != 0 and "empty: no recordings" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
