"""Live timbre transfer: sing or play into a microphone and hear the model's instrument.

The mono input runs through the same causal pitch tracker and loudness meter that made
the training features; a mapping shifts pitch (semitones, octaves, optional quantising
to a scale) and maps the input's loudness range onto the model's training range; the
model then drives the synth, exactly as in the MIDI instrument but with one voice.

Both feature extractors and the synth tick on one hop grid from the same start, so the
synth segment that starts at a boundary uses the frame that completed there. What
reaches the output lags the input by half the pitch window plus one hop (plus the
audio interface's buffering); `latency_samples` reports it. The window is one period of
the lowest pitch to expect (`pitch_floor_hz`, which presets set: a flute needs no 60 Hz)
plus 2 ms; once a pitch is known it shrinks to 2.1 of its periods, and at an onset it
starts after the silence before it, so a note sounds about 1.5 of its periods after it
begins (`timbrel.engine.realtime.features.pitch`).

While the instrument is silent the tracker also looks at the input every `SEARCH_STEP`
samples between frames; the first look that is voiced above the gate becomes a frame at
once and restarts the shared hop grid there (tracker, meter and synth together), so a note
starts as soon as the tracker can voice it, not at the next hop boundary
(`TransferAnalysis`; the synth is silent then, so moving its grid is inaudible).

Each frame then passes the follower (`timbrel.plugin.follower`): it holds the gate and
the pitch through soft tails and unvoiced frames, closes the gate smoothly, and writes the
MIDI out of the tracked pitch into `outbox`, which a sender thread drains
(`timbrel.engine.io.midi_out`).
"""

from __future__ import annotations

import os

import numpy as np

from timbrel.engine.plugin_api import Parameter
from timbrel.engine.realtime.features import LoudnessMeter, PitchTracker
from timbrel.engine.realtime.features.loudness import FLOOR_DB
from timbrel.engine.realtime.outbox import MidiOutbox
from timbrel.engine.realtime.stages import FEATURES, INSTRUMENT_TAIL, MODEL, TIMES, VOICES
from timbrel.plugin import follower as fw
from timbrel.plugin.model import TimbreModel
from timbrel.plugin.model_synth import ModelPlugin, render_frames, take_synth

SCALES = {
    "chromatic": (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11),
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "pentatonic": (0, 2, 4, 7, 9),
}
SCALE_NAMES = tuple(SCALES)
PITCH_FLOOR_HZ = 60.0
"""Default lowest input pitch (Hz): below C2 nobody sings."""
LOWEST_FLOOR_HZ = 50.0
"""The lowest `pitch_floor_hz` can go; the tracker's buffers are sized for it."""
OVERLAP_S = 0.002
"""Pairs (s) the longest lag of the pitch window averages over."""
ONSET_STEPS = 4
"""Model steps run in the first hop of a note: the GRU's attack plays out 4x faster, so the
instrument answers at once instead of swelling for three more hops."""
SEARCH_STEP = 16
"""Samples (0.33 ms at 48 kHz) between the tracker's looks at the input while the instrument is
silent: a note's first frame comes on average half of this after the tracker can voice it,
instead of half a hop (80 samples) after. Each look costs a loudness window and, above the
gate only, a tracker frame."""
SILENT_FRAMES = 2
"""Frames in a row at zero gain after which the synth is silent (its segment ramps from the
last frame's amplitude to this one's, and the noise filter's tail, 127 samples, is shorter
than a hop), so the hop grid may move."""
SEARCH_CONFIDENCE = 0.9
"""Least confidence of a look between frames that starts a note: a clear dip (CMNDF under 0.1).
A look at a breathy attack (a flute's, 0.8) that would voice a grid frame can be a semitone
off this early; it waits for the grid frame, which sees more of the note."""
TRACKER_GATE_DB = -90.0
"""Window power (dB re full-scale square) under which the tracker calls a frame unvoiced:
low enough to follow a tail to -60 dB under a loud note's peak; the follower's gate decides."""

