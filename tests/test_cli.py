import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from timbrel.engine.errors import TimbrelError
from timbrel.engine.io.audiofile import read_audio, write_audio


def timbrel(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "timbrel", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_demo_writes_a_playable_phrase(tmp_path):
    out = tmp_path / "demo.wav"
    result = timbrel("demo", "--no-play", "-o", str(out))
    assert result.returncode == 0, result.stderr
    audio, rate = soundfile.read(out)
    assert rate == 48000 and audio.ndim == 1
    assert 4 < audio.size / rate < 8
    assert 0.05 < np.abs(audio).max() <= 1.0
    assert np.sqrt(np.mean(audio[: rate // 2] ** 2)) > 1e-3


def test_a_missing_output_folder_is_one_line_without_traceback(tmp_path):
    result = timbrel("demo", "--no-play", "-o", str(tmp_path / "nowhere" / "demo.wav"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "nowhere" in lines[0] and "Traceback" not in result.stderr


def test_an_interrupted_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "take.wav"
    write_audio(path, np.full(480, 0.25), 48000)
    before = path.read_bytes()

    def fail_midway(handle, *args, **kwargs):
        handle.write(b"RIFF half a header")
        raise OSError("disk full")

    monkeypatch.setattr(soundfile, "write", fail_midway)
    with pytest.raises(OSError, match="disk full"):
        write_audio(path, np.zeros(480), 48000)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["take.wav"]


def test_a_corrupt_wav_is_named_in_one_line(tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    with pytest.raises(TimbrelError, match="broken.wav: not a readable audio file"):
        read_audio(bad)
    with pytest.raises(TimbrelError, match="no such file"):
        read_audio(tmp_path / "absent.wav")


def small_song(path):
    import mido

    song = mido.MidiFile()
    track = mido.MidiTrack()
    song.tracks.append(track)
    for note in (60, 64, 67):
        track.append(mido.Message("note_on", note=note, velocity=100, time=0))
        track.append(mido.Message("note_off", note=note, velocity=0, time=240))
    song.save(path)
    return path


def test_render_writes_the_song_and_is_deterministic(tmp_path):
    song = small_song(tmp_path / "song.mid")
    for name in ("a.wav", "b.wav"):
        result = timbrel("render", str(song), "-o", str(tmp_path / name))
        assert result.returncode == 0, result.stderr
        assert "faster than real time" in result.stdout
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()
    audio, rate = soundfile.read(tmp_path / "a.wav")
    assert rate == 48000 and audio.shape[1] == 2 and np.abs(audio).max() > 0.01


def test_transfer_writes_the_instrument_following_the_input(tmp_path):
    t = np.arange(48000) / 44100
    soundfile.write(tmp_path / "sung.wav", 0.3 * np.sin(2 * np.pi * 330 * t), 44100)
    result = timbrel("transfer", str(tmp_path / "sung.wav"), "-o", str(tmp_path / "out.flac"), "--set", "octave=-1")
    assert result.returncode == 0, result.stderr
    audio, rate = soundfile.read(tmp_path / "out.flac")
    assert rate == 48000 and np.abs(audio).max() > 0.01


@pytest.mark.parametrize(
    "args, fault",
    [
        (["render", "{tmp}/garbage.mid", "-o", "{tmp}/x.wav"], "garbage.mid: not a readable MIDI file"),
        (["render", "{tmp}/song.mid", "-p", "{tmp}/absent.onnx", "-o", "{tmp}/x.wav"], "absent.onnx: no such model file"),
        (["render", "{tmp}/song.mid", "-p", "{tmp}/garbage.mid", "-o", "{tmp}/x.wav"], "not a loadable ONNX model"),
        (["transfer", "{tmp}/garbage.mid", "-o", "{tmp}/x.wav"], "garbage.mid: not a readable audio file"),
        (["transfer", "{tmp}/song.mid", "-o", "{tmp}/x.wav", "--set", "gain_db"], "--set gain_db: expected KEY=VALUE"),
        (["render", "{tmp}/song.mid", "-o", "{tmp}/x.wav", "--blocksize", "4"], "block size must be 16 to 2048"),
        (["transcribe", "{tmp}/garbage.mid", "-o", "{tmp}/x.mid"], "garbage.mid: not a readable audio file"),
        (["transcribe", "{tmp}/broken.wav", "-o", "{tmp}/x.mid"], "broken.wav: not a readable audio file"),
        (["transcribe", "{tmp}/absent.wav", "-o", "{tmp}/x.mid"], "absent.wav: no such file"),
        (["transcribe", "{tmp}/sung.wav", "-o", "{tmp}/x.wav"], "x.wav: a MIDI file must end in .mid"),
        (["transcribe", "{tmp}/sung.wav", "-o", "{tmp}/x.mid", "--set", "pitch_floor_hz=loud"], "pitch_floor_hz"),
    ],
)
def test_bad_input_is_one_line_with_no_traceback(tmp_path, args, fault):
    small_song(tmp_path / "song.mid")
    (tmp_path / "garbage.mid").write_bytes(b"\x00garbage" * 20)
    (tmp_path / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt junkjunk")
    soundfile.write(tmp_path / "sung.wav", np.zeros(4800), 48000)
    result = timbrel(*(a.format(tmp=tmp_path) for a in args))
    assert result.returncode == 2
    assert fault in result.stderr and "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("timbrel")]) == 1
    assert not (tmp_path / "x.wav").exists() and not (tmp_path / "x.mid").exists()


def test_transcribe_writes_the_notes_of_a_sung_phrase(tmp_path):
    """Three sung-like notes at 44.1 kHz (resampled to 48 kHz), the middle one 30 cents sharp,
    with MPE and a 48-semitone bend range: a MIDI file of those notes, one member channel
    each, the bend saying the 30 cents."""
    import mido

    rate = 44100
    parts = []
    for midi in (60, 64.3, 67):
        t = np.arange(int(0.4 * rate)) / rate
        phase = 2 * np.pi * 440 * 2 ** ((midi - 69) / 12) * t
        parts += [0.3 * sum(np.sin(k * phase) / k for k in range(1, 6)), np.zeros(int(0.2 * rate))]
    soundfile.write(tmp_path / "sung.wav", np.concatenate(parts), rate)
    result = timbrel("transcribe", str(tmp_path / "sung.wav"), "-o", str(tmp_path / "sung.mid"),
                     "--set", "mpe=on", "--set", "bend_range_st=48")
    assert result.returncode == 0, result.stderr
    assert "3 notes" in result.stdout
    messages = [m for m in mido.MidiFile(tmp_path / "sung.mid").tracks[0] if not m.is_meta]
    ons = [m for m in messages if m.type == "note_on" and m.velocity > 0]
    assert [m.note for m in ons] == [60, 64, 67]
    assert [m.channel for m in ons] == [1, 2, 3]
    bends = [m.pitch for m in messages if m.type == "pitchwheel" and m.channel == 2]
    assert abs(np.median(bends) / 8192 * 48 * 100 - 30) < 5
    offs = [m for m in messages if m.type == "note_off" or (m.type == "note_on" and m.velocity == 0)]
    assert [m.note for m in offs] == [60, 64, 67]
    configuration = [(m.control, m.value) for m in messages[:3]]
    assert configuration == [(101, 0), (100, 6), (6, 15)] and messages[0].channel == 0


def test_a_stages_file_that_cannot_be_written_is_one_line_and_playing_goes_on(tmp_path, capsys):
    import signal

    from timbrel.cli.play import profile_stages

    saved = {s: signal.getsignal(s) for s in (signal.SIGUSR1, signal.SIGUSR2)}
    try:
        good, bad = tmp_path / "stages.json", tmp_path / "missing" / "stages.json"
        profile_stages(str(good))
        os.kill(os.getpid(), signal.SIGUSR2)
        assert json.loads(good.read_text())["blocks"] >= 0
        profile_stages(str(bad))
        os.kill(os.getpid(), signal.SIGUSR2)
        err = capsys.readouterr().err
        assert err.startswith(f"timbrel: --stages: {bad}: folder") and err.count("\n") == 1
        assert not bad.exists() and good.is_file()
    finally:
        for number, handler in saved.items():
            signal.signal(number, handler)


def test_the_demo_midi_file_names_a_folder_it_cannot_write_in(tmp_path):
    import timbrel

    with pytest.raises(timbrel.TimbrelError, match=r"^\S+missing/tune.mid: folder \S+missing does not exist$"):
        timbrel.write_demo_midi(tmp_path / "missing" / "tune.mid")
    assert not (tmp_path / "missing").exists()
    assert timbrel.write_demo_midi(tmp_path / "tune.mid").stat().st_size > 20


def test_resuming_a_run_that_is_not_there_is_one_line(tmp_path):
    (tmp_path / "takes").mkdir()
    result = timbrel("train", str(tmp_path / "takes"), "--name", "x", "--resume", "--max-minutes", "1", cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip() == "timbrel: x.train/last.pt: no such checkpoint"
    assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "x.train").exists()


def test_train_from_a_model_that_does_not_exist_is_one_line(tmp_path):
    from timbrel.export.fluidsynth import generate_dataset

    generate_dataset("flute", 10, 3, tmp_path / "takes", phrase_seconds=5)
    result = timbrel("train", str(tmp_path / "takes"), "--name", "x", "--from", "nope", cwd=tmp_path)
    assert result.returncode != 0 and "--from nope: no such model file or factory instrument" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "x.onnx").exists()
