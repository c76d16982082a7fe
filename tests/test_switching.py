"""Switching presets while playing, on a real JACK server: no engine xruns, no clicks, held notes kept."""

from __future__ import annotations

import time

import numpy as np
import pytest

from bench.bench_live import CHORD, switching
from bench.bench_live import QUIET as LOAD
from bench.cpu_noise import NoiseWitness
from tests.conftest import assert_within_machine_allowance, wait_until
from tests.test_io import playback_sources
from timbrel.engine.realtime.stages import TIMES
from timbrel.presets.library import Library
from timbrel.session import Session

SR = 48000


@pytest.fixture
def session(jack_server, jack_peer):
    library = Library()
    names = [p.name for p in library.list() if p.mode == "midi"]
    assert len(names) >= 3, names
    session = Session(library=library, voices=16)
    try:
        session.start(names[0], use_midi=False)
        jack_peer.connect_audio_from(playback_sources(jack_peer))
        yield session, jack_peer, names
    finally:
        session.close()


def recording(peer, seconds: float, script) -> np.ndarray:
    peer.start_recording(seconds)
    script()
    assert wait_until(lambda: peer.recorded() >= int(seconds * SR), timeout=10 * seconds + 5, interval=0.05)
    return peer.stop_recording()[0].astype(np.float64)


def largest_step(audio: np.ndarray) -> float:
    """The largest sample-to-sample change: a click or a dropout edge shows up here."""
    return float(np.max(np.abs(np.diff(audio))))


def test_a_hundred_switches_with_sixteen_voices_held_and_the_pedal_down(session):
    session, peer, names = session
    # What each preset's own attack and sustain look like, played alone.
    references = {}
    for name in names:
        session.load(name, wait=True)
        assert session.wait_idle()

        def play():
            for note in CHORD:
                session.note_on(note, 100)
            for note in LOAD:
                session.note_on(note, 30)
            time.sleep(0.5)
            session.control_change(123, 0)

        references[name] = largest_step(recording(peer, 1.0, play))
    switched_at = session.switches
    TIMES.clear()
    rows = []
    with NoiseWitness() as witness:
        audio = recording(peer, 14.0, lambda: rows.append(switching(session, names, 100)))
    (row,) = rows
    assert row["preset_switches"] - switched_at == 100 and session.last_error == ""
    assert row["engine_errors"] == 0, row
    assert_within_machine_allowance(row["late_blocks"], row["blocks"], TIMES.snapshot(), witness.seen, str(row))
    # Every preset crossfades into the next: the mix never moves faster than the faster of the
    # two sounds does on its own (a click would jump by a good part of the signal's amplitude).
    mixed = audio[int(0.35 * SR) :]
    print(f"switches 100, engine late blocks {row['late_blocks']}, stream xruns {row['stream_xruns']}, largest step "
          f"{largest_step(mixed):.4f} against {max(references.values()):.4f} for the presets alone")
    assert largest_step(mixed) <= 1.25 * max(references.values()), (largest_step(mixed), references)
    assert np.sqrt(np.mean(mixed[-SR // 4 :] ** 2)) > 0.01
    # Every note is still held in the last preset: 64 by the pedal, the others by their keys.
    assert session.engine.keyboard.held_notes() == [(0, n) for n in CHORD + LOAD]
    poly = session.preset.values("midi").get("voice_mode", 0) == 0
    assert session.engine.plugin.active_voices == (16 if poly else 1)
    session.control_change(64, 0)
    time.sleep(0.1)
    assert session.engine.keyboard.held_notes() == [(0, n) for n in CHORD + LOAD if n != 64]


def test_a_preset_that_fails_to_load_leaves_the_old_one_playing(session, tmp_path):
    session, peer, names = session
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a model")
    playing = session.preset.name
    with pytest.raises(Exception, match="broken.onnx"):
        session.load(str(bad), wait=True)
    assert session.preset.name == playing
    assert "broken.onnx" in session.last_error and "\n" not in session.last_error

    def play():
        session.note_on(69, 100)

    audio = recording(peer, 0.6, play)
    assert np.abs(audio).max() > 0.01
