"""The output's spectrum for the control surface's display (computed in the server process)."""

from __future__ import annotations

import numpy as np

FLOOR_DB = -120.0


class Spectrum:
    """Level per log-spaced band, in dB relative to a full-scale sine.

    `samples`: the analysis length (the Hann-windowed FFT size); `bands` from `low_hz` to the
    Nyquist frequency. A band holding two bins or more reads the loudest; a narrower one (low
    bands, where bins are `sample_rate / samples` Hz apart) reads the spectrum interpolated
    at its centre.
    """

    def __init__(self, sample_rate: int, samples: int = 2048, bands: int = 160, low_hz: float = 20.0):
        self.sample_rate = int(sample_rate)
        self.samples = int(samples)
        self.window = np.hanning(self.samples)
        self._scale = 2.0 / self.window.sum()
        edges_hz = np.geomspace(low_hz, self.sample_rate / 2, bands + 1)
        self.centres_hz = np.sqrt(edges_hz[:-1] * edges_hz[1:])
        self._bins_hz = np.fft.rfftfreq(self.samples, 1.0 / self.sample_rate)
        first = np.searchsorted(self._bins_hz, edges_hz[:-1])
        stop = np.searchsorted(self._bins_hz, edges_hz[1:])
        self._wide = [(i, a, b) for i, (a, b) in enumerate(zip(first, stop)) if b - a >= 2]

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        """`audio`: float32 `[samples]` (shorter is zero-padded at the start) -> dB `[bands]`."""
        frame = np.zeros(self.samples)
        tail = np.asarray(audio, dtype=np.float64)[-self.samples :]
        frame[self.samples - tail.size :] = tail
        magnitude = np.abs(np.fft.rfft(frame * self.window)) * self._scale
        bands = np.interp(self.centres_hz, self._bins_hz, magnitude)
        for i, a, b in self._wide:
            bands[i] = magnitude[a:b].max()
        return np.maximum(20 * np.log10(np.maximum(bands, 1e-12)), FLOOR_DB)
