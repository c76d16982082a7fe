"""Causal f0 estimation with voicing confidence (YIN, de Cheveigné & Kawahara 2002).

One numba kernel serves both the live path (`PitchTracker.process`, block by block) and the
offline path (`estimate_pitch`, the same kernel over the whole file), so both give identical
frames for any partition of the audio into blocks.

Frames follow docs/DSP.md: frame `i` ends at sample `(i + 1) * hop`, and a file of `n`
samples has `n // hop` frames. Frame `i` is computed from the `latency_samples` samples that
end there and nothing later (the stream starts in silence).

Decisions:

- **Window and latency.** The analysis window is one longest period plus 5 ms,
  `latency_samples = ceil(sr / fmin) + ceil(0.005 * sr)`: 25 ms (1200 samples at 48 kHz) for
  the default `fmin = 50 Hz`. Classic YIN wants two longest periods (40 ms at 50 Hz), so
  instead of a fixed integration window each lag `tau` compares every pair of samples
  `tau` apart inside the window, `d(tau) = mean_j (x[j] - x[j - tau])^2`. Every lag then
  describes the same instant, the window's centre (`latency_samples / 2` before the frame
  end), and the longest lag still averages over about 3.5 ms. A step in pitch is fully
  reflected `latency_samples` after it happens. Raising `fmin` shortens the window.
  The price is at the bottom of the range: sines track down to `fmin`, but harmonic-rich
  tones below about `1.1 * fmin` (55 Hz) can pick a spurious dip in some frames.
- **Speed and precision.** The lag search runs on a copy lowpassed at 3 kHz (a
  Hann-windowed sinc of `16 * D + 1` taps that lies inside the window) and decimated by
  `D = sample_rate // 12000` (4 at 48 kHz, making the search 16x cheaper). The lowpass also
  keeps every dip several lags wide, so integer lags sample it well. The chosen dip is then
  refined on the full-rate, full-band window, with parabolic interpolation between lags.
  The search band caps `fmax` at 2.4 kHz.
- **Lag choice and voicing.** As in YIN, the first dip of the cumulative-mean-normalised
  difference (CMNDF, taken at its parabolic vertex) below 0.1 wins, counting from the
  shortest lag, else the deepest dip. The frame is voiced when that dip is below
  `threshold` (default 0.2). Choosing with the stricter 0.1 keeps YIN's resistance to
  octave-up errors, while voicing at 0.2 keeps the noisier frames of bowed and sung
  attacks. Frames whose window RMS is below `gate_db` (dB re a full-scale square wave, so a
  full-scale sine is -3 dB) are unvoiced.
- **Live options** (off by default, so training features are unchanged; live transfer turns
  them on, docs/DSP.md): `min_overlap_s` shortens the 5 ms overlap; `floor_hz` can rise
  from `fmin` at run time for a shorter window; `adaptive` analyses, after a voiced frame,
  only 2.1 of its periods plus the overlap (the floor's window when that finds nothing) and
  prefers the dip near the last period on unclear frames; `onset` starts the analysis at a
  note's first sample, after the silence before it, so a note is voiced about 1.5 periods
  in instead of 2.3, and such short frames voice only on a clear dip.
- **Unvoiced frames** report `confidence = 0` and hold the last voiced f0 (0 Hz before the
  first), so a synthesiser driven by f0 never jumps in pitch when voicing drops out.
  Voiced frames report `confidence = 1 - CMNDF` in `(1 - threshold, 1]`, so
  `confidence > 0` is the voicing decision.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from timbrel.engine.realtime.features.blocks import as_block

_SEARCH_RATE_HZ = 12000
_SEARCH_CUTOFF_HZ = 3000.0
_MIN_OVERLAP_S = 0.005
_DIP_THRESHOLD = 0.1
_MAX_FMAX_HZ = 0.8 * _SEARCH_CUTOFF_HZ
_ADAPTIVE_RATIO = 2.1
"""Adaptive windows search lags up to this many last periods: an octave down stays in reach."""
_NEAR_LOG = math.log(1.5)
_ONSET_CHUNK_S = 0.001
_ONSET_QUIET_DB = -40.0
"""A chunk this far under the window's loudest is quiet: the analysis starts after it."""


