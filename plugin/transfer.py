"""Live timbre transfer: sing or play into a microphone and hear the model's instrument.

The mono input runs through the same causal pitch tracker and loudness meter that made
the training features; a mapping shifts pitch (semitones, octaves, optional quantising
to a scale) and maps the input's loudness range onto the model's training range; the
model then drives the synth, exactly as in the MIDI instrument but with one voice.

Both feature extractors and the synth tick on one hop grid from the same start, so the
synth segment that starts at a boundary uses the frame that completed there. What
reaches the output lags the input by half the pitch window plus one hop (plus the
audio interface's buffering); `latency_samples` reports it.
"""

from __future__ import annotations

import numpy as np

from timbrel.engine.plugin_api import Parameter
from timbrel.engine.realtime.features import LoudnessMeter, PitchTracker
from timbrel.engine.realtime.features.loudness import FLOOR_DB
from timbrel.engine.realtime.stages import FEATURES, INSTRUMENT_TAIL, MODEL, TIMES, VOICES
from timbrel.plugin.model_synth import ModelPlugin, ModelSynth

SCALES = {
    "chromatic": (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11),
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "pentatonic": (0, 2, 4, 7, 9),
}
SCALE_NAMES = tuple(SCALES)
PITCH_FLOOR_HZ = 60.0
"""Lowest input pitch (Hz): below C2 nobody sings, and the 21.7 ms window it needs keeps latency low."""

PARAMETERS = (
    Parameter("gain_db", "Gain", "dB", -60.0, 12.0, 0.0),
    Parameter("reverb_mix", "Reverb", "", 0.0, 1.0, 1.0),
    Parameter("pitch_shift_st", "Pitch shift", "st", -24.0, 24.0, 0.0, smoothing_ms=0),
    Parameter("octave", "Octave", "oct", -2.0, 2.0, 0.0, smoothing_ms=0),
    Parameter("loudness_shift_db", "Loudness shift", "dB", -24.0, 24.0, 0.0),
    Parameter("input_floor_db", "Input floor", "dB", -90.0, -20.0, -60.0, smoothing_ms=0),
    Parameter("input_peak_db", "Input peak", "dB", -50.0, 0.0, -15.0, smoothing_ms=0),
    Parameter("gate_db", "Gate", "dB", -90.0, 0.0, -55.0, smoothing_ms=0),
    Parameter("quantize", "Pitch correction", "", 0.0, 1.0, 0.0, smoothing_ms=0),
    Parameter("scale", "Scale", "", 0.0, len(SCALES) - 1.0, 0.0, smoothing_ms=0, choices=SCALE_NAMES),
    Parameter("key", "Key", "st", 0.0, 11.0, 0.0, smoothing_ms=0),
    Parameter("mix", "Dry/wet", "", 0.0, 1.0, 1.0),
    Parameter("monitor", "Input monitoring", "", 0.0, 1.0, 0.0, smoothing_ms=0, choices=("off", "on")),
)
_I = {p.id: i for i, p in enumerate(PARAMETERS)}


class TimbreTransfer(ModelPlugin):
    """A timbre model driven by live audio input (mono), one voice."""

    name = "timbre-transfer"
    parameters = PARAMETERS

    @property
    def latency_samples(self) -> int:
        """Half the pitch window (its centre) plus the hop over which the synth ramps."""
        return self.tracker.latency_samples // 2 + self.host_hop_samples if self.sample_rate else 0

    def prepare(self, sample_rate: int, max_block: int) -> None:
        super().prepare(sample_rate, max_block)
        info = self.model.info
        self.synth = ModelSynth(self.model, 1, sample_rate, max_block, self.seed)
        self.host_hop_samples = self.synth.host_hop_samples
        self.tracker = PitchTracker(sample_rate, self.host_hop_samples, fmin=PITCH_FLOOR_HZ, max_block=max_block)
        self.meter = LoudnessMeter(sample_rate, self.host_hop_samples, max_block=max_block)
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

    def reset(self) -> None:
        self.tracker.reset()
        self.meter.reset()
        self.synth.reset()
        self.synth.bank.start_voice(0)
        self._latest = (0.0, FLOOR_DB)
        self._frames = self._used = 0
        self._gain = 10.0 ** (self.params.values[_I["gain_db"]] / 20.0)

    def map_frame(self, f0_hz: float, loudness_db: float) -> tuple[float, float, bool]:
        """The model's inputs for one analysed frame: f0 (Hz), loudness (dB), and whether it sounds."""
        values = self.params.values
        sounding = loudness_db >= values[_I["gate_db"]] and f0_hz > 0.0
        if f0_hz > 0.0:
            midi = 69.0 + 12.0 * np.log2(f0_hz / 440.0)
            amount = values[_I["quantize"]]
            if amount > 0.0:
                pitch_class = int(round(midi - values[_I["key"]])) % 12
                target = round(midi) + self._scale_table[int(values[_I["scale"]]), pitch_class]
                midi += amount * (target - midi)
            midi += values[_I["pitch_shift_st"]] + 12.0 * values[_I["octave"]]
            f0_hz = 440.0 * 2.0 ** ((midi - 69.0) / 12.0)
        lo, hi = values[_I["input_floor_db"]], values[_I["input_peak_db"]]
        position = (loudness_db - lo) / max(hi - lo, 1e-6)
        mapped = self._lo_db + position * (self._hi_db - self._lo_db) + values[_I["loudness_shift_db"]]
        return f0_hz, float(mapped) if sounding else FLOOR_DB, bool(sounding)

    def _on_boundary(self, offset: int) -> None:
        """A hop starts at `offset`: take the analysis frame that completed there, run the model."""
        if offset > 0 and self._used < self._frames:
            self._latest = (self.tracker.f0_hz[self._used], self.meter.loudness_db[self._used])
            self._used += 1
        f0_hz, loudness_db, sounding = self.map_frame(*self._latest)
        self._f0[0], self._loudness[0] = f0_hz, loudness_db
        self._scale[0] = 1.0 if sounding else 0.0
        TIMES.mark(VOICES)
        self.synth.run(self._order, 1, self._f0, self._loudness, self._scale, self._tilt, self._noise_gain)
        TIMES.mark(MODEL)
        self.active_voices = int(sounding)

    def process(self, inp: np.ndarray, out: np.ndarray, events: np.ndarray) -> None:
        n = out.shape[1]
        self.params.advance(n / self.sample_rate)
        self._frames = self.tracker.process(inp)
        self.meter.process(inp)
        TIMES.mark(FEATURES)
        self._used = 0
        mix = self.synth.render(n, self._on_boundary)
        if self._used < self._frames:
            last = self._frames - 1
            self._latest = (self.tracker.f0_hz[last], self.meter.loudness_db[last])
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
