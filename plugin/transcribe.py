"""Offline MIDI of a recording: exactly what live transfer's MIDI out would have sent.

The live path's analysis (`transfer.TransferAnalysis`: tracker, loudness meter and follower,
300 frames per second, the hop grid restarting at onsets) runs over the whole file, then the
messages are written to a standard MIDI file. Live, a message leaves at the end of the frame
that made it; in the file it is placed half the pitch window earlier, at the instant that
frame's window describes, so the notes line up with the audio.
"""

from __future__ import annotations

from collections.abc import Mapping

import mido
import numpy as np

from timbrel.engine.plugin_api import ParameterBank
from timbrel.engine.realtime.outbox import MidiOutbox, message_bytes
from timbrel.plugin import follower as fw
from timbrel.plugin.transfer import PARAMETERS, TransferAnalysis, sync_follower

FRAMES_PER_SECOND = 300
TICKS_PER_SECOND = 1920
"""MIDI file resolution: 960 ticks per beat at 120 bpm, about 0.5 ms a tick."""


def transcribe(audio: np.ndarray, sample_rate: int, values: Mapping[str, float] | None = None) -> mido.MidiFile:
    """A MIDI file (one track) of a mono recording `audio [samples]` at `sample_rate` Hz.

    `values` sets the transfer parameters that shape it, by id (`pitch_floor_hz`, `gate_db`,
    `release_ms`, `bend_range_st`, `mpe`, `midi_channel`, `input_floor_db`, `input_peak_db`);
    MIDI is written whatever `midi_out` says (it is what transcribing is for). The sample rate
    must be a multiple of 300 Hz.
    """
    if sample_rate % FRAMES_PER_SECOND:
        raise ValueError(f"{sample_rate} Hz is not a multiple of {FRAMES_PER_SECOND} frames per second")
    bank = ParameterBank(PARAMETERS)
    for key, value in (values or {}).items():
        bank.set(key, float(value))
    bank.snap()
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    hop = sample_rate // FRAMES_PER_SECOND
    size = max(1, audio.shape[0])
    analysis = TransferAnalysis(sample_rate, hop, size, MidiOutbox(capacity=32 * (size // hop + 1) + 4096))
    outbox = analysis.outbox
    sync_follower(bank.values, FRAMES_PER_SECOND, analysis.tracker, analysis.params)
    analysis.params[fw.MIDI] = 1.0
    frames = analysis.process(audio)
    fw.finish(analysis.state, outbox.ring, outbox.frames, outbox.counts)
    ends = np.append(analysis.ends[:frames], (analysis.ends[frames - 1] if frames else 0) + hop)
    delay = analysis.tracker.window_samples() / 2
    song = mido.MidiFile(ticks_per_beat=960)
    track = mido.MidiTrack()
    song.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=500_000, time=0))
    last = 0
    for packed, frame in outbox.drain():
        seconds = max(0.0, (ends[frame] - delay) / sample_rate)
        tick = max(last, round(seconds * TICKS_PER_SECOND))
        track.append(mido.Message.from_bytes(message_bytes(packed), time=tick - last))
        last = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    return song
