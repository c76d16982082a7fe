"""Offline filtered noise: the NumPy reference for docs/DSP.md, and the filter design.

The filter design and the noise generator defined here are shared with the streaming
kernel (`timbrel.engine.realtime.kernels.noise`), which precomputes `noise_filter_matrix` when prepared.
"""

from __future__ import annotations

import numpy as np

from timbrel.engine.offline.checks import check_rate_and_hop, finite_array

GAMMA = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
_MASK64 = (1 << 64) - 1


def _mix64(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * np.uint64(_MIX1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(_MIX2)
    return z ^ (z >> np.uint64(31))


def noise_key(seed: int, voice: int) -> int:
    """The SplitMix64 stream key of one voice: `mix(seed * GAMMA + voice)`, as an int."""
    with np.errstate(over="ignore"):
        z = np.array([(int(seed) * GAMMA + int(voice)) & _MASK64], dtype=np.uint64)
        return int(_mix64(z)[0])


def white_noise(n_samples: int, seed: int = 0, voice: int = 0, start: int = 0) -> np.ndarray:
    """Uniform white noise in [-1, 1) from the counter-based generator of docs/DSP.md.

    Returns float64 `[n_samples]`: samples `start … start + n_samples - 1` of the stream of
    (`seed`, `voice`). Any sample can be computed alone, so streams split anywhere agree.
    """
    t = np.arange(start + 1, start + n_samples + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = _mix64(np.uint64(noise_key(seed, voice)) + t * np.uint64(GAMMA))
    return (z >> np.uint64(40)).astype(np.float64) * 2.0**-23 - 1.0


def host_bins(bands: int, sample_rate: float, band_nyquist_hz: float | None = None) -> int:
    """Bins of the filter's frequency grid at `sample_rate` that keep the bands' spacing."""
    nyquist = sample_rate / 2 if band_nyquist_hz is None else float(band_nyquist_hz)
    return int(round((sample_rate / 2) / (nyquist / (bands - 1)))) + 1


def noise_filter_matrix(bands: int, sample_rate: float, band_nyquist_hz: float | None = None) -> np.ndarray:
    """The linear map from band magnitudes to FIR taps: `taps = M @ magnitudes`.

    Bands are centred on `b * band_nyquist_hz / (bands - 1)` Hz (default: this rate's
    Nyquist), so a model trained at one rate plays at another. The filter is designed by
    frequency sampling on the host grid, made causal by a rotation of L/2 and Hann-windowed.

    Returns float64 `[L, bands]` with `L = 2 * (host_bins - 1)` taps.
    """
    if bands < 2:
        raise ValueError(f"filtered noise needs at least 2 bands, got {bands}")
    nyquist = sample_rate / 2 if band_nyquist_hz is None else float(band_nyquist_hz)
    if not nyquist > 0:
        raise ValueError(f"band_nyquist_hz must be > 0 Hz, got {band_nyquist_hz}")
    bins = host_bins(bands, sample_rate, band_nyquist_hz)
    if bins < 2:
        raise ValueError(f"{bands} bands up to {nyquist} Hz are too coarse for {sample_rate} Hz")
    taps = 2 * (bins - 1)
    if bins == bands and nyquist == sample_rate / 2:
        interp = np.eye(bands)
    else:
        position = np.arange(bins) * ((sample_rate / 2) / (bins - 1)) / (nyquist / (bands - 1))
        nearest = np.round(position)
        position = np.where(np.abs(position - nearest) < 1e-9, nearest, position)
        interp = np.zeros((bins, bands))
        for i, p in enumerate(position):
            if p > bands - 1:
                continue
            lo = int(np.floor(p))
            hi = min(lo + 1, bands - 1)
            frac = p - lo
            interp[i, lo] += 1 - frac
            interp[i, hi] += frac
    n = np.arange(taps)[:, None]
    b = np.arange(bins)[None, :]
    weight = np.where((b == 0) | (b == bins - 1), 1.0, 2.0)
    idft = weight * np.cos(2 * np.pi * b * (n - taps // 2) / taps) / taps
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(taps) / taps)
    return (window[:, None] * idft) @ interp


def filtered_noise(
    magnitudes: np.ndarray,
    sample_rate: float,
    hop: int,
    seed: int = 0,
    band_nyquist_hz: float | None = None,
) -> np.ndarray:
    """Render white noise shaped, frame by frame, by band magnitudes.

    Args:
        magnitudes: linear band gains, `[frames, N]` or `[voices, frames, N]`; band b is
            centred on `b * band_nyquist_hz / (N - 1)` Hz.
        sample_rate: output rate in Hz.
        hop: samples per frame.
        seed: noise seed; voice v draws the generator stream (seed, v).
        band_nyquist_hz: the Nyquist frequency the bands span (default `sample_rate / 2`).

    Returns:
        float32 audio `[..., frames * hop]`.
    """
    mags = finite_array("magnitudes", magnitudes, min_ndim=2)
    check_rate_and_hop(sample_rate, hop)
    lead = mags.shape[:-2]
    frames, bands = mags.shape[-2:]
    matrix = noise_filter_matrix(bands, sample_rate, band_nyquist_hz)
    mags = mags.reshape(-1, frames, bands)
    out = np.zeros((mags.shape[0], frames * hop), dtype=np.float32)
    for v in range(mags.shape[0]):
        taps = mags[v] @ matrix.T
        noise = white_noise(frames * hop, seed, v)
        acc = np.zeros(frames * hop + matrix.shape[0] - 1)
        for i in range(frames):
            seg = np.convolve(noise[i * hop : (i + 1) * hop], taps[i])
            acc[i * hop : i * hop + seg.size] += seg
        out[v] = acc[: frames * hop]
    return out.reshape(*lead, frames * hop)
