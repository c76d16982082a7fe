"""Ensembles: a General MIDI song played with each channel's own instrument, splits, layers,
a part switching preset alone, and the multi file's faults, all through `Engine.process`
with real models in onnxruntime."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mido
import numpy as np
import pytest

from tests.conftest import wait_until
from timbrel.engine.errors import TimbrelError
from timbrel.engine.realtime.host import Engine
from timbrel.engine.render import midi_events, render_events
from timbrel.plugin.ensemble import PART_PARAMETERS, Ensemble, Part
from timbrel.plugin.ensemble_kernels import PART_FIELDS
from timbrel.presets.build import load_preset
from timbrel.presets.library import Library
from timbrel.presets.multi import (
    Multi,
    PartSpec,
    build_ensemble,
    get_multi,
    parse_multi,
    read_multi,
    remove_multi,
    save_multi,
)
from timbrel.presets.song import (
    DRUMS_SKIPPED,
    LoadedModels,
    follow_programs,
    general_midi_multi,
    play_program,
    song_multi,
)
from timbrel.session import Session

RATE, BLOCK = 48000, 128
QUARTET = ((0, 40, (67, 74)), (1, 73, (85, 79)), (2, 42, (46, 43)), (3, 56, (63, 65)))
"""Channel, GM program (violin, flute, cello, trumpet) and two notes each; the first notes are
no harmonic of one another, so each part shows in the spectrum at its own fundamental."""


def write_song(path: Path, tracks=QUARTET, drums: bool = False) -> Path:
    song = mido.MidiFile(type=1)
    for channel, program, notes in tracks:
        track = mido.MidiTrack()
        song.tracks.append(track)
        track.append(mido.Message("program_change", channel=channel, program=program, time=0))
        for note in notes:
            track.append(mido.Message("note_on", channel=channel, note=note, velocity=96, time=0))
            track.append(mido.Message("note_off", channel=channel, note=note, velocity=0, time=480))
    if drums:
        track = mido.MidiTrack()
        song.tracks.append(track)
        track.append(mido.Message("note_on", channel=9, note=36, velocity=100, time=0))
        track.append(mido.Message("note_off", channel=9, note=36, velocity=0, time=240))
    song.save(str(path))
    return path


def render_with_stems(ensemble: Ensemble, events: list[tuple[float, int]], seconds: float):
    """The engine's output `[samples, 2]` and each part's stem `[parts, samples, 2]`."""
    total = int(np.ceil(seconds * RATE))
    stems = np.zeros((len(ensemble.parts), total, 2), dtype=np.float32)

    def keep(start: int, stop: int) -> None:
        stems[:, start:stop] = ensemble.stems[:, :, : stop - start].transpose(0, 2, 1)

    out = render_events(Engine(RATE, BLOCK), ensemble, events, seconds, BLOCK, keep)
    return out, stems


def note_events(*notes: tuple[float, int, int, int]) -> list[tuple[float, int]]:
    """(time s, channel, note, velocity; velocity 0 is note off) as timed packed messages."""
    return sorted((t, 0x90 | ch | note << 8 | vel << 16) for t, ch, note, vel in notes)


def level_at(audio: np.ndarray, hz: float) -> float:
    """The magnitude (dB) of `audio`'s left channel at `hz`, from a Hann-windowed spectrum."""
    x = audio[:, 0].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    freqs = np.fft.rfftfreq(x.size, 1 / RATE)
    ratio = 2 ** (30 / 1200)
    band = (freqs > hz / ratio) & (freqs < hz * ratio)
    return 20 * np.log10(spectrum[band].max() + 1e-12)


def hz(note: int) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


