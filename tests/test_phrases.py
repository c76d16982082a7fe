import io
import json
import os
import re

import mido
import numpy as np
import pytest
import soundfile

from timbrel.engine.errors import TimbrelError
from timbrel.export.fluidsynth import PEAK_DBFS, generate_dataset, render_with_fluidsynth
from timbrel.export.phrases import (
    BEND_RANGE_SEMITONES,
    INSTRUMENTS,
    LEGATO_OVERLAP_S,
    Note,
    Phrase,
    make_phrase,
    phrase_to_midi,
    reference_f0,
)

SR = 48000
GM_PROGRAMS = {
    "violin": 40, "viola": 41, "cello": 42, "contrabass": 43, "choir_aah": 52, "trumpet": 56,
    "trombone": 57, "tuba": 58, "french_horn": 60, "alto_sax": 65, "oboe": 68, "bassoon": 70,
    "clarinet": 71, "flute": 73,
}


def midi_bytes(midi: mido.MidiFile) -> bytes:
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


def timed_messages(midi: mido.MidiFile) -> list[tuple[float, mido.Message]]:
    """(time in s, message) for every message, in file order."""
    now, out = 0.0, []
    for msg in midi:
        now += msg.time
        out.append((now, msg))
    return out


@pytest.fixture(scope="module")
def flute_render(tmp_path_factory):
    phrase = make_phrase("flute", 5.0, 2)
    path = render_with_fluidsynth(phrase_to_midi(phrase), tmp_path_factory.mktemp("render") / "flute.wav")
    return phrase, path


def test_instrument_table_matches_general_midi():
    for name, program in GM_PROGRAMS.items():
        assert INSTRUMENTS[name].program == program, name
    categories = {i.category for i in INSTRUMENTS.values()}
    assert categories == {"strings", "woodwind", "brass", "reed", "voice"}
    for inst in INSTRUMENTS.values():
        assert 0 <= inst.low < inst.high <= 127 and inst.high - inst.low >= 12


def test_same_seed_gives_identical_phrase_and_midi_and_other_seeds_differ():
    a, b, c = make_phrase("violin", 12.0, 11), make_phrase("violin", 12.0, 11), make_phrase("violin", 12.0, 12)
    assert a.to_dict() == b.to_dict()
    assert midi_bytes(phrase_to_midi(a)) == midi_bytes(phrase_to_midi(b))
    assert midi_bytes(phrase_to_midi(a)) != midi_bytes(phrase_to_midi(c))
    assert [n.pitch for n in a.notes] != [n.pitch for n in c.notes]
    again = Phrase.from_dict(json.loads(json.dumps(a.to_dict())))
    assert midi_bytes(phrase_to_midi(again)) == midi_bytes(phrase_to_midi(a))


@pytest.mark.parametrize("name", sorted(INSTRUMENTS))
def test_notes_stay_in_range_and_are_monophonic(name):
    inst = INSTRUMENTS[name]
    for seed in range(4):
        phrase = make_phrase(name, 20.0, seed)
        notes = phrase.notes
        assert len(notes) >= 8
        assert all(inst.low <= n.pitch <= inst.high for n in notes)
        assert all(1 <= n.velocity <= 127 and n.duration_s > 0 for n in notes)
        assert notes[0].onset_s > 0 and notes[-1].end_s <= phrase.seconds - 0.5
        for prev, nxt in zip(notes, notes[1:]):
            overlap = prev.end_s - nxt.onset_s
            if prev.legato:
                assert overlap == pytest.approx(LEGATO_OVERLAP_S, abs=1e-6)
                assert nxt.pitch != prev.pitch
            else:
                assert overlap <= 1e-9
        assert not notes[-1].legato


def test_phrases_have_legato_detached_rests_leaps_and_steps():
    phrases = [make_phrase(name, 20.0, 5) for name in ("violin", "flute", "trumpet", "cello")]
    notes = [n for p in phrases for n in p.notes]
    legato = sum(n.legato for n in notes)
    assert 0.25 * len(notes) < legato < 0.85 * len(notes)
    gaps = [b.onset_s - a.end_s for p in phrases for a, b in zip(p.notes, p.notes[1:])]
    assert max(gaps) > 0.25
    moves = np.abs(np.diff([n.pitch for n in phrases[0].notes]))
    assert np.mean(moves <= 2) > 0.4 and np.max(moves) >= 4
    assert np.ptp([n.velocity for n in notes]) >= 30


