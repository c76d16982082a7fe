"""Where each audio block's time goes, stage by stage, kept for the last few thousand blocks.

The audio thread marks the end of each stage it runs (`mark`); the time since the previous
mark (the wall clock, `time.perf_counter_ns`) goes to that stage's column of the block's
row in a preallocated ring. `Engine.process` opens each row (`begin`) and closes it with the
block's own CPU time (`end`). Nothing is allocated: a mark is one clock read and one
integer added into the ring. Readers (benchmarks, the control surface) copy the ring with
`snapshot` from any thread; a row being written meanwhile may tear, which a statistic of
thousands of rows does not mind.

One ring per process: there is one audio thread. Offline renders and tests that drive an
engine from their own thread write into it too.
"""

from __future__ import annotations

import time

import numpy as np

STAGES = ("drain", "swap", "features", "voices", "model", "synth", "instrument_tail",
          "effect_0", "effect_1", "effect_2", "effect_3", "effect_4", "effect_5", "effect_6", "effect_7",
          "crossfade", "limiter", "meters")
"""Stages, in the order a block runs them. `drain`: the MIDI queue and the keyboard state;
`swap`: adopting a newly loaded chain and replaying held keys into it; `features`: live
transfer's pitch tracker and loudness meter on the input; `voices`: note
handling and the control frame's voice logic; `model`: the onnxruntime call; `synth`: the
numba synthesis of every voice; `instrument_tail`: the instrument's reverb and output gain;
`effect_N`: the chain's Nth effect slot; `crossfade`: the outgoing chain during a switch;
`limiter`: the output limiter, the scope and the copy to the device's buffer; `meters`: the
engine's counters. While a switch crossfades, the outgoing chain's
stages add into the same columns, and `crossfade` holds the mixing alone."""
COLUMNS = (*STAGES, "wall", "cpu", "start")
"""Per-stage wall-clock nanoseconds, then the whole block's wall and CPU nanoseconds, and how
late its callback began against the server's cycle (`timbrel.engine.io.audio.AudioStream`
schedules the cycles; 0 when no stream calls the engine)."""
EFFECT_0 = STAGES.index("effect_0")
MAX_EFFECTS = 8
BLOCKS = 8192
"""Rows kept: 22 s of blocks at 48 kHz / 128."""

_index = {name: i for i, name in enumerate(COLUMNS)}
DRAIN, SWAP, FEATURES, VOICES, MODEL, SYNTH, INSTRUMENT_TAIL, CROSSFADE, LIMITER, METERS = (
    _index[name] for name in ("drain", "swap", "features", "voices", "model", "synth", "instrument_tail",
                              "crossfade", "limiter", "meters"))
WALL, CPU, START = _index["wall"], _index["cpu"], _index["start"]


class StageTimes:
    """A ring of `[BLOCKS, len(COLUMNS)]` int64 nanoseconds and the row being written."""

    def __init__(self, blocks: int = BLOCKS):
        self.ring = np.full((blocks, len(COLUMNS)), 0, dtype=np.int64)
        """Written through here (`np.full`, not `np.zeros`): the kernel maps a large zeroed
        array's pages at their first write, and a page fault is a trip into the kernel on the
        audio thread (on a VM, the host may have to map the page as well)."""
        self.blocks = 0
        """Rows written since the start (the current row is `blocks % len(ring)`)."""
        self._row = self.ring[0]
        self._last = 0
        self._start = 0
        self.worst = np.zeros(len(COLUMNS), dtype=np.int64)
        """The row of the block that used the most CPU time since `clear`: where a spike went."""
        self.start_late_ns = 0
        """How late the coming block's callback began (the audio stream sets it, `begin` takes it)."""

    def begin(self) -> None:
        """Open a new row (audio thread, at the start of a block)."""
        self._row = self.ring[self.blocks % self.ring.shape[0]]
        self._row[:] = 0
        self._row[START] = self.start_late_ns
        self.start_late_ns = 0
        self._start = self._last = time.perf_counter_ns()

    def mark(self, stage: int) -> None:
        """Charge the time since the previous mark to column `stage` (audio thread)."""
        now = time.perf_counter_ns()
        self._row[stage] += now - self._last
        self._last = now

    def end(self, cpu_ns: int) -> None:
        """Close the row with the block's wall time and its own CPU time `cpu_ns` (audio thread)."""
        self._row[WALL] = time.perf_counter_ns() - self._start
        self._row[CPU] = cpu_ns
        if cpu_ns > self.worst[CPU]:
            self.worst[:] = self._row
        self.blocks += 1

    def snapshot(self) -> np.ndarray:
        """A copy of the rows written, oldest first: `[rows, len(COLUMNS)]` int64 ns (any thread)."""
        return self.since(0)

    def since(self, blocks: int) -> np.ndarray:
        """A copy of the rows written after the first `blocks` (a former `self.blocks`), oldest
        first, at most the ring's length of them (any thread)."""
        size = self.ring.shape[0]
        now = self.blocks
        count = min(max(now - blocks, 0), size)
        return np.take(self.ring, np.arange(now - count, now) % size, axis=0)

    def clear(self) -> None:
        """Forget the rows written and the worst block (not from the audio thread)."""
        self.blocks = 0
        self.worst[:] = 0


TIMES = StageTimes()
"""The process's ring."""


def summary(rows: np.ndarray) -> dict[str, dict[str, float]]:
    """Median, 99th percentile and maximum of each column over `rows` (from `snapshot`), in µs;
    stages that never ran are left out."""
    out = {}
    for i, name in enumerate(COLUMNS):
        column = rows[:, i] / 1000.0
        if rows.shape[0] and column.max() > 0:
            out[name] = {"median_us": float(np.median(column)), "p99_us": float(np.percentile(column, 99)),
                         "max_us": float(column.max())}
    return out


def breakdown(row: np.ndarray) -> dict[str, float]:
    """One row (as `StageTimes.worst`) as stage -> µs, leaving out stages that did not run."""
    return {name: float(row[i]) / 1000.0 for i, name in enumerate(COLUMNS) if row[i]}


def describe(row: np.ndarray) -> str:
    """One row as a line for a report: "drain 1, voices 30, …" (µs, stages that ran)."""
    return ", ".join(f"{name} {us:.0f}" for name, us in breakdown(row).items())
