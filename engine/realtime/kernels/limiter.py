"""The output limiter (numba): every sample leaves within the ceiling, and never NaN."""

from __future__ import annotations

import numba

from timbrel.engine.realtime.kernels.mixing import finite_or_zero


@numba.njit(nogil=True, cache=True, _nrt=False)
def limit(bus, state, ceiling, release):
    """Limit the float32 bus `[channels, n]` in place to +-`ceiling`; return the peak before limiting.

    The gain (`state[0]`, shared by all channels so the image holds) drops instantly to
    whatever keeps the loudest channel at the ceiling and recovers towards 1 with the
    per-sample coefficient `release`. Non-finite samples become 0. Gains below 1e-9 are
    flushed to it, so recovery never wanders into subnormal numbers.
    """
    channels, n = bus.shape
    gain = state[0]
    peak = 0.0
    for j in range(n):
        loudest = 0.0
        for c in range(channels):
            x = finite_or_zero(bus[c, j])
            bus[c, j] = x
            loudest = max(loudest, abs(x))
        peak = max(peak, loudest)
        gain += (1.0 - gain) * release
        if loudest * gain > ceiling:
            gain = ceiling / loudest
        gain = max(gain, 1e-9)
        for c in range(channels):
            y = bus[c, j] * gain
            bus[c, j] = min(ceiling, max(-ceiling, y))
    state[0] = gain
    return peak


@numba.njit(nogil=True, cache=True, _nrt=False)
def deliver(bus, out, state, ceiling, release, scope, position):
    """The engine's last step, in one call: `limit` the bus `[2, n]` (gain in `state[0]`, the
    block's peak before limiting written to `state[1]`), append its left channel to the ring
    `scope` at `position`, and copy it to the device's interleaved `out` `[n, channels]`
    (channels past the second repeat the right one). Returns the ring's next position."""
    state[1] = limit(bus, state, ceiling, release)
    size = scope.shape[0]
    n = bus.shape[1]
    for j in range(n):
        scope[position] = bus[0, j]
        position += 1
        if position == size:
            position = 0
        for c in range(out.shape[1]):
            out[j, c] = bus[min(c, 1), j]
    return position
