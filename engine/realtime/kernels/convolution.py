"""Zero-latency streaming convolution reverb (numba), following docs/DSP.md "Reverb".

The impulse response `h` is cut into a *head* and a few *levels*:

* head, taps `0 … B-1` (`B = base_partition`): direct time-domain convolution, sample by
  sample, so the first output needs no input beyond the current sample;
* level 1, partition `B`, from tap `B`: a uniformly partitioned overlap-save convolver
  (frequency-domain delay line, FFT size `2B`), run whole when each `B`-chunk of input
  completes; its first partition starts `B` taps in, exactly when its output is due;
* level `l >= 2`, partition `N_l = 4 N_(l-1)`, from tap `2 N_l`: the same, with bigger
  partitions. A chunk completes at `(k+1) N` and its output is first needed at
  `k N + 2 N`, so the level's work (FFT, multiply-accumulate, inverse FFT) is spread
  evenly over the `N / B` chunk boundaries in between: no block pays for a whole large FFT.

Each level holds the partitions between its start and the next level's start (7 at
level 1, 6 above), so the number of levels, and with it the cost per sample, grows with
the logarithm of the IR length. Past the last full level the remaining taps go either to
more partitions of that level (at most 48 in all) or to one new level, whichever is
cheaper per sample: a new level costs two FFTs of `2N` per `N` samples, ~`log2 N`
butterflies per sample, and one more partition one complex multiply-add per sample.
At 48 kHz: 0.1 s -> 128x37; 1 s -> 128x7, 512x6, 2048x22; 3 s -> 128x7, 512x6, 2048x6,
8192x16 (partition x count).

Level sizes grow by 4: x2 needs many more levels (each paying its FFTs), x8 needs 14
partitions per level (more multiply-adds) and coarser spreading. Arithmetic is float64
throughout: the tail sums ~10^5 products per sample.

Work is scheduled on sample time, not on the host's blocks, so the output is identical for
every partition of the input into blocks; all buffers are preallocated and `process` makes
one numba call. Level 1 runs whole at every `B`-sample boundary (a few microseconds), so
with host blocks shorter than `B` every `B / n`-th block carries it. Spreading follows a
per-unit cost model (`_weight`), so per-block time still varies somewhat (at 3 s and
block 128, the worst block costs ~1.2x the median).
"""

from __future__ import annotations

import numba
import numpy as np

from timbrel.engine.offline.checks import finite_array
from timbrel.engine.realtime.kernels.fastmath import FASTMATH
from timbrel.engine.realtime.kernels.fft import (
    FFTTables,
    butterflies,
    pack_real,
    pack_spectrum,
    unpack_real,
    unpack_spectrum,
)

RATIO = 4
"""Partition size growth per level."""
MAX_PARTITIONS = 48
"""Most partitions a level may hold when it takes the IR's remaining taps (unless capped
by `max_levels`); by the cost model below, a new level is about as cheap from here on."""

# Per-sample cost of a level's FFTs (size 2N) and scheduling, in units of one partition's
# complex multiply-add per sample: measured ~45, ~40, ~45, ~60 for N = 512 … 32768
# (x86-64 AVX2, block 128); 4 * log2(2N) is a round fit. It decides whether the last
# level grows or a new one opens.
_FFT_COST_PER_LOG2 = 4.0

# Columns of the int64 level table: geometry, then buffer offsets into `spectra`, then the
# progress of the level's current chunk task (phase, unit within phase, work done, chunk).
_N, _LOG, _P, _START, _TICKS, _COST, _H, _FDL, _ACC, _WORK = range(10)
_PHASE, _UNIT, _DONE, _CHUNK = range(10, 14)
_COLUMNS = 14
# State vector: time in samples since reset, base partition, ring masks, FFT table size.
_T, _BASE, _IN_MASK, _OUT_MASK, _LOG_MAX = range(5)


