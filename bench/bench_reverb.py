"""Per-block cost of the streaming reverb at 48 kHz, block 128 samples.

Run: `.venv/bin/python bench/bench_reverb.py`. Prints a table and writes
`bench/results/reverb.json`. Times are wall-clock per `process` call (perf_counter_ns)
after a warm-up that compiles the kernels and fills every level's pipeline.

The work schedule repeats every `largest partition / 128` blocks, so the same stretch of
blocks is timed in several passes and each block keeps its fastest pass: this "steady"
profile is what the convolver itself costs, with the preemption spikes of a shared
machine removed. Raw statistics over all passes are reported too.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from timbrel.engine.realtime.kernels.convolution import Convolver

SAMPLE_RATE = 48000
BLOCK = 128
IR_SECONDS = (0.1, 0.3, 1.0, 3.0)
PERIOD_BLOCKS = 1024
"""Blocks per pass: a multiple of every level's schedule period (partitions up to 128 K)."""


def decaying_noise_ir(seconds: float, seed: int = 0) -> np.ndarray:
    """Exponentially decaying noise, -60 dB at the end, unit energy: `[taps]`."""
    taps = int(round(seconds * SAMPLE_RATE))
    rng = np.random.default_rng(seed)
    h = rng.standard_normal(taps) * np.exp(-6.9 * np.arange(taps) / taps)
    return h / np.sqrt(np.sum(h**2))


def time_passes(conv: Convolver, passes: int, seed: int = 1) -> np.ndarray:
    """`[passes, PERIOD_BLOCKS]` per-block times in microseconds, streaming noise."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-0.5, 0.5, (PERIOD_BLOCKS, BLOCK)).astype(np.float32)
    out = np.zeros(BLOCK, dtype=np.float32)
    times = np.zeros((passes, PERIOD_BLOCKS), dtype=np.int64)
    clock = time.perf_counter_ns
    for p in range(passes):
        row = times[p]
        for b in range(PERIOD_BLOCKS):
            start = clock()
            conv.process(x[b], out)
            row[b] = clock() - start
    return times / 1000.0


def stats(t: np.ndarray) -> dict:
    return {
        "mean_us": float(t.mean()),
        "median_us": float(np.median(t)),
        "p99_us": float(np.percentile(t, 99)),
        "max_us": float(t.max()),
    }


def measure(ir: np.ndarray, passes: int, max_levels: int | None = None) -> dict:
    conv = Convolver(ir, BLOCK, mix=0.5, max_levels=max_levels)
    warm_passes = int(np.ceil(2 * ir.size / (PERIOD_BLOCKS * BLOCK))) + 1
    time_passes(conv, warm_passes, seed=2)
    t = time_passes(conv, passes)
    steady = t.min(axis=0)
    return {
        "ir_seconds": ir.size / SAMPLE_RATE,
        "ir_taps": int(ir.size),
        "levels": [list(level) for level in conv.levels],
        "steady": stats(steady),
        "raw": stats(t),
        "cpu_load_percent": float(100 * steady.mean() * SAMPLE_RATE / (1e6 * BLOCK)),
    }


def print_table(name: str, rows: list[dict]) -> None:
    for r in rows:
        s, raw = r["steady"], r["raw"]
        levels = " ".join(f"{n}x{p}" for n, _, p in r["levels"])
        print(
            f"{name:<12}{r['ir_seconds']:>5.1f}{s['mean_us']:>8.2f}{s['median_us']:>8.2f}{s['p99_us']:>8.2f}"
            f"{s['max_us']:>8.2f}{raw['median_us']:>9.2f}{raw['p99_us']:>8.2f}{raw['max_us']:>9.1f}"
            f"{r['cpu_load_percent']:>7.2f}  {levels}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=9, help=f"timed passes of {PERIOD_BLOCKS} blocks")
    parser.add_argument("--no-uniform", action="store_true", help="skip the single-level comparison")
    args = parser.parse_args()

    rows = [measure(decaying_noise_ir(s), args.passes) for s in IR_SECONDS]
    uniform = [] if args.no_uniform else [measure(decaying_noise_ir(s), args.passes, max_levels=1) for s in IR_SECONDS]

    print(f"block {BLOCK} samples at {SAMPLE_RATE} Hz, budget {1e6 * BLOCK / SAMPLE_RATE:.0f} us per block; us per block")
    print(f"{'':<17}{'--------- steady ---------':>32}{'---------- raw ----------':>26}")
    print(f"{'scheme':<12}{'IR s':>5}{'mean':>8}{'median':>8}{'p99':>8}{'max':>8}{'median':>9}{'p99':>8}{'max':>9}{'load%':>7}  levels (partition x count)")
    print_table("multi-level", rows)
    print_table("uniform-128", uniform)
    ratio = {k: rows[-1]["steady"][k] / rows[0]["steady"][k] for k in ("mean_us", "median_us", "max_us")}
    print(
        "3 s vs 0.1 s (IR 30x longer), steady: "
        + ", ".join(f"{k.removesuffix('_us')} x{v:.2f}" for k, v in ratio.items())
    )
    result = {
        "sample_rate": SAMPLE_RATE,
        "block": BLOCK,
        "blocks_per_pass": PERIOD_BLOCKS,
        "passes": args.passes,
        "machine": f"{platform.machine()}, {platform.system()}, python {platform.python_version()}",
        "multi_level": rows,
        "uniform_128": uniform,
        "ratio_3s_vs_0p1s_steady": ratio,
    }
    path = Path(__file__).resolve().parent / "results" / "reverb.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
