"""The fused synthesis kernel the engine calls once per block: oscillators plus noise, all voices.

Dispatching a numba function costs about a microsecond, as much as synthesising a voice
for a whole block, so the engine makes one call per block that renders both processors
for every active voice, starts the next segment where the block crosses a hop boundary,
and mixes the voices to mono. The per-voice math is `timbrel.engine.realtime.kernels.harmonic` and
`timbrel.engine.realtime.kernels.noise`, so it matches `HarmonicOscillator` and `FilteredNoise` exactly.
"""

from __future__ import annotations

import numba
import numpy as np

from timbrel.engine.offline.noise import noise_filter_matrix, noise_key
from timbrel.engine.realtime.kernels import harmonic, noise
from timbrel.engine.realtime.kernels.fastmath import FASTMATH

_ACTIVE, _PRIMED = 0, 1
_PHASE, _F0_PREV, _F0_CUR = 0, 1, 2
_KEY, _COUNTER = 0, 1


@numba.njit(nogil=True, cache=True, _nrt=False, fastmath=FASTMATH)
def synth_block(out, split, f0_hz, amplitude, distribution, magnitudes, flags, hstate, amps, routing, rng,
                taps, pending, matrix_t, scratch, pos, hop, nyquist, rad_per_hz):
    """Add `n = out.shape[1]` samples of every active voice into `out` `[buses, n]`, voice v
    mixed into bus `routing[1, v]` (`routing[0]` holds each voice's highest harmonic).

    Samples `[0, split)` finish the current segment (which is at offset `pos`); if
    `split < n` the frame (`f0_hz`, `amplitude` `[voices]`, `distribution` `[voices, K]`,
    `magnitudes` `[voices, N]`) starts the next segment and renders `[split, n)`.
    """
    n = out.shape[1]
    kmax, bus = routing[0], routing[1]
    active, primed = flags[_ACTIVE], flags[_PRIMED]
    phase, f0_prev, f0_cur = hstate[_PHASE], hstate[_F0_PREV], hstate[_F0_CUR]
    a_prev, a_cur = amps[0], amps[1]
    keys, counters = rng[_KEY], rng[_COUNTER]
    s0, s1, cos2, work, acc = scratch[0], scratch[1], scratch[2], scratch[3], scratch[4]
    for v in range(active.shape[0]):
        if not active[v]:
            continue
        acc[:n] = 0.0
        if split > 0 and primed[v]:
            head = acc[:split]
            harmonic.render_voice(v, head, pos, hop, phase, f0_prev, f0_cur, a_prev, a_cur, kmax, rad_per_hz, s0, s1, cos2)
            noise.render_voice(v, head, keys, counters, taps, pending, work)
        if split < n:
            harmonic.push_voice(v, f0_hz[v], amplitude[v], distribution[v], primed, f0_prev, f0_cur, a_prev, a_cur, kmax, nyquist)
            noise.push_voice(v, magnitudes[v], matrix_t, taps)
            rest = acc[split:n]
            harmonic.render_voice(v, rest, 0, hop, phase, f0_prev, f0_cur, a_prev, a_cur, kmax, rad_per_hz, s0, s1, cos2)
            noise.render_voice(v, rest, keys, counters, taps, pending, work)
        b = bus[v]
        for j in range(n):
            out[b, j] += acc[j]


