"""Allocation-free radix-2 real FFT for numba kernels (numba cannot call np.fft).

A real transform of `n` samples runs as a complex FFT of `m = n / 2` points on the packed
signal `z[j] = x[2j] + i x[2j+1]`, followed by the usual split into even and odd parts.
The complex FFT is iterative decimation in time: the packing step fills `z` in
bit-reversed order (gathering, which is ~4x faster than scattering into a large buffer),
and `log2(m)` stages of `m / 2` butterflies leave it in natural order.

Complex data is split, `[2, length]` float64 (row 0 real, row 1 imaginary), so the
butterfly and multiply-accumulate loops vectorise; numba's complex128 arrays do not.

Every step works on a range of *units* (samples, bins or butterflies), so a caller can
split one transform across many audio blocks (see `timbrel.engine.realtime.kernels.convolution`). One set
of tables, built for the largest size, serves every smaller power of two: stage twiddles
do not depend on the size, and the bit-reversal and real-split twiddles are read with a
stride of `m_max / m`, i.e. a right shift by `shift = log2(m_max) - log2(m)`.

Everything is float64: a 3 s reverb sums ~10^5 products per sample, and float32
round-off would exceed the 1e-6 agreement the streaming kernels promise.
"""

from __future__ import annotations

import numba
import numpy as np

from timbrel.engine.realtime.kernels.fastmath import FASTMATH


