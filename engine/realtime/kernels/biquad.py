"""Biquad filters (numba): RBJ Audio-EQ-Cookbook coefficients and a smoothed cascade.

Coefficients follow Robert Bristow-Johnson's cookbook, normalised by a0 and returned as
`(b0, b1, b2, a1, a2)`. The cascade runs in Transposed Direct Form II with float64 state.
Band settings glide linearly across each block from the previous block's values; the
coefficients are recomputed every `SEGMENT` samples and interpolated per sample in
between, so a turned knob never steps.
"""

from __future__ import annotations

import math

import numba

from timbrel.engine.realtime.kernels.mixing import finite_or_zero

PEAK, LOW_SHELF, HIGH_SHELF, HIGH_PASS, LOW_PASS = 0, 1, 2, 3, 4
"""Band kinds, the values of `kinds` in `cascade`."""

HZ, Q, DB, ON = 0, 1, 2, 3
"""Columns of a band's settings: centre or corner frequency (Hz), Q, gain (dB), switch (0 or 1)."""

SEGMENT = 32
"""Samples between exact coefficient computations while a band's settings glide."""

UNITY_DB = 1e-5
"""A peak or shelf whose gain stays within this many dB of 0 is skipped (its effect is below -118 dB)."""

FLUSH = 1e-30
"""State values smaller than this become 0 at the end of a block, so silence never turns subnormal."""

COEFFS = 16
"""Columns of `cascade`'s scratch: current coefficients, their per-sample steps, segment targets, mode."""

_STEP, _TARGET, _MODE = 5, 10, 15
_IDLE, _STEADY, _GLIDING = 0.0, 1.0, 2.0


@numba.njit(nogil=True, cache=True, _nrt=False)
def _angle(freq_hz, sample_rate):
    """Normalised angular frequency (rad/sample) of `freq_hz`, kept inside (0, 0.49 * sample_rate)."""
    return 2.0 * math.pi * min(max(freq_hz, 1e-4 * sample_rate), 0.49 * sample_rate) / sample_rate


@numba.njit(nogil=True, cache=True, _nrt=False)
def peaking(freq_hz, q, gain_db, sample_rate):
    """Peaking EQ: `gain_db` at `freq_hz`, bandwidth set by `q`. Returns `(b0, b1, b2, a1, a2)`."""
    w0 = _angle(freq_hz, sample_rate)
    amp = 10.0 ** (gain_db / 40.0)
    alpha = math.sin(w0) / (2.0 * q)
    cosw = math.cos(w0)
    a0 = 1.0 + alpha / amp
    b1 = -2.0 * cosw / a0
    return (1.0 + alpha * amp) / a0, b1, (1.0 - alpha * amp) / a0, b1, (1.0 - alpha / amp) / a0


@numba.njit(nogil=True, cache=True, _nrt=False)
def low_shelf(freq_hz, q, gain_db, sample_rate):
    """Low shelf: `gain_db` below `freq_hz` (the midpoint, at half the gain in dB). `q` = 1/sqrt(2) is slope 1."""
    w0 = _angle(freq_hz, sample_rate)
    amp = 10.0 ** (gain_db / 40.0)
    cosw = math.cos(w0)
    k = 2.0 * math.sqrt(amp) * math.sin(w0) / (2.0 * q)
    a0 = (amp + 1.0) + (amp - 1.0) * cosw + k
    return (
        amp * ((amp + 1.0) - (amp - 1.0) * cosw + k) / a0,
        2.0 * amp * ((amp - 1.0) - (amp + 1.0) * cosw) / a0,
        amp * ((amp + 1.0) - (amp - 1.0) * cosw - k) / a0,
        -2.0 * ((amp - 1.0) + (amp + 1.0) * cosw) / a0,
        ((amp + 1.0) + (amp - 1.0) * cosw - k) / a0,
    )