class SynthBank:
    """Harmonic oscillators plus filtered noise for up to `voices` voices, mixed to mono, or
    to one bus per part of an ensemble (`bus`: the bus `[voices]` each voice mixes into).

    The engine keeps the frame schedule: a block may cross at most one hop boundary
    (`len(out) <= remaining + hop`), and when it does (`len(out) > remaining`) the next
    frame must be passed in. `process` never allocates; voices are started and stopped
    between blocks from the audio thread.

    Noise bands span 0 Hz to `band_nyquist_hz` (the model's Nyquist); voice v plays the
    noise stream (seed, v), restarted with the voice.
    """

    def __init__(self, voices: int, harmonics: int, bands: int, sample_rate: float, hop: int,
                 seed: int = 0, band_nyquist_hz: float | None = None, bus: np.ndarray | None = None):
        self.voices, self.harmonics, self.bands, self.hop = int(voices), int(harmonics), int(bands), int(hop)
        self.sample_rate = float(sample_rate)
        self._matrix_t = np.ascontiguousarray(noise_filter_matrix(bands, sample_rate, band_nyquist_hz).T)
        taps = self._matrix_t.shape[1]
        self._flags = np.zeros((2, voices), dtype=np.bool_)
        self._hstate = np.zeros((3, voices))
        self._amps = np.zeros((2, voices, harmonics))
        self._routing = np.zeros((2, voices), dtype=np.int64)
        if bus is not None:
            self._routing[1] = bus
        self._rng = np.zeros((2, voices), dtype=np.uint64)
        self._seed = seed
        self.number_voices(np.arange(voices))
        self._taps = np.zeros((voices, taps))
        self._pending = np.zeros((voices, taps - 1))
        self._scratch = np.zeros((5, 2 * self.hop + taps))
        self._pos = self.hop
        self._nyquist = self.sample_rate / 2
        self._rad_per_hz = 2.0 * np.pi / self.sample_rate
        self.active = self._flags[_ACTIVE]
        self._state = (self._flags, self._hstate, self._amps, self._routing, self._rng, self._taps, self._pending,
                       self._matrix_t, self._scratch)

    def number_voices(self, numbers: np.ndarray) -> None:
        """Give voice v the noise stream (seed, `numbers[v]`): an ensemble numbers each part's
        voices from 0, so a part plays the same noise as it would alone."""
        self._rng[_KEY] = [noise_key(self._seed, int(n)) for n in numbers]

    @property
    def remaining(self) -> int:
        """Samples the current segment can still render before the next frame is needed."""
        return self.hop - self._pos

    def process(self, out: np.ndarray, f0_hz=None, amplitude=None, distribution=None, magnitudes=None) -> None:
        """Add the next `n` samples into `out`: `[n]` float64 for a single bus, else `[buses, n]`.

        The frame arguments (`[voices]`, `[voices]`, `[voices, K]`, `[voices, N]`) are read
        only when the block crosses into a new segment.
        """
        if out.ndim == 1:
            out = out.reshape(1, out.shape[0])
        n = out.shape[1]
        split = self.hop - self._pos
        if n > split + self.hop:
            raise ValueError(f"a block of {n} samples crosses two hop boundaries; split it")
        if split >= n:
            synth_block(out, n, _NO_F0, _NO_F0, _NO_2D, _NO_2D, *self._state, self._pos, self.hop, self._nyquist,
                        self._rad_per_hz)
            self._pos += n
        else:
            synth_block(out, split, f0_hz, amplitude, distribution, magnitudes, *self._state, self._pos, self.hop,
                        self._nyquist, self._rad_per_hz)
            self._pos = n - split

    def advance_silent(self, n: int) -> None:
        """Move on `n` samples while no voice sounds, exactly as `process` would have (the hop
        grid stays where it was), without synthesising anything."""
        total = self._pos + n
        self._pos = total if total <= self.hop else (total - 1) % self.hop + 1

    def restart_grid(self) -> None:
        """Start a new segment at the next `process` call's first sample, moving the hop grid
        there. Only while every voice is silent (its last two frames at zero amplitude): a
        segment cut short is then silence cut short."""
        self._pos = self.hop

    @property
    def voice_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """`(flags, hstate, rng, tails)`: what `start_voice` and `stop_voice` take, for kernels
        that start and stop voices themselves."""
        return self._flags, self._hstate, self._rng, self._pending

    def start_voice(self, voice: int) -> None:
        """Make a voice sound from the next frame on, with fresh phase and noise."""
        start_voice(*self.voice_arrays, voice)

    def stop_voice(self, voice: int) -> None:
        """Silence a voice at once (the engine fades it out first)."""
        stop_voice(self._flags, voice)

    def reset(self) -> None:
        """Silence every voice and wait for a frame."""
        self._flags[:] = False
        self._pos = self.hop


@numba.njit(nogil=True, cache=True, _nrt=False)
def start_voice(flags, hstate, rng, tails, voice):
    """Make `voice` sound from the next frame on, with fresh phase and noise (`SynthBank.voice_arrays`)."""
    flags[_PRIMED, voice] = False
    flags[_ACTIVE, voice] = True
    hstate[_PHASE, voice] = 0.0
    rng[_COUNTER, voice] = 0
    tails[voice, :] = 0.0


@numba.njit(nogil=True, cache=True, _nrt=False)
def stop_voice(flags, voice):
    """Silence `voice` at once (the instrument fades it out first)."""
    flags[_ACTIVE, voice] = False


_NO_F0 = np.zeros(1, dtype=np.float32)
_NO_2D = np.zeros((1, 1), dtype=np.float32)