PARAMETERS = (
    Parameter("gain_db", "Gain", "dB", -60.0, 12.0, 0.0),
    Parameter("reverb_mix", "Reverb", "", 0.0, 1.0, 1.0),
    Parameter("pitch_shift_st", "Pitch shift", "st", -24.0, 24.0, 0.0, smoothing_ms=0),
    Parameter("octave", "Octave", "oct", -2.0, 2.0, 0.0, smoothing_ms=0),
    Parameter("loudness_shift_db", "Loudness shift", "dB", -24.0, 24.0, 0.0),
    Parameter("input_floor_db", "Input floor", "dB", -90.0, -20.0, -60.0, smoothing_ms=0),
    Parameter("input_peak_db", "Input peak", "dB", -50.0, 0.0, -15.0, smoothing_ms=0),
    Parameter("gate_db", "Gate", "dB", -90.0, 0.0, -70.0, smoothing_ms=0),
    Parameter("quantize", "Pitch correction", "", 0.0, 1.0, 0.0, smoothing_ms=0),
    Parameter("scale", "Scale", "", 0.0, len(SCALES) - 1.0, 0.0, smoothing_ms=0, choices=SCALE_NAMES),
    Parameter("key", "Key", "st", 0.0, 11.0, 0.0, smoothing_ms=0),
    Parameter("mix", "Dry/wet", "", 0.0, 1.0, 1.0),
    Parameter("monitor", "Input monitoring", "", 0.0, 1.0, 0.0, smoothing_ms=0, choices=("off", "on")),
    Parameter("pitch_floor_hz", "Lowest pitch", "Hz", LOWEST_FLOOR_HZ, 400.0, PITCH_FLOOR_HZ, smoothing_ms=0),
    Parameter("release_ms", "Gate release", "ms", 5.0, 500.0, 50.0, smoothing_ms=0),
    Parameter("midi_out", "MIDI out", "", 0.0, 1.0, 1.0, smoothing_ms=0, choices=("off", "on")),
    Parameter("bend_range_st", "MIDI bend range", "st", 1.0, 96.0, 2.0, smoothing_ms=0),
    Parameter("mpe", "MIDI out as MPE", "", 0.0, 1.0, 0.0, smoothing_ms=0, choices=("off", "on")),
    Parameter("midi_channel", "MIDI out channel", "", 1.0, 16.0, 1.0, smoothing_ms=0),
)
_I = {p.id: i for i, p in enumerate(PARAMETERS)}


def live_tracker(sample_rate: int, hop: int, max_block: int) -> PitchTracker:
    """The pitch tracker live transfer and `timbrel transcribe` both use, floor at its lowest."""
    return PitchTracker(sample_rate, hop, fmin=LOWEST_FLOOR_HZ, max_block=max_block, gate_db=TRACKER_GATE_DB,
                        min_overlap_s=OVERLAP_S, adaptive=True, onset=True)


def sync_follower(values: np.ndarray, frames_per_second: float, tracker: PitchTracker, follow: np.ndarray) -> None:
    """Copy this plugin's parameter `values` (in `PARAMETERS` order) into the tracker's floor and
    the follower's parameters `follow [follower.N_PARAMS]`; no arrays are made."""
    tracker.floor_hz = values[_I["pitch_floor_hz"]]
    follow[fw.GATE_DB] = values[_I["gate_db"]]
    follow[fw.RELEASE] = values[_I["release_ms"]] * 0.001 * frames_per_second
    follow[fw.MIDI] = values[_I["midi_out"]]
    follow[fw.BEND_RANGE] = values[_I["bend_range_st"]]
    follow[fw.MPE] = values[_I["mpe"]]
    follow[fw.CHANNEL] = values[_I["midi_channel"]] - 1.0
    follow[fw.LOUD_FLOOR] = values[_I["input_floor_db"]]
    follow[fw.LOUD_PEAK] = values[_I["input_peak_db"]]