def test_a_general_midi_song_plays_each_channel_with_its_own_instrument(tmp_path):
    song = write_song(tmp_path / "quartet.mid", drums=True)
    multi, lines = song_multi(song)
    assert [p.preset for p in multi.parts] == ["violin", "flute", "cello", "trumpet"]
    assert DRUMS_SKIPPED in lines
    events = midi_events(song)
    seconds = events[-1][0] + 1.0
    mix, stems = render_with_stems(build_ensemble(multi), events, seconds)
    assert np.abs(mix).max() < 0.98, "the limiter must not act, so stems add up to the mix"
    np.testing.assert_allclose(stems.sum(axis=0), mix, atol=2e-5)
    for number, spec in enumerate(multi.parts):
        alone = Multi(name="alone", parts=[spec])
        solo, _ = render_with_stems(build_ensemble(alone), events, seconds)
        stem = stems[number]
        assert np.abs(stem).max() > 0.01
        error = np.sqrt(np.mean((solo - stem) ** 2)) / np.sqrt(np.mean(stem ** 2))
        assert error < 1e-3, f"part {number + 1} ({spec.preset}) differs from its solo render by {error:.2e}"
        others = [np.sqrt(np.mean((solo - stems[k]) ** 2)) / np.sqrt(np.mean(stems[k] ** 2))
                  for k in range(len(multi.parts)) if k != number]
        assert min(others) > 0.5
        first = QUARTET[number][2][0]
        half = stem[: int(0.45 * RATE)]
        assert level_at(half, hz(first)) > max(level_at(half, hz(QUARTET[k][2][0])) for k in range(4) if k != number) + 20


def test_the_part_settings_are_the_kernels_fields_in_order():
    assert tuple(p.id for p in PART_PARAMETERS) == PART_FIELDS


def two_parts(**second: float) -> Ensemble:
    return Ensemble([Part(load_preset("violin", voices=4), key_high=59),
                     Part(load_preset("flute", voices=4), **second)])


def test_a_split_plays_each_side_with_its_own_preset():
    events = note_events((0.0, 0, 55, 100), (0.0, 0, 76, 100), (0.6, 0, 55, 0), (0.6, 0, 76, 0))
    _, stems = render_with_stems(two_parts(key_low=60), events, 0.6)
    low, high = stems[0][int(0.1 * RATE):], stems[1][int(0.1 * RATE):]
    assert level_at(low, hz(55)) > level_at(low, hz(76)) + 30
    assert level_at(high, hz(76)) > level_at(high, hz(55)) + 30


def test_a_layer_sounds_both_presets_and_velocity_ranges_pick_one():
    ensemble = Ensemble([Part(load_preset("violin", voices=4)), Part(load_preset("cello", voices=4), velocity_low=100)])
    events = note_events((0.0, 0, 57, 110), (0.5, 0, 57, 0), (0.5, 0, 60, 60), (1.0, 0, 60, 0))
    _, stems = render_with_stems(ensemble, events, 1.0)
    loud, soft = slice(int(0.1 * RATE), int(0.5 * RATE)), slice(int(0.65 * RATE), int(1.0 * RATE))
    for stem in stems:
        assert level_at(stem[loud], hz(57)) > -10 + level_at(stems[0][loud], hz(57)) - 30
    assert np.abs(stems[1][loud]).max() > 0.01 and np.abs(stems[0][loud]).max() > 0.01
    assert level_at(stems[0][soft], hz(60)) > level_at(stems[1][soft], hz(60)) + 30


