"""Fractional delay lines (numba): a feedback echo and a modulated chorus on the stereo bus.

A line is a float32 ring `[channels, size]`, `size` a power of two, written once per
sample at the write index; `read` fetches the value `delay` samples back (fractional,
>= 2) with 4-point cubic Hermite (Catmull-Rom) interpolation, which is exact at integer
delays and for signals linear in time. Kernels process the float32 bus `[2, n]` in place
(any strides) and take their parameters as two float64 vectors, the values at the end of
the previous block and now, in the order of the `ECHO_*` and `CHORUS_*` indices; each
parameter ramps linearly across the block, and delay times then pass a per-sample one-pole
(`GLIDE_MS`), so the read position moves with a continuous speed: a time change bends pitch
and never clicks. Each kernel copies `current` into `previous` before it returns.
"""

from __future__ import annotations

import math

import numba

from timbrel.engine.realtime.kernels.mixing import copy_into, time_coefficient

ECHO_TIME_MS, ECHO_FEEDBACK, ECHO_MIX, ECHO_TONE_HZ, ECHO_PING_PONG = 0, 1, 2, 3, 4
CHORUS_RATE_HZ, CHORUS_DEPTH_MS, CHORUS_DELAY_MS = 0, 1, 2
CHORUS_MIX, CHORUS_FEEDBACK, CHORUS_SPREAD_DEG = 3, 4, 5

MIN_DELAY_SAMPLES = 2.0
"""Shortest readable delay: Hermite needs the sample after the one it starts from."""

GLIDE_MS = 20.0
"""Time constant of the per-sample glide of delay times, ms."""

_FLUSH = 1e-15


def line_size(max_delay_samples: float) -> int:
    """Ring length (a power of two) that can hold `max_delay_samples` plus the interpolation taps."""
    size = 4
    while size < max_delay_samples + 4:
        size *= 2
    return size


@numba.njit(nogil=True, cache=True, _nrt=False, inline="always")
def hermite(before, at, after, after2, frac):
    """Catmull-Rom cubic through four equally spaced samples, `frac` 0…1 from `at` towards `after`."""
    c1 = 0.5 * (after - before)
    c2 = before - 2.5 * at + 2.0 * after - 0.5 * after2
    c3 = 0.5 * (after2 - before) + 1.5 * (at - after)
    return ((c3 * frac + c2) * frac + c1) * frac + at


@numba.njit(nogil=True, cache=True, _nrt=False)
def read(line, channel, write, delay):
    """Row `channel` of the ring `line` `delay` samples (>= 2, fractional) before index `write`."""
    mask = line.shape[1] - 1
    whole = int(delay)
    frac = delay - whole
    i = write - whole
    return hermite(float(line[channel, (i + 1) & mask]), float(line[channel, i & mask]),
                   float(line[channel, (i - 1) & mask]), float(line[channel, (i - 2) & mask]), frac)


@numba.njit(nogil=True, cache=True, _nrt=False)
def _flushed(x):
    return 0.0 if abs(x) < _FLUSH else x


@numba.njit(nogil=True, cache=True, _nrt=False, inline="always")
def _ramp(previous, current, index, u):
    return previous[index] + (current[index] - previous[index]) * u


