"""Dynamics kernels (numba): a feed-forward compressor and a look-ahead peak limiter.

Both process the float32 stereo bus `[2, n]` in place (any strides) and read their
parameters as two float64 vectors, the values at the end of the previous block and now,
ramping each linearly across the block so automation never clicks. The vectors are
`ParameterBank.values` of the effect, in the order of the `COMPRESSOR_*` and `LIMITER_*`
indices below; each kernel copies `current` into `previous` before it returns.
"""

from __future__ import annotations

import math

import numba

from timbrel.engine.realtime.kernels.mixing import copy_into, finite_or_zero, time_coefficient

COMPRESSOR_THRESHOLD_DB, COMPRESSOR_RATIO, COMPRESSOR_KNEE_DB = 0, 1, 2
COMPRESSOR_ATTACK_MS, COMPRESSOR_RELEASE_MS, COMPRESSOR_MAKEUP_DB = 3, 4, 5
COMPRESSOR_MIX, COMPRESSOR_DETECTOR = 6, 7
LIMITER_CEILING_DB, LIMITER_RELEASE_MS = 0, 1

RMS_WINDOW_MS = 10.0
"""Time constant of the RMS detector's mean square, ms."""

_FLOOR = 1e-12
_BELOW_FLOAT32_ROUNDING = 1.0 - 2.0**-23


@numba.njit(nogil=True, cache=True, _nrt=False)
def gain_computer_db(level_db, threshold_db, ratio, knee_db):
    """Static curve of Giannoulis, Massberg & Reiss (2012), eq. 4: output level in dB for
    an input level in dB; a quadratic knee `knee_db` wide joins unity below the threshold
    to slope `1 / ratio` above it."""
    over = level_db - threshold_db
    if 2.0 * over <= -knee_db:
        return level_db
    if 2.0 * over >= knee_db:
        return threshold_db + over / ratio
    t = over + 0.5 * knee_db
    return level_db + (1.0 / ratio - 1.0) * t * t / (2.0 * knee_db)


@numba.njit(nogil=True, cache=True, _nrt=False)
def compress(bus, state, previous, current, sample_rate):
    """Compress the bus `[2, n]` in place; return the largest gain reduction of the block, dB >= 0.

    Stereo-linked detector: the louder channel's peak (`current[COMPRESSOR_DETECTOR]` < 0.5)
    or the mean square of both channels smoothed over `RMS_WINDOW_MS` (>= 0.5), in dB. The
    gain reduction `level - curve(level)` is smoothed in the dB domain by a branching
    one-pole (attack while it grows, release while it shrinks), so the gain covers 63% of
    a step in `attack_ms` / `release_ms` (Giannoulis et al. 2012, "log domain" detector).
    `state` float64 `[2]`: smoothed gain reduction (dB), mean square.
    """
    channels, n = bus.shape
    if n == 0:
        return 0.0
    rms = current[COMPRESSOR_DETECTOR] >= 0.5
    rms_coef = 1.0 - time_coefficient(RMS_WINDOW_MS, sample_rate)
    t0, t1 = previous[COMPRESSOR_THRESHOLD_DB], current[COMPRESSOR_THRESHOLD_DB]
    r0, r1 = previous[COMPRESSOR_RATIO], current[COMPRESSOR_RATIO]
    k0, k1 = previous[COMPRESSOR_KNEE_DB], current[COMPRESSOR_KNEE_DB]
    a0 = time_coefficient(previous[COMPRESSOR_ATTACK_MS], sample_rate)
    a1 = time_coefficient(current[COMPRESSOR_ATTACK_MS], sample_rate)
    l0 = time_coefficient(previous[COMPRESSOR_RELEASE_MS], sample_rate)
    l1 = time_coefficient(current[COMPRESSOR_RELEASE_MS], sample_rate)
    m0, m1 = previous[COMPRESSOR_MAKEUP_DB], current[COMPRESSOR_MAKEUP_DB]
    w0, w1 = previous[COMPRESSOR_MIX], current[COMPRESSOR_MIX]
    reduction, mean_square = state[0], state[1]
    most = 0.0
    for j in range(n):
        u = (j + 1) / n
        if rms:
            power = 0.0
            for c in range(channels):
                power += float(bus[c, j]) ** 2
            mean_square += (power / channels - mean_square) * rms_coef
            if mean_square < _FLOOR:
                mean_square = 0.0
            level_db = 10.0 * math.log10(max(mean_square, 1e-20))
        else:
            level = 0.0
            for c in range(channels):
                level = max(level, abs(bus[c, j]))
            level_db = 20.0 * math.log10(max(level, 1e-10))
        target = level_db - gain_computer_db(level_db, t0 + (t1 - t0) * u, r0 + (r1 - r0) * u, k0 + (k1 - k0) * u)
        coef = a0 + (a1 - a0) * u if target > reduction else l0 + (l1 - l0) * u
        reduction = coef * reduction + (1.0 - coef) * target
        if reduction < _FLOOR:
            reduction = 0.0
        most = max(most, reduction)
        mix = w0 + (w1 - w0) * u
        gain = (1.0 - mix) + mix * 10.0 ** ((m0 + (m1 - m0) * u - reduction) / 20.0)
        for c in range(channels):
            bus[c, j] = bus[c, j] * gain
    state[0], state[1] = reduction, mean_square
    copy_into(previous, current)
    return most


