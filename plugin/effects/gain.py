"""Gain, pan, stereo width and polarity: one 2x2 matrix per block, gliding per sample.

Written here rather than wrapped from Spotify's pedalboard: its `Plugin.process` copies the
input into a new buffer and returns a newly allocated array on every call (allocation on
the audio thread, which timbrel forbids), it cannot process the host's bus in place, and its
Gain jumps to a new value at the next call instead of ramping per sample.
"""

from __future__ import annotations

import math

import numpy as np

from timbrel.engine.plugin_api import Effect, Parameter
from timbrel.engine.realtime.kernels.stereo import stereo_matrix

PARAMETERS = (
    Parameter("gain_db", "Gain", "dB", -60.0, 24.0, 0.0),
    Parameter("pan", "Pan", "", -1.0, 1.0, 0.0),
    Parameter("width", "Width", "", 0.0, 2.0, 1.0),
    Parameter("phase_invert", "Invert polarity", "", 0.0, 1.0, 0.0, choices=("off", "on")),
)
_I = {p.id: i for i, p in enumerate(PARAMETERS)}


def pan_gains(pan: float) -> tuple[float, float]:
    """Left and right gains (linear) of the constant-power pan law at `pan` (-1 left … 1 right).

    Gains are sqrt(2)·cos(θ) and sqrt(2)·sin(θ) with θ = (pan + 1)·π/4: their squares sum to
    2 everywhere, the centre sits 3 dB below a hard pan (the "-3 dB" law), and it is scaled
    to unity so an untouched GainPan passes audio unchanged. A hard pan is +3 dB on its side.
    """
    theta = (min(1.0, max(-1.0, pan)) + 1.0) * math.pi / 4.0
    return math.sqrt(2.0) * math.cos(theta), math.sqrt(2.0) * math.sin(theta)


def mix_matrix(values: np.ndarray, out: np.ndarray) -> None:
    """Write the stereo matrix `[4]` (left<-left, left<-right, right<-left, right<-right) for the
    parameter `values` into `out`.

    Width scales the side signal (L-R)/2 against the mid (L+R)/2: 0 is mono, 1 unchanged,
    2 doubled. Pan then weights each output channel (a balance, `pan_gains`), and the gain
    and polarity (0 … 1: a glide through silence to -1) scale both.
    """
    left, right = pan_gains(values[_I["pan"]])
    width = values[_I["width"]]
    g = 10.0 ** (values[_I["gain_db"]] / 20.0) * (1.0 - 2.0 * values[_I["phase_invert"]])
    same, cross = 0.5 * (1.0 + width) * g, 0.5 * (1.0 - width) * g
    out[0], out[1], out[2], out[3] = left * same, left * cross, right * cross, right * same


class GainPan(Effect):
    """Gain (dB), constant-power pan, mid/side width and polarity on the stereo bus, smoothed per sample."""

    name = "gain"
    tail_s = 0.0
    parameters = PARAMETERS

    def prepare(self, sample_rate: int, max_block: int) -> None:
        super().prepare(sample_rate, max_block)
        self._start = np.zeros(4)
        self._end = np.zeros(4)
        warm = np.zeros((2, 16), dtype=np.float32)
        for view in (warm, warm[:, :8]):
            stereo_matrix(view, self._start, self._end)
        self.reset()

    def reset(self) -> None:
        if not self.sample_rate:
            return
        mix_matrix(self.params.values, self._start)
        self._end[:] = self._start

    def process(self, inp: np.ndarray, out: np.ndarray, events: np.ndarray) -> None:
        n = out.shape[1]
        self.params.advance(n / self.sample_rate)
        mix_matrix(self.params.values, self._end)
        stereo_matrix(out, self._start, self._end)
        self._start[:] = self._end