@numba.njit(nogil=True, cache=True, _nrt=False)
def echo(bus, line, state, counters, previous, current, sample_rate):
    """Stereo feedback delay of the bus `[2, n]`, in place.

    Each channel hears its line `time_ms` back; what is fed back passes a one-pole low-pass
    at `tone_hz` and is scaled by `feedback`, so the first echo is the input itself and each
    repeat is `feedback` times the one before (at DC). `ping_pong` 0…1 crossfades to the
    crossed routing: the input's mid into the left line, left echoes into the right line,
    right echoes back into the left. Output `(1 - mix) * dry + mix * wet`.
    `line` float32 `[2, size]`; `state` float64 `[3]`: the two low-passes and the glided
    delay (samples); `counters` int64 `[1]`: write index.
    """
    n = bus.shape[1]
    if n == 0:
        return
    mask = line.shape[1] - 1
    longest = float(mask - 3)
    write = counters[0]
    d0 = previous[ECHO_TIME_MS] * sample_rate / 1000.0
    d1 = current[ECHO_TIME_MS] * sample_rate / 1000.0
    f0, f1 = previous[ECHO_FEEDBACK], current[ECHO_FEEDBACK]
    m0, m1 = previous[ECHO_MIX], current[ECHO_MIX]
    a0 = 1.0 - math.exp(-2.0 * math.pi * previous[ECHO_TONE_HZ] / sample_rate)
    a1 = 1.0 - math.exp(-2.0 * math.pi * current[ECHO_TONE_HZ] / sample_rate)
    p0, p1 = previous[ECHO_PING_PONG], current[ECHO_PING_PONG]
    glide = 1.0 - time_coefficient(GLIDE_MS, sample_rate)
    low_l, low_r, delay = state[0], state[1], state[2]
    for j in range(n):
        u = (j + 1) / n
        delay += (min(longest, max(MIN_DELAY_SAMPLES, d0 + (d1 - d0) * u)) - delay) * glide
        wet_l = read(line, 0, write, delay)
        wet_r = read(line, 1, write, delay)
        a = a0 + (a1 - a0) * u
        low_l += (wet_l - low_l) * a
        low_r += (wet_r - low_r) * a
        feedback = f0 + (f1 - f0) * u
        crossed = p0 + (p1 - p0) * u
        x_l, x_r = float(bus[0, j]), float(bus[1, j])
        straight_l, straight_r = x_l + feedback * low_l, x_r + feedback * low_r
        crossed_l, crossed_r = 0.5 * (x_l + x_r) + feedback * low_r, feedback * low_l
        line[0, write] = _flushed(straight_l + (crossed_l - straight_l) * crossed)
        line[1, write] = _flushed(straight_r + (crossed_r - straight_r) * crossed)
        mix = m0 + (m1 - m0) * u
        bus[0, j] = (1.0 - mix) * x_l + mix * wet_l
        bus[1, j] = (1.0 - mix) * x_r + mix * wet_r
        write = (write + 1) & mask
    state[0], state[1], state[2] = _flushed(low_l), _flushed(low_r), delay
    counters[0] = write
    copy_into(previous, current)


@numba.njit(nogil=True, cache=True, _nrt=False)
def chorus(bus, line, state, counters, previous, current, sample_rate):
    """Modulated delay of the bus `[2, n]`, in place.

    Channel c is read `delay_ms + depth_ms * (1 + sin(2 pi (phase + c * spread_deg / 360))) / 2`
    back, so the delay sweeps `delay_ms … delay_ms + depth_ms`; the LFO phase (cycles)
    advances `rate_hz / sample_rate` per sample. `feedback` returns the delayed signal into
    its own line. Output `(1 - mix) * dry + mix * wet`. `delay_ms` and `depth_ms` glide.
    `line` float32 `[2, size]`; `state` float64 `[3]`: LFO phase (cycles), glided
    `delay_ms` and `depth_ms`; `counters` int64 `[1]`: write index.
    """
    channels, n = bus.shape
    if n == 0:
        return
    mask = line.shape[1] - 1
    longest = float(mask - 3)
    write = counters[0]
    glide = 1.0 - time_coefficient(GLIDE_MS, sample_rate)
    cycle, base, depth = state[0], state[1], state[2]
    ms = sample_rate / 1000.0
    for j in range(n):
        u = (j + 1) / n
        rate = _ramp(previous, current, CHORUS_RATE_HZ, u)
        depth += (_ramp(previous, current, CHORUS_DEPTH_MS, u) - depth) * glide
        base += (_ramp(previous, current, CHORUS_DELAY_MS, u) - base) * glide
        mix = _ramp(previous, current, CHORUS_MIX, u)
        feedback = _ramp(previous, current, CHORUS_FEEDBACK, u)
        spread = _ramp(previous, current, CHORUS_SPREAD_DEG, u)
        for c in range(channels):
            lfo = 0.5 + 0.5 * math.sin(2.0 * math.pi * (cycle + c * spread / 360.0))
            delay = min(longest, max(MIN_DELAY_SAMPLES, (base + depth * lfo) * ms))
            wet = read(line, c, write, delay)
            x = float(bus[c, j])
            line[c, write] = _flushed(x + feedback * wet)
            bus[c, j] = (1.0 - mix) * x + mix * wet
        cycle += rate / sample_rate
        if cycle >= 1.0:
            cycle -= 1.0
        write = (write + 1) & mask
    state[0], state[1], state[2] = cycle, base, depth
    counters[0] = write
    copy_into(previous, current)
