"""Compressor and look-ahead limiter for the stereo bus.

Written here, not wrapped from pedalboard (0.9.26): its `process` returns a newly allocated
array on every call and cannot write into the host's bus; its Compressor (JUCE's) has a
hard knee, no makeup, no parallel mix and no gain-reduction readout; its Limiter (JUCE's)
has no look-ahead and adds makeup gain, and its BrickwallLimiter drops gain in one step
and hides its latency by returning short blocks, where the host needs full ones.
"""

from __future__ import annotations

import math

import numpy as np

from timbrel.engine.plugin_api import Effect, Parameter
from timbrel.engine.realtime.kernels import dynamics as dk

DETECTORS = ("peak", "rms")
MAX_LOOKAHEAD_MS = 5.0

COMPRESSOR_PARAMETERS = (
    Parameter("threshold_db", "Threshold", "dB", -60.0, 0.0, -18.0),
    Parameter("ratio", "Ratio", ":1", 1.0, 20.0, 4.0, scale="log"),
    Parameter("knee_db", "Knee", "dB", 0.0, 24.0, 6.0),
    Parameter("attack_ms", "Attack", "ms", 0.1, 100.0, 10.0, scale="log"),
    Parameter("release_ms", "Release", "ms", 5.0, 2000.0, 100.0, scale="log"),
    Parameter("makeup_db", "Makeup", "dB", 0.0, 24.0, 0.0),
    Parameter("mix", "Mix", "", 0.0, 1.0, 1.0),
    Parameter("detector", "Detector", "", 0.0, 1.0, 0.0, smoothing_ms=0, choices=DETECTORS),
)
LIMITER_PARAMETERS = (
    Parameter("ceiling_db", "Ceiling", "dB", -24.0, 0.0, -1.0),
    Parameter("release_ms", "Release", "ms", 1.0, 1000.0, 100.0, scale="log"),
    Parameter("lookahead_ms", "Look-ahead", "ms", 0.0, MAX_LOOKAHEAD_MS, 1.5, smoothing_ms=0),
)


class DynamicsEffect(Effect):
    """What the compressor and the limiter share: a gain computer in a numba kernel that
    reads the parameters at the block's start (`_previous`) and end, and reports
    `gain_reduction_db` (>= 0), the largest reduction of the last block, for meters."""

    tail_s = 10.0
    """Five times the longest release (2 s): by then the gain computer has let go, so a skipped
    stretch of silence leaves it as running it would have."""

    def __init__(self) -> None:
        super().__init__()
        self.gain_reduction_db = 0.0
        self._state = np.zeros(2)

    def prepare(self, sample_rate: int, max_block: int) -> None:
        super().prepare(sample_rate, max_block)
        self._previous = self.params.values.copy()
        self._rate = float(self.sample_rate)
        self.reset()
        self.warm_up()

    def reset(self) -> None:
        self._previous[:] = self.params.values
        self.gain_reduction_db = 0.0

    def process(self, inp: np.ndarray, out: np.ndarray, events: np.ndarray) -> None:
        self.params.advance(out.shape[1] / self.sample_rate)
        self.gain_reduction_db = self._reduce(out)

    def _reduce(self, bus: np.ndarray) -> float:
        """Apply the gain to `bus` `[2, n]` in place; returns the largest reduction in dB."""
        raise NotImplementedError


class Compressor(DynamicsEffect):
    """Feed-forward stereo-linked compressor with a soft knee and parallel mix."""

    name = "compressor"
    parameters = COMPRESSOR_PARAMETERS

    def reset(self) -> None:
        self._state[:] = 0.0
        super().reset()

    def _reduce(self, bus: np.ndarray) -> float:
        return dk.compress(bus, self._state, self._previous, self.params.values, self._rate)


class Limiter(DynamicsEffect):
    """Look-ahead peak limiter: no output sample exceeds `ceiling_db`.

    The output is `latency_samples` late (the look-ahead), and the gain glides down across
    the look-ahead before a peak. A sample is held to the ceiling in force when it came in,
    so while the ceiling glides down it trails by the look-ahead. `lookahead_ms` sets the
    latency, so it takes effect at `prepare` and `reset`, not mid-stream.
    `gain_reduction_db` (>= 0) is the largest reduction of the last block, for meters.
    """

    name = "limiter"
    parameters = LIMITER_PARAMETERS

    def __init__(self) -> None:
        super().__init__()
        self._lookahead = 0

    @property
    def latency_samples(self) -> int:
        return self._lookahead

    def prepare(self, sample_rate: int, max_block: int) -> None:
        window = math.ceil(MAX_LOOKAHEAD_MS * sample_rate / 1000) + 1
        self._line = np.zeros((3, window))
        self._queue_gain = np.zeros(window)
        self._queue_at = np.zeros(window, dtype=np.int64)
        self._smooth = np.zeros(window)
        self._counters = np.zeros(4, dtype=np.int64)
        super().prepare(sample_rate, max_block)

    def reset(self) -> None:
        lookahead_ms = self.params.get("lookahead_ms")
        self._lookahead = round(lookahead_ms * self.sample_rate / 1000)
        window = self._lookahead + 1
        self._line[:] = 0.0
        self._smooth[:] = 1.0
        self._counters[:] = 0
        self._counters[3] = window
        self._state[0] = 1.0
        self._state[1] = window
        super().reset()

    def _reduce(self, bus: np.ndarray) -> float:
        return dk.limit_ahead(bus, self._line, self._queue_gain, self._queue_at, self._smooth, self._counters,
                              self._state, self._previous, self.params.values, self._rate)
