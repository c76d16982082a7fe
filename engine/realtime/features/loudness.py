"""A-weighted loudness per frame, in dB, computed causally (the DDSP loudness feature).

Definition (the same for training and live playing; one numba kernel computes both):

1. **A-weighting.** `y = A(x)`, a causal IIR: the analog IEC 61672 A-weighting curve
   (poles at 20.6 Hz x2, 107.7 Hz, 737.9 Hz, 12194 Hz x2, four zeros at 0 Hz) mapped by the
   bilinear transform at the playing rate, as three biquads in float64, scaled to 0 dB at
   1 kHz. Its state starts at zero when the stream starts. It follows the analog curve within
   0.05 dB up to 4 kHz at 44.1 kHz and above, and droops under it towards Nyquist (at 48 kHz
   -0.5 dB at 8 kHz, -1.2 dB at 10 kHz, -6.4 dB at 16 kHz). Full-band white noise therefore
   reads about 0.9 dB under the analog curve; instrument recordings, with little power up
   there, read within 0.1 dB of it in 95 % of frames (FluidR3 renders).
2. **Power.** Frame `i` (ending at sample `(i + 1) * hop`, docs/DSP.md) takes the
   Hann-weighted mean of `y^2` over the `window` samples that end there,
   `P[i] = sum_k w[k] * y[(i+1)*hop - window + k]^2`, `w[k] = sin^2(pi (k + 0.5) / window)`
   normalised to sum 1 (samples before the stream start count as 0).
3. **dB.** `loudness_db[i] = max(10 * log10(P[i]), -80)`.

So a full-scale 1 kHz sine reads -3.01 dB, white noise reads its A-weighted mean square, and
silence reads -80 dB. The default window is 25 ms, the length of the pitch tracker's window
at 50 Hz, so both features describe the same instant (the window centre, 12.5 ms before the
frame end).

DDSP averages the A-weighted power of a centred STFT over its bins. By Parseval that is the
same quantity (A-weighted power in a Hann window) up to a constant dB offset set by its FFT
size, except where the STFT's leakage smears the steep low end of the curve (a 60 Hz sine
reads about 1 dB higher there); `bench/bench_features.py` measures both. The causal
time-domain form needs no FFT on the audio thread and no look-ahead.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from timbrel.engine.realtime.features.blocks import as_block

FLOOR_DB = -80.0
_POLES_HZ = (20.598997, 107.65265, 737.86223, 12194.217)


def a_weighting_sos(sample_rate: float) -> np.ndarray:
    """A-weighting as second-order sections `[3, 6]` (`b0 b1 b2 a0 a1 a2`), 0 dB at 1 kHz."""
    p1, p2, p3, p4 = (
        (2 * sample_rate - 2 * np.pi * f) / (2 * sample_rate + 2 * np.pi * f) for f in _POLES_HZ
    )
    sos = np.array([
        [1.0, -2.0, 1.0, 1.0, -2.0 * p1, p1 * p1],
        [1.0, -2.0, 1.0, 1.0, -(p2 + p3), p2 * p3],
        [1.0, 2.0, 1.0, 1.0, -2.0 * p4, p4 * p4],
    ])
    sos[0, :3] /= abs(sos_response(sos, sample_rate, np.array([1000.0]))[0])
    return sos


def sos_response(sos: np.ndarray, sample_rate: float, f_hz: np.ndarray) -> np.ndarray:
    """Complex response `[len(f_hz)]` of second-order sections at frequencies `f_hz` (Hz)."""
    z = np.exp(-2j * np.pi * np.asarray(f_hz) / sample_rate)
    h = np.ones_like(z)
    for b0, b1, b2, a0, a1, a2 in sos:
        h *= (b0 + b1 * z + b2 * z * z) / (a0 + a1 * z + a2 * z * z)
    return h


@njit(nogil=True, cache=True, _nrt=False)
def _meter(block, sos, zi, ring, weights, istate, hop, floor_power, out) -> int:
    """A-weight `block [n]`, keep `y^2` in `ring`, write one dB value per completed hop.

    `zi [sections, 2]` is the filter state (transposed direct form II), `istate = [ring
    write, samples since frame]`. Returns the number of frames written.
    """
    mask = ring.shape[0] - 1
    sections = sos.shape[0]
    wpos, since = istate[0], istate[1]
    frames = 0
    for n in range(block.shape[0]):
        v = float(block[n])
        for s in range(sections):
            y = sos[s, 0] * v + zi[s, 0]
            zi[s, 0] = sos[s, 1] * v - sos[s, 4] * y + zi[s, 1]
            zi[s, 1] = sos[s, 2] * v - sos[s, 5] * y
            v = y
        ring[wpos] = v * v
        wpos = (wpos + 1) & mask
        since += 1
        if since == hop:
            since = 0
            out[frames] = _window_db(ring, weights, wpos, floor_power)
            frames += 1
    istate[0], istate[1] = wpos, since
    return frames


@njit(nogil=True, cache=True, _nrt=False)
def _window_db(ring, weights, wpos: int, floor_power: float) -> float:
    """Loudness (dB) of the window ending just before ring position `wpos`."""
    mask = ring.shape[0] - 1
    window = weights.shape[0]
    power = 0.0
    for k in range(window):
        power += weights[k] * ring[(wpos - window + k) & mask]
    return 10.0 * np.log10(max(power, floor_power))


class LoudnessMeter:
    """Streaming A-weighted loudness: feed blocks of any size, read the frames they complete.

    `process(block)` returns the number of frames completed and writes them to
    `loudness_db[:n]` (dB). Blocks may hold up to `max_block` samples. The constructor
    allocates everything and warms the kernel up; `process` allocates nothing for a
    C-contiguous float32 block. One instance serves one stream from one thread.
    `latency_samples` is the window length.
    """

    def __init__(self, sample_rate: int, hop: int, window_s: float = 0.025,
                 max_block: int = 4096):
        window = int(round(window_s * sample_rate))
        if hop < 1 or max_block < 1 or window < 1:
            raise ValueError(f"hop ({hop}), max_block ({max_block}) and window "
                             f"({window} samples) must be positive")
        self.sample_rate = int(sample_rate)
        self.hop = int(hop)
        self.max_block = int(max_block)
        self.latency_samples = window
        weights = np.sin(np.pi * (np.arange(window) + 0.5) / window) ** 2
        self._weights = weights / weights.sum()
        self._sos = a_weighting_sos(self.sample_rate)
        self._zi = np.zeros((len(self._sos), 2))
        self._ring = np.zeros(1 << (window - 1).bit_length())
        self._istate = np.zeros(2, dtype=np.int64)
        self._floor_power = 10.0 ** (FLOOR_DB / 10.0)
        self.loudness_db = np.zeros(self.max_block // self.hop + 1)
        self.process(np.zeros(0, np.float32))
        self.probe()

    def reset(self) -> None:
        """Forget all audio: the next block starts a fresh stream in silence."""
        for state in (self._zi, self._ring, self._istate):
            state[:] = 0

    def probe(self) -> float:
        """Loudness (dB) of a frame ending at the last sample pushed, off the hop grid."""
        return _window_db(self._ring, self._weights, self._istate[0], self._floor_power)

    def restart(self) -> None:
        """Restart the hop grid at the last sample pushed: the next frame completes one hop later."""
        self._istate[1] = 0

    def process(self, block: np.ndarray) -> int:
        """Consume `block [n]` (float32, n <= max_block); return how many frames it completed."""
        block = as_block(block, self.max_block)
        return _meter(block, self._sos, self._zi, self._ring, self._weights, self._istate,
                      self.hop, self._floor_power, self.loudness_db)


def loudness_db(audio: np.ndarray, sample_rate: int, hop: int,
                window_s: float = 0.025) -> np.ndarray:
    """A-weighted loudness (dB) `[len(audio) // hop]` of a mono file, exactly as streamed."""
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    meter = LoudnessMeter(sample_rate, hop, window_s, max_block=max(1, audio.shape[0]))
    frames = meter.process(audio)
    return meter.loudness_db[:frames].copy()