def plan_levels(ir_length: int, base: int, max_levels: int | None = None) -> list[tuple[int, int, int]]:
    """FFT levels for an IR of `ir_length` taps: `(partition, first tap, partitions)` each.

    Taps `0 … base-1` are the direct head and not part of any level. `max_levels` caps
    the count (the last level then takes every remaining tap); 1 gives the classic
    single-level uniformly partitioned convolver.
    """
    levels: list[tuple[int, int, int]] = []
    size, start = base, base
    while start < ir_length:
        remaining = ir_length - start
        next_start = 2 * RATIO * size
        regular = (next_start - start) // size
        last = max_levels is not None and len(levels) + 1 >= max_levels
        if remaining <= regular * size or last or _extending_is_cheaper(size, regular, remaining - regular * size):
            levels.append((size, start, -(-remaining // size)))
            break
        levels.append((size, start, regular))
        size, start = size * RATIO, next_start
    return levels


def _extending_is_cheaper(size: int, regular: int, beyond: int) -> bool:
    """Whether `beyond` more taps cost less per sample as extra partitions of this level
    (of `size`, already holding `regular`) than as one new level four times larger."""
    bigger = RATIO * size
    extend = -(-beyond // size)
    if regular + extend > MAX_PARTITIONS:
        return False
    new_level = _FFT_COST_PER_LOG2 * np.log2(2 * bigger) + -(-beyond // bigger)
    return extend <= new_level


# A level's work for one chunk is a task of 9 phases, each a range of units that may be
# split anywhere: 0 pack the 2N input samples (bit-reversed), 1-2 forward butterflies
# (stages 0-3, which do not vectorise, then the rest), 3 split into the N+1 bins of the
# chunk's delay-line slot, 4 multiply-accumulate all partitions, 5 pack the sum for the
# inverse, 6-7 inverse butterflies, 8 add the last N samples (overlap-save) into the
# output ring.
_PHASES = 9


@numba.njit(nogil=True, cache=True, _nrt=False)
def _early_butterflies(n, log_m):
    return min(4, log_m) * (n // 2)


@numba.njit(nogil=True, cache=True, _nrt=False)
def _units(phase, n, log_m):
    """Units of work in `phase` for partition `n` (FFT size `2n`, `m = n` complex points)."""
    if phase == 0 or phase == 5:
        return n
    if phase == 1 or phase == 6:
        return _early_butterflies(n, log_m)
    if phase == 2 or phase == 7:
        return log_m * (n // 2) - _early_butterflies(n, log_m)
    if phase == 3:
        return n // 2 + 1
    if phase == 4:
        return n + 1
    return n // 2


@numba.njit(nogil=True, cache=True, _nrt=False)
def _weight(phase, partitions):
    """Time of one unit in ~0.1 ns, measured for N = 2048 … 32768 (x86-64 AVX2), so that
    spreading by cost gives even time per tick."""
    if phase == 0 or phase == 3:
        return 19
    if phase == 1 or phase == 6:
        return 13
    if phase == 2 or phase == 7:
        return 6
    if phase == 4:
        return 7 * partitions
    if phase == 5:
        return 37
    return 11


def _task_cost(n: int, log_m: int, partitions: int) -> int:
    """Total cost of one chunk task, in `_weight` units."""
    return sum(_units(p, n, log_m) * _weight(p, partitions) for p in range(_PHASES))


@numba.njit(nogil=True, cache=True, _nrt=False, fastmath=FASTMATH)
def _multiply_accumulate(spectra, acc, h_off, fdl_off, bins, partitions, chunk, b0, b1):
    """Bins `b0 … b1-1` of `acc = sum_p H_p X_(chunk-p)`, the FDL slot of chunk k being k mod P."""
    count = b1 - b0
    acc_r = spectra[0, acc + b0 : acc + b1]
    acc_i = spectra[1, acc + b0 : acc + b1]
    acc_r[:] = 0.0
    acc_i[:] = 0.0
    for p in range(partitions):
        h = h_off + p * bins + b0
        x = fdl_off + ((chunk - p) % partitions) * bins + b0
        hr = spectra[0, h : h + count]
        hi = spectra[1, h : h + count]
        xr = spectra[0, x : x + count]
        xi = spectra[1, x : x + count]
        for b in range(count):
            acc_r[b] += hr[b] * xr[b] - hi[b] * xi[b]
            acc_i[b] += hr[b] * xi[b] + hi[b] * xr[b]


@numba.njit(nogil=True, cache=True, _nrt=False)
def _advance(lv, level, target, state, in_ring, out_ring, spectra, bitrev, twiddles, real_twiddles):
    """Run the level's current chunk task until its work done reaches `target`."""
    n = lv[level, _N]
    log_m = lv[level, _LOG]
    parts = lv[level, _P]
    chunk = lv[level, _CHUNK]
    work = lv[level, _WORK]
    log_max = state[_LOG_MAX]
    shift = log_max - log_m
    phase = lv[level, _PHASE]
    unit = lv[level, _UNIT]
    done = lv[level, _DONE]
    while done < target and phase < _PHASES:
        count = _units(phase, n, log_m)
        w = _weight(phase, parts)
        stop = min(count, unit + (target - done + w - 1) // w)
        if phase == 0:
            pack_real(in_ring, (chunk - 1) * n, state[_IN_MASK], spectra, work, bitrev, shift, unit, stop)
        elif phase == 1 or phase == 6:
            butterflies(spectra, work, twiddles, log_m, unit, stop)
        elif phase == 2 or phase == 7:
            early = _early_butterflies(n, log_m)
            butterflies(spectra, work, twiddles, log_m, early + unit, early + stop)
        elif phase == 3:
            slot = lv[level, _FDL] + (chunk % parts) * (n + 1)
            unpack_real(spectra, work, real_twiddles, shift, n, spectra, slot, unit, stop)
        elif phase == 4:
            _multiply_accumulate(
                spectra, lv[level, _ACC], lv[level, _H], lv[level, _FDL], n + 1, parts, chunk, unit, stop
            )
        elif phase == 5:
            pack_spectrum(spectra, lv[level, _ACC], real_twiddles, shift, n, spectra, work, bitrev, unit, stop)
        else:
            # Overlap-save keeps the second half (samples n … 2n-1 = units m/2 … m-1) of the
            # inverse FFT; sample n lands on time chunk*n + start.
            first = chunk * n + lv[level, _START] - n
            unpack_spectrum(
                spectra, work, 1.0 / n, out_ring, first, state[_OUT_MASK], True, n // 2 + unit, n // 2 + stop
            )
        done += (stop - unit) * w
        unit = stop
        if unit == count:
            phase += 1
            unit = 0
    lv[level, _PHASE] = phase
    lv[level, _UNIT] = unit
    lv[level, _DONE] = done


@numba.njit(nogil=True, cache=True, _nrt=False)
def _tick(t, lv, state, in_ring, out_ring, spectra, bitrev, twiddles, real_twiddles):
    """At a chunk boundary `t` (a multiple of the base partition), start and advance tasks.

    A level of partition `n` starts the task for chunk `t/n - 1` when `t` is a multiple of
    `n` and completes it within its `n / base` ticks. Chunk -1 (at t = 0) is all zeros.
    """
    base = state[_BASE]
    for level in range(lv.shape[0]):
        n = lv[level, _N]
        r = t & (n - 1)
        if r == 0:
            lv[level, _CHUNK] = t // n - 1
            lv[level, _PHASE] = 0
            lv[level, _UNIT] = 0
            lv[level, _DONE] = 0
        target = ((r // base + 1) * lv[level, _COST]) // lv[level, _TICKS]
        _advance(lv, level, target, state, in_ring, out_ring, spectra, bitrev, twiddles, real_twiddles)


@numba.njit(nogil=True, cache=True, _nrt=False, fastmath=FASTMATH)
def _process(
    x, out, n, mix, state, lv, head_rev, hist, scratch, in_ring, out_ring, spectra, bitrev, twiddles, real_twiddles
):
    """Render `out[:n]` from `x[:n]`, in segments that never cross a base-partition boundary.

    At each boundary the levels' tasks advance (`_tick`); then, per sample, the head taps
    run directly over `hist` (the last `taps - 1` inputs, then the current chunk) and the
    levels' contribution is taken from `out_ring`. All of `x[:n]` of a segment is read
    before `out` is written, so `out` may be `x`.
    """
    t = state[_T]
    base = state[_BASE]
    in_mask = state[_IN_MASK]
    out_mask = state[_OUT_MASK]
    taps = head_rev.shape[0]
    lag = taps - 1
    dry = 1.0 - mix
    i = 0
    while i < n:
        c = t & (base - 1)
        if c == 0:
            _tick(t, lv, state, in_ring, out_ring, spectra, bitrev, twiddles, real_twiddles)
        seg = min(n - i, base - c)
        for s in range(seg):
            v = np.float64(x[i + s])
            hist[lag + c + s] = v
            in_ring[(t + s) & in_mask] = v
            k = (t + s) & out_mask
            scratch[s] = out_ring[k]
            out_ring[k] = 0.0
        for s in range(seg):
            window = hist[c + s : c + s + taps]
            acc = 0.0
            for m in range(taps):
                acc += head_rev[m] * window[m]
            scratch[s] += acc
        for s in range(seg):
            out[i + s] = np.float32(dry * hist[lag + c + s] + mix * scratch[s])
        t += seg
        i += seg
        if (t & (base - 1)) == 0:
            for m in range(lag):
                hist[m] = hist[base + m]
    state[_T] = t


def _level_table(levels: list[tuple[int, int, int]], base: int) -> tuple[np.ndarray, int]:
    """The int64 level table `[levels, _COLUMNS]` and the length of `spectra` it lays out.

    Per level, in `spectra`: `P` partition spectra, `P` delay-line slots, an accumulator
    (each `N + 1` bins) and `N` points of FFT work space.
    """
    table = np.zeros((len(levels), _COLUMNS), dtype=np.int64)
    offset = 0
    for row, (size, start, parts) in zip(table, levels):
        log_m = size.bit_length() - 1
        bins = size + 1
        row[[_N, _LOG, _P, _START, _TICKS]] = size, log_m, parts, start, size // base
        row[_COST] = _task_cost(size, log_m, parts)
        row[_H] = offset
        row[_FDL] = offset + parts * bins
        row[_ACC] = offset + 2 * parts * bins
        row[_WORK] = offset + (2 * parts + 1) * bins
        offset = row[_WORK] + size
    table[:, _PHASE] = _PHASES
    return table, offset


def _partition_spectra(h: np.ndarray, size: int, start: int, parts: int) -> np.ndarray:
    """`rfft` of each `size`-tap partition of `h` from tap `start`, zero-padded to `2 size`:
    complex `[parts * (size + 1)]`."""
    taps = np.zeros(parts * size)
    segment = h[start : start + parts * size]
    taps[: segment.size] = segment
    blocks = np.zeros((parts, 2 * size))
    blocks[:, :size] = taps.reshape(parts, size)
    return np.fft.rfft(blocks, axis=1).reshape(-1)


class Convolver:
    """Streaming zero-latency convolution of a mono signal with an impulse response.

    `y = (1 - mix) * x + mix * (x * h)`, equal to `timbrel.engine.offline.reverb.reverb` for every
    partition of the input into blocks (within 1e-6; float64 inside, float32 out).

    `impulse_response`: `[taps]`, any length >= 1 (3 s at 48 kHz = 144000 taps is the
    design point). `max_block`: the longest block `process` accepts, in samples.
    `base_partition`: head length and smallest FFT partition, in samples (a power of two
    >= 16); it sets the tick on which work is scheduled, not a latency. `max_levels` caps
    the FFT levels (1 = single-level uniformly partitioned, for comparison).
    """

    latency_samples = 0

    def __init__(
        self,
        impulse_response: np.ndarray,
        max_block: int,
        mix: float = 1.0,
        *,
        base_partition: int = 128,
        max_levels: int | None = None,
    ) -> None:
        h = finite_array("impulse_response", impulse_response)
        if h.ndim != 1 or h.size == 0:
            raise ValueError(f"impulse_response must be a non-empty 1-D array, got shape {h.shape}")
        if int(max_block) != max_block or max_block < 1:
            raise ValueError(f"max_block must be a positive whole number of samples, got {max_block}")
        if base_partition < 16 or base_partition & (base_partition - 1):
            raise ValueError(f"base_partition must be a power of two >= 16 samples, got {base_partition}")
        if max_levels is not None and max_levels < 1:
            raise ValueError(f"max_levels must be >= 1, got {max_levels}")
        self.max_block = int(max_block)
        self.base_partition = base_partition
        self.mix = mix
        self.levels = plan_levels(h.size, base_partition, max_levels)

        self._head_rev = np.ascontiguousarray(h[: min(base_partition, h.size)][::-1])
        self._hist = np.zeros(self._head_rev.size - 1 + base_partition)
        self._scratch = np.zeros(base_partition)

        largest = max((size for size, _, _ in self.levels), default=base_partition)
        reach = max((start + size for size, start, _ in self.levels), default=1)
        self._tables = FFTTables(2 * largest)
        # A task reads input [(k-1)N, (k+1)N) while up to N more samples arrive: 3N would
        # do, 4N keeps the mask a power of two. Output is written at most `start + N`
        # samples ahead of the time it is read.
        self._in_ring = np.zeros(4 * largest)
        self._out_ring = np.zeros(1 << (reach - 1).bit_length())
        self._state = np.array(
            [0, base_partition, self._in_ring.size - 1, self._out_ring.size - 1, self._tables.log_max], dtype=np.int64
        )

        self._lv, length = _level_table(self.levels, base_partition)
        self._spectra = np.zeros((2, length))
        for row, (size, start, parts) in zip(self._lv, self.levels):
            spectrum = _partition_spectra(h, size, start, parts)
            self._spectra[:, row[_H] : row[_FDL]] = spectrum.real, spectrum.imag
        t = self._tables
        self._buffers = (
            self._state, self._lv, self._head_rev, self._hist, self._scratch, self._in_ring, self._out_ring,
            self._spectra, t.bitrev, t.twiddles, t.real_twiddles,
        )
        self.reset()

    @property
    def mix(self) -> float:
        """Wet/dry balance in [0, 1]; may change between blocks."""
        return self._mix

    @mix.setter
    def mix(self, value: float) -> None:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"mix must be in [0, 1], got {value}")
        self._mix = float(value)

    def reset(self) -> None:
        """Forget all input: the next sample is treated as the first of the stream."""
        self._hist[:] = 0.0
        self._in_ring[:] = 0.0
        self._out_ring[:] = 0.0
        for row in self._lv:
            h_end = row[_FDL]
            self._spectra[:, h_end : row[_WORK] + row[_N]] = 0.0
        self._lv[:, _PHASE] = _PHASES
        for column in (_UNIT, _DONE, _CHUNK):
            self._lv[:, column] = 0
        self._state[_T] = 0

    def copy_state_from(self, other: Convolver) -> None:
        """Take `other`'s input history and pending output, so that both convolve on as one
        (`other` must play the same impulse response at the same block size). Copies, allocates nothing."""
        for name in ("_state", "_lv", "_hist", "_scratch", "_in_ring", "_out_ring", "_spectra"):
            np.copyto(getattr(self, name), getattr(other, name))

    def process(self, x: np.ndarray, out: np.ndarray) -> None:
        """Convolve the next block `x` float32 `[n]` into `out[:n]` (float32 `[>= n]`).

        `n` may be 0 … `max_block` and vary per call. `out` may be `x` itself (in place);
        partly overlapping views are not supported. Allocates no arrays: one numba call.
        """
        n = x.shape[0]
        if n > self.max_block or out.shape[0] < n:
            raise ValueError(f"block of {n} samples exceeds max_block {self.max_block} or out {out.shape[0]}")
        if x.dtype != np.float32 or out.dtype != np.float32:
            raise TypeError("process needs float32 x and out")
        _process(x, out, n, self._mix, *self._buffers)
