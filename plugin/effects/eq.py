"""Six-band parametric EQ: low cut, low shelf, two peaks, high shelf, high cut, output gain.

Written here rather than wrapped from Spotify's pedalboard: its `Plugin.process` copies the
input and returns a newly allocated array on every call (allocation on the audio thread,
which timbrel forbids), cannot filter the host's bus in place, and its filters take new
coefficients at the next call with no per-sample smoothing. The cascade is ~100 lines of numba.
"""

from __future__ import annotations

import math

import numpy as np

from timbrel.engine.plugin_api import Effect, Parameter
from timbrel.engine.realtime.kernels import biquad

FADE_MS = 10.0
"""Crossfade time (ms) of the low-cut and high-cut switches."""

BUTTERWORTH_Q = 1.0 / math.sqrt(2.0)
"""Q of the cut filters (maximally flat) and the shelves (cookbook slope S = 1)."""

PARAMETERS = (
    Parameter("low_cut", "Low cut", "", 0.0, 1.0, 0.0, smoothing_ms=0, choices=("off", "on")),
    Parameter("low_cut_hz", "Low cut frequency", "Hz", 20.0, 2000.0, 80.0, scale="log"),
    Parameter("low_shelf_hz", "Low shelf frequency", "Hz", 20.0, 2000.0, 120.0, scale="log"),
    Parameter("low_shelf_db", "Low shelf gain", "dB", -18.0, 18.0, 0.0),
    Parameter("peak1_hz", "Peak 1 frequency", "Hz", 20.0, 20000.0, 500.0, scale="log"),
    Parameter("peak1_db", "Peak 1 gain", "dB", -18.0, 18.0, 0.0),
    Parameter("peak1_q", "Peak 1 Q", "", 0.1, 10.0, 1.0, scale="log"),
    Parameter("peak2_hz", "Peak 2 frequency", "Hz", 20.0, 20000.0, 3000.0, scale="log"),
    Parameter("peak2_db", "Peak 2 gain", "dB", -18.0, 18.0, 0.0),
    Parameter("peak2_q", "Peak 2 Q", "", 0.1, 10.0, 1.0, scale="log"),
    Parameter("high_shelf_hz", "High shelf frequency", "Hz", 500.0, 20000.0, 8000.0, scale="log"),
    Parameter("high_shelf_db", "High shelf gain", "dB", -18.0, 18.0, 0.0),
    Parameter("high_cut", "High cut", "", 0.0, 1.0, 0.0, smoothing_ms=0, choices=("off", "on")),
    Parameter("high_cut_hz", "High cut frequency", "Hz", 1000.0, 20000.0, 12000.0, scale="log"),
    Parameter("output_db", "Output", "dB", -24.0, 24.0, 0.0),
)
_I = {p.id: i for i, p in enumerate(PARAMETERS)}
_ZERO, _ONE, _BUTTERWORTH = len(PARAMETERS), len(PARAMETERS) + 1, len(PARAMETERS) + 2
_CONSTANTS = (0.0, 1.0, BUTTERWORTH_Q)

BANDS = (
    (biquad.HIGH_PASS, _I["low_cut_hz"], _BUTTERWORTH, _ZERO, _I["low_cut"]),
    (biquad.LOW_SHELF, _I["low_shelf_hz"], _BUTTERWORTH, _I["low_shelf_db"], _ONE),
    (biquad.PEAK, _I["peak1_hz"], _I["peak1_q"], _I["peak1_db"], _ONE),
    (biquad.PEAK, _I["peak2_hz"], _I["peak2_q"], _I["peak2_db"], _ONE),
    (biquad.HIGH_SHELF, _I["high_shelf_hz"], _BUTTERWORTH, _I["high_shelf_db"], _ONE),
    (biquad.LOW_PASS, _I["high_cut_hz"], _BUTTERWORTH, _ZERO, _I["high_cut"]),
)
"""Per band, in processing order: kind, then where its `HZ`, `Q`, `DB`, `ON` settings come from
(a parameter index, or one of the constants appended after the parameters)."""


class ParametricEQ(Effect):
    """RBJ biquads in series on the stereo bus; every setting glides, and flat bands cost nothing.

    Cut filters are 12 dB/octave Butterworth; their switches crossfade over `FADE_MS`. Shelf
    frequencies are the shelf midpoints (half the gain in dB), peaks are cookbook peaking EQs.
    """

    name = "eq"
    tail_s = 1.0
    """The filters' ring (a 20 Hz high-Q band decays by 120 dB well within a second)."""
    parameters = PARAMETERS

    def __init__(self) -> None:
        super().__init__()
        self._kinds = np.array([band[0] for band in BANDS], dtype=np.int64)
        self._index = np.array([band[1:] for band in BANDS], dtype=np.int64)
        self._source = np.zeros(len(PARAMETERS) + len(_CONSTANTS))
        self._source[len(PARAMETERS) :] = _CONSTANTS
        bands = len(BANDS)
        self._start = np.zeros((bands, 4))
        self._end = np.zeros((bands, 4))
        self._state = np.zeros((bands, 2, 2))
        self._mix = np.zeros(bands)
        self._coeffs = np.zeros((bands, biquad.COEFFS))
        self._gain = 1.0
        self._fade_step = 1.0

    def prepare(self, sample_rate: int, max_block: int) -> None:
        super().prepare(sample_rate, max_block)
        self._fade_step = 1000.0 / (FADE_MS * self.sample_rate)
        self._warm()
        self.reset()

    def _warm(self) -> None:
        """Compile (or load) the kernel for both bus layouts the host passes, on scratch state."""
        self._settings(self._end)
        self._end[:, biquad.ON] = 1.0
        self._end[:, biquad.DB] = 1.0
        bus = np.zeros((2, 16), dtype=np.float32)
        for view in (bus, bus[:, :8]):
            biquad.cascade(view, self._kinds, self._end, self._end, np.zeros_like(self._state), np.ones_like(self._mix),
                           np.zeros_like(self._coeffs), float(self.sample_rate), self._fade_step, 1.0, 1.0)

    def _settings(self, out: np.ndarray) -> None:
        """Fill `out` `[bands, 4]` with the bands' current settings from the parameter values."""
        self._source[: len(PARAMETERS)] = self.params.values
        np.take(self._source, self._index, out=out, mode="clip")

    def reset(self) -> None:
        if not self.sample_rate:
            return
        self._settings(self._end)
        self._start[:] = self._end
        self._state[:] = 0.0
        self._mix[:] = self._end[:, biquad.ON]
        self._gain = 10.0 ** (float(self.params.values[_I["output_db"]]) / 20.0)

    def process(self, inp: np.ndarray, out: np.ndarray, events: np.ndarray) -> None:
        n = out.shape[1]
        self.params.advance(n / self.sample_rate)
        self._settings(self._end)
        gain = 10.0 ** (float(self.params.values[_I["output_db"]]) / 20.0)
        biquad.cascade(out, self._kinds, self._start, self._end, self._state, self._mix, self._coeffs,
                       float(self.sample_rate), self._fade_step, self._gain, gain)
        self._start[:] = self._end
        self._gain = gain