@numba.njit(nogil=True, cache=True, _nrt=False)
def limit_ahead(bus, line, queue_gain, queue_at, smooth, counters, state, previous, current, sample_rate):
    """Look-ahead peak limiting of the bus `[2, n]` in place, `L = counters[3] - 1` samples late;
    return the largest gain reduction of the block, dB >= 0.

    Each input sample needs the gain `ceiling / peak` (1 when under the ceiling). The gain
    applied to it, L samples later, is the mean over `L + 1` samples of a release-smoothed
    running minimum over `L + 1` samples of the needed gain: every term of that mean is at
    most the sample's own need, so the output stays within the ceiling while the gain
    glides down over the look-ahead instead of jumping. A final clamp, at the ceiling each
    sample was limited to (the ceiling glides, and a sample leaves L samples after it came),
    absorbs rounding. Non-finite samples become 0.

    `line` float64 `[3, >= L + 1]`: delayed input (two rows) and the ceiling each sample
    was limited to; `queue_gain` float64, `queue_at` int64 `[>= L + 1]`: the running
    minimum's monotonic queue; `smooth` float64 `[>= L + 1]`: the smoothed gains being
    averaged (the first `L + 1` are used); `counters` int64 `[4]`: samples seen, queue
    head, queue length, and the window `L + 1`; `state` float64 `[2]`: smoothed gain, sum
    of the window's `smooth`.
    """
    channels, n = bus.shape
    if n == 0:
        return 0.0
    size = line.shape[1]
    window = counters[3]
    lookahead = window - 1
    release0 = 1.0 - time_coefficient(previous[LIMITER_RELEASE_MS], sample_rate)
    release1 = 1.0 - time_coefficient(current[LIMITER_RELEASE_MS], sample_rate)
    ceiling0 = 10.0 ** (previous[LIMITER_CEILING_DB] / 20.0)
    ceiling1 = 10.0 ** (current[LIMITER_CEILING_DB] / 20.0)
    t, head, length = counters[0], counters[1], counters[2]
    envelope, total = state[0], state[1]
    lowest = 1.0
    for j in range(n):
        u = (j + 1) / n
        ceiling = ceiling0 + (ceiling1 - ceiling0) * u
        peak = 0.0
        slot = t % size
        for c in range(channels):
            x = finite_or_zero(float(bus[c, j]))
            line[c, slot] = x
            peak = max(peak, abs(x))
        line[channels, slot] = ceiling * _BELOW_FLOAT32_ROUNDING
        need = ceiling / peak if peak > ceiling else 1.0
        if length > 0 and queue_at[head] <= t - window:
            head = (head + 1) % window
            length -= 1
        while length > 0 and queue_gain[(head + length - 1) % window] >= need:
            length -= 1
        tail = (head + length) % window
        queue_gain[tail], queue_at[tail] = need, t
        length += 1
        held = queue_gain[head]
        if held < envelope:
            envelope = held
        else:
            envelope += (held - envelope) * (release0 + (release1 - release0) * u)
        k = t % window
        total += envelope - smooth[k]
        smooth[k] = envelope
        if k == window - 1:
            total = 0.0
            for i in range(window):
                total += smooth[i]
        gain = min(total / window, 1.0)
        lowest = min(lowest, gain)
        read = (t - lookahead) % size
        top = line[channels, read]
        for c in range(channels):
            bus[c, j] = min(top, max(-top, line[c, read] * gain))
        t += 1
    counters[0], counters[1], counters[2] = t, head, length
    state[0], state[1] = envelope, total
    copy_into(previous, current)
    return -20.0 * math.log10(max(lowest, 1e-12))
