"""What the machine itself charges to a thread: a fixed workload, timed by its own CPU time.

    python -m bench.cpu_noise [--seconds 120] [--work-us 400] [--touch-mb 0]

A thread wakes every 2.667 ms (a 128-sample block at 48 kHz), as an audio callback does,
and runs the same numba loop each time (about `--work-us` µs of arithmetic, no memory
traffic, no allocation, no Python in the loop). Its CPU time per wake-up should be the same
every time; any wake-up whose CPU time exceeds a block's duration was charged time that the
work did not use. On this kind of machine (a Firecracker VM whose kernel has
CONFIG_IRQ_TIME_ACCOUNTING off) interrupt and softirq work that runs while the thread is on
the CPU is charged to the thread. The engine's own late-block count, which uses the same
clock, is read beside this figure. `--touch-mb N` also writes one value into each 4 KiB page
of N MiB at every wake-up, before the loop: a working set spread over pages as the engine's
is (its rooms' spectra alone are 13 MB for 8 parts), at a few µs of work, so that charges which
land on threads touching many pages show apart from those that land on any thread. Writes
bench/results/cpu-noise.json.

`NoiseWitness` runs the same loop in a process of its own beside a test or a benchmark, so
that the blocks the machine made late in that very run are measured, not assumed;
`NoiseWitness(touch_mb=N)` is the page-touching witness.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Self

import numba
import numpy as np

from bench.report import report
from timbrel.engine.realtime.stages import CPU

BLOCK_S = 128 / 48000
BLOCK_US = BLOCK_S * 1e6
WITNESS_NICENESS = 10
"""The witness yields the cores to the audio threads: its CPU time, not its share, is what counts."""


@numba.njit(nogil=True, cache=True, _nrt=False)
def spin(iterations: int) -> float:
    """A fixed amount of floating-point work with no memory traffic."""
    x = 0.5
    for i in range(iterations):
        x = x * 0.9999999 + 1e-9 * (i & 7)
    return x


@numba.njit(nogil=True, cache=True, _nrt=False)
def touch(pages: np.ndarray) -> None:
    """Write one float into each 4 KiB page of `pages` (float64): a working set spread as the
    engine's is, at almost no cost in arithmetic or bandwidth."""
    for i in range(0, pages.size, 512):
        pages[i] += 1.0


def calibrate(work_us: float) -> int:
    """Iterations of `spin` that take about `work_us` µs of CPU time here."""
    spin(1000)
    iterations = 100_000
    began = time.thread_time_ns()
    spin(iterations)
    took = time.thread_time_ns() - began
    return max(1000, int(iterations * work_us * 1e3 / max(took, 1)))


def watch(seconds: float, iterations: int, stop: list[bool] | None = None, touch_mb: int = 0) -> np.ndarray:
    """Wake every block period for `seconds` (or until `stop[0]` is set), run `iterations` of
    `spin` each time (`calibrate`), and `touch` `touch_mb` MiB of pages first when asked;
    returns each wake-up's own CPU time, µs, `[wakeups]` float64."""
    cpu_ns: list[int] = []
    pages = np.full(touch_mb << 17, 0.0) if touch_mb else None
    if pages is not None:
        touch(pages)  # compiled or loaded, and the pages mapped, before the first count
    deadline = time.monotonic() + seconds
    wake = time.monotonic()
    while wake < deadline and not (stop and stop[0]):
        began = time.thread_time_ns()
        if pages is not None:
            touch(pages)
        spin(iterations)
        cpu_ns.append(time.thread_time_ns() - began)
        wake += BLOCK_S
        time.sleep(max(0.0, wake - time.monotonic()))
    return np.array(cpu_ns, dtype=np.float64) / 1e3


