"""Small per-block mixing kernels (numba): bus writes, crossfades, peak meters, one-pole coefficients."""

from __future__ import annotations

import math

import numba


@numba.njit(nogil=True, cache=True, _nrt=False, inline="always")
def finite_or_zero(x: float) -> float:
    """`x`, or 0.0 when it is NaN or infinite: the guard every kernel applies to its input."""
    return x if math.isfinite(x) else 0.0


@numba.njit(nogil=True, cache=True, _nrt=False, inline="always")
def copy_into(dst, src):
    """`dst[:] = src` for 1-D arrays of one length, without the temporary numba's slice copy may make."""
    for i in range(dst.shape[0]):
        dst[i] = src[i]


@numba.njit(nogil=True, cache=True, _nrt=False)
def glide(values, targets, tau_s, seconds):
    """Move each of `values` towards `targets` by `min(1, seconds / tau_s)` of the way (one-pole
    smoothing with time constants `tau_s`, s, over `seconds` of audio). All float64 `[n]`."""
    for i in range(values.shape[0]):
        step = min(seconds / tau_s[i], 1.0)
        values[i] += (targets[i] - values[i]) * step


@numba.njit(nogil=True, cache=True, _nrt=False)
def is_silent(samples):
    """Whether every sample of `samples` (any shape, contiguous rows) is exactly zero."""
    for x in samples.flat:
        if x != 0.0:
            return False
    return True


@numba.njit(nogil=True, cache=True, _nrt=False)
def rows_equal(bus):
    """Whether the two rows of the bus `[2, n]` hold the same samples (a mono signal)."""
    for j in range(bus.shape[1]):
        if bus[0, j] != bus[1, j]:
            return False
    return True


@numba.njit(nogil=True, cache=True, _nrt=False)
def mono_to_bus(mono, bus, gain_from, gain_to):
    """Write mono `[n]` to both rows of the float32 bus `[2, n]`, the gain ramping linearly
    from `gain_from` to `gain_to` across the block. Non-finite samples become 0."""
    n = bus.shape[1]
    step = (gain_to - gain_from) / n
    for j in range(n):
        x = finite_or_zero(mono[j] * (gain_from + step * (j + 1)))
        bus[0, j] = x
        bus[1, j] = x


@numba.njit(nogil=True, cache=True, _nrt=False)
def crossfade(bus, old, done, total):
    """Fade `old` `[channels, n]` out and `bus` in, sample `done` of a `total`-sample crossfade.

    Writes the mix into `bus`; returns how many crossfade samples this block used.
    """
    channels, n = bus.shape
    m = min(n, total - done)
    for j in range(m):
        g = (done + j + 1) / total
        for c in range(channels):
            bus[c, j] = bus[c, j] * g + old[c, j] * (1.0 - g)
    return m


@numba.njit(nogil=True, cache=True, _nrt=False)
def peak(x):
    """Largest absolute sample of `x` `[n]` (0 for an empty block)."""
    top = 0.0
    for j in range(x.shape[0]):
        top = max(top, abs(x[j]))
    return top


@numba.njit(nogil=True, cache=True, _nrt=False)
def wet_mix(out, dry, mix, target, step):
    """Blend an effect's output `out` `[channels, n]` with its input `dry` in place:
    `out = dry + g * (out - dry)`, `g` moving from `mix` towards `target` by at most `step`
    per sample. Returns `g` after the block."""
    channels, n = out.shape
    g = mix
    for j in range(n):
        if g < target:
            g = min(target, g + step)
        elif g > target:
            g = max(target, g - step)
        for c in range(channels):
            out[c, j] = dry[c, j] + g * (out[c, j] - dry[c, j])
    return g


@numba.njit(nogil=True, cache=True, _nrt=False)
def all_finite(bus):
    """Whether every sample of `bus` `[channels, n]` is finite."""
    channels, n = bus.shape
    for c in range(channels):
        for j in range(n):
            if not math.isfinite(bus[c, j]):
                return False
    return True


@numba.njit(nogil=True, cache=True, _nrt=False)
def time_coefficient(ms, sample_rate):
    """One-pole coefficient whose step response covers 63% of the way in `ms` milliseconds."""
    return math.exp(-1000.0 / (max(ms, 1e-3) * sample_rate))
