import subprocess
import sys

import numpy as np
import pytest
import soundfile

from engine.audiofile import read_audio, write_audio
from engine.errors import TimbrelError


def timbrel(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


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