def test_midi_sets_bend_range_program_and_sends_expression_and_bend():
    phrase = make_phrase("cello", 20.0, 3)
    midi = phrase_to_midi(phrase)
    events = timed_messages(midi)
    first_note = next(i for i, (_, m) in enumerate(events) if m.type == "note_on")
    setup = [m for _, m in events[:first_note] if m.type == "control_change"]
    rpn = [(m.control, m.value) for m in setup if m.control in (101, 100, 6, 38)]
    assert rpn[:4] == [(101, 0), (100, 0), (6, BEND_RANGE_SEMITONES), (38, 0)] and rpn[4:] == [(101, 127), (100, 127)]
    assert [m.program for _, m in events if m.type == "program_change"] == [INSTRUMENTS["cello"].program]
    cc11 = [m.value for _, m in events if m.type == "control_change" and m.control == 11]
    bends = [m.pitch for _, m in events if m.type == "pitchwheel"]
    assert len(cc11) > 50 and np.ptp(cc11) >= 30
    assert len(bends) > 200 and min(bends) < -50 and max(bends) > 50
    assert midi.length == pytest.approx(phrase.seconds, abs=0.002)

    started, intervals = {}, []
    for t, m in events:
        if m.type == "note_on" and m.velocity > 0:
            assert m.note not in started
            started[m.note] = (t, m.velocity)
        elif m.type in ("note_off", "note_on"):
            on, velocity = started.pop(m.note)
            intervals.append((on, t, m.note, velocity))
    assert not started
    intervals.sort()
    for (_, off, _, _), (on, _, _, _) in zip(intervals, intervals[1:]):
        assert off - on <= LEGATO_OVERLAP_S + 1e-6
    for (_, off, _, _), (on, _, _, _) in zip(intervals, intervals[2:]):
        assert off <= on
    expected = [(n.onset_s, n.end_s, n.pitch, n.velocity) for n in phrase.notes]
    np.testing.assert_allclose([i[:2] for i in intervals], [e[:2] for e in expected], atol=1e-6)
    assert [i[2:] for i in intervals] == [e[2:] for e in expected]


def test_reference_f0_follows_notes_bends_and_gaps():
    phrase = make_phrase("violin", 20.0, 1)
    rate = 200
    f0, voiced = reference_f0(phrase, rate)
    assert f0.shape == voiced.shape == (int(phrase.seconds * rate),)
    t = (np.arange(f0.size) + 1) / rate
    in_note = np.zeros(f0.size, bool)
    for n in phrase.notes:
        in_note |= (t >= n.onset_s) & (t < n.end_s)
    np.testing.assert_array_equal(voiced, in_note)
    assert np.all(f0[~voiced] == 0) and (~voiced).sum() > rate
    note = max(phrase.notes, key=lambda n: n.duration_s)
    inside = (t >= note.onset_s) & (t < min(note.end_s, note.onset_s + note.duration_s - LEGATO_OVERLAP_S))
    cents = 1200 * np.log2(f0[inside] / (440 * 2 ** ((note.pitch - 69) / 12)))
    np.testing.assert_allclose(cents, 100 * phrase.bend[np.round(t[inside] * rate).astype(int)], atol=1e-6)
    assert np.ptp(cents) > 20


