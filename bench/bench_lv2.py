"""LV2 plugins against timbrel's built-in effects, per block at 48 kHz, block 128, in one run.

    python -m bench.bench_lv2 [--blocks N]

Each pair (an LV2 plugin from Debian and the built-in effect that does the same job) processes
the same stereo noise in place, block after block, as the chain calls it. The table gives the
median and p99 CPU time of the calling thread per block (CPU time, not wall time: the
machines these run on are shared), the wall-clock median, and the mean share of one core.
Then the cost of crossing into a plugin: one ctypes call through a plugin's own function
pointer (`connect_port`, which only stores a pointer), and a whole `LV2Effect.process` around
a plugin that does nothing (x42 nodelay at 0 samples: the host's own work per block).
Writes bench/results/lv2.json.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench.bench_effects import effect_step
from bench.report import report
from timbrel.plugin.effects import create_effect

SR, BLOCK = 48000, 128
BUDGET_US = BLOCK / SR * 1e6
PAIRS = (
    ("eq", {"peak1_db": -4.0, "peak2_db": 5.0, "low_shelf_db": 3.0, "high_shelf_db": -3.0},
     "lv2:http://gareus.org/oss/lv2/fil4#stereo", {"gain1": -4.0, "gain3": 5.0, "LSgain": 3.0, "HSgain": -3.0}),
    ("compressor", {"threshold_db": -24.0, "ratio": 4.0},
     "lv2:http://gareus.org/oss/lv2/darc#stereo", {"threshold": -24.0, "Ratio": 0.75}),
    ("limiter", {"ceiling_db": -1.0},
     "lv2:http://gareus.org/oss/lv2/dpl#stereo", {"threshold": -1.0}),
    ("reverb", {"mix": 0.3},
     "lv2:urn:dragonfly:room", {"dry_level": 70.0, "late_level": 30.0}),
)
"""(built-in, its settings, LV2 plugin, its settings): the same job done both ways."""
NULL_PLUGIN = "lv2:http://gareus.org/oss/lv2/nodelay"


def time_blocks(step, blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-call CPU and wall time (µs) of `step()` over `blocks` calls, after 200 warm-up calls."""
    for _ in range(200):
        step()
    cpu, wall = np.empty(blocks), np.empty(blocks)
    for i in range(blocks):
        c0, w0 = time.thread_time_ns(), time.perf_counter_ns()
        step()
        cpu[i], wall[i] = (time.thread_time_ns() - c0) / 1e3, (time.perf_counter_ns() - w0) / 1e3
    return cpu, wall


def effect_row(name: str, settings: dict, blocks: int, noise: np.ndarray, job: str) -> dict:
    effect, step = effect_step(name, settings, noise)
    cpu, wall = time_blocks(step, blocks)
    return {"job": job, "effect": effect.name, "median_cpu_us": float(np.median(cpu)),
            "p99_cpu_us": float(np.percentile(cpu, 99)), "median_wall_us": float(np.median(wall)),
            "core_share_pct": 100 * float(np.mean(cpu)) / BUDGET_US, "latency_samples": effect.latency_samples}


def ctypes_call_us(calls: int) -> float:
    """Median CPU time (µs) of one ctypes call into a plugin (`connect_port`, which only stores a pointer)."""
    effect = create_effect(NULL_PLUGIN)
    effect.prepare(SR, BLOCK)
    instance = effect._instances[0]
    port, address = effect.description.audio_inputs[0], effect._audio_in[0, 0].ctypes.data
    connect, handle = instance.connect_port, instance.handle

    def hundred() -> None:
        for _ in range(100):
            connect(handle, port, address)

    cpu, _ = time_blocks(hundred, calls // 100)
    return float(np.median(cpu)) / 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=5000)
    args = parser.parse_args()
    noise = (0.2 * np.random.default_rng(0).standard_normal((2, SR * 4))).astype(np.float32)
    rows = []
    for builtin, builtin_settings, lv2, lv2_settings in PAIRS:
        ours = effect_row(builtin, builtin_settings, args.blocks, noise, builtin)
        theirs = effect_row(lv2, lv2_settings, args.blocks, noise, builtin)
        theirs["lv2_over_builtin"] = theirs["median_cpu_us"] / ours["median_cpu_us"]
        rows += [ours, theirs]
    null = effect_row(NULL_PLUGIN, {}, args.blocks, noise, "host overhead")
    rows.append(null)
    call_us = ctypes_call_us(100 * args.blocks)
    rows.append({"job": "one ctypes call", "effect": "connect_port", "median_cpu_us": call_us})
    report("lv2", rows, sample_rate=SR, block=BLOCK, pairs=[(p[0], p[2]) for p in PAIRS],
           host_overhead_us=null["median_cpu_us"], ctypes_call_us=call_us)


if __name__ == "__main__":
    main()
