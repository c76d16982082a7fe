"""Offline harmonic oscillator bank: the NumPy reference for docs/DSP.md."""

from __future__ import annotations

import numpy as np

from timbrel.engine.offline.checks import as_controls, check_rate_and_hop

_CHUNK_SAMPLES = 1 << 16


def harmonic_amplitudes(
    f0_hz: np.ndarray, amplitude: np.ndarray, harmonic_distribution: np.ndarray, sample_rate: float
) -> np.ndarray:
    """Per-frame harmonic amplitudes, band-limited and renormalised (DDSP's definition).

    Harmonics at or above Nyquist are zeroed and the rest of the distribution rescaled to
    sum 1, then multiplied by the overall amplitude. Shapes: `[..., frames]`,
    `[..., frames]`, `[..., frames, K]` -> float64 `[..., frames, K]`.
    """
    f0 = np.asarray(f0_hz, dtype=np.float64)
    dist = np.asarray(harmonic_distribution, dtype=np.float64)
    k = np.arange(1, dist.shape[-1] + 1, dtype=np.float64)
    valid = k * f0[..., None] < sample_rate / 2
    dist = np.where(valid, dist, 0.0)
    total = dist.sum(axis=-1, keepdims=True)
    scale = np.where(total > 0, np.asarray(amplitude, np.float64)[..., None] / np.where(total > 0, total, 1.0), 0.0)
    return dist * scale


def harmonic_synth(
    f0_hz: np.ndarray,
    amplitude: np.ndarray,
    harmonic_distribution: np.ndarray,
    sample_rate: float,
    hop: int,
) -> np.ndarray:
    """Render a bank of harmonic oscillators from frame-rate controls.

    Args:
        f0_hz: fundamental per frame in Hz, `[frames]` or `[voices, frames]`.
        amplitude: overall linear amplitude per frame, same shape as `f0_hz`.
        harmonic_distribution: relative harmonic weights (>= 0), `[..., frames, K]`;
            harmonic k (1-based) sounds at k * f0.
        sample_rate: output rate in Hz.
        hop: samples per frame.

    Returns:
        float32 audio `[..., frames * hop]`. Controls ramp linearly across each hop towards
        the frame's values (frame 0 is held before it), phase starts at 0.
    """
    f0, amp, dist = as_controls(f0_hz, amplitude, harmonic_distribution)
    check_rate_and_hop(sample_rate, hop)
    lead = f0.shape[:-1]
    frames, harmonics = dist.shape[-2:]
    f0 = f0.reshape(-1, frames)
    amp = amp.reshape(-1, frames)
    dist = dist.reshape(-1, frames, harmonics)
    out = np.zeros((f0.shape[0], frames * hop), dtype=np.float32)
    for v in range(f0.shape[0]):
        out[v] = _render_voice(f0[v], amp[v], dist[v], float(sample_rate), int(hop))
    return out.reshape(*lead, frames * hop)


def _render_voice(f0: np.ndarray, amp: np.ndarray, dist: np.ndarray, sample_rate: float, hop: int) -> np.ndarray:
    frames, harmonics = dist.shape
    a_cur = harmonic_amplitudes(f0, amp, dist, sample_rate)
    a_prev = np.concatenate([a_cur[:1], a_cur[:-1]])
    f_prev = np.concatenate([f0[:1], f0[:-1]])
    k = np.arange(1, harmonics + 1, dtype=np.float64)
    t = np.arange(1, hop + 1, dtype=np.float64) / hop
    out = np.empty(frames * hop, dtype=np.float64)
    phase = 0.0
    step = max(1, _CHUNK_SAMPLES // hop)
    for start in range(0, frames, step):
        s = slice(start, min(frames, start + step))
        f = f_prev[s, None] + (f0[s, None] - f_prev[s, None]) * t
        omega = (2 * np.pi / sample_rate) * f.ravel()
        phi = phase + np.concatenate([[0.0], np.cumsum(omega[:-1])])
        phase = float((phi[-1] + omega[-1]) % (2 * np.pi))
        mask = k * np.maximum(f_prev[s], f0[s])[:, None] < sample_rate / 2
        a = a_prev[s, None, :] + (a_cur[s] - a_prev[s])[:, None, :] * t[None, :, None]
        a = (a * mask[:, None, :]).reshape(-1, harmonics)
        out[s.start * hop : s.stop * hop] = np.einsum("nk,nk->n", a, np.sin(phi[:, None] * k))
    return out.astype(np.float32)