def test_render_is_mono_48k_trimmed_and_normalised(flute_render):
    phrase, path = flute_render
    info = soundfile.info(str(path))
    assert (info.channels, info.samplerate, info.subtype) == (1, SR, "PCM_24")
    audio, _ = soundfile.read(str(path))
    assert 20 * np.log10(np.max(np.abs(audio))) == pytest.approx(PEAK_DBFS, abs=0.01)
    assert 20 * np.log10(np.sqrt(np.mean(audio**2))) > -30
    assert phrase.notes[-1].end_s < audio.size / SR < phrase.seconds + 2.0
    assert np.max(np.abs(audio[-SR // 100 :])) > 1e-5
    assert not any(p.name.endswith(".part") for p in path.parent.iterdir())


def test_render_is_deterministic_and_seed_dependent(flute_render, tmp_path):
    phrase, first = flute_render
    again = render_with_fluidsynth(phrase_to_midi(make_phrase("flute", 5.0, 2)), tmp_path / "again.wav")
    assert first.read_bytes() == again.read_bytes()
    other = render_with_fluidsynth(phrase_to_midi(make_phrase("flute", 5.0, 3)), tmp_path / "other.wav")
    a, b = soundfile.read(str(first))[0], soundfile.read(str(other))[0]
    n = min(a.size, b.size)
    assert np.mean(np.abs(a[:n] - b[:n])) > 0.01


def autocorrelation_f0(x: np.ndarray, f_lo: float, f_hi: float) -> float:
    """f0 (Hz) of `x` from the highest normalised-autocorrelation peak with a lag in the
    period range `[1/f_hi, 1/f_lo]`, refined by a parabola."""
    x = x - x.mean()
    r = np.fft.irfft(np.abs(np.fft.rfft(x, 2 * x.size)) ** 2)[: x.size] / (x.size - np.arange(x.size))
    lo, hi = int(SR / f_hi), int(np.ceil(SR / f_lo))
    k = lo + int(np.argmax(r[lo : hi + 1]))
    a, b, c = r[k - 1], r[k], r[k + 1]
    return SR / (k + 0.5 * (a - c) / (a - 2 * b + c))


def pitch_errors(phrase: Phrase, audio: np.ndarray, notes, shift_semitones: float = 0.0) -> np.ndarray:
    """Cents between the audio's f0 and `reference_f0` (shifted by `shift_semitones`) in
    50 ms windows over `notes`, skipping each note's first 100 ms and its last 30 ms."""
    rate, win = 1000, int(0.05 * SR)
    f0, voiced = reference_f0(phrase, rate, num_frames=audio.size * rate // SR)
    errors = []
    for note in notes:
        t = note.onset_s + 0.1
        while t + 0.05 <= note.end_s - LEGATO_OVERLAP_S - 0.03:
            frames = slice(round(t * rate), round((t + 0.05) * rate))
            assert voiced[frames].all()
            ref = float(np.exp(np.mean(np.log(f0[frames]))))
            est = autocorrelation_f0(audio[round(t * SR) : round(t * SR) + win], ref / 1.45, ref * 1.45)
            errors.append(1200 * np.log2(est / ref) - 100 * shift_semitones)
            t += 0.05
    return np.abs(errors)


def test_rendered_pitch_matches_reference_f0(flute_render):
    phrase, path = flute_render
    audio, _ = soundfile.read(str(path))
    held = [n for n in phrase.notes if n.duration_s >= 0.4]
    assert len(held) >= 3
    vibrato = np.ptp(100 * phrase.bend[round(held[0].onset_s * 200) : round(held[0].end_s * 200)])
    assert vibrato > 15
    errors = pitch_errors(phrase, audio, held)
    assert errors.size >= 30
    assert np.max(errors) < 30 and np.median(errors) < 10
    assert np.min(pitch_errors(phrase, audio, held, shift_semitones=1.0)) > 60


def test_rendered_pitch_follows_wide_bends(tmp_path):
    phrase = make_phrase("flute", 4.0, 0)
    phrase.notes = [Note(0.2, 1.6, 72, 90, False), Note(2.2, 1.2, 67, 90, False)]
    t = np.arange(phrase.bend.size) / phrase.control_rate_hz
    bend = np.where(t < 2.0, 1.5 * np.sin(2 * np.pi * (t - 0.2)), -3.0)
    phrase.bend = np.round(bend / BEND_RANGE_SEMITONES * 8192) * BEND_RANGE_SEMITONES / 8192
    phrase.expression = np.full(phrase.bend.size, 110.0)
    audio, _ = soundfile.read(str(render_with_fluidsynth(phrase_to_midi(phrase), tmp_path / "bend.wav")))
    errors = pitch_errors(phrase, audio, phrase.notes)
    assert errors.size >= 40 and np.max(errors) < 30
    phrase.bend = np.zeros_like(phrase.bend)
    assert np.median(pitch_errors(phrase, audio, phrase.notes)) > 50


def test_generate_dataset_writes_wavs_and_sidecars(tmp_path):
    paths = generate_dataset("clarinet", 5.0, 9, tmp_path / "data", phrase_seconds=3.0)
    assert [p.name for p in paths] == ["clarinet-9-000.wav", "clarinet-9-001.wav"]
    sidecars = [json.loads(p.with_suffix(".json").read_text()) for p in paths]
    assert sidecars[0]["seed"] != sidecars[1]["seed"]
    assert [s["index"] for s in sidecars] == [0, 1] and {s["dataset_seed"] for s in sidecars} == {9}
    for path, sidecar in zip(paths, sidecars):
        assert sidecar["seconds"] == pytest.approx(2.5) and sidecar["notes"]
        rebuilt = make_phrase("clarinet", sidecar["seconds"], sidecar["seed"])
        assert rebuilt.to_dict() == Phrase.from_dict(sidecar).to_dict()
        assert soundfile.info(str(path)).channels == 1
    assert sorted(os.listdir(tmp_path / "data")) == sorted([p.name for p in paths] + [p.stem + ".json" for p in paths])


def test_missing_soundfont_fluidsynth_or_instrument_is_a_one_line_error(tmp_path, monkeypatch):
    midi = phrase_to_midi(make_phrase("flute", 3.0, 0))
    missing = tmp_path / "nowhere" / "missing.sf2"
    with pytest.raises(TimbrelError, match=re.escape(str(missing))):
        render_with_fluidsynth(midi, tmp_path / "x.wav", soundfont=missing)
    junk = tmp_path / "junk.sf2"
    junk.write_bytes(b"not a soundfont")
    with pytest.raises(TimbrelError, match=re.escape(f"{junk}: not a SoundFont")):
        render_with_fluidsynth(midi, tmp_path / "x.wav", soundfont=junk)
    with pytest.raises(TimbrelError, match="no such MIDI file"):
        render_with_fluidsynth(tmp_path / "missing.mid", tmp_path / "x.wav")
    with pytest.raises(TimbrelError, match="unknown instrument"):
        make_phrase("kazoo", 5.0, 0)
    with pytest.raises(TimbrelError, match="at least"):
        make_phrase("flute", 1.0, 0)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(TimbrelError, match="fluidsynth"):
        render_with_fluidsynth(midi, tmp_path / "x.wav")
    assert not (tmp_path / "x.wav").exists()
