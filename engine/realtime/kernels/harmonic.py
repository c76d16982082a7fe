"""Streaming harmonic oscillator bank (numba), following docs/DSP.md.

Strategy: per sample, one complex rotation advances the fundamental's phasor
(sin, cos of phi) with no transcendental call; the Chebyshev recurrence
sin(k*phi) = 2*cos(phi)*sin((k-1)*phi) - sin((k-2)*phi) then produces the harmonics with
one multiply-add each, vectorised across the samples of a chunk and four harmonics per
pass to keep the scratch traffic low. Everything is float64, where the recurrence's error
(about k^2 * 1e-16) is far below the 1e-6 contract. `bench/bench_kernels.py` compares it
against one `sin` per harmonic.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from timbrel.engine.realtime.kernels.fastmath import FASTMATH

TWO_PI = 2.0 * math.pi


@numba.njit(nogil=True, cache=True, _nrt=False, fastmath=FASTMATH)
def push_voice(v, f0_hz, amplitude, distribution, primed, f0_prev, f0_cur, a_prev, a_cur, kmax, nyquist):
    """Start voice `v`'s next segment with one frame: f0 (Hz), amplitude, distribution `[K]`.

    The per-harmonic amplitudes are band-limited and renormalised here, once per frame.
    """
    harmonics = a_cur.shape[1]
    f0 = np.float64(f0_hz)
    total = 0.0
    for k in range(harmonics):
        if (k + 1) * f0 < nyquist:
            total += distribution[k]
    scale = amplitude / total if total > 0.0 else 0.0
    if primed[v]:
        f0_prev[v] = f0_cur[v]
        for k in range(harmonics):
            a_prev[v, k] = a_cur[v, k]
    for k in range(harmonics):
        a_cur[v, k] = distribution[k] * scale if (k + 1) * f0 < nyquist else 0.0
    f0_cur[v] = f0
    if not primed[v]:
        f0_prev[v] = f0
        for k in range(harmonics):
            a_prev[v, k] = a_cur[v, k]
        primed[v] = True
    top = max(f0_prev[v], f0)
    count = 0
    while count < harmonics and (count + 1) * top < nyquist:
        count += 1
    kmax[v] = count


@numba.njit(nogil=True, cache=True, _nrt=False, fastmath=FASTMATH)
def render_voice(v, acc, pos, hop, phase, f0_prev, f0_cur, a_prev, a_cur, kmax, rad_per_hz, s0, s1, cos2):
    """Add voice `v`'s next `acc.shape[0]` samples into `acc`, from offset `pos` of its segment."""
    n = acc.shape[0]
    inv_hop = 1.0 / hop
    w_prev = f0_prev[v] * rad_per_hz
    dw = (f0_cur[v] * rad_per_hz - w_prev) * inv_hop
    w0 = w_prev + dw * (pos + 1)
    ph = phase[v]
    zr, zi = math.cos(ph), math.sin(ph)
    rr, ri = math.cos(w0), math.sin(w0)
    dr, di = math.cos(dw), math.sin(dw)
    for j in range(n):
        s0[j] = 0.0
        s1[j] = zi
        cos2[j] = 2.0 * zr
        zr, zi = zr * rr - zi * ri, zr * ri + zi * rr
        rr, ri = rr * dr - ri * di, rr * di + ri * dr
    phase[v] = (ph + n * w0 + dw * (n * (n - 1) * 0.5)) % TWO_PI
    count = kmax[v]
    ramp0 = (pos + 1) * inv_hop
    for k in range(0, count, 4):
        b0 = b1 = b2 = b3 = t0 = t1 = t2 = t3 = 0.0
        t0 = (a_cur[v, k] - a_prev[v, k]) * inv_hop
        b0 = a_prev[v, k] + (a_cur[v, k] - a_prev[v, k]) * ramp0
        if k + 1 < count:
            t1 = (a_cur[v, k + 1] - a_prev[v, k + 1]) * inv_hop
            b1 = a_prev[v, k + 1] + (a_cur[v, k + 1] - a_prev[v, k + 1]) * ramp0
        if k + 2 < count:
            t2 = (a_cur[v, k + 2] - a_prev[v, k + 2]) * inv_hop
            b2 = a_prev[v, k + 2] + (a_cur[v, k + 2] - a_prev[v, k + 2]) * ramp0
        if k + 3 < count:
            t3 = (a_cur[v, k + 3] - a_prev[v, k + 3]) * inv_hop
            b3 = a_prev[v, k + 3] + (a_cur[v, k + 3] - a_prev[v, k + 3]) * ramp0
        for j in range(n):
            c = cos2[j]
            x1 = s1[j]
            x2 = c * x1 - s0[j]
            x3 = c * x2 - x1
            x4 = c * x3 - x2
            acc[j] += (b0 + t0 * j) * x1 + (b1 + t1 * j) * x2 + (b2 + t2 * j) * x3 + (b3 + t3 * j) * x4
            s0[j] = x4
            s1[j] = c * x4 - x3