@njit(nogil=True, cache=True, _nrt=False)
def _parabola(ym: float, y0: float, yp: float) -> tuple[float, float]:
    """Vertex offset (in steps, within +-1) and value of the parabola through three points."""
    curvature = ym - 2.0 * y0 + yp
    if curvature <= 0.0:
        return 0.0, y0
    delta = 0.5 * (ym - yp) / curvature
    if delta > 1.0:
        delta = 1.0
    elif delta < -1.0:
        delta = -1.0
    return delta, y0 - 0.25 * (ym - yp) * delta


@njit(nogil=True, cache=True, _nrt=False)
def _mean_difference(x: np.ndarray, start: int, length: int, tau: int) -> float:
    """`mean((x[j] - x[j - tau])^2)` over the pairs inside `x[start:length]`."""
    total = 0.0
    for j in range(start + tau, length):
        v = x[j] - x[j - tau]
        total += v * v
    return total / (length - start - tau)


@njit(nogil=True, cache=True, _nrt=False)
def _analyse_frame(x, xd, diff, cmndf, fine, decimation, start, dstart, tau_lo, tau_hi,
                   sample_rate, dip_threshold, threshold, gate_power, prefer, wide):
    """f0 (Hz, 0 when unvoiced) and confidence of one frame.

    `x [window]` is the full-rate window, `xd [decimated window]` its decimated copy; only
    `x[start:]` and `xd[dstart:]` are analysed. `diff`, `cmndf` and `fine` are scratch. Lags
    `tau_lo … tau_hi` are in decimated samples. When no dip is under `dip_threshold`, the
    dip nearest the lag `prefer` (decimated samples; 0: none) that passes `threshold` wins
    over the deepest, and the frame is unvoiced when that dip is more than a fifth away: a
    voiced track does not leap to a harmonic on an unclear frame. `wide` refines the lag
    over +-10 % of it on the full-rate window instead of +-half a decimation step (a window
    cut at an onset, where the lowpass's ringing can shift the coarse dip).
    """
    window = x.shape[0]
    power = 0.0
    for j in range(start, window):
        power += x[j] * x[j]
    length = xd.shape[0]
    tau_hi = min(tau_hi, length - dstart - 2)
    if power < gate_power * (window - start) or tau_hi <= tau_lo:
        return 0.0, 0.0

    cmndf[0] = 1.0
    running = 0.0
    for tau in range(1, tau_hi + 2):
        diff[tau] = _mean_difference(xd, dstart, length, tau)
        running += diff[tau]
        cmndf[tau] = diff[tau] * tau / running if running > 0.0 else 1.0

    best_tau, best_delta, best_value = -1, 0.0, np.inf
    near_tau, near_delta, near_value, near_distance = -1, 0.0, np.inf, np.inf
    for tau in range(tau_lo, tau_hi + 1):
        if cmndf[tau] <= cmndf[tau - 1] and cmndf[tau] < cmndf[tau + 1]:
            delta, value = _parabola(cmndf[tau - 1], cmndf[tau], cmndf[tau + 1])
            if value < best_value:
                best_tau, best_delta, best_value = tau, delta, value
            if value < dip_threshold:
                break
            distance = abs(math.log((tau + delta) / prefer)) if prefer > 0.0 else np.inf
            if value < threshold and distance < near_distance:
                near_tau, near_delta, near_value, near_distance = tau, delta, value, distance
    if best_value >= dip_threshold and prefer > 0.0:
        if near_tau < 0 or near_distance > _NEAR_LOG:
            return 0.0, 0.0
        best_tau, best_delta, best_value = near_tau, near_delta, near_value
    if best_value >= threshold:
        return 0.0, 0.0

    centre = int(round((best_tau + best_delta) * decimation))
    half = decimation // 2 + 1
    if wide:
        half = min(max(half, centre // 10), (fine.shape[0] - 4) // 2)
    lo = max(2, centre - half)
    hi = min(window - start - 2, centre + half)
    if hi - lo < 2:
        return 0.0, 0.0
    for tau in range(lo - 1, hi + 2):
        fine[tau - lo + 1] = _mean_difference(x, start, window, tau)
    k = 1
    for i in range(2, hi - lo + 2):
        if fine[i] < fine[k]:
            k = i
    delta, _ = _parabola(fine[k - 1], fine[k], fine[k + 1])
    lag = lo - 1 + k + delta
    return sample_rate / lag, 1.0 - max(best_value, 0.0)


@njit(nogil=True, cache=True, _nrt=False)
def _active_start(x: np.ndarray, chunk: int, relative: float, gate_power: float) -> int:
    """First sample of `x [window]` after the last onset in it (0 when there is none).

    The window is cut into chunks of `chunk` samples counted back from its end. A chunk is
    the quiet before an onset when its power is under `relative` times that of the loudest
    chunk after it (or under the gate while a later chunk is above it). What lies before it
    is another sound, or silence, and is left out, so an onset is tracked from its own
    samples only, from the first sample after it louder than that chunk's mean. A decay,
    whose later chunks are the quieter, is never cut.
    """
    window = x.shape[0]
    chunks = window // chunk
    later = 0.0
    for c in range(chunks):
        total = 0.0
        for j in range(window - (c + 1) * chunk, window - c * chunk):
            total += x[j] * x[j]
        if later > gate_power * chunk and (total < relative * later or total < gate_power * chunk):
            quiet = max(relative * later, gate_power * chunk) / chunk
            for j in range(window - c * chunk, window):
                if x[j] * x[j] > quiet:
                    return j
            return window - c * chunk
        later = max(later, total)
    return 0


@njit(nogil=True, cache=True, _nrt=False)
def _spans(x, xd, istate, fstate, iparams, fparams, floor_only: bool) -> tuple[int, int, int, bool]:
    """Analysed span `(start, decimated start, longest lag, cut at an onset)` of the frame in
    `x [window]` (decimated: `xd [decimated window]`).

    The span is one floor period plus the overlap (the whole window at the allocated floor);
    when adaptive and the last frame was voiced, at most `ratio` last periods plus the
    overlap; with onset cutting, never reaching back past the last quiet chunk.
    """
    decimation, tau_hi_alloc, overlap, adaptive, onset = iparams[1], iparams[3], iparams[4], \
        iparams[5], iparams[6]
    sample_rate, gate_power, floor_hz, ratio = fparams[0], fparams[3], fparams[4], fparams[5]
    window = x.shape[0]
    longest = sample_rate / floor_hz
    if adaptive != 0 and not floor_only and istate[4] != 0 and fstate[0] > 0.0:
        longest = min(longest, ratio * sample_rate / fstate[0])
    span = min(window, int(math.ceil(longest)) + overlap)
    tau_hi = min(tau_hi_alloc, int(math.ceil(longest / decimation - 1e-9)))
    cut = False
    if onset != 0:
        active = window - _active_start(x, iparams[7], fparams[6], gate_power)
        if active < span:
            cut = True
            span = active
            # Every lag compares at least half the overlap, and a quarter of itself, of pairs.
            usable = (span - iparams[8]) // decimation
            tau_hi = min(tau_hi, usable - overlap // (2 * decimation) - 1, (4 * usable) // 5)
    start = window - span
    dwindow = xd.shape[0]
    # A decimated sample stands for the input half the lowpass's length before it.
    dspan = (span - iparams[8]) // decimation
    return start, 0 if start == 0 else max(0, dwindow - dspan), tau_hi, cut


@njit(nogil=True, cache=True, _nrt=False)
def _window_pitch(ring, dring, wpos, dpos, x, xd, diff, cmndf, fine, istate, fstate, iparams,
                  fparams) -> tuple[float, float]:
    """`(f0 Hz, confidence)` of the frame ending at ring positions `wpos`/`dpos` (the
    decimated ring), as `_track` computes it; reads `istate`/`fstate`, changes neither."""
    decimation, tau_lo = iparams[1], iparams[2]
    sample_rate, dip_threshold, threshold, gate_power = fparams[0], fparams[1], fparams[2], \
        fparams[3]
    mask = ring.shape[0] - 1
    dmask = dring.shape[0] - 1
    window = x.shape[0]
    dwindow = xd.shape[0]
    for j in range(window):
        x[j] = ring[(wpos - window + j) & mask]
    for j in range(dwindow):
        xd[j] = dring[(dpos - dwindow + j) & dmask]
    tracking = iparams[5] != 0 and istate[4] != 0 and fstate[0] > 0.0
    prefer = sample_rate / (fstate[0] * decimation) if tracking else 0.0
    start, dstart, tau_hi, cut = _spans(x, xd, istate, fstate, iparams, fparams, False)
    f0, confidence = _analyse_frame(x, xd, diff, cmndf, fine, decimation, start, dstart,
                                    tau_lo, tau_hi, sample_rate, dip_threshold,
                                    threshold, gate_power, prefer, cut)
    if confidence == 0.0 and tracking:
        start, dstart, tau_hi, cut = _spans(x, xd, istate, fstate, iparams, fparams, True)
        f0, confidence = _analyse_frame(x, xd, diff, cmndf, fine, decimation, start, dstart,
                                        tau_lo, tau_hi, sample_rate, dip_threshold, threshold,
                                        gate_power, prefer, cut)
    # A note's first frames may see under two of its periods: voiced only on a clear dip.
    if cut and 0.0 < confidence < 1.0 - dip_threshold and \
            2.0 * sample_rate / f0 > window - start:
        return 0.0, 0.0
    return f0, confidence


@njit(nogil=True, cache=True, _nrt=False)
def _probe(ring, dring, x, xd, diff, cmndf, fine, istate, fstate, iparams, fparams, out) -> None:
    """`out [2]` = `(f0 Hz, confidence)` of a frame ending at the last sample pushed (`_window_pitch`)."""
    out[0], out[1] = _window_pitch(ring, dring, istate[0], istate[1], x, xd, diff, cmndf, fine,
                                   istate, fstate, iparams, fparams)


@njit(nogil=True, cache=True, _nrt=False)
def _track(block, ring, dring, fir, x, xd, diff, cmndf, fine, istate, fstate, iparams,
           fparams, f0_out, conf_out) -> int:
    """Push `block [n]` through the tracker; write one f0/confidence per completed hop.

    `istate = [ring write, decimated ring write, decimation phase, samples since frame,
    last frame voiced]`, `fstate = [held f0]`, `iparams = [hop, decimation, tau_lo, tau_hi,
    overlap, adaptive, onset, onset chunk,
    lowpass delay]`, `fparams = [sample rate, dip threshold, voicing
    threshold, gate power, floor (Hz), adaptive ratio, onset relative power]`.
    Returns the number of frames written.
    """
    hop, decimation = iparams[0], iparams[1]
    mask = ring.shape[0] - 1
    dmask = dring.shape[0] - 1
    taps = fir.shape[0]
    wpos, dpos, phase, since = istate[0], istate[1], istate[2], istate[3]
    frames = 0
    for n in range(block.shape[0]):
        ring[wpos] = block[n]
        wpos = (wpos + 1) & mask
        phase += 1
        if phase == decimation:
            phase = 0
            acc = 0.0
            for k in range(taps):
                acc += fir[k] * ring[(wpos - 1 - k) & mask]
            dring[dpos] = acc
            dpos = (dpos + 1) & dmask
        since += 1
        if since == hop:
            since = 0
            f0, confidence = _window_pitch(ring, dring, wpos, dpos, x, xd, diff, cmndf, fine, istate,
                                           fstate, iparams, fparams)
            if confidence > 0.0:
                fstate[0] = f0
            istate[4] = 1 if confidence > 0.0 else 0
            f0_out[frames] = fstate[0]
            conf_out[frames] = confidence
            frames += 1
    istate[0], istate[1], istate[2], istate[3] = wpos, dpos, phase, since
    return frames


def _lowpass(sample_rate: int, decimation: int) -> np.ndarray:
    """Hann-windowed-sinc lowpass, `[16 * decimation + 1]` taps, -6 dB at `_SEARCH_CUTOFF_HZ`."""
    taps = 16 * decimation + 1
    k = np.arange(taps) - (taps - 1) / 2
    hann = 0.5 + 0.5 * np.cos(2 * np.pi * k / (taps + 1))
    h = np.sinc(2 * _SEARCH_CUTOFF_HZ / sample_rate * k) * hann
    return h / h.sum()


class PitchTracker:
    """Streaming f0 tracker: feed blocks of any size, read the frames they complete.

    `process(block)` returns the number of frames completed by the block and writes them to
    `f0_hz[:n]` (Hz) and `confidence[:n]` (0 = unvoiced, else in `(1 - threshold, 1]`).
    Blocks may hold up to `max_block` samples. The constructor allocates everything and warms
    the kernel up; `process` allocates nothing for a C-contiguous float32 block. One instance
    serves one stream from one thread.
    """

    def __init__(self, sample_rate: int, hop: int, fmin: float = 50.0, fmax: float = 2000.0,
                 threshold: float = 0.2, gate_db: float = -60.0, max_block: int = 4096,
                 min_overlap_s: float = _MIN_OVERLAP_S, adaptive: bool = False,
                 onset: bool = False):
        top = min(_MAX_FMAX_HZ, sample_rate / 4)
        if not 0 < fmin < fmax <= top:
            raise ValueError(f"pitch range {fmin}-{fmax} Hz must satisfy 0 < fmin < fmax <= "
                             f"{top:g} Hz")
        if hop < 1 or max_block < 1:
            raise ValueError(f"hop ({hop}) and max_block ({max_block}) must be positive")
        if not 0.001 <= min_overlap_s <= 0.02:
            raise ValueError(f"min_overlap_s ({min_overlap_s}) must be 0.001 to 0.02 s")
        self.sample_rate = int(sample_rate)
        self.hop = int(hop)
        self.fmin = float(fmin)
        self.fmax = float(fmax)
        self.threshold = float(threshold)
        self.max_block = int(max_block)
        self.adaptive = bool(adaptive)
        self.onset = bool(onset)
        overlap = math.ceil(min_overlap_s * sample_rate)
        self.overlap_samples = overlap
        """Pairs (samples) the longest lag still averages over."""
        self.latency_samples = math.ceil(sample_rate / fmin) + overlap
        """Frame `i` depends on samples `(i+1)*hop - latency_samples … (i+1)*hop - 1` only."""

        decimation = max(1, self.sample_rate // _SEARCH_RATE_HZ)
        self._fir = _lowpass(self.sample_rate, decimation)
        window = self.latency_samples
        dwindow = (window - (len(self._fir) - 1) - (decimation - 1)) // decimation
        decimated_rate = self.sample_rate / decimation
        tau_lo = max(2, math.floor(decimated_rate / fmax))
        tau_hi = math.ceil(decimated_rate / fmin)
        chunk = math.ceil(_ONSET_CHUNK_S * sample_rate)
        self._iparams = np.array([self.hop, decimation, tau_lo, tau_hi, overlap, int(adaptive),
                                  int(onset), chunk, (len(self._fir) - 1) // 2], dtype=np.int64)
        self._fparams = np.array([self.sample_rate, min(_DIP_THRESHOLD, self.threshold),
                                  self.threshold, 10.0 ** (gate_db / 10.0), self.fmin,
                                  _ADAPTIVE_RATIO, 10.0 ** (_ONSET_QUIET_DB / 10.0)])

        self._ring = np.zeros(1 << (window - 1).bit_length())
        self._dring = np.zeros(1 << (dwindow - 1).bit_length())
        self._x = np.zeros(window)
        self._xd = np.zeros(dwindow)
        self._diff = np.zeros(tau_hi + 2)
        self._cmndf = np.zeros(tau_hi + 2)
        self._fine = np.zeros(max(decimation, 2 * (window // 10)) + 6)
        self._istate = np.zeros(5, dtype=np.int64)
        self._fstate = np.zeros(1)
        capacity = self.max_block // self.hop + 1
        self.f0_hz = np.zeros(capacity)
        self.confidence = np.zeros(capacity)
        self._looked = np.zeros(2)
        self.process(np.zeros(0, np.float32))
        self.probe()

    @property
    def floor_hz(self) -> float:
        """Lowest pitch (Hz) searched now; the window is one floor period plus the overlap."""
        return float(self._fparams[4])

    @floor_hz.setter
    def floor_hz(self, value: float) -> None:
        """Raise the floor (Hz) from `fmin` for a shorter window; any thread, any time (one float)."""
        self._fparams[4] = min(max(float(value), self.fmin), self.fmax / 2.0)

    def window_samples(self, floor_hz: float | None = None) -> int:
        """Samples one frame analyses at `floor_hz` (default: the current floor), no adaptation."""
        floor = self.floor_hz if floor_hz is None else max(float(floor_hz), self.fmin)
        return min(self.latency_samples, math.ceil(self.sample_rate / floor) + self.overlap_samples)

    def reset(self) -> None:
        """Forget all audio: the next block starts a fresh stream in silence."""
        for state in (self._ring, self._dring, self._istate, self._fstate):
            state[:] = 0

    @property
    def since(self) -> int:
        """Samples pushed since the last frame completed (0 … hop - 1)."""
        return int(self._istate[3])

    def probe(self) -> float:
        """Analyse a frame ending at the last sample pushed, off the hop grid, changing nothing;
        return its confidence (0: unvoiced) and keep it for `restart`. Allocates nothing."""
        _probe(self._ring, self._dring, self._x, self._xd, self._diff, self._cmndf, self._fine,
               self._istate, self._fstate, self._iparams, self._fparams, self._looked)
        return self._looked[1]

    @property
    def probed_f0_hz(self) -> float:
        """f0 (Hz) of the last `probe`."""
        return self._looked[0]

    @property
    def probed_confidence(self) -> float:
        """Confidence of the last `probe` (0: unvoiced)."""
        return self._looked[1]

    def restart(self) -> None:
        """Take the last `probe` as a frame completed now and restart the hop grid here: the
        next frame completes one hop later (the live transfer's onsets, docs/DSP.md)."""
        if self._looked[1] > 0.0:
            self._fstate[0] = self._looked[0]
            self._istate[4] = 1
        else:
            self._istate[4] = 0
        self._istate[3] = 0

    def process(self, block: np.ndarray) -> int:
        """Consume `block [n]` (float32, n <= max_block); return how many frames it completed."""
        block = as_block(block, self.max_block)
        return _track(block, self._ring, self._dring, self._fir, self._x, self._xd, self._diff,
                      self._cmndf, self._fine, self._istate, self._fstate, self._iparams,
                      self._fparams, self.f0_hz, self.confidence)


def estimate_pitch(audio: np.ndarray, sample_rate: int, hop: int, fmin: float = 50.0,
                   fmax: float = 2000.0, threshold: float = 0.2, gate_db: float = -60.0,
                   smooth: bool = False, **options) -> tuple[np.ndarray, np.ndarray]:
    """f0 (Hz) and confidence, each `[len(audio) // hop]`, of a mono file.

    Without `smooth` the frames are exactly those `PitchTracker` produces live (with the
    same `options`: `min_overlap_s`, `adaptive`, `onset`). `smooth`
    adds offline (non-causal) clean-up for training data: a 5-frame median of f0 inside each
    voiced run, which removes isolated octave jumps, and voiced runs shorter than 3 frames
    become unvoiced. Unvoiced frames keep the conventions above.
    """
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    tracker = PitchTracker(sample_rate, hop, fmin, fmax, threshold, gate_db,
                           max_block=max(1, audio.shape[0]), **options)
    frames = tracker.process(audio)
    f0_hz = tracker.f0_hz[:frames].copy()
    confidence = tracker.confidence[:frames].copy()
    if smooth:
        f0_hz, confidence = _smooth(f0_hz, confidence)
    return f0_hz, confidence


def _smooth(f0_hz: np.ndarray, confidence: np.ndarray, width: int = 5,
            min_run: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Median-filter f0 inside voiced runs, unvoice short runs, re-hold unvoiced f0."""
    f0_hz = f0_hz.copy()
    confidence = confidence.copy()
    voiced = confidence > 0
    edges = np.flatnonzero(np.diff(np.concatenate(([0], voiced.astype(np.int8), [0]))))
    for start, stop in zip(edges[::2], edges[1::2]):
        if stop - start < min_run:
            confidence[start:stop] = 0.0
            continue
        padded = np.pad(f0_hz[start:stop], width // 2, mode="edge")
        f0_hz[start:stop] = np.median(
            np.lib.stride_tricks.sliding_window_view(padded, width), axis=1)
    voiced = confidence > 0
    last = np.maximum.accumulate(np.where(voiced, np.arange(len(voiced)), -1))
    return np.where(last >= 0, f0_hz[np.maximum(last, 0)], 0.0), confidence