def test_switching_one_part_leaves_the_others_untouched_and_carries_its_held_notes():
    events = note_events((0.0, 0, 52, 100), (0.0, 1, 72, 100))
    seconds = 1.2

    def play(switch: bool):
        ensemble = Ensemble([Part(load_preset("violin", voices=4), midi_channel=1),
                             Part(load_preset("flute", voices=4), midi_channel=2)])
        engine = Engine(RATE, BLOCK)
        engine.load(ensemble)
        for _, packed in events:
            engine.events.push(packed)
        out = np.zeros((int(seconds * RATE), 2), dtype=np.float32)
        stems = np.zeros((2, out.shape[0], 2), dtype=np.float32)
        for start in range(0, out.shape[0], BLOCK):
            if switch and start == int(0.5 * RATE) // BLOCK * BLOCK:
                ensemble.switch_part(1, load_preset("oboe", voices=4), "Oboe")
            engine.process(None, out[start:start + BLOCK])
            stems[:, start:start + BLOCK] = ensemble.stems[:, :, :BLOCK].transpose(0, 2, 1)
        return ensemble, stems

    _, plain = play(False)
    switched_ensemble, switched = play(True)
    np.testing.assert_array_equal(plain[0], switched[0])
    assert switched_ensemble.parts[1].name == "Oboe"
    after = switched[1][int(0.8 * RATE):]
    assert level_at(after, hz(72)) > level_at(after, hz(60)) + 20, "the held note sounds on in the new preset"
    assert not np.allclose(after, plain[1][int(0.8 * RATE):], atol=1e-3), "the part plays the new preset"
    jump = np.abs(np.diff(switched[1][:, 0])).max()
    assert jump < 4 * np.abs(np.diff(plain[1][:, 0])).max(), "the switch must not click"


def test_multi_files_round_trip_and_faults_name_the_file_and_part(tmp_path):
    library = Library(user_dir=tmp_path / "user")
    multi = Multi(name="Duo", parts=[PartSpec(preset="violin", settings={"midi_channel": 1.0, "pan": -0.5}),
                                     PartSpec(preset="cello", voices=4, changes={"gain_db": -3.0})],
                  room="cello", reverb={"wet_db": -6.0}, delay={"time_ms": 300.0})
    path = save_multi(library, multi)
    assert read_multi(path) == multi
    assert get_multi(library, "duo") == multi
    with pytest.raises(TimbrelError, match="already exists"):
        save_multi(library, multi)
    ensemble = build_ensemble(read_multi(path), library)
    assert [p.name for p in ensemble.parts] == ["Violin", "Cello"]
    assert ensemble.parts[1].chain.instrument.params.get("gain_db") == -3.0
    remove_multi(library, "Duo")
    assert not path.exists()
    faults = {
        'format = 1\n[multi]\nname = "x"\n': "no \\[\\[parts\\]\\]",
        'format = 1\n[multi]\nname = "x"\n[[parts]]\npreset = "violin"\nkey_low = 200\n': "part 1 key_low",
        'format = 1\n[multi]\nname = "x"\n[[parts]]\npreset = "violin"\nvolum_db = 1\n': "did you mean 'volume_db'",
        'format = 1\n[multi]\nname = "x"\n[[parts]]\npreset = "violin"\nkey_low = 70\nkey_high = 60\n': "key_low is above",
        'format = 1\n[multi]\nname = "x"\n' + '[[parts]]\npreset = "violin"\n' * 17: "at most 16",
        'format = 2\n': "format = 1",
        'format = 1\n[multi]\nname = "x"\n[[parts]]\npreset = "violin"\ntranspose = 1.5\n': "transpose = 1.5: expected a whole",
        '[multi\n': "invalid TOML",
    }
    for text, message in faults.items():
        with pytest.raises(TimbrelError, match=message) as caught:
            parse_multi(text, "bad.toml")
        assert str(caught.value).startswith("bad.toml: ") and "\n" not in str(caught.value)
    missing = Multi(name="m", parts=[PartSpec(preset="no-such-preset")])
    with pytest.raises(TimbrelError, match="part 'no-such-preset'"):
        build_ensemble(missing, library)


