"""The audio-thread kernels (numba): a wave folder and a bit crusher, working in place on the bus.

Nothing here allocates, locks, logs or raises. Each continuous control arrives as a
`ramp` `[2, controls]`. Row 0 holds the values at the end of the previous block and
row 1 the values for the end of this one. Sample j of an n-sample block uses
`row0 + (row1 - row0) * (j + 1) / n`, and the kernel then copies row 1 into row 0.
Automation therefore glides across the block instead of stepping at its start.

Every kernel compiles with `_nrt=False`, as timbrel's own do: without numba's reference-
counted runtime a kernel cannot allocate an array (it fails to compile instead), and calling
it costs no heap call, where numba otherwise mallocs a record for each array argument.
"""

from __future__ import annotations

import math

import numba
import numpy as np

SHAPES = ("sine", "triangle")
"""Fold shapes, by index: `sin(pi/2 u)`, or the triangle wave with the same period (4) and peak (1)."""
SINE, TRIANGLE = 0, 1
DRIVE, BIAS, MIX, GAIN = 0, 1, 2, 3
"""Columns of the folder's ramp: drive (linear gain), bias, mix (0 dry … 1 wet), output gain (linear)."""
FOLD_CONTROLS = 4


@numba.njit(nogil=True, cache=True, _nrt=False)
def fold_curve(u: float, shape: int) -> float:
    """The folding transfer curve. Both shapes equal u near 0, reach ±1 at u = ±1, and fold back beyond it."""
    if shape == TRIANGLE:
        v = u + 1.0
        return 1.0 - abs(v - 4.0 * math.floor(v / 4.0) - 2.0)
    return math.sin(0.5 * math.pi * u)


@numba.njit(nogil=True, cache=True, _nrt=False)
def fold(bus, shape, ramp):
    """Fold the float32 bus `[channels, n]` in place; `ramp` is float64 `[2, FOLD_CONTROLS]`.

    wet = f(drive x + bias) - f(bias), where f is `fold_curve`. Subtracting f(bias) keeps
    silence silent while the bias makes the folding asymmetric (even harmonics).
    out = gain ((1 - mix) x + mix wet), so mix 0 at 0 dB returns the input exactly.
    """
    channels, n = bus.shape
    for j in range(n):
        t = (j + 1.0) / n
        drive = ramp[0, DRIVE] + (ramp[1, DRIVE] - ramp[0, DRIVE]) * t
        bias = ramp[0, BIAS] + (ramp[1, BIAS] - ramp[0, BIAS]) * t
        mix = ramp[0, MIX] + (ramp[1, MIX] - ramp[0, MIX]) * t
        gain = ramp[0, GAIN] + (ramp[1, GAIN] - ramp[0, GAIN]) * t
        offset = fold_curve(bias, shape)
        for c in range(channels):
            x = np.float64(bus[c, j])
            wet = fold_curve(drive * x + bias, shape) - offset
            bus[c, j] = gain * ((1.0 - mix) * x + mix * wet)
    for k in range(ramp.shape[1]):
        ramp[0, k] = ramp[1, k]


@numba.njit(nogil=True, cache=True, _nrt=False)
def crush(bus, bits, factor, ramp, held, phase):
    """Sample-hold and quantise the float32 bus `[channels, n]` in place.

    `bits` (1…16): the held value is N-bit PCM, k / 2^(N-1) for integer k in
    [-2^(N-1), 2^(N-1) - 1] (nearest level, ties upwards): 2^N levels, 0 among them.
    `factor` (≥ 1): a new input sample is taken every `factor` samples and held in
    between; a fractional factor alternates hold lengths (2.5: 3, 2, 3, 2 …). After a
    reset the first sample is taken at once. `ramp` float64 `[2, 1]`: mix (0 dry … 1 wet).
    `held` float64 `[channels]` and `phase` float64 `[1]` carry the hold across blocks.
    """
    channels, n = min(bus.shape[0], held.shape[0]), bus.shape[1]
    scale = 2.0 ** (bits - 1)
    lowest, highest = -scale, scale - 1.0
    countdown = phase[0]
    for j in range(n):
        mix = ramp[0, 0] + (ramp[1, 0] - ramp[0, 0]) * (j + 1.0) / n
        take = countdown <= 0.0
        if take:
            countdown += factor
        countdown -= 1.0
        for c in range(channels):
            x = np.float64(bus[c, j])
            if take:
                held[c] = min(highest, max(lowest, math.floor(x * scale + 0.5))) / scale
            bus[c, j] = (1.0 - mix) * x + mix * held[c]
    phase[0] = countdown
    ramp[0, 0] = ramp[1, 0]
