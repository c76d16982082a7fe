"""Offline convolution reverb (NumPy reference), following docs/DSP.md "Reverb"."""

from __future__ import annotations

import numpy as np

from timbrel.engine.offline.checks import finite_array


def reverb(audio: np.ndarray, impulse_response: np.ndarray, mix: float = 1.0) -> np.ndarray:
    """`(1 - mix) * audio + mix * (audio * h)`, the convolution truncated to `len(audio)`.

    `audio`: `[samples]` or `[voices, samples]` (every row through the same IR);
    `impulse_response`: `[taps]` at the audio's sample rate; `mix` in [0, 1].
    Full linear convolution by FFT in float64; returns float32 of `audio`'s shape.
    """
    if not isinstance(mix, (int, float, np.integer, np.floating)) or not 0.0 <= mix <= 1.0:
        raise ValueError(f"mix must be a number in [0, 1], got {mix!r}")
    x = finite_array("audio", audio)
    if x.ndim > 2:
        raise ValueError(f"audio must be [samples] or [voices, samples], got shape {x.shape}")
    h = finite_array("impulse_response", impulse_response)
    if h.ndim != 1 or h.size == 0:
        raise ValueError(f"impulse_response must be a non-empty 1-D array, got shape {h.shape}")
    n = x.shape[-1]
    if n == 0:
        return x.astype(np.float32)
    h = h[:n]
    size = 1 << (n + h.size - 2).bit_length()
    wet = np.fft.irfft(np.fft.rfft(x, size, axis=-1) * np.fft.rfft(h, size), size, axis=-1)[..., :n]
    return ((1.0 - mix) * x + mix * wet).astype(np.float32)