def test_render_writes_the_mix_and_one_stem_per_part(tmp_path):
    song = write_song(tmp_path / "quartet.mid")
    result = subprocess.run([sys.executable, "-m", "timbrel", "render", str(song), "-o", str(tmp_path / "mix.wav"),
                             "--stems", str(tmp_path / "stems")], capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    assert "channel 2: program 74 Flute -> flute" in result.stdout
    assert sorted(p.name for p in (tmp_path / "stems").iterdir()) == [
        "01-violin.wav", "02-flute.wav", "03-cello.wav", "04-trumpet.wav"]
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    result = subprocess.run([sys.executable, "-m", "timbrel", "render", str(song), "-o", str(tmp_path / "late.wav"),
                             "--stems", str(blocked / "stems")], capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr and result.stderr.count("\n") == 1
    assert "--stems" in result.stderr and not (tmp_path / "late.wav").exists() and blocked.read_text() == "not a folder"
    bad = tmp_path / "bad.toml"
    bad.write_text('format = 1\n[multi]\nname = "x"\n[[parts]]\npreset = "violin"\npan = 3\n')
    result = subprocess.run([sys.executable, "-m", "timbrel", "render", str(song), "-o", str(tmp_path / "x.wav"),
                             "--multi", str(bad)], capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "part 1 pan" in result.stderr


def test_general_midi_live_a_program_change_switches_the_part_on_its_channel(jack_server):
    session = Session(voices=4)
    try:
        session.start(multi=general_midi_multi(voices=4), gm=True, use_midi=False)
        ensemble = session.ensemble
        assert [int(p.params.get("midi_channel")) for p in ensemble.parts] == [c for c in range(1, 17) if c != 10]
        session.note_on(60, channel=0)
        session.program_change(56, channel=2)  # GM program 57, Trumpet
        session.program_change(5, channel=9)  # drums: skipped
        assert wait_until(lambda: ensemble.parts[2].name == "Trumpet", timeout=10.0)
        assert [p.name for i, p in enumerate(ensemble.parts) if i != 2] == [ensemble.parts[0].name] * 14
        assert session.status()["parts"][2]["name"] == "Trumpet"
        assert session.engine.keyboard.held_notes() == [(0, 60)] and session.last_error == ""
        assert DRUMS_SKIPPED in session.notices
        with pytest.raises(TimbrelError, match="is an ensemble"):
            session.save("Not a preset")
    finally:
        session.close()


def test_a_program_change_in_a_song_switches_its_part_from_then_on(tmp_path):
    """Violin, then a program change to the trumpet: the later note sounds as the trumpet
    alone plays it (within 1 dB at its first five harmonics; what remains is the violin
    note's room, which the new preset's reverb hears fade), and unlike the violin's."""
    song = mido.MidiFile(type=1)
    track = mido.MidiTrack()
    song.tracks.append(track)
    track.append(mido.Message("program_change", channel=0, program=40, time=0))
    track.append(mido.Message("note_on", channel=0, note=62, velocity=96, time=0))
    track.append(mido.Message("note_off", channel=0, note=62, velocity=0, time=480))
    track.append(mido.Message("program_change", channel=0, program=56, time=240))
    track.append(mido.Message("note_on", channel=0, note=62, velocity=96, time=240))
    track.append(mido.Message("note_off", channel=0, note=62, velocity=0, time=480))
    song.save(str(tmp_path / "change.mid"))
    events = midi_events(tmp_path / "change.mid")
    multi, _ = song_multi(tmp_path / "change.mid")
    ensemble = build_ensemble(multi)
    seconds = events[-1][0] + 0.5
    total = int(np.ceil(seconds * RATE))
    stem = np.zeros((total, 2), dtype=np.float32)

    def keep(start: int, stop: int) -> None:
        stem[start:stop] = ensemble.stems[0, :, : stop - start].T

    render_events(Engine(RATE, BLOCK), ensemble, events, seconds, BLOCK, keep, follow_programs(ensemble))
    assert ensemble.parts[0].name == "Trumpet"
    trumpet = Multi(name="t", parts=[PartSpec(preset="trumpet", settings={"volume_db": 0.0})])
    alone, _ = render_with_stems(build_ensemble(trumpet), [e for e in events if e[0] > 0.6], seconds)
    second = slice(int(1.1 * RATE), int(1.4 * RATE))
    harmonics = [hz(62) * k for k in range(1, 6)]
    levels = np.array([level_at(stem[second], f) for f in harmonics])
    assert np.abs(levels - [level_at(alone[second], f) for f in harmonics]).max() < 1.0
    first = slice(int(0.1 * RATE), int(0.45 * RATE))
    assert np.abs(np.array([level_at(stem[first], f) for f in harmonics]) - levels).max() > 3.0


def test_program_changes_back_and_forth_reuse_each_model_and_the_song_plays_on(tmp_path):
    song = mido.MidiFile(type=1)
    track = mido.MidiTrack()
    song.tracks.append(track)
    for i in range(40):
        track.append(mido.Message("program_change", channel=0, program=(73, 71, 72)[i % 3], time=0))
        track.append(mido.Message("note_on", channel=0, note=72, velocity=90, time=0))
        track.append(mido.Message("note_off", channel=0, note=72, velocity=0, time=60))
    track.append(mido.Message("note_on", channel=0, note=72, velocity=90, time=0))
    track.append(mido.Message("note_off", channel=0, note=72, velocity=0, time=480))
    song.save(str(tmp_path / "changes.mid"))
    events = midi_events(tmp_path / "changes.mid")
    multi, _ = song_multi(tmp_path / "changes.mid")
    ensemble = build_ensemble(multi)
    engine = Engine(RATE, BLOCK)
    seconds = events[-1][0] + 0.5
    out = render_events(engine, ensemble, events, seconds, BLOCK, on_event=follow_programs(ensemble))
    assert len(ensemble.voices.runners) == 2  # flute and clarinet; the piccolo is the flute an octave down
    assert ensemble.parts[0].name == "Flute" and ensemble.parts[0].params.get("transpose") == 0.0  # the last: 73
    assert engine.errors == 0 and np.abs(out[-int(0.6 * RATE):]).max() > 0.01


def test_a_piccolo_after_a_flute_is_the_flute_preset_an_octave_down():
    ensemble = Ensemble([Part(load_preset("flute", voices=2), "Flute")])
    engine = Engine(RATE, BLOCK)
    engine.load(ensemble)
    library, models = Library(), LoadedModels()
    assert play_program(ensemble, 0, 72, library, models)  # Piccolo
    assert ensemble.parts[0].params.get("transpose") == -12.0 and ensemble.parts[0].playing == "Flute"
    assert not play_program(ensemble, 0, 72, library, models)
    assert play_program(ensemble, 0, 73, library, models)  # Flute
    assert ensemble.parts[0].params.get("transpose") == 0.0


def test_a_second_switch_asked_for_before_the_first_is_taken_wins():
    ensemble = Ensemble([Part(load_preset("violin", voices=2), "Violin")])
    engine = Engine(RATE, BLOCK)
    engine.load(ensemble)
    engine.events.push(0x90 | 60 << 8 | 90 << 16)
    out = np.zeros((BLOCK, 2), dtype=np.float32)
    engine.process(None, out)
    ensemble.switch_part(0, load_preset("cello", voices=2), "Cello")
    ensemble.switch_part(0, load_preset("oboe", voices=2), "Oboe")
    for _ in range(20):
        engine.process(None, out)
    assert ensemble.parts[0].name == "Oboe" and ensemble.parts[0].playing == "Oboe"
    instrument = ensemble.parts[0].chain.instrument
    assert instrument.active_voices == 1, "the held note carried over once, not twice"


def test_a_song_with_only_drums_is_refused_in_one_line(tmp_path):
    song = write_song(tmp_path / "drums.mid", tracks=(), drums=True)
    with pytest.raises(TimbrelError, match="drums.mid: no notes to play outside channel 10") as caught:
        song_multi(song)
    assert "\n" not in str(caught.value)
