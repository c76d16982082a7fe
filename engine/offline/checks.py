"""Input validation shared by the offline DSP functions: one clear ValueError per fault."""

from __future__ import annotations

import numpy as np


def finite_array(name: str, value: np.ndarray, min_ndim: int = 1) -> np.ndarray:
    """Return `value` as a float64 array, rejecting too few dimensions and NaN or inf."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim < min_ndim:
        raise ValueError(f"{name} needs at least {min_ndim} dimension(s), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def as_controls(
    f0_hz: np.ndarray, amplitude: np.ndarray, harmonic_distribution: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate harmonic controls `[..., frames]`, `[..., frames]`, `[..., frames, K]`."""
    f0 = finite_array("f0_hz", f0_hz)
    amp = finite_array("amplitude", amplitude)
    dist = finite_array("harmonic_distribution", harmonic_distribution, min_ndim=2)
    if amp.shape != f0.shape or dist.shape[:-1] != f0.shape:
        raise ValueError(
            f"control shapes disagree: f0_hz {f0.shape}, amplitude {amp.shape}, "
            f"harmonic_distribution {dist.shape} (want [..., frames], [..., frames], [..., frames, K])"
        )
    if np.any(f0 < 0):
        raise ValueError("f0_hz must be >= 0 Hz")
    if np.any(dist < 0):
        raise ValueError("harmonic_distribution must be >= 0")
    return f0, amp, dist


def check_rate_and_hop(sample_rate: float, hop: int) -> None:
    """Reject a non-positive sample rate or a hop that is not a positive integer."""
    if not sample_rate > 0:
        raise ValueError(f"sample_rate must be > 0 Hz, got {sample_rate}")
    if int(hop) != hop or hop < 1:
        raise ValueError(f"hop must be a positive whole number of samples, got {hop}")