class TransferAnalysis:
    """What live transfer hears, frame by frame: pitch tracker, loudness meter and follower,
    the same live (block by block) and in `timbrel transcribe` (the whole file at once).

    Frames complete on the hop grid. While the follower's gain has been 0 for
    `SILENT_FRAMES` frames, the meter and then the tracker also look every `SEARCH_STEP`
    samples of the grid; a look at or above the gate and voiced with at least
    `SEARCH_CONFIDENCE` is followed as a frame at once, and the grid restarts there (the next frame one hop later). Every decision depends
    only on the samples before it, so any partition of the input into blocks gives the same
    frames.

    `process(block)` returns the number of frames the block completed and writes, per frame:
    `ends` (the sample of the block it completed after, 1 … n), `restarts` (whether it moved
    the grid), the follower's `f0_hz` (Hz) and `gain` (0 … 1), and the input's `loudness_db`.
    MIDI out goes to `outbox`. Allocates no arrays after construction.
    """

    def __init__(self, sample_rate: int, hop: int, max_block: int, outbox: MidiOutbox):
        self.hop = int(hop)
        self.tracker = live_tracker(sample_rate, hop, max_block)
        self.meter = LoudnessMeter(sample_rate, hop, max_block=max_block)
        self.outbox = outbox
        self.params = fw.default_params()
        self.state = fw.initial_state()
        self.controls = np.zeros(fw.N_CONTROLS)
        capacity = max_block // SEARCH_STEP + max_block // self.hop + 2
        self.ends = np.zeros(capacity, dtype=np.int64)
        self.restarts = np.zeros(capacity, dtype=np.bool_)
        self.f0_hz = np.zeros(capacity)
        self.gain = np.zeros(capacity)
        self.loudness_db = np.zeros(capacity)
        self._silent = SILENT_FRAMES

    def reset(self) -> None:
        """A fresh stream in silence; a note still sounding on the MIDI out gets its note off."""
        self.tracker.reset()
        self.meter.reset()
        if self.state[fw.NOTE] >= 0.0:
            fw.finish(self.state, self.outbox.ring, self.outbox.frames, self.outbox.counts)
        fw.reset_state(self.state)
        self.controls[:] = 0.0
        self._silent = SILENT_FRAMES

    def _follow(self, f0_hz: float, confidence: float, loudness_db: float, end: int, restart: bool,
                count: int) -> int:
        """Follow one frame that completed after sample `end` of the block; return `count + 1`."""
        controls = self.controls
        fw.follow_frame(f0_hz, confidence, loudness_db, self.state, self.params, controls, self.outbox.ring,
                        self.outbox.frames, self.outbox.counts)
        self.ends[count] = end
        self.restarts[count] = restart
        self.f0_hz[count] = controls[fw.F0_HZ]
        self.gain[count] = controls[fw.GAIN]
        self.loudness_db[count] = loudness_db
        self._silent = self._silent + 1 if controls[fw.GAIN] <= 0.0 else 0
        return count + 1

    def process(self, block: np.ndarray) -> int:
        """Analyse `block [n]` (float32, n <= max_block); return how many frames it completed."""
        tracker, meter, hop = self.tracker, self.meter, self.hop
        n = block.shape[0]
        pos = count = 0
        while pos < n:
            since = tracker.since
            searching = self._silent >= SILENT_FRAMES
            m = hop - since
            if searching:
                m = min(m, SEARCH_STEP - since % SEARCH_STEP)
            m = min(m, n - pos)
            piece = block[pos : pos + m]
            made = tracker.process(piece)
            meter.process(piece)
            pos += m
            if made:
                count = self._follow(tracker.f0_hz[0], tracker.confidence[0], meter.loudness_db[0], pos, False, count)
            elif searching and tracker.since % SEARCH_STEP == 0:
                loudness_db = meter.probe()
                if loudness_db >= self.params[fw.GATE_DB] and tracker.probe() >= SEARCH_CONFIDENCE:
                    tracker.restart()
                    meter.restart()
                    count = self._follow(tracker.probed_f0_hz, tracker.probed_confidence, loudness_db, pos, True,
                                         count)
        return count