@numba.njit(nogil=True, cache=True, _nrt=False)
def high_shelf(freq_hz, q, gain_db, sample_rate):
    """High shelf: `gain_db` above `freq_hz` (the midpoint). `q` = 1/sqrt(2) is slope 1."""
    w0 = _angle(freq_hz, sample_rate)
    amp = 10.0 ** (gain_db / 40.0)
    cosw = math.cos(w0)
    k = 2.0 * math.sqrt(amp) * math.sin(w0) / (2.0 * q)
    a0 = (amp + 1.0) - (amp - 1.0) * cosw + k
    return (
        amp * ((amp + 1.0) + (amp - 1.0) * cosw + k) / a0,
        -2.0 * amp * ((amp - 1.0) + (amp + 1.0) * cosw) / a0,
        amp * ((amp + 1.0) + (amp - 1.0) * cosw - k) / a0,
        2.0 * ((amp - 1.0) - (amp + 1.0) * cosw) / a0,
        ((amp + 1.0) - (amp - 1.0) * cosw - k) / a0,
    )


@numba.njit(nogil=True, cache=True, _nrt=False)
def high_pass(freq_hz, q, sample_rate):
    """Second-order high-pass with corner `freq_hz` (-3 dB there when `q` = 1/sqrt(2), Butterworth)."""
    w0 = _angle(freq_hz, sample_rate)
    cosw = math.cos(w0)
    alpha = math.sin(w0) / (2.0 * q)
    a0 = 1.0 + alpha
    b0 = (1.0 + cosw) / (2.0 * a0)
    return b0, -2.0 * b0, b0, -2.0 * cosw / a0, (1.0 - alpha) / a0


@numba.njit(nogil=True, cache=True, _nrt=False)
def low_pass(freq_hz, q, sample_rate):
    """Second-order low-pass with corner `freq_hz` (-3 dB there when `q` = 1/sqrt(2), Butterworth)."""
    w0 = _angle(freq_hz, sample_rate)
    cosw = math.cos(w0)
    alpha = math.sin(w0) / (2.0 * q)
    a0 = 1.0 + alpha
    b0 = (1.0 - cosw) / (2.0 * a0)
    return b0, 2.0 * b0, b0, -2.0 * cosw / a0, (1.0 - alpha) / a0


@numba.njit(nogil=True, cache=True, _nrt=False)
def coefficients(kind, freq_hz, q, gain_db, sample_rate):
    """`(b0, b1, b2, a1, a2)` of a band of `kind` (`PEAK` … `LOW_PASS`); filters ignore `gain_db`."""
    if kind == PEAK:
        return peaking(freq_hz, q, gain_db, sample_rate)
    if kind == LOW_SHELF:
        return low_shelf(freq_hz, q, gain_db, sample_rate)
    if kind == HIGH_SHELF:
        return high_shelf(freq_hz, q, gain_db, sample_rate)
    if kind == HIGH_PASS:
        return high_pass(freq_hz, q, sample_rate)
    return low_pass(freq_hz, q, sample_rate)


@numba.njit(nogil=True, cache=True, _nrt=False)
def _idle(kind, start, end, mix, b):
    """Whether band `b` passes audio unchanged for the whole block."""
    if kind <= HIGH_SHELF and abs(start[b, DB]) < UNITY_DB and abs(end[b, DB]) < UNITY_DB:
        return True
    return mix[b] == 0.0 and end[b, ON] < 0.5


@numba.njit(nogil=True, cache=True, _nrt=False)
def _set_coefficients(coeffs, b, column, kind, start, end, t, sample_rate):
    """Write band `b`'s coefficients at fraction `t` of the block's glide into `coeffs[b, column:column + 5]`."""
    if t >= 1.0:
        freq_hz, q, gain_db = end[b, HZ], end[b, Q], end[b, DB]
    else:
        freq_hz = start[b, HZ] + (end[b, HZ] - start[b, HZ]) * t
        q = start[b, Q] + (end[b, Q] - start[b, Q]) * t
        gain_db = start[b, DB] + (end[b, DB] - start[b, DB]) * t
    b0, b1, b2, a1, a2 = coefficients(kind, freq_hz, q, gain_db, sample_rate)
    coeffs[b, column] = b0
    coeffs[b, column + 1] = b1
    coeffs[b, column + 2] = b2
    coeffs[b, column + 3] = a1
    coeffs[b, column + 4] = a2


