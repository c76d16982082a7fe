"""Spectral checks shared by the offline and the live instrument tests."""

from __future__ import annotations

import numpy as np


def assert_partial_series(audio: np.ndarray, sample_rate: int, notes: tuple[int, ...],
                          harmonics: tuple[int, ...] = (1, 2), above_floor: float = 30.0) -> None:
    """Every MIDI note in `notes` shows its partials `harmonics` in `audio` `[samples]`: a
    spectral peak within 4 Hz of k·f0 at least `above_floor` times the spectrum's median."""
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.size)))
    freqs = np.fft.rfftfreq(audio.size, 1 / sample_rate)
    floor = np.median(spectrum)
    for note in notes:
        f0_hz = 440 * 2 ** ((note - 69) / 12)
        for k in harmonics:
            near = np.abs(freqs - k * f0_hz) < 4
            assert spectrum[near].max() > above_floor * floor, f"no partial {k} of note {note}"
