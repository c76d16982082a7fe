"""The engine's block back to back and paced as live: where a loop benchmark and the live process part.

    python -m bench.bench_paced [--seconds 10] [--preset Violin]

The preset's chain, built as `timbrel play` builds it (MIDI mode, 16 voices, 64 for the
64-note case), holds the notes `bench_process` plays (pedal down) and runs `Engine.process`
on 128-sample blocks at 48 kHz on one thread, under the live runtime policy, in two ways:

- back to back, as a loop benchmark does;
- paced: once per block period, the thread asleep until the period's next deadline, as an
  audio callback is woken by JACK.

Each block's CPU time is the thread's own (`time.thread_time_ns`), so a loaded machine
lengthens neither figure by waiting. No JACK, no PortAudio, no other thread: if the paced
figure matches the live process's block (`process.json`, `block_cpu_median_us`), the gap to
the loop is the cost of running 2.7 ms apart (caches and predictors that other work used
meanwhile), not the I/O layers. Writes bench/results/paced.json.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from bench.report import RESULTS, report
from timbrel.cli.options import chain_for
from timbrel.engine.realtime.host import Engine
from timbrel.runtime_policy import RealtimePolicy

SR, BLOCK = 48000, 128
PERIOD_NS = BLOCK * 1_000_000_000 // SR


def notes(count: int) -> list[int]:
    """The keys `bench_process` holds for `count` notes."""
    return [36 + i if count > 16 else 48 + 2 * i for i in range(count)]


def block_cpu_us(engine: Engine, blocks: int, paced: bool) -> np.ndarray:
    """CPU time (µs) of each of `blocks` calls of `engine.process`."""
    out = np.zeros((BLOCK, 2), dtype=np.float32)
    times = np.empty(blocks)
    deadline = time.monotonic_ns()
    for i in range(blocks):
        if paced:
            deadline += PERIOD_NS
            pause = deadline - time.monotonic_ns()
            if pause > 0:
                time.sleep(pause / 1e9)
        t0 = time.thread_time_ns()
        engine.process(None, out)
        times[i] = (time.thread_time_ns() - t0) / 1e3
    return times


def measure(preset: str, count: int, seconds: float) -> dict:
    engine = Engine(SR, BLOCK)
    engine.load(chain_for(preset, "midi", voices=64 if count > 16 else 16))
    engine.events.push(0xB0 | 64 << 8 | 127 << 16)
    for key in notes(count):
        engine.events.push(0x90 | key << 8 | 80 << 16)
    blocks = int(seconds * SR / BLOCK)
    block_cpu_us(engine, 400, paced=False)
    loop = block_cpu_us(engine, blocks, paced=False)
    paced = block_cpu_us(engine, blocks, paced=True)
    return {"notes": count, "loop_median_us": float(np.median(loop)), "loop_p99_us": float(np.percentile(loop, 99)),
            "paced_median_us": float(np.median(paced)), "paced_p99_us": float(np.percentile(paced, 99)),
            "paced_over_loop": float(np.median(paced) / np.median(loop))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of blocks per way of calling")
    parser.add_argument("--preset", default="Violin")
    args = parser.parse_args()
    live = {}
    if (RESULTS / "process.json").is_file():
        live = {row["scenario"]: row.get("block_cpu_median_us") for row in json.loads((RESULTS / "process.json").read_text())["rows"]}
    rows = []
    with RealtimePolicy():
        for name, count in (("idle", 0), ("1", 1), ("16", 16), ("64", 64)):
            row = {"scenario": name, **measure(args.preset, count, args.seconds)}
            if live.get(name):
                row["live_process_block_median_us"] = live[name]
            rows.append(row)
    report("paced", rows, preset=args.preset, sample_rate=SR, block=BLOCK,
           note="CPU µs per block on one thread; live_process_block_median_us: bench_process's figure "
                "from bench/results/process.json, when present (measured separately)")


if __name__ == "__main__":
    main()
