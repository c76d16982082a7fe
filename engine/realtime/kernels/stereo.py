"""Stereo matrix kernel (numba): gain, pan, width and polarity as one 2x2 mix that glides per sample."""

from __future__ import annotations

import numba

from timbrel.engine.realtime.kernels.mixing import finite_or_zero


@numba.njit(nogil=True, cache=True, _nrt=False)
def stereo_matrix(bus, start, end):
    """Mix the float32 stereo bus `[2, n]` in place (rows contiguous) through a 2x2 matrix.

    `start`, `end` `[4]` float64: the matrix `(left<-left, left<-right, right<-left,
    right<-right)` at the end of the previous block and of this one; each entry moves
    linearly across the block, reaching `end` on its last sample. Non-finite samples become 0.
    """
    n = bus.shape[1]
    if n == 0:
        return
    inv = 1.0 / n
    for j in range(n):
        t = (j + 1) * inv
        ll = start[0] + (end[0] - start[0]) * t
        lr = start[1] + (end[1] - start[1]) * t
        rl = start[2] + (end[2] - start[2]) * t
        rr = start[3] + (end[3] - start[3]) * t
        x0 = finite_or_zero(float(bus[0, j]))
        x1 = finite_or_zero(float(bus[1, j]))
        bus[0, j] = ll * x0 + lr * x1
        bus[1, j] = rl * x0 + rr * x1
