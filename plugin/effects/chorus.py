"""Stereo chorus: a delay swept by an LFO, the two channels' LFOs apart in phase.

Written here, not wrapped from pedalboard (0.9.26): its `process` returns a newly allocated
array on every call and cannot write into the host's bus; its Chorus (JUCE's) sweeps both
channels with one LFO (no stereo spread), its depth is a unitless 0…1 rather than
milliseconds, and it interpolates linearly.
"""

from __future__ import annotations

import numpy as np

from engine.kernels import delay_line as dl
from plugin.api import Effect, Parameter

MAX_DELAY_MS, MAX_DEPTH_MS = 30.0, 10.0

PARAMETERS = (
    Parameter("rate_hz", "Rate", "Hz", 0.05, 5.0, 0.8, scale="log"),
    Parameter("depth_ms", "Depth", "ms", 0.0, MAX_DEPTH_MS, 3.0),
    Parameter("delay_ms", "Delay", "ms", 1.0, MAX_DELAY_MS, 7.0),
    Parameter("mix", "Mix", "", 0.0, 1.0, 0.5),
    Parameter("feedback", "Feedback", "", 0.0, 0.9, 0.0),
    Parameter("spread_deg", "Stereo spread", "deg", 0.0, 180.0, 90.0),
)


class Chorus(Effect):
    """Each channel is delayed by `delay_ms … delay_ms + depth_ms`, swept at `rate_hz`,
    the right channel's sweep `spread_deg` ahead of the left's; cubic interpolation."""

    name = "chorus"
    parameters = PARAMETERS

    def prepare(self, sample_rate: int, max_block: int) -> None:
        super().prepare(sample_rate, max_block)
        self._rate = float(self.sample_rate)
        longest = (MAX_DELAY_MS + MAX_DEPTH_MS) * self._rate / 1000
        self._line = np.zeros((2, dl.line_size(longest)), dtype=np.float32)
        self._state = np.zeros(3)
        self._counters = np.zeros(1, dtype=np.int64)
        self._previous = self.params.values.copy()
        self.warm_up()

    def reset(self) -> None:
        self._line[:] = 0.0
        values = self.params.values
        self._state[:] = 0.0, values[dl.CHORUS_DELAY_MS], values[dl.CHORUS_DEPTH_MS]
        self._counters[:] = 0
        self._previous[:] = self.params.values

    def process(self, inp: np.ndarray, out: np.ndarray, events: np.ndarray) -> None:
        self.params.advance(out.shape[1] / self.sample_rate)
        dl.chorus(out, self._line, self._state, self._counters, self._previous, self.params.values, self._rate)