class TimbreTransfer(ModelPlugin):
    """A timbre model driven by live audio input (mono), one voice.

    `outbox` carries the MIDI out of the tracked pitch (`timbrel.plugin.follower`) from the
    audio thread to whoever drains it; it fills and drops when nobody does.
    """

    name = "timbre-transfer"
    parameters = PARAMETERS

    def __init__(self, model: TimbreModel | str | os.PathLike, seed: int = 0):
        super().__init__(model, seed)
        self.outbox = MidiOutbox()

    @property
    def latency_samples(self) -> int:
        """Half the pitch window at the current floor (its centre) plus the hop over which the synth ramps."""
        if not self.sample_rate:
            return 0
        return self.tracker.window_samples(self.params.values[_I["pitch_floor_hz"]]) // 2 + self.host_hop_samples

    def prepare(self, sample_rate: int, max_block: int) -> None:
        super().prepare(sample_rate, max_block)
        info = self.model.info
        self.synth = take_synth(self.model, 1, sample_rate, max_block, self.seed)
        self.host_hop_samples = self.synth.host_hop_samples
        self.analysis = TransferAnalysis(sample_rate, self.host_hop_samples, max_block, self.outbox)
        self.tracker = self.analysis.tracker
        self.frames_per_second = sample_rate / self.host_hop_samples
        self._controls = np.zeros(fw.N_CONTROLS)
        self._f0, self._loudness, self._scale, self._tilt = np.zeros(1), np.zeros(1), np.zeros(1), np.zeros(1)
        self._noise_gain = np.ones(1)
        self._order = np.zeros(1, dtype=np.int64)
        self._dry = np.zeros(max_block, dtype=np.float32)
        self._lo_db, self._hi_db = info.loudness_range_db
        self._scale_table = np.zeros((len(SCALES), 12))
        for row, steps in enumerate(SCALES.values()):
            for pc in range(12):
                self._scale_table[row, pc] = min((s - pc for s in (*steps, steps[0] + 12, steps[-1] - 12)), key=abs)
        self.reset()
        warm = min(max_block, 2 * self.host_hop_samples)
        wide = np.zeros((2, 2 * warm), np.float32)
        for out in (wide[:, :warm].copy(), wide[:, :warm]):
            self.process(np.zeros(warm, np.float32), out, np.zeros(0, np.int32))
            self.reset()
        fw.follow_frame(440.0, 1.0, 0.0, self.analysis.state, self.analysis.params, self._controls,
                        self.outbox.ring, self.outbox.frames, self.outbox.counts)
        self.reset()
        self.outbox.drain()

    def reset(self) -> None:
        self.analysis.reset()
        self.synth.reset()
        self.synth.bank.start_voice(0)
        self._controls[:] = 0.0
        self._loudness_in = FLOOR_DB
        self.active_voices = 0
        self._frames = self._used = self._base = 0
        self._gain = 10.0 ** (self.params.values[_I["gain_db"]] / 20.0)

    def map_frame(self, f0_hz: float, loudness_db: float, gain: float = 1.0) -> tuple[float, float, float]:
        """The model's inputs for one followed frame: f0 (Hz), loudness (dB), and the voice's gain.

        `f0_hz` is the followed input pitch (0: none yet), `loudness_db` the input's loudness,
        `gain` the follower's (0 … 1; 0: silent). Loudness under `input_floor_db` plays the
        model at its softest, attenuated by the difference, so a tail fades on down to the gate.
        """
        values = self.params.values
        if gain <= 0.0 or f0_hz <= 0.0:
            return f0_hz, FLOOR_DB, 0.0
        midi = 69.0 + 12.0 * np.log2(f0_hz / 440.0)
        amount = values[_I["quantize"]]
        if amount > 0.0:
            pitch_class = int(round(midi - values[_I["key"]])) % 12
            target = round(midi) + self._scale_table[int(values[_I["scale"]]), pitch_class]
            midi += amount * (target - midi)
        midi += values[_I["pitch_shift_st"]] + 12.0 * values[_I["octave"]]
        f0_hz = 440.0 * 2.0 ** ((midi - 69.0) / 12.0)
        lo, hi = values[_I["input_floor_db"]], values[_I["input_peak_db"]]
        if loudness_db < lo:
            gain *= 10.0 ** ((loudness_db - lo) / 20.0)
            loudness_db = lo
        position = (loudness_db - lo) / max(hi - lo, 1e-6)
        mapped = self._lo_db + position * (self._hi_db - self._lo_db) + values[_I["loudness_shift_db"]]
        return f0_hz, float(mapped), float(gain)

    def _take_frames(self, at: int) -> None:
        """Make the frames completed up to sample `at` of the block the ones that drive the model."""
        analysis = self.analysis
        while self._used < self._frames and analysis.ends[self._used] <= at:
            i = self._used
            self._controls[fw.F0_HZ] = analysis.f0_hz[i]
            self._controls[fw.GAIN] = analysis.gain[i]
            self._loudness_in = analysis.loudness_db[i]
            self._used = i + 1

    def _on_boundary(self, offset: int) -> None:
        """A hop starts at `offset` of the piece being rendered: run the model on the frame that
        completed there."""
        self._take_frames(self._base + offset)
        if self.fading_out:
            return
        controls = self._controls
        f0_hz, loudness_db, gain = self.map_frame(controls[fw.F0_HZ], self._loudness_in, controls[fw.GAIN])
        self._f0[0], self._loudness[0], self._scale[0] = f0_hz, loudness_db, gain
        TIMES.mark(VOICES)
        steps = ONSET_STEPS if gain > 0.0 and self.active_voices == 0 else 1
        for _ in range(steps):
            self.synth.run(self._order, 1, self._f0, self._loudness, self._scale, self._tilt, self._noise_gain)
        TIMES.mark(MODEL)
        self.active_voices = int(gain > 0.0)

    def process(self, inp: np.ndarray, out: np.ndarray, events: np.ndarray) -> None:
        n = out.shape[1]
        self.params.advance(n / self.sample_rate)
        analysis = self.analysis
        sync_follower(self.params.values, self.frames_per_second, analysis.tracker, analysis.params)
        if not self.outbox.listened:
            analysis.params[fw.MIDI] = 0.0
        self._frames = analysis.process(inp)
        TIMES.mark(FEATURES)
        self._used = 0
        synth = self.synth
        mix = synth.mix_buffer(n)
        start = 0
        for i in range(self._frames):
            if analysis.restarts[i]:
                end = analysis.ends[i]
                self._base = start
                render_frames(synth.bank, mix[start:end], synth.frame, self._on_boundary)
                synth.bank.restart_grid()
                start = end
        self._base = start
        render_frames(synth.bank, mix[start:n], synth.frame, self._on_boundary)
        self._take_frames(n)
        self.outbox.publish()
        values = self.params.values
        balance = values[_I["mix"]]
        gain = 10.0 ** (values[_I["gain_db"]] / 20.0)
        self.synth.finish(mix, out, float(values[_I["reverb_mix"]]), self._gain * balance, gain * balance)
        self._gain = gain
        if values[_I["monitor"]] >= 0.5 and balance < 1.0:
            dry = self._dry[:n]
            np.multiply(inp, 1.0 - balance, out=dry)
            out += dry
        TIMES.mark(INSTRUMENT_TAIL)
