"""Streaming harmonic oscillator bank (numba), following docs/DSP.md.

Strategy: per sample, one complex rotation advances the fundamental's phasor
(sin, cos of phi) with no transcendental call; the Chebyshev recurrence
sin(k*phi) = 2*cos(phi)*sin((k-1)*phi) - sin((k-2)*phi) then produces every harmonic with
one multiply-add, vectorised across the samples of a chunk. Everything is float64, where
the recurrence's error (about k^2 * 1e-16) is far below the 1e-6 contract.
`bench/bench_kernels.py` compares it against one `sin` per harmonic.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from engine.kernels.fastmath import FASTMATH

TWO_PI = 2.0 * math.pi


@numba.njit(nogil=True, cache=True, fastmath=FASTMATH)
def harmonic_push(f0_hz, amplitude, distribution, active, primed, f0_prev, f0_cur, a_prev, a_cur, kmax, nyquist):
    """Start a new segment for every active voice with the next frame's controls.

    `f0_hz`, `amplitude`: `[voices]`; `distribution`: `[voices, K]`. The per-harmonic
    amplitudes are band-limited and renormalised here, once per frame.
    """
    voices, harmonics = a_cur.shape
    for v in range(voices):
        if not active[v]:
            continue
        f0 = np.float64(f0_hz[v])
        total = 0.0
        for k in range(harmonics):
            if (k + 1) * f0 < nyquist:
                total += distribution[v, k]
        scale = amplitude[v] / total if total > 0.0 else 0.0
        if primed[v]:
            f0_prev[v] = f0_cur[v]
            for k in range(harmonics):
                a_prev[v, k] = a_cur[v, k]
        for k in range(harmonics):
            a_cur[v, k] = distribution[v, k] * scale if (k + 1) * f0 < nyquist else 0.0
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


@numba.njit(nogil=True, cache=True, fastmath=FASTMATH)
def harmonic_render(out, pos, hop, active, primed, phase, f0_prev, f0_cur, a_prev, a_cur, kmax, rad_per_hz, sin_a, sin_b, cos2, acc):
    """Add the next `out.shape[1]` samples of every active voice into `out` `[voices, n]`.

    `pos` is the offset of the chunk inside the current segment; the chunk must not cross
    the segment's end (`pos + n <= hop`). Scratch arrays are `[>= n]` float64.
    """
    voices, n = out.shape
    inv_hop = 1.0 / hop
    for v in range(voices):
        if not (active[v] and primed[v]):
            continue
        w_prev = f0_prev[v] * rad_per_hz
        dw = (f0_cur[v] * rad_per_hz - w_prev) * inv_hop
        w0 = w_prev + dw * (pos + 1)
        ph = phase[v]
        zr, zi = math.cos(ph), math.sin(ph)
        rr, ri = math.cos(w0), math.sin(w0)
        dr, di = math.cos(dw), math.sin(dw)
        for j in range(n):
            sin_a[j] = 0.0
            sin_b[j] = zi
            cos2[j] = 2.0 * zr
            acc[j] = 0.0
            zr, zi = zr * rr - zi * ri, zr * ri + zi * rr
            rr, ri = rr * dr - ri * di, rr * di + ri * dr
        phase[v] = (ph + n * w0 + dw * (n * (n - 1) * 0.5)) % TWO_PI
        prev, cur = sin_a, sin_b
        for k in range(kmax[v]):
            a0 = a_prev[v, k]
            step = (a_cur[v, k] - a0) * inv_hop
            base = a0 + step * (pos + 1)
            for j in range(n):
                acc[j] += (base + step * j) * cur[j]
                prev[j] = cos2[j] * cur[j] - prev[j]
            prev, cur = cur, prev
        for j in range(n):
            out[v, j] += acc[j]


class HarmonicOscillator:
    """A bank of harmonic oscillators for `voices` voices, streamed segment by segment.

    Drive it as the engine does: at each hop boundary call `push` with the next frame for
    all voices, then `render` the samples of that segment in one or more chunks. Voices
    whose `active` flag is off cost nothing. `push` and `render` never allocate.
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
