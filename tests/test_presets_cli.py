"""`timbrel presets …` end to end, with the user's data folder in a temporary directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from timbrel.presets import default_model


@pytest.fixture
def timbrel(tmp_path):
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "data"))

    def run(*args):
        return subprocess.run([sys.executable, "-m", "timbrel", *args], capture_output=True, text=True,
                              timeout=300, env=env)

    run.user_dir = tmp_path / "data" / "timbrel"
    return run


def test_list_filters_and_json(timbrel):
    everything = json.loads(timbrel("presets", "list", "--json").stdout)
    strings = json.loads(timbrel("presets", "list", "--category", "strings", "--json").stdout)
    assert {"Violin", "Cello"} <= {p["name"] for p in everything}
    assert strings and all(p["category"] == "strings" for p in strings) and len(strings) < len(everything)
    tagged = json.loads(timbrel("presets", "list", "--tag", "legato", "--json").stdout)
    assert [p["name"] for p in tagged] == ["Cello Legato"]
    assert all(p["source"] == "factory" and p["quality"] for p in everything)


def test_search_is_forgiving_and_show_prints_the_preset(timbrel):
    found = timbrel("presets", "search", "violn").stdout.splitlines()
    assert found[1].startswith("Violin ")
    shown = timbrel("presets", "show", "cello legato")
    assert shown.returncode == 0 and 'voice_mode = "legato"' in shown.stdout and "[quality]" in shown.stdout
    missing = timbrel("presets", "show", "celo legatto")
    assert missing.returncode == 2 and "did you mean" in missing.stderr and "Traceback" not in missing.stderr


def test_audition_renders_a_phrase(timbrel, tmp_path):
    out = tmp_path / "cello.wav"
    result = timbrel("presets", "audition", "Cello", "-o", str(out))
    assert result.returncode == 0, result.stderr
    audio, rate = soundfile.read(out)
    assert rate == 48000 and audio.shape[0] == 6 * rate
    assert np.sqrt(np.mean(audio**2)) > 1e-3


def test_save_rename_rm_and_import_touch_only_user_presets(timbrel, tmp_path):
    saved = timbrel("presets", "save", "My Cello", "--from", "Cello", "--set", "gain_db=-3", "--set", "tags=mine,dark")
    assert saved.returncode == 0, saved.stderr
    again = timbrel("presets", "save", "My Cello", "--from", "Cello")
    assert again.returncode == 2 and "--force" in again.stderr
    assert timbrel("presets", "save", "My Cello", "--from", "Cello", "--force").returncode == 0
    over = timbrel("presets", "save", "Violin", "--from", "Cello")
    assert over.returncode == 2 and "read-only" in over.stderr
    assert timbrel("presets", "rename", "My Cello", "Dark Cello").returncode == 0
    listed = {p["name"]: p for p in json.loads(timbrel("presets", "list", "--json").stdout)}
    assert listed["Dark Cello"]["source"] == "user" and "My Cello" not in listed
    assert timbrel("presets", "rm", "Violin").returncode == 2
    assert timbrel("presets", "rm", "Dark Cello").returncode == 0
    imported = timbrel("presets", "import", str(default_model()), "--name", "My Violin")
    assert imported.returncode == 0, imported.stderr
    assert (timbrel.user_dir / "models").is_dir()
    listed = {p["name"] for p in json.loads(timbrel("presets", "list", "--json").stdout)}
    assert "My Violin" in listed and "Dark Cello" not in listed


def test_a_corrupt_user_preset_is_one_line_and_the_rest_still_lists(timbrel):
    folder = timbrel.user_dir / "presets"
    folder.mkdir(parents=True)
    (folder / "broken.toml").write_text("[preset\nname = 'x'")
    result = timbrel("presets", "list")
    assert result.returncode == 0
    assert "broken.toml" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Violin" in result.stdout and "Traceback" not in result.stderr


@pytest.mark.parametrize(("setting", "expected"), [
    ("gain_db", "timbrel: --set gain_db: expected KEY=VALUE"),
    ("=3", "timbrel: --set =3: expected KEY=VALUE"),
    ("gain_db=loud", "timbrel: setting gain_db=loud: [instrument.midi] gain_db = 'loud': expected a number"),
    ("voice_mode=chordal", "timbrel: setting voice_mode=chordal: [instrument.midi] voice_mode = 'chordal': "
                           "expected one of poly, mono, legato"),
    ("delay.mix=0.2", "timbrel: setting delay.mix=0.2: the preset has no effect 'delay'"),
])
def test_a_malformed_set_is_one_line_and_writes_nothing(timbrel, tmp_path, setting, expected):
    import mido

    song = tmp_path / "song.mid"
    track = mido.MidiTrack([mido.Message("note_on", note=69, velocity=90), mido.Message("note_off", note=69, time=480)])
    mido.MidiFile(tracks=[track]).save(song)
    out = tmp_path / "out.wav"
    result = timbrel("render", str(song), "-p", "Violin", "-o", str(out), "--set", setting)
    assert result.returncode == 2
    assert result.stderr.startswith(expected), result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not out.exists()



def test_every_set_example_the_commands_print_is_accepted(timbrel, tmp_path):
    """One `--set` grammar for play, render, transfer and presets save: the examples in its
    hints (numbers, a switch by name, an effect's parameter) all render."""
    import mido

    from timbrel.cli.options import SET_EXAMPLE

    examples = [word for word in SET_EXAMPLE.replace(",", " ").split() if "=" in word and word != "KEY=VALUE"]
    assert examples == ["gain_db=-6", "voice_mode=legato", "delay.mix=0.2"]
    song = tmp_path / "song.mid"
    track = mido.MidiTrack([mido.Message("note_on", note=60, velocity=90), mido.Message("note_off", note=60, time=240)])
    mido.MidiFile(tracks=[track]).save(song)
    out = tmp_path / "out.wav"
    arguments = [item for example in examples for item in ("--set", example)]
    result = timbrel("render", str(song), "-p", "Sax Lead", "-o", str(out), *arguments)
    assert result.returncode == 0, result.stderr
    assert out.is_file()