@numba.njit(nogil=True, cache=True, _nrt=False, fastmath=FASTMATH)
def harmonic_push(f0_hz, amplitude, distribution, active, primed, f0_prev, f0_cur, a_prev, a_cur, kmax, nyquist):
    """`push_voice` for every active voice: `f0_hz`, `amplitude` `[voices]`, `distribution` `[voices, K]`."""
    for v in range(a_cur.shape[0]):
        if active[v]:
            push_voice(v, f0_hz[v], amplitude[v], distribution[v], primed, f0_prev, f0_cur, a_prev, a_cur, kmax, nyquist)


@numba.njit(nogil=True, cache=True, _nrt=False, fastmath=FASTMATH)
def harmonic_render(out, pos, hop, active, primed, phase, f0_prev, f0_cur, a_prev, a_cur, kmax, rad_per_hz, s0, s1, cos2, acc):
    """Add the next `n = out.shape[1]` samples of every active voice into `out` `[voices, n]`.

    `pos` is the chunk's offset inside the current segment (`pos + n <= hop`). Scratch
    arrays are float64 `[>= n]`.
    """
    voices, n = out.shape
    for v in range(voices):
        if not (active[v] and primed[v]):
            continue
        acc[:n] = 0.0
        render_voice(v, acc[:n], pos, hop, phase, f0_prev, f0_cur, a_prev, a_cur, kmax, rad_per_hz, s0, s1, cos2)
        for j in range(n):
            out[v, j] += acc[j]


class HarmonicOscillator:
    """A bank of harmonic oscillators for `voices` voices, streamed segment by segment.

    Drive it as the engine does: at each hop boundary call `push` with the next frame for
    all voices, then `render` the samples of that segment in one or more chunks. Voices
    whose `active` flag is off cost nothing. `push` and `render` never allocate.
    The engine itself uses the fused `timbrel.engine.realtime.kernels.synth.SynthBank`.
    """

    def __init__(self, voices: int, harmonics: int, sample_rate: float, hop: int):
        self.voices, self.harmonics, self.hop = int(voices), int(harmonics), int(hop)
        self.sample_rate = float(sample_rate)
        self.active = np.ones(voices, dtype=np.bool_)
        self._primed = np.zeros(voices, dtype=np.bool_)
        self._phase = np.zeros(voices)
        self._f0_prev = np.zeros(voices)
        self._f0_cur = np.zeros(voices)
        self._a_prev = np.zeros((voices, harmonics))
        self._a_cur = np.zeros((voices, harmonics))
        self._kmax = np.zeros(voices, dtype=np.int64)
        self._sin_a, self._sin_b, self._cos2, self._acc = (np.zeros(self.hop) for _ in range(4))
        self._pos = self.hop
        self._rad_per_hz = TWO_PI / self.sample_rate

    @property
    def remaining(self) -> int:
        """Samples left in the current segment before the next `push` is due."""
        return self.hop - self._pos

    def push(self, f0_hz: np.ndarray, amplitude: np.ndarray, harmonic_distribution: np.ndarray) -> None:
        """Begin the next segment: `f0_hz` (Hz) and `amplitude` `[voices]`, distribution `[voices, K]`."""
        harmonic_push(
            f0_hz, amplitude, harmonic_distribution, self.active, self._primed,
            self._f0_prev, self._f0_cur, self._a_prev, self._a_cur, self._kmax, self.sample_rate / 2,
        )
        self._pos = 0

    def render(self, out: np.ndarray) -> None:
        """Add the next `n = out.shape[1]` samples into `out` `[voices, n]` (n <= `remaining`)."""
        n = out.shape[1]
        if n > self.hop - self._pos:
            raise ValueError(f"render of {n} samples crosses the segment end ({self.remaining} left)")
        harmonic_render(
            out, self._pos, self.hop, self.active, self._primed, self._phase, self._f0_prev, self._f0_cur,
            self._a_prev, self._a_cur, self._kmax, self._rad_per_hz, self._sin_a, self._sin_b, self._cos2, self._acc,
        )
        self._pos += n

    def reset_voice(self, voice: int) -> None:
        """Silence one voice and restart it: phase 0, and its next frame is held as in frame 0."""
        self._primed[voice] = False
        self._phase[voice] = 0.0

    def reset(self) -> None:
        """Restart every voice and wait for a `push`."""
        self._primed[:] = False
        self._phase[:] = 0.0
        self._pos = self.hop