class FFTTables:
    """Tables for real FFTs of every power of two `n` from 2 to `max_n` (`m_max = max_n / 2`).

    `bitrev`: int64 `[m_max]`, `j` with its `log2(m_max)` bits reversed.
    `twiddles`: `[2, m_max]`; stage `s` (span `p = 2^s`) reads `exp(-i pi j / p)` at
    column `p - 1 + j`, `j < p`.
    `real_twiddles`: `[2, m_max]`, `exp(-2 pi i j / max_n)`.
    """

    def __init__(self, max_n: int) -> None:
        if max_n < 2 or max_n & (max_n - 1):
            raise ValueError(f"FFT size must be a power of two >= 2, got {max_n}")
        m = max_n // 2
        self.max_n = max_n
        self.log_max = m.bit_length() - 1
        j = np.arange(m, dtype=np.int64)
        self.bitrev = np.zeros(m, dtype=np.int64)
        for bit in range(self.log_max):
            self.bitrev |= ((j >> bit) & 1) << (self.log_max - 1 - bit)
        stage = np.ones(m, dtype=np.complex128)
        span = 1
        while span < m:
            stage[span - 1 : 2 * span - 1] = np.exp(-1j * np.pi * np.arange(span) / span)
            span *= 2
        self.twiddles = np.stack([stage.real, stage.imag])
        real = np.exp(-2j * np.pi * np.arange(m) / max_n)
        self.real_twiddles = np.stack([real.real, real.imag])

    def shift(self, n: int) -> int:
        """Table stride, as a right shift, for a real FFT of `n` samples."""
        if n < 2 or n > self.max_n or n & (n - 1):
            raise ValueError(f"FFT size must be a power of two in 2 … {self.max_n}, got {n}")
        return self.log_max - ((n // 2).bit_length() - 1)


@numba.njit(nogil=True, cache=True, _nrt=False, fastmath=FASTMATH)
def pack_real(x, x_start, x_mask, z, z_off, bitrev, shift, k0, k1):
    """Units `k0 … k1-1` of `m`: `z[:, z_off + k] = x[2j], x[2j+1]` with `j = rev(k)`.

    `x` is read at `(x_start + i) & x_mask`, so it may be a ring buffer (mask = length - 1).
    """
    for k in range(k0, k1):
        j = bitrev[k] >> shift
        z[0, z_off + k] = x[(x_start + 2 * j) & x_mask]
        z[1, z_off + k] = x[(x_start + 2 * j + 1) & x_mask]


@numba.njit(nogil=True, cache=True, _nrt=False, fastmath=FASTMATH)
def butterflies(z, z_off, twiddles, log_m, u0, u1):
    """Butterflies `u0 … u1-1` of the `log_m * m / 2` of an in-place size-`m` FFT.

    Unit `u` is butterfly `u mod m/2` of stage `u div m/2`; stages run in order, so any
    split of `0 … log_m * m/2` into consecutive ranges gives the same result.
    """
    if log_m == 0:
        return
    zr = z[0]
    zi = z[1]
    half_m = 1 << (log_m - 1)
    u = u0
    while u < u1:
        stage = u >> (log_m - 1)
        b = u & (half_m - 1)
        stop = min(half_m, b + (u1 - u))
        u += stop - b
        span = 1 << stage
        if span < 16:
            # Runs of fewer than 16 butterflies: plain loop (views would cost more than
            # they save).
            for bb in range(b, stop):
                j = bb & (span - 1)
                i0 = z_off + ((bb >> stage) << (stage + 1)) + j
                i1 = i0 + span
                wr = twiddles[0, span - 1 + j]
                wi = twiddles[1, span - 1 + j]
                xr = zr[i1] * wr - zi[i1] * wi
                xi = zr[i1] * wi + zi[i1] * wr
                zr[i1] = zr[i0] - xr
                zi[i1] = zi[i0] - xi
                zr[i0] += xr
                zi[i0] += xi
            continue
        while b < stop:
            # One run of consecutive butterflies inside a group, as zero-based views so
            # that numba emits no negative-index checks and LLVM vectorises the loop.
            j0 = b & (span - 1)
            count = min(span - j0, stop - b)
            p = z_off + ((b >> stage) << (stage + 1)) + j0
            ar = zr[p : p + count]
            ai = zi[p : p + count]
            br = zr[p + span : p + span + count]
            bi = zi[p + span : p + span + count]
            wr = twiddles[0, span - 1 + j0 : span - 1 + j0 + count]
            wi = twiddles[1, span - 1 + j0 : span - 1 + j0 + count]
            for j in range(count):
                xr = br[j] * wr[j] - bi[j] * wi[j]
                xi = br[j] * wi[j] + bi[j] * wr[j]
                br[j] = ar[j] - xr
                bi[j] = ai[j] - xi
                ar[j] += xr
                ai[j] += xi
            b += count


@numba.njit(nogil=True, cache=True, _nrt=False, fastmath=FASTMATH)
def unpack_real(z, z_off, real_twiddles, shift, m, spec, s_off, j0, j1):
    """Units `j0 … j1-1` of `m/2 + 1`: bins `j` and `m - j` of the real FFT from packed `z`.

    `spec[:, s_off … s_off + m]` receives the `m + 1` bins of `rfft(x)` (unnormalised).
    """
    for j in range(j0, j1):
        k = z_off + ((m - j) & (m - 1))
        ar = z[0, z_off + j]
        ai = z[1, z_off + j]
        br = z[0, k]
        bi = -z[1, k]
        er = 0.5 * (ar + br)
        ei = 0.5 * (ai + bi)
        o_r = 0.5 * (ai - bi)
        oi = -0.5 * (ar - br)
        wr = real_twiddles[0, j << shift]
        wi = real_twiddles[1, j << shift]
        rr = wr * o_r - wi * oi
        ri = wr * oi + wi * o_r
        spec[0, s_off + j] = er + rr
        spec[1, s_off + j] = ei + ri
        spec[0, s_off + m - j] = er - rr
        spec[1, s_off + m - j] = ri - ei


@numba.njit(nogil=True, cache=True, _nrt=False, fastmath=FASTMATH)
def pack_spectrum(spec, s_off, real_twiddles, shift, m, z, z_off, bitrev, k0, k1):
    """Units `k0 … k1-1` of `m`: the inverse of `unpack_real`, conjugated, into `z[:, z_off + k]`
    from bins `j = rev(k)` and `m - j`, so that `butterflies` then `unpack_spectrum` give irfft.
    """
    for k in range(k0, k1):
        j = bitrev[k] >> shift
        ar = spec[0, s_off + j]
        ai = spec[1, s_off + j]
        br = spec[0, s_off + m - j]
        bi = -spec[1, s_off + m - j]
        er = 0.5 * (ar + br)
        ei = 0.5 * (ai + bi)
        dr = 0.5 * (ar - br)
        di = 0.5 * (ai - bi)
        wr = real_twiddles[0, j << shift]
        wi = real_twiddles[1, j << shift]
        o_r = dr * wr + di * wi
        oi = di * wr - dr * wi
        z[0, z_off + k] = er - oi
        z[1, z_off + k] = -(ei + o_r)


@numba.njit(nogil=True, cache=True, _nrt=False, fastmath=FASTMATH)
def unpack_spectrum(z, z_off, scale, out, out_start, out_mask, accumulate, j0, j1):
    """Units `j0 … j1-1` of `m`: real samples `2j` and `2j+1` of irfft from the FFT in `z`.

    They go to `out[(out_start + 2j) & out_mask]` and the next index, added to what is
    there when `accumulate`, else stored. `scale` is `1 / m`.
    """
    for j in range(j0, j1):
        r0 = (out_start + 2 * j) & out_mask
        r1 = (out_start + 2 * j + 1) & out_mask
        if accumulate:
            out[r0] += z[0, z_off + j] * scale
            out[r1] -= z[1, z_off + j] * scale
        else:
            out[r0] = z[0, z_off + j] * scale
            out[r1] = -z[1, z_off + j] * scale


@numba.njit(nogil=True, cache=True, _nrt=False)
def log2_int(m):
    """`log2(m)` for a power of two `m`."""
    k = 0
    while (1 << k) < m:
        k += 1
    return k


@numba.njit(nogil=True, cache=True, _nrt=False)
def rfft(x, spec, work, bitrev, twiddles, real_twiddles, log_max):
    """`spec[:, : n/2 + 1] = rfft(x)` for `x` float64 `[n]`; `work` `[2, >= n/2]`."""
    m = x.shape[0] // 2
    log_m = log2_int(m)
    shift = log_max - log_m
    pack_real(x, 0, 2 * m - 1, work, 0, bitrev, shift, 0, m)
    butterflies(work, 0, twiddles, log_m, 0, log_m * (m // 2))
    unpack_real(work, 0, real_twiddles, shift, m, spec, 0, 0, m // 2 + 1)


@numba.njit(nogil=True, cache=True, _nrt=False)
def irfft(spec, x, work, bitrev, twiddles, real_twiddles, log_max):
    """`x[:] = irfft(spec, n)` for `x` float64 `[n]`, `spec` `[2, n/2 + 1]`; `work` `[2, >= n/2]`."""
    m = x.shape[0] // 2
    log_m = log2_int(m)
    shift = log_max - log_m
    pack_spectrum(spec, 0, real_twiddles, shift, m, work, 0, bitrev, 0, m)
    butterflies(work, 0, twiddles, log_m, 0, log_m * (m // 2))
    unpack_spectrum(work, 0, 1.0 / m, x, 0, 2 * m - 1, False, 0, m)


class RealFFT:
    """Real FFT of a fixed power-of-two size `n` with preallocated scratch.

    `forward(x, spec)`: float64 `[n]` -> `[2, n/2 + 1]` (real, imaginary), as `np.fft.rfft`.
    `inverse(spec, x)`: `[2, n/2 + 1]` -> float64 `[n]`, as `np.fft.irfft`.
    Neither allocates. `tables` may be shared with transforms of other sizes up to its `max_n`.
    """

    def __init__(self, n: int, tables: FFTTables | None = None) -> None:
        self.tables = tables if tables is not None else FFTTables(n)
        self.tables.shift(n)
        self.n = n
        self._work = np.zeros((2, n // 2))

    def _check(self, x: np.ndarray, spec: np.ndarray) -> None:
        if x.shape != (self.n,) or spec.shape != (2, self.n // 2 + 1):
            raise ValueError(f"want x [{self.n}] and spec [2, {self.n // 2 + 1}], got {x.shape} and {spec.shape}")

    def forward(self, x: np.ndarray, spec: np.ndarray) -> None:
        self._check(x, spec)
        t = self.tables
        rfft(x, spec, self._work, t.bitrev, t.twiddles, t.real_twiddles, t.log_max)

    def inverse(self, spec: np.ndarray, x: np.ndarray) -> None:
        self._check(x, spec)
        t = self.tables
        irfft(spec, x, self._work, t.bitrev, t.twiddles, t.real_twiddles, t.log_max)