@numba.njit(nogil=True, cache=True, _nrt=False)
def cascade(bus, kinds, start, end, state, mix, coeffs, sample_rate, fade_step, gain_from, gain_to):
    """Run the biquads in series over the float32 stereo bus `[2, n]` in place (rows contiguous).

    `kinds` `[bands]` int; `start`, `end` `[bands, 4]` float64: each band's settings (columns
    `HZ`, `Q`, `DB`, `ON`) at the end of the previous block and of this one. While they
    differ they are interpolated linearly across the block, turned into coefficients every
    `SEGMENT` samples, and the coefficients are interpolated per sample in between.
    `state` `[bands, 2, 2]` float64: the TDF-II registers per band and channel. `mix`
    `[bands]` float64: how far each band is switched in; it moves towards `end[:, ON]` by
    `fade_step` per sample and crossfades the band's output with its input along the
    smoothstep m^2 (3 - 2m). `coeffs` `[bands, COEFFS]` float64 is scratch. The output gain
    glides linearly from `gain_from` to `gain_to` (linear factors). Idle bands cost nothing
    and their state is cleared; non-finite input samples count as 0.
    """
    n = bus.shape[1]
    bands = kinds.shape[0]
    for b in range(bands):
        if _idle(kinds[b], start, end, mix, b):
            coeffs[b, _MODE] = _IDLE
            mix[b] = min(mix[b], end[b, ON])
            for c in range(2):
                state[b, c, 0] = 0.0
                state[b, c, 1] = 0.0
            continue
        _set_coefficients(coeffs, b, 0, kinds[b], start, end, 0.0, sample_rate)
        coeffs[b, _MODE] = _STEADY
        for k in range(3):
            if start[b, k] != end[b, k]:
                coeffs[b, _MODE] = _GLIDING
        for k in range(5):
            coeffs[b, _STEP + k] = 0.0
    gain_step = (gain_to - gain_from) / n if n > 0 else 0.0
    for j0 in range(0, n, SEGMENT):
        j1 = min(n, j0 + SEGMENT)
        for b in range(bands):
            if coeffs[b, _MODE] == _GLIDING:
                _set_coefficients(coeffs, b, _TARGET, kinds[b], start, end, j1 / n, sample_rate)
                for k in range(5):
                    coeffs[b, _STEP + k] = (coeffs[b, _TARGET + k] - coeffs[b, k]) / (j1 - j0)
        for j in range(j0, j1):
            x0 = finite_or_zero(float(bus[0, j]))
            x1 = finite_or_zero(float(bus[1, j]))
            for b in range(bands):
                mode = coeffs[b, _MODE]
                if mode == _IDLE:
                    continue
                if mode == _GLIDING:
                    for k in range(5):
                        coeffs[b, k] += coeffs[b, _STEP + k]
                b0, b1, b2, a1, a2 = coeffs[b, 0], coeffs[b, 1], coeffs[b, 2], coeffs[b, 3], coeffs[b, 4]
                y0 = b0 * x0 + state[b, 0, 0]
                state[b, 0, 0] = b1 * x0 - a1 * y0 + state[b, 0, 1]
                state[b, 0, 1] = b2 * x0 - a2 * y0
                y1 = b0 * x1 + state[b, 1, 0]
                state[b, 1, 0] = b1 * x1 - a1 * y1 + state[b, 1, 1]
                state[b, 1, 1] = b2 * x1 - a2 * y1
                m = mix[b]
                if end[b, ON] >= 0.5:
                    if m < 1.0:
                        m = min(1.0, m + fade_step)
                        mix[b] = m
                elif m > 0.0:
                    m = max(0.0, m - fade_step)
                    mix[b] = m
                if m < 1.0:
                    m = m * m * (3.0 - 2.0 * m)
                    y0 = x0 + m * (y0 - x0)
                    y1 = x1 + m * (y1 - x1)
                x0 = y0
                x1 = y1
            g = gain_from + gain_step * (j + 1)
            bus[0, j] = x0 * g
            bus[1, j] = x1 * g
        for b in range(bands):
            if coeffs[b, _MODE] == _GLIDING:
                for k in range(5):
                    coeffs[b, k] = coeffs[b, _TARGET + k]
    for b in range(bands):
        finite = True
        for c in range(2):
            for k in range(2):
                s = state[b, c, k]
                finite = finite and math.isfinite(s)
                if abs(s) < FLUSH:
                    state[b, c, k] = 0.0
        if not finite:
            for c in range(2):
                state[b, c, 0] = 0.0
                state[b, c, 1] = 0.0
