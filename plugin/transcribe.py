"""Offline MIDI of a recording: exactly what live transfer's MIDI out would have sent.

The same tracker settings (`transfer.live_tracker`), loudness meter and follower kernel
(`timbrel.plugin.follower`) as the live path run over the whole file at 300 frames per
second, then the messages are written to a standard MIDI file. Live, a message leaves at
the end of the frame that made it; in the file it is placed half the pitch window earlier,
at the instant that frame's window describes, so the notes line up with the audio.
"""

from __future__ import annotations

from collections.abc import Mapping

import mido
import numpy as np

from timbrel.engine.plugin_api import ParameterBank
from timbrel.engine.realtime.features import LoudnessMeter
from timbrel.engine.realtime.outbox import MidiOutbox, message_bytes
from timbrel.plugin import follower as fw
from timbrel.plugin.transfer import PARAMETERS, live_tracker, sync_follower

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
    tracker = live_tracker(sample_rate, hop, size)
    meter = LoudnessMeter(sample_rate, hop, max_block=size)
    params = fw.default_params()
    sync_follower(bank.values, FRAMES_PER_SECOND, tracker, params)
    params[fw.MIDI] = 1.0
    frames = tracker.process(audio)
    meter.process(audio)
    outbox = MidiOutbox(capacity=16 * frames + 4096)
    state = fw.initial_state()
    controls = np.zeros((max(frames, 1), fw.N_CONTROLS))
    fw.follow_frames(tracker.f0_hz[:frames], tracker.confidence[:frames], meter.loudness_db[:frames], state, params,
                     controls, outbox.ring, outbox.frames, outbox.counts)
    fw.finish(state, outbox.ring, outbox.frames, outbox.counts)
    delay = tracker.window_samples() / 2
    song = mido.MidiFile(ticks_per_beat=960)
    track = mido.MidiTrack()
    song.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=500_000, time=0))
    last = 0
    for packed, frame in outbox.drain():
        seconds = max(0.0, ((frame + 1) * hop - delay) / sample_rate)
        tick = max(last, round(seconds * TICKS_PER_SECOND))
        track.append(mido.Message.from_bytes(message_bytes(packed), time=tick - last))
        last = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    return song