@dataclass(frozen=True)
class Witnessed:
    """What the witness saw: its wake-ups, their total CPU time (s), the median wake-up (µs),
    and every wake-up's CPU time beyond that median (µs), largest first, where over 100 µs."""

    wakeups: int
    cpu_s: float
    work_median_us: float
    excess_us: tuple[float, ...]

    def late_blocks_explained(self, engine_cpu_s: float, engine_block_us: float) -> float:
        """Blocks of an engine that the machine alone would have made late over the same span:
        the witness's wake-ups charged more than the engine's slack (a block's duration less
        `engine_block_us`, the engine's median block CPU time), scaled from the witness's CPU
        time to the engine's, `engine_cpu_s`. The machine charges whichever thread is on the
        CPU, so the engine meets its charges in proportion to the time it runs."""
        slack = BLOCK_US - engine_block_us
        charged = sum(1 for excess in self.excess_us if excess > slack)
        return charged * engine_cpu_s / max(self.cpu_s, 1e-9)

    def rate(self, size_us: float) -> float:
        """Charges of `size_us` µs or more beyond the median wake-up, per second of its CPU time."""
        return sum(1 for excess in self.excess_us if excess >= size_us) / max(self.cpu_s, 1e-9)

    def explains(self, rows: np.ndarray) -> float:
        """`late_blocks_explained` for the engine's `rows` (`StageTimes.snapshot`, the same span)."""
        cpu_us = rows[:, CPU] / 1e3
        return self.late_blocks_explained(float(cpu_us.sum() / 1e6), float(np.median(cpu_us))) if cpu_us.size else 0.0

    def describe(self) -> str:
        """One line for a report."""
        top = ", ".join(f"{x:.0f}" for x in self.excess_us[:5])
        return (f"noise witness: {self.wakeups} wake-ups, {self.cpu_s:.2f} s CPU, median {self.work_median_us:.0f} µs, "
                f"largest charges beyond it {top or 'none'} µs")


class NoiseWitness:
    """`with NoiseWitness() as witness:` runs `python -m bench.cpu_noise --witness` (niced) for
    the block; afterwards `witness.seen` holds what it measured (`Witnessed`)."""

    def __init__(self, work_us: float = 400.0, touch_mb: int = 0):
        self.work_us = work_us
        self.touch_mb = touch_mb
        self.seen: Witnessed | None = None
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> Self:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.cpu_noise", "--witness", "--work-us", str(self.work_us),
             "--touch-mb", str(self.touch_mb)],
            cwd=root, stdout=subprocess.PIPE, text=True)
        ready = self._process.stdout.readline()
        if ready.strip() != "watching":
            self._process.kill()
            raise RuntimeError(f"the noise witness did not start: {ready!r}")
        return self

    def __exit__(self, *_exc: object) -> None:
        process, self._process = self._process, None
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=30)
        seen = json.loads(out)
        self.seen = Witnessed(seen["wakeups"], seen["cpu_s"], seen["work_median_us"], tuple(seen["excess_us"]))


def witness(work_us: float, touch_mb: int = 0) -> None:
    """Watch until SIGTERM (touching `touch_mb` MiB of pages at each wake-up), then print what
    was seen as one JSON object (`Witnessed`'s fields)."""
    os.nice(WITNESS_NICENESS)
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    iterations = calibrate(work_us)
    print("watching", flush=True)
    cpu = watch(math.inf, iterations, stop, touch_mb)
    median = float(np.median(cpu)) if cpu.size else 0.0
    excess = np.sort(cpu - median)[::-1]
    print(json.dumps({"wakeups": int(cpu.size), "cpu_s": float(cpu.sum() / 1e6), "work_median_us": median,
                      "excess_us": [round(float(x), 1) for x in excess[excess > 100.0]]}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--work-us", type=float, default=400.0)
    parser.add_argument("--touch-mb", type=int, default=0,
                        help="also write one value into each page of this many MiB at each wake-up")
    parser.add_argument("--witness", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.witness:
        witness(args.work_us, args.touch_mb)
        return
    cpu = watch(args.seconds, calibrate(args.work_us), touch_mb=args.touch_mb)
    row = {"wakeups": int(cpu.size), "work_median_us": float(np.median(cpu)), "p99_us": float(np.percentile(cpu, 99)),
           "max_us": float(cpu.max()), "over_half_block": int((cpu > BLOCK_US / 2).sum()),
           "seconds_of_spikes": [round(float(i) * BLOCK_S, 1) for i in np.flatnonzero(cpu > BLOCK_US)],
           "over_a_block": int((cpu > BLOCK_US).sum()), "max_share_of_block": float(cpu.max() / BLOCK_US)}
    report("cpu-noise", [row], seconds=args.seconds, block_us=BLOCK_US,
           note="one fixed workload per 2.667 ms wake-up, timed by the thread's own CPU time")


if __name__ == "__main__":
    main()
