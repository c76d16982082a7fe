"""What the machine itself charges to a thread: a fixed workload, timed by its own CPU time.

    python -m bench.cpu_noise [--seconds 120] [--work-us 400]

A thread wakes every 2.667 ms (a 128-sample block at 48 kHz), as an audio callback does,
and runs the same numba loop each time (about `--work-us` µs of arithmetic, no memory
traffic, no allocation, no Python in the loop). Its CPU time per wake-up should be the same
every time; any wake-up whose CPU time exceeds a block's duration was charged time that the
work did not use. On this kind of machine (a Firecracker VM whose kernel has
CONFIG_IRQ_TIME_ACCOUNTING off) interrupt and softirq work that runs while the thread is on
the CPU is charged to the thread. The engine's own late-block count, which uses the same
clock, is read beside this figure. Writes bench/results/cpu-noise.json.
"""

from __future__ import annotations

import argparse
import threading
import time

import numba
import numpy as np

from bench.report import report

BLOCK_S = 128 / 48000


@numba.njit(nogil=True, cache=True, _nrt=False)
def spin(iterations: int) -> float:
    """A fixed amount of floating-point work with no memory traffic."""
    x = 0.5
    for i in range(iterations):
        x = x * 0.9999999 + 1e-9 * (i & 7)
    return x


def calibrate(work_us: float) -> int:
    spin(1000)
    iterations = 100_000
    began = time.thread_time_ns()
    spin(iterations)
    took = time.thread_time_ns() - began
    return max(1000, int(iterations * work_us * 1e3 / max(took, 1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--work-us", type=float, default=400.0)
    args = parser.parse_args()
    iterations = calibrate(args.work_us)
    cpu_ns: list[int] = []

    def run() -> None:
        deadline = time.monotonic() + args.seconds
        wake = time.monotonic()
        while wake < deadline:
            began = time.thread_time_ns()
            spin(iterations)
            cpu_ns.append(time.thread_time_ns() - began)
            wake += BLOCK_S
            time.sleep(max(0.0, wake - time.monotonic()))

    thread = threading.Thread(target=run, name="cpu-noise")
    thread.start()
    thread.join()
    cpu = np.array(cpu_ns) / 1e3
    budget_us = BLOCK_S * 1e6
    row = {"wakeups": int(cpu.size), "work_median_us": float(np.median(cpu)), "p99_us": float(np.percentile(cpu, 99)),
           "max_us": float(cpu.max()), "over_half_block": int((cpu > budget_us / 2).sum()),
           "seconds_of_spikes": [round(float(i) * BLOCK_S, 1) for i in np.flatnonzero(cpu > budget_us)],
           "over_a_block": int((cpu > budget_us).sum()), "max_share_of_block": float(cpu.max() / budget_us)}
    report("cpu-noise", [row], seconds=args.seconds, block_us=budget_us,
           note="one fixed workload per 2.667 ms wake-up, timed by the thread's own CPU time")


if __name__ == "__main__":
    main()
